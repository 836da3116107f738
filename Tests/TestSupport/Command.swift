import Foundation
import ProcessKit
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// What a command that ran to completion printed and returned.
package struct CommandResult: Sendable {
    package let status: Int32
    package let stdout: String
    package let stderr: String
}

/// Runs a short-lived command to completion; killed (and a failure thrown) if it overruns.
package func runCommand(_ executable: URL, _ arguments: [String], environment: [String: String]? = nil,
                       timeout: Duration = .seconds(30)) throws -> CommandResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    if let environment { process.environment = environment }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = FileHandle.nullDevice
    try process.run()
    // A watchdog thread kills an overrunning command; both pipes are read to the end first, so a
    // chatty command cannot block on a full pipe.
    let finished = Atomic<Bool>(false)
    let killed = Atomic<Bool>(false)
    let pid = process.processIdentifier
    let watchdog = Thread {
        let deadline = ContinuousClock.now + timeout
        while !finished.load(ordering: .relaxed) {
            if ContinuousClock.now > deadline {
                killed.store(true, ordering: .relaxed)
                kill(pid, SIGKILL)
                return
            }
            usleep(10_000)
        }
    }
    watchdog.start()
    let errReader = PipeDrain(err.fileHandleForReading)
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = errReader.wait()
    process.waitUntilExit()
    finished.store(true, ordering: .relaxed)
    if killed.load(ordering: .relaxed) {
        throw TestFailure("timed out after \(timeout): \(executable.lastPathComponent) \(arguments.joined(separator: " "))")
    }
    return CommandResult(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                         stderr: String(decoding: errData, as: UTF8.self))
}

/// Reads a pipe to its end on a thread of its own.
final class PipeDrain: Sendable {
    private let data = Mutex<Data?>(nil)
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread { [self] in
            let bytes = handle.readDataToEndOfFile()
            data.withLock { $0 = bytes }
            done.signal()
        }.start()
    }

    func wait() -> Data {
        done.wait()
        return data.withLock { $0 ?? Data() }
    }
}
