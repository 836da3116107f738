import Foundation
import ProcessKit
// Small helpers shared by the testkit's subcommands: output, options, clocks, formatting.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

func fail(_ message: String) -> Never {
    FileHandleOut.error("evnode-testkit: \(message)\n")
    exit(1)
}

/// Unbuffered writes to stdout / stderr (a pipe reader sees each line at once).
enum FileHandleOut {
    static func line(_ text: String) {
        var bytes = Array((text + "\n").utf8)
        writeAll(1, &bytes)
    }

    static func error(_ text: String) {
        var bytes = Array(text.utf8)
        writeAll(2, &bytes)
    }

    private static func writeAll(_ fd: Int32, _ bytes: inout [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 {
                if errno == EINTR { continue }
                exit(2)
            }
            offset += n
        }
    }
}

func option(_ name: String, in args: [String]) -> String? {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
}

func intOption(_ name: String, in args: [String], default value: Int) -> Int {
    guard let text = option(name, in: args) else { return value }
    guard let n = Int(text), n >= 0 else { fail("\(name) needs a whole number, got \"\(text)\"") }
    return n
}

func flag(_ name: String, in args: [String]) -> Bool { args.contains(name) }

/// Monotonic seconds.
func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// Wall-clock unix nanoseconds (comparable with block times and log timestamps).
func wallNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func report(_ what: String, _ count: Int, since start: Double) {
    let seconds = now() - start
    let rate = Double(count) / max(seconds, 1e-9)
    FileHandleOut.line("\(what): \(count) blocks in \(fixed(seconds, 3)) s = \(Int(rate)) blocks/s")
}

/// `x` with `digits` decimals (no Foundation formatting needed).
func fixed(_ x: Double, _ digits: Int) -> String {
    guard x.isFinite else { return "\(x)" }
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let negative = x < 0
    let scaled = Int((abs(x) * scale).rounded())
    let whole = scaled / Int(scale)
    if digits == 0 { return (negative ? "-" : "") + "\(whole)" }
    let frac = String(scaled % Int(scale))
    return (negative ? "-" : "") + "\(whole)." + String(repeating: "0", count: digits - frac.count) + frac
}

/// A child of the benchmark (a node, the local DA, etcd, an EL), its output in
/// `<logDirectory>/<name>.output`; a start failure ends the run. Children still running when the
/// run ends — also through `fail` — are killed at exit (ProcessKit's registry).
func launchChild(name: String, executable: String, arguments: [String], logDirectory: String,
                 environment: [String: String]? = nil) -> ChildProcess {
    do {
        return try ChildProcess(name: name, executable: URL(fileURLWithPath: executable), arguments: arguments,
                                logDirectory: logDirectory, environment: environment)
    } catch {
        fail("cannot start \(executable): \(error)")
    }
}

/// A free loopback port, or the end of the run.
func loopbackPort() -> Int {
    do {
        return try freeLoopbackPort()
    } catch {
        fail("\(error)")
    }
}
