import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A helper process started by a test, whose stdout is read line by line with deadlines.
final class ChildProcess {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    let process = Process()
    private let stdout = Pipe()
    private var buffer: [UInt8] = []
    private var eof = false

    init(executable: String, arguments: [String]) throws {
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.standardOutput = stdout
        try process.run()
    }

    var pid: Int32 { process.processIdentifier }

    /// The next line of stdout, or nil at end of stream. Throws when `timeout` passes first.
    func readLine(timeout: Duration = .seconds(60)) throws -> String? {
        let deadline = ContinuousClock.now + timeout
        let fd = stdout.fileHandleForReading.fileDescriptor
        while true {
            if let newline = buffer.firstIndex(of: 0x0a) {
                let line = String(decoding: buffer[..<newline], as: UTF8.self)
                buffer.removeSubrange(...newline)
                return line
            }
            if eof { return nil }
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else { throw Failure(description: "no line from pid \(pid) within \(timeout)") }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ms = Int32(min(remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000, 1000))
            let ready = poll(&pfd, 1, max(ms, 1))
            if ready < 0 && errno != EINTR { throw Failure(description: "poll: \(String(cString: strerror(errno)))") }
            if ready <= 0 { continue }
            var chunk = [UInt8](repeating: 0, count: 4096)
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw Failure(description: "read: \(String(cString: strerror(errno)))")
            }
            if n == 0 { eof = true } else { buffer += chunk[..<n] }
        }
    }

    /// SIGKILL and reap. Returns the signal that ended the process (9 unless it had exited).
    @discardableResult
    func kill9() -> Int32 {
        kill(pid, SIGKILL)
        process.waitUntilExit()
        return process.terminationReason == .uncaughtSignal ? process.terminationStatus : -1
    }

    deinit {
        if process.isRunning { kill9() }
    }

    /// An executable built by `swift build` next to the running test binary
    /// (`.build/<triple>/<config>/`). Tests cannot depend on executables, so `swift build` must
    /// have run before `swift test` (the Makefile builds everything first).
    static func builtExecutable(_ name: String) throws -> String {
        var candidates: [String] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            candidates.append(URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent(name).path)
        }
        if let first = CommandLine.arguments.first {
            candidates.append(URL(fileURLWithPath: first).deletingLastPathComponent().appendingPathComponent(name).path)
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/\(name)").path)
        for path in candidates where FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        throw Failure(description: "\(name) not found (looked at \(candidates)); run `swift build` before `swift test`")
    }
}
