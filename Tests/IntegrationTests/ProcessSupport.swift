import Foundation
import Testing

/// Finds executables built by this package (`swift build --build-tests` builds them next to the
/// test bundle, which is how `make test` runs).
enum BuiltProducts {
    static var binDirectory: URL {
        let testBinary = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        // …/.build/debug/evnodePackageTests.xctest (a file on Linux)
        return testBinary.deletingLastPathComponent()
    }

    static var evnode: URL { binDirectory.appendingPathComponent("evnode") }
    static var testkit: URL { binDirectory.appendingPathComponent("evnode-testkit") }
}

/// A temporary directory removed when the test is done with it.
final class TempDirectory {
    let path: String

    init(_ prefix: String = "evnode-it") {
        path = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Result of a command that ran to completion.
struct CommandResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs a short-lived command to completion with a deadline (killed if it overruns).
func runCommand(_ executable: URL, _ arguments: [String], timeout: Duration = .seconds(30)) throws -> CommandResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let deadline = ContinuousClock.now + timeout
    // Read both pipes to the end before waiting, so a chatty child cannot block on a full pipe.
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    while process.isRunning {
        if ContinuousClock.now > deadline {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            throw ProcessFailure.timedOut("\(executable.lastPathComponent) \(arguments.joined(separator: " "))")
        }
        usleep(10_000)
    }
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus,
                         stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

enum ProcessFailure: Error, CustomStringConvertible {
    case timedOut(String)
    case conditionNotMet(String)

    var description: String {
        switch self {
        case .timedOut(let what): return "timed out: \(what)"
        case .conditionNotMet(let what): return "condition not met before the deadline: \(what)"
        }
    }
}

/// Polls `condition` until it holds or the deadline passes.
func waitUntil(_ what: String, timeout: Duration = .seconds(20), every interval: Duration = .milliseconds(50),
               _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: interval)
    }
    if try await condition() { return }
    throw ProcessFailure.conditionNotMet(what)
}

/// A long-running child process (a node, a local DA) with its output captured to files, stopped
/// by PID with SIGTERM and, past a deadline, SIGKILL.
final class ChildProcess {
    let process = Process()
    let logPath: String
    let name: String

    init(name: String, executable: URL, arguments: [String], logDirectory: String) throws {
        self.name = name
        logPath = "\(logDirectory)/\(name).log"
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        process.executableURL = executable
        process.arguments = arguments
        process.standardOutput = log
        process.standardError = log
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }
    var output: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Sends `signal` and waits for the process to exit; SIGKILL after `timeout`.
    @discardableResult
    func stop(signal: Int32 = SIGTERM, timeout: Duration = .seconds(10)) async -> Int32 {
        if process.isRunning { kill(pid, signal) }
        let deadline = ContinuousClock.now + timeout
        while process.isRunning && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }
}
