import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A long-running process a test or the benchmark started (a node, a local DA, etcd, a proxy, a
/// Python peer), known by its PID. Its stdout and stderr go to `<logDirectory>/<name>.log`, which
/// stays with the test's directory (kept when the test fails). Stopped with a signal and, past a
/// deadline, SIGKILL; killed when the last reference goes or the starting process exits (also
/// through `exit()` on a failure), so nothing is left behind. Async tests use `stop`; the
/// benchmark's threads use `terminate` and `waitForExitBlocking`.
package final class ChildProcess: @unchecked Sendable {
    // `Process` is not Sendable; it is only touched under `lock`.
    private let process: Process
    private let lock = Mutex<Void>(())
    private let cursor = Mutex<Int>(0)
    /// Set once the test sent a signal: an exit after it was asked for.
    private let signalled = Atomic<Bool>(false)
    package let name: String
    package let logPath: String
    package let pid: Int32
    /// Wall-clock unix nanoseconds just before the process was started.
    package let startedAt: UInt64

    private let input: FileHandle?

    /// `separateStderr` sends stderr to `<name>.stderr.log`, for a helper whose stdout is a
    /// protocol the test reads line by line; `acceptsInput` gives it a stdin pipe for
    /// `writeLine` (a peer driven by commands).
    package init(name: String, executable: URL, arguments: [String], logDirectory: String,
                environment: [String: String]? = nil, workingDirectory: String? = nil,
                separateStderr: Bool = false, acceptsInput: Bool = false) throws {
        try FileManager.default.createDirectory(atPath: logDirectory, withIntermediateDirectories: true)
        let logPath = "\(logDirectory)/\(name).log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        // A Swift process that crashes writes its backtrace into its log (by default only when
        // attached to a terminal): a CI failure then says where a node or the DA died.
        var inherited = ProcessInfo.processInfo.environment
        if inherited["SWIFT_BACKTRACE"] == nil { inherited["SWIFT_BACKTRACE"] = "enable=yes,interactive=no" }
        process.environment = inherited.merging(environment ?? [:]) { $1 }
        process.standardOutput = log
        if separateStderr {
            let errPath = "\(logDirectory)/\(name).stderr.log"
            _ = FileManager.default.createFile(atPath: errPath, contents: nil)
            process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        } else {
            process.standardError = log
        }
        if let workingDirectory { process.currentDirectoryURL = URL(fileURLWithPath: workingDirectory) }
        let stdin = acceptsInput ? Pipe() : nil
        process.standardInput = stdin ?? FileHandle.nullDevice
        process.terminationHandler = { ChildRegistry.ended($0.processIdentifier) }
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        startedAt = UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
        try process.run()
        ChildRegistry.started(process.processIdentifier)
        self.input = stdin?.fileHandleForWriting
        self.process = process
        self.name = name
        self.logPath = logPath
        self.pid = process.processIdentifier
    }

    package var isRunning: Bool { lock.withLock { _ in process.isRunning } }

    /// Everything the process wrote so far.
    package var output: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// The complete lines written so far.
    package var lines: [String] {
        let text = output
        // The last piece is what follows the last newline: empty, or a line still being written.
        return text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    /// The exit status, or the signal number for a process a signal ended.
    package var terminationStatus: Int32 { lock.withLock { _ in process.terminationStatus } }

    /// True when the process was ended by a signal rather than exiting by itself.
    package var diedOfSignal: Bool { lock.withLock { _ in process.terminationReason == .uncaughtSignal } }

    /// True when the process has ended although the test never signalled it (a crash, an exit on
    /// an error): the first thing to read when a scenario fails.
    package var endedUnasked: Bool { !isRunning && !signalled.load(ordering: .relaxed) }

    /// How the process ended, e.g. "killed by signal 6" or "exited with status 1"; "running".
    package var exitDescription: String {
        if isRunning { return "running" }
        return diedOfSignal ? "killed by signal \(terminationStatus)" : "exited with status \(terminationStatus)"
    }

    /// The first line for which `match` returns a value; fails when the process exits first.
    package func waitForLine<T>(_ what: String, timeout: Duration = .seconds(60), _ match: (String) -> T?) async throws -> T {
        var found: T?
        try await waitUntil("\(name): \(what)", timeout: timeout) {
            for line in lines { if let m = match(line) { found = m; return true } }
            if !isRunning { throw TestFailure("\(name) exited with status \(terminationStatus) before \(what):\n\(output.suffix(3000))") }
            return false
        }
        return found!
    }

    /// The next line not returned yet, in order; nil once the process has exited and every line
    /// was read. For helpers that report progress line by line (the crash writer).
    package func nextLine(timeout: Duration = .seconds(60)) throws -> String? {
        let deadline = ContinuousClock.now + timeout
        while true {
            let all = lines
            let next = cursor.withLock { index -> String? in
                guard index < all.count else { return nil }
                index += 1
                return all[index - 1]
            }
            if let next { return next }
            if !isRunning {
                // Exited: what it wrote last is in the file now.
                let final = lines
                return cursor.withLock { index -> String? in
                    guard index < final.count else { return nil }
                    index += 1
                    return final[index - 1]
                }
            }
            if ContinuousClock.now > deadline { throw TestFailure("no line from \(name) (pid \(pid)) within \(timeout)") }
            usleep(2_000)
        }
    }

    /// Writes `line` and a newline to the process's stdin (`acceptsInput` only).
    package func writeLine(_ line: String) {
        precondition(input != nil, "\(name) was started without acceptsInput")
        input?.write(Data((line + "\n").utf8))
    }

    /// The stderr log of a process started with `separateStderr`.
    package var stderrText: String {
        (try? String(contentsOfFile: logPath.dropLast(".log".count) + ".stderr.log", encoding: .utf8)) ?? ""
    }

    package func signal(_ sig: Int32) {
        if sig != SIGSTOP && sig != SIGCONT { signalled.store(true, ordering: .relaxed) }
        if isRunning { _ = kill(pid, sig) }
    }

    /// Sends `signal` (SIGTERM: a clean stop) and waits for the exit; SIGKILL after `timeout`.
    /// Returns `terminationStatus`.
    @discardableResult
    package func stop(signal sig: Int32 = SIGTERM, timeout: Duration = .seconds(20)) async -> Int32 {
        signal(sig)
        let deadline = ContinuousClock.now + timeout
        while isRunning && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(10))
        }
        if isRunning { kill9() }
        return terminationStatus
    }

    /// SIGKILL and reap, without suspending. Returns the signal that ended the process (-1 when
    /// it had exited by itself).
    @discardableResult
    package func kill9() -> Int32 {
        signalled.store(true, ordering: .relaxed)
        return lock.withLock { _ in
            if process.isRunning { kill(pid, SIGKILL) }
            process.waitUntilExit()
            ChildRegistry.ended(pid)
            return process.terminationReason == .uncaughtSignal ? process.terminationStatus : -1
        }
    }

    /// Resident memory now and at its peak, in bytes (from /proc/PID/status).
    package var memory: (rss: Int, peak: Int)? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        func field(_ name: String) -> Int? {
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return nil }
            let kb = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }
            return kb.map { $0 * 1024 }
        }
        guard let rss = field("VmRSS"), let peak = field("VmHWM") else { return nil }
        return (rss, peak)
    }

    /// Blocks the calling thread (never a task's) until the process exits on its own; false when
    /// `timeout` passed first.
    package func waitForExitBlocking(timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while isRunning {
            if ContinuousClock.now > deadline { return false }
            usleep(10_000)
        }
        return true
    }

    /// `stop` for threads: SIGTERM, SIGKILL after `timeout`, blocking the calling thread.
    package func terminate(timeout: Duration = .seconds(15)) {
        guard isRunning else { return }
        signal(SIGTERM)
        if !waitForExitBlocking(timeout: timeout) {
            FileHandle.standardError.write(Data("\(name) did not stop within \(timeout) of SIGTERM; killing it\n".utf8))
            kill9()
        }
    }

    /// Waits for the process to end by itself; returns its exit status.
    package func waitForExit(_ what: String, timeout: Duration = .seconds(60)) async throws -> Int32 {
        try await waitUntil("\(name): \(what)", timeout: timeout) { !isRunning }
        return terminationStatus
    }

    deinit {
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
        ChildRegistry.ended(pid)
    }
}

/// Every process the tests started and have not seen end. A child still referenced when the test
/// runner exits (a fixture kept for the whole run, a reference cycle) gets no `deinit`: the
/// runner's exit kills what is left, so no local DA or etcd outlives `swift test`.
package enum ChildRegistry {
    private static let running = Mutex<Set<Int32>>([])
    private static let exitHook: Void = { atexit { ChildRegistry.killAll() } }()

    static func started(_ pid: Int32) {
        _ = exitHook
        running.withLock { _ = $0.insert(pid) }
    }

    static func ended(_ pid: Int32) {
        running.withLock { _ = $0.remove(pid) }
    }

    /// Only a pid that is still this process's child: one reaped and reused by another
    /// process in the meantime is left alone.
    private static func killAll() {
        let me = getpid()
        for pid in running.withLock({ $0 }) where parent(of: pid) == me { kill(pid, SIGKILL) }
    }

    private static func parent(of pid: Int32) -> Int32? {
        // /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces, so split after ')'.
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? Int32(fields[1]) : nil
    }
}
