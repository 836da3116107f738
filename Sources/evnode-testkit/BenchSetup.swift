import Primitives
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What every benchmark subcommand starts from: this executable, the `evnode` beside it (or
/// `--evnode PATH`), and a work directory of its own, removed at the end unless `--keep`.
struct BenchSetup {
    let testkit: String
    let evnode: String
    let work: String
    let keep: Bool

    init(_ args: [String], workName: String) {
        testkit = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        evnode = option("--evnode", in: args) ?? "\((testkit as NSString).deletingLastPathComponent)/evnode"
        guard FileManager.default.isExecutableFile(atPath: evnode) else {
            fail("no evnode executable at \(evnode) (build with `swift build -c release` first)")
        }
        work = FileManager.default.temporaryDirectory.appendingPathComponent("\(workName)-\(getpid())").path
        keep = flag("--keep", in: args)
        do {
            try FileIO.makeDirectories(work)
        } catch {
            fail("\(error)")
        }
    }

    /// Writes `json` to `<out>/<started, compact>-<mode>.json` and prints `table` and the path.
    func publish(json: String, table: String, started: String, mode: String, out: String) {
        let stamp = started.replacingOccurrences(of: ":", with: "").prefix(17)
        let path = "\(out)/\(stamp)-\(mode).json"
        do {
            try FileIO.makeDirectories(out)
            try FileIO.writeAtomically(path, json)
        } catch {
            fail("writing \(path): \(error)")
        }
        FileHandleOut.line("")
        FileHandleOut.line(table)
        FileHandleOut.line("results: \(path)")
    }

    /// Removes the work directory, or says where it was kept (logs, homes).
    func finish() {
        if keep {
            FileHandleOut.line("kept the work directory (logs, homes): \(work)")
        } else {
            try? FileManager.default.removeItem(atPath: work)
        }
    }
}

/// `value` as sorted, indented JSON.
func prettyJSON(_ value: some Encodable) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
    return String(decoding: (try? encoder.encode(value)) ?? Data(), as: UTF8.self)
}
