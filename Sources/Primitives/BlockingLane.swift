import Primitives
import Foundation

/// The one way to run blocking work (a RocksDB write, an fsync, a libcurl call, a sleep until a
/// slot) from async code: a named set of threads of its own. Async code awaits `run`; the
/// calling task is suspended, never a thread blocked, and the cooperative pool never runs the
/// blocking call itself.
///
/// A service that owns a lane awaits `shutdown()` at the end of its `run()`: work already
/// handed in still runs to its end (a store batch is never abandoned half-way through its
/// caller's bookkeeping), later `run`s are refused with `BlockingLaneError.shutDown`.
///
/// A lane of one thread runs its work in order: a long-running loop that owns a thread (the
/// producer's) or a writer whose writes must not overtake each other takes one.
package final class BlockingLane: Sendable {
    package let name: String
    private let core: Core

    /// Starts `threads` threads named `name-0`, `name-1`, …
    package init(name: String, threads: Int) {
        precondition(threads > 0, "a blocking lane needs at least one thread")
        self.name = name
        core = Core(name: name, threads: threads)
        for index in 0..<threads {
            let core = self.core
            let threadName = "\(name)-\(index)"
            // Named from inside: on Linux a name set before `start()` is not applied, and the
            // thread would carry its creator's (a cooperative pool thread's) in stacks and `top`.
            Thread {
                Thread.current.name = threadName
                core.work()
            }.start()
        }
    }

    deinit {
        // A lane nobody shut down still lets its threads end (no thread outlives its lane).
        core.close()
    }

    /// Runs `body` on one of the lane's threads and returns what it returns; its error comes
    /// through typed. Cancelling the awaiting task does not interrupt `body` (blocking calls
    /// cannot be): the task waits for it to end.
    ///
    /// - Throws: `.shutDown` when the lane was shut down before `body` was handed in (nothing
    ///   ran); `.failed` with `body`'s own error.
    package func run<T: Sendable, E: Error>(
        _ body: @escaping @Sendable () throws(E) -> T
    ) async throws(BlockingLaneError<E>) -> T {
        let result: Result<T, BlockingLaneError<E>> = await withCheckedContinuation { continuation in
            let job: @Sendable () -> Void = {
                do throws(E) {
                    continuation.resume(returning: .success(try body()))
                } catch {
                    continuation.resume(returning: .failure(.failed(error)))
                }
            }
            if !core.submit(job) {
                continuation.resume(returning: .failure(.shutDown(lane: name)))
            }
        }
        return try result.get()
    }

    /// `run` for callers whose error type can say "the lane is shut down" itself: `closed` is
    /// thrown when nothing ran.
    package func run<T: Sendable, E: Error>(
        orIfShutDown closed: @autoclosure () -> E,
        _ body: @escaping @Sendable () throws(E) -> T
    ) async throws(E) -> T {
        do throws(BlockingLaneError<E>) {
            return try await run(body)
        } catch {
            switch error {
            case .shutDown: throw closed()
            case .failed(let failure): throw failure
            }
        }
    }

    /// Refuses new work, lets the work already handed in finish, and returns when every thread
    /// of the lane has ended. Safe to call more than once and from several tasks.
    package func shutdown() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            core.close(notifying: continuation)
        }
    }

    /// Runs `body` with a lane of its own that is shut down when `body` returns or throws (its
    /// work finished first): the shape a service's `run()` takes, so that no lane outlives it.
    package static func with<T, E: Error>(
        name: String, threads: Int, isolation: isolated (any Actor)? = #isolation,
        _ body: (BlockingLane) async throws(E) -> T
    ) async throws(E) -> T {
        let lane = BlockingLane(name: name, threads: threads)
        let result: Result<T, E>
        do throws(E) {
            result = .success(try await body(lane))
        } catch {
            result = .failure(error)
        }
        await lane.shutdown()
        return try result.get()
    }

    /// Whether `shutdown()` was called (work handed in before may still be running).
    package var isShutDown: Bool { core.isClosed }

    /// Jobs handed in and not yet taken by a thread.
    var queuedForTesting: Int { core.queued }
}

/// Why `BlockingLane.run` did not return a value.
package enum BlockingLaneError<Failure: Error>: Error, CustomStringConvertible {
    /// The lane was shut down before the work was handed in: nothing ran.
    case shutDown(lane: String)
    /// The work ran and threw.
    case failed(Failure)

    package var description: String {
        switch self {
        case .shutDown(let lane): return "blocking lane \(lane) is shut down; the work did not run"
        case .failed(let failure): return "\(failure)"
        }
    }
}

extension BlockingLaneError: Equatable where Failure: Equatable {}

extension BlockingLane {
    /// The threads' shared state. A condition lock rather than `Mutex`: idle threads sleep on it
    /// until work or shutdown arrives, and the state is only touched while it is held.
    fileprivate final class Core: @unchecked Sendable {
        // @unchecked: `state` is only read or written while `condition` is locked.
        private let condition = NSCondition()
        private var state: State

        private struct State {
            var jobs: [@Sendable () -> Void] = []
            var next = 0
            var closed = false
            var running: Int
            var onStopped: [CheckedContinuation<Void, Never>] = []
        }

        init(name: String, threads: Int) {
            state = State(running: threads)
        }

        var isClosed: Bool {
            condition.lock()
            defer { condition.unlock() }
            return state.closed
        }

        var queued: Int {
            condition.lock()
            defer { condition.unlock() }
            return state.jobs.count - state.next
        }

        /// False when the lane is closed (the job is not kept).
        func submit(_ job: @escaping @Sendable () -> Void) -> Bool {
            condition.lock()
            defer { condition.unlock() }
            guard !state.closed else { return false }
            state.jobs.append(job)
            condition.signal()
            return true
        }

        func close(notifying continuation: CheckedContinuation<Void, Never>? = nil) {
            condition.lock()
            state.closed = true
            let stoppedAlready = state.running == 0
            if let continuation, !stoppedAlready { state.onStopped.append(continuation) }
            condition.broadcast()
            condition.unlock()
            if stoppedAlready { continuation?.resume() }
        }

        /// One thread's loop: runs jobs until the lane is closed and no job is left.
        func work() {
            while true {
                condition.lock()
                while state.next == state.jobs.count && !state.closed { condition.wait() }
                guard state.next < state.jobs.count else {
                    state.running -= 1
                    let waiters = state.running == 0 ? state.onStopped : []
                    if state.running == 0 { state.onStopped = [] }
                    condition.unlock()
                    for waiter in waiters { waiter.resume() }
                    return
                }
                let job = state.jobs[state.next]
                state.next += 1
                if state.next == state.jobs.count {
                    // Drained: reuse the buffer instead of growing it for ever.
                    state.jobs.removeAll(keepingCapacity: true)
                    state.next = 0
                } else if state.next >= 1024 {
                    // Never drained under steady load: drop the jobs already taken.
                    state.jobs.removeFirst(state.next)
                    state.next = 0
                }
                condition.unlock()
                job()
            }
        }
    }
}
