// Test helpers for starting real `evnode` processes: locate the binary, temp homes, launch and
// stop by PID, read stdout lines, wait on conditions with deadlines. Self-contained (Foundation
// and Synchronization only) so other test targets can copy it unchanged.

import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The `evnode` executable built next to the test bundle (`.build/<config>/evnode`), or the
/// path in `EVNODE_BINARY`.
enum EvnodeBinary {
    static func path() throws -> String {
        if let explicit = ProcessInfo.processInfo.environment["EVNODE_BINARY"], !explicit.isEmpty {
            return explicit
        }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("evnode").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        throw HarnessError("evnode binary not found near \(CommandLine.arguments[0]); run `swift build` first or set EVNODE_BINARY")
    }
}

/// A loopback TCP port that was free a moment ago (bound to port 0, then closed). Prefer having
/// the process bind port 0 itself and report it (no race); use this only when a port must be
/// known before a process starts.
func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw HarnessError("bind: \(String(cString: strerror(errno)))") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// A fresh directory under the system temp dir, removed by `remove()`.
final class TemporaryDirectory: Sendable {
    let path: String

    init(prefix: String = "evnode-test") throws {
        var template = Array((NSTemporaryDirectory() + "/\(prefix)-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw HarnessError("mkdtemp failed: \(String(cString: strerror(errno)))")
        }
        path = String(cString: made)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// Polls `condition` until it holds or `timeout` passes (then throws naming `what`).
func waitUntil(_ what: String, timeout: Duration = .seconds(30), poll: Duration = .milliseconds(20),
               _ condition: () async throws -> Bool) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while true {
        if try await condition() { return }
        if clock.now >= deadline { throw HarnessError("timed out after \(timeout) waiting for \(what)") }
        try await Task.sleep(for: poll)
    }
}

/// A child process started by a test: stdout is collected line by line, stderr goes to a file
/// (shown when something fails). Stopped by PID with SIGTERM, then SIGKILL after a deadline.
final class ChildProcess: @unchecked Sendable {
    // `Process` is not Sendable; it is only touched under `lock`.
    private let process: Process
    private let lock = Mutex<Void>(())
    private let lines = LineBuffer()
    let stderrPath: String
    let pid: Int32

    init(executable: String, arguments: [String], stderrPath: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let stdout = Pipe()
        process.standardOutput = stdout
        _ = FileManager.default.createFile(atPath: stderrPath, contents: nil)
        guard let stderr = FileHandle(forWritingAtPath: stderrPath) else {
            throw HarnessError("cannot open \(stderrPath)")
        }
        process.standardError = stderr
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process = process
        self.pid = process.processIdentifier
        self.stderrPath = stderrPath
        let reader = stdout.fileHandleForReading
        let thread = Thread { [lines] in
            var pending = Data()
            while true {
                let chunk = reader.availableData
                if chunk.isEmpty { break }
                pending.append(chunk)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    let line = String(decoding: pending[pending.startIndex..<newline], as: UTF8.self)
                    pending.removeSubrange(pending.startIndex...newline)
                    lines.append(line)
                }
            }
        }
        thread.start()
    }

    var stdoutLines: [String] { lines.snapshot }

    var isRunning: Bool { lock.withLock { _ in process.isRunning } }

    var stderrText: String { (try? String(contentsOfFile: stderrPath, encoding: .utf8)) ?? "" }

    /// The first stdout line for which `match` returns a value.
    func waitForLine<T>(_ what: String, timeout: Duration = .seconds(20), _ match: (String) -> T?) async throws -> T {
        var found: T?
        try await waitUntil(what, timeout: timeout) {
            for line in stdoutLines { if let m = match(line) { found = m; return true } }
            if !isRunning {
                throw HarnessError("process \(pid) exited before \(what); stderr:\n\(stderrText)")
            }
            return false
        }
        return found!
    }

    func signal(_ sig: Int32) {
        _ = kill(pid, sig)
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL. Returns the exit status (or -signal).
    @discardableResult
    func stop(grace: Duration = .seconds(5)) async -> Int32 {
        if isRunning {
            signal(SIGTERM)
            do {
                try await waitUntil("process \(pid) to exit", timeout: grace) { !isRunning }
            } catch {
                signal(SIGKILL)
                try? await waitUntil("process \(pid) to die", timeout: .seconds(5)) { !isRunning }
            }
        }
        return lock.withLock { _ in
            process.terminationReason == .uncaughtSignal ? -process.terminationStatus : process.terminationStatus
        }
    }
}

/// Lines read from a child's stdout, shared between the reader thread and the test.
final class LineBuffer: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var snapshot: [String] { lines.withLock { $0 } }
}

/// A running `evnode local-da` on a loopback port it picked itself (port 0) and reported on stdout.
final class LocalDAProcess: Sendable {
    let child: ChildProcess
    let port: Int
    let home: String

    var url: String { "http://127.0.0.1:\(port)/" }

    private init(child: ChildProcess, port: Int, home: String) {
        self.child = child
        self.port = port
        self.home = home
    }

    /// Starts local DA with its database in `home`. `port` 0 lets it pick a free one.
    static func start(home: String, port: Int = 0, arguments: [String] = []) async throws -> LocalDAProcess {
        let binary = try EvnodeBinary.path()
        let child = try ChildProcess(
            executable: binary,
            arguments: ["local-da", "--home", home, "--listen", "127.0.0.1:\(port)"] + arguments,
            stderrPath: home + ".stderr.log")
        do {
            let bound = try await child.waitForLine("local-da to report its address") { line -> Int? in
                guard line.hasPrefix("listening on "), let colon = line.lastIndex(of: ":") else { return nil }
                return Int(line[line.index(after: colon)...])
            }
            return LocalDAProcess(child: child, port: bound, home: home)
        } catch {
            await child.stop()
            throw error
        }
    }

    @discardableResult
    func stop() async -> Int32 {
        await child.stop()
    }
}
