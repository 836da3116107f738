// Child processes of the benchmark (local DA, nodes, make-chain): output to a log file,
// memory read from /proc, stopped by PID.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class ChildProcess {
    let name: String
    let logPath: String
    /// Wall-clock unix ns just before the process was started.
    let startedAt: UInt64
    private let process = Process()

    init(name: String, executable: String, arguments: [String], logDirectory: String) {
        self.name = name
        logPath = "\(logDirectory)/\(name).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        guard let log = FileHandle(forWritingAtPath: logPath) else { fail("cannot write \(logPath)") }
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = log
        process.standardError = log
        startedAt = wallNanoseconds()
        do {
            try process.run()
        } catch {
            fail("cannot start \(executable): \(error)")
        }
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var exitStatus: Int32 { process.terminationStatus }
    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Resident memory now and at its peak, in bytes (from /proc/PID/status).
    var memory: (rss: Int, peak: Int)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        func field(_ name: String) -> Int? {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return nil }
            let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }
            return kb.map { $0 * 1024 }
        }
        guard let rss = field("VmRSS"), let peak = field("VmHWM") else { return nil }
        return (rss, peak)
    }

    /// Waits for the process to exit on its own; false when the deadline passed first.
    func wait(timeout seconds: Double) -> Bool {
        let deadline = now() + seconds
        while process.isRunning {
            if now() > deadline { return false }
            usleep(10_000)
        }
        return true
    }

    /// SIGTERM, then SIGKILL after `timeout` seconds.
    func stop(timeout seconds: Double = 15) {
        guard process.isRunning else { return }
        kill(pid, SIGTERM)
        if !wait(timeout: seconds) {
            FileHandleOut.error("\(name) did not stop within \(Int(seconds)) s of SIGTERM; killing it\n")
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }

    deinit {
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }
}
