import Dispatch
import FuzzTargets
import Foundation
import Synchronization

// `evnode-fuzz`: the fuzz targets as one program.
//
// Built by `make fuzz` with `-sanitize=fuzzer` (and EVNODE_LIBFUZZER defined), it is a libFuzzer
// binary: `evnode-fuzz <target> [libFuzzer flags] [corpus dirs]`; libFuzzer's own `main` runs and
// calls the two functions below. Built normally (every `swift build`), it replays inputs:
// `evnode-fuzz replay <target> <file or dir>…` (what the tests run), `evnode-fuzz list`, and
// `evnode-fuzz make-seeds <dir> [vectors.json]` (writes the seed corpus).

/// Runs `target` on `input` from a thread outside Swift's cooperative pool (libFuzzer's, or
/// the replay's main thread): the target's tasks run on the pool while this thread waits.
func runBlocking(_ target: FuzzTarget, _ input: [UInt8]) -> Result<Reached, FuzzFinding> {
    let outcome = Mutex<Result<Reached, FuzzFinding>>(.success([:]))
    let done = DispatchSemaphore(value: 0)
    Task.detached {
        do throws(FuzzFinding) {
            let reached = try await target.run(input)
            outcome.withLock { $0 = .success(reached) }
        } catch {
            outcome.withLock { $0 = .failure(error) }
        }
        done.signal()
    }
    done.wait()
    return outcome.withLock { $0 }
}

func standardError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

#if EVNODE_LIBFUZZER

/// The target chosen by the first argument (set once, before libFuzzer runs any input).
nonisolated(unsafe) var chosen: FuzzTarget?
let targetVariable = "EVNODE_FUZZ_TARGET"

@_cdecl("LLVMFuzzerInitialize")
func fuzzerInitialize(_ argc: UnsafeMutablePointer<Int32>,
                      _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> Int32 {
    guard let args = argv.pointee else { exit(2) }
    // The target is the first argument. libFuzzer runs itself again for some jobs (-minimize_crash,
    // -fork, -merge) with its own arguments only: those runs find it in the environment.
    let named = argc.pointee > 1 ? args[1].flatMap { FuzzTargets.named(String(cString: $0)) } : nil
    let inherited = ProcessInfo.processInfo.environment[targetVariable].flatMap(FuzzTargets.named)
    guard let target = named ?? inherited else {
        standardError("usage: evnode-fuzz <target> [libFuzzer flags] [corpus dirs]; targets: "
                      + FuzzTargets.all.map(\.name).joined(separator: ", "))
        exit(2)
    }
    chosen = target
    setenv(targetVariable, target.name, 1)
    // libFuzzer reads its flags and corpus directories from the arguments after the target; the
    // target's -max_len goes last unless one was given. The new argument list lives as long as
    // the process (libFuzzer keeps pointers into it).
    var kept = ((named == nil ? 1 : 2)..<Int(argc.pointee)).compactMap { args[$0] }
    if !kept.contains(where: { String(cString: $0).hasPrefix("-max_len=") }) {
        kept.append(strdup("-max_len=\(target.maxLength)"))
    }
    let list = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: kept.count + 2)
    list[0] = args[0]
    for (i, arg) in kept.enumerated() { list[i + 1] = arg }
    list[kept.count + 1] = nil
    argv.pointee = list
    argc.pointee = Int32(kept.count + 1)
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let target = chosen else { return 0 }
    let input = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    if case .failure(let finding) = runBlocking(target, input) {
        if knownFindings.contains(finding.id) {
            // Known and being fixed elsewhere (Fuzz/known-issues): said once, then fuzzing goes on.
            if reportedKnown.insert(finding.id).inserted { standardError("KNOWN FINDING in \(target.name): \(finding)") }
            return 0
        }
        standardError("FINDING in \(target.name): \(finding)")
        // libFuzzer saves the input and reports it as a crash.
        abort()
    }
    return 0
}

/// The finding ids `scripts/fuzz.sh` passes from Fuzz/known-issues.
let knownFindings = Set((ProcessInfo.processInfo.environment["EVNODE_FUZZ_KNOWN_FINDINGS"] ?? "")
    .split(separator: ",").map(String.init))
/// Only libFuzzer's thread touches it.
nonisolated(unsafe) var reportedKnown: Set<String> = []

#else

@main
struct Replay {
    static func main() {
        let args = Array(CommandLine.arguments.dropFirst())
        switch args.first {
        case "list":
            for t in FuzzTargets.all { print("\(t.name)\tmax_len=\(t.maxLength)\t\(t.summary)") }
        case "replay" where args.count >= 3:
            guard let target = FuzzTargets.named(args[1]) else { fail("no target named \(args[1])") }
            var findings = 0
            for file in inputs(Array(args.dropFirst(2))) {
                // Printed before the run: if the input crashes the process, the last line names it.
                FileHandle.standardOutput.write(Data("replay \(file)\n".utf8))
                guard let bytes = FileManager.default.contents(atPath: file) else { fail("cannot read \(file)") }
                switch runBlocking(target, Array(bytes)) {
                case .success(let reached):
                    let counts = reached.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
                    FileHandle.standardOutput.write(Data("  reached \(counts.joined(separator: " "))\n".utf8))
                case .failure(let finding):
                    FileHandle.standardOutput.write(Data("FINDING \(file): \(finding)\n".utf8))
                    findings += 1
                }
            }
            exit(findings == 0 ? 0 : 1)
        case "make-seeds" where args.count >= 2:
            let vectors = args.count >= 3 ? FuzzSeeds.vectorBlocks(path: args[2]) : nil
            if args.count >= 3, vectors == nil { fail("cannot read the vectors at \(args[2])") }
            for (name, seeds) in FuzzSeeds.all(vectors: vectors ?? []) {
                let dir = URL(fileURLWithPath: args[1]).appendingPathComponent(name)
                try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                for (file, bytes) in seeds {
                    let path = dir.appendingPathComponent(file).path
                    guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { fail("cannot write \(path)") }
                }
                print("\(name): \(seeds.count) seeds, \(seeds.reduce(0) { $0 + $1.1.count }) bytes")
            }
        default:
            fail("usage: evnode-fuzz list | replay <target> <file or dir>... | make-seeds <dir> [vectors.json]\n"
                 + "(the libFuzzer binary is built by `make fuzz`)")
        }
    }

    /// Files given, and the files in the directories given, sorted.
    static func inputs(_ paths: [String]) -> [String] {
        paths.flatMap { path -> [String] in
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return [path] }
            guard isDirectory.boolValue else { return [path] }
            let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
            return names.filter { !$0.hasPrefix(".") }.sorted().map { path + "/" + $0 }
        }
    }

    static func fail(_ message: String) -> Never {
        standardError(message)
        exit(2)
    }
}

#endif
