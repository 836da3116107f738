import Primitives
import Synchronization

/// The blobs of one DA height (empty when the height holds none in the asked namespaces).
package struct DAHeightBlobs: Sendable, Equatable {
    package let height: UInt64
    package let blobs: [DABlob]

    package init(height: UInt64, blobs: [DABlob]) {
        self.height = height
        self.blobs = blobs
    }
}

/// What a range retrieval yields, strictly in height order.
package enum DARetrievalEvent: Sendable, Equatable {
    case height(DAHeightBlobs)
    /// The DA node's head was reached: `next` is above it (`given height is from the future`).
    /// Nothing follows this event; retrieve again from `next` later.
    case headReached(next: UInt64)
}

/// Told of every answer and fault of a retrieval's fetches (the follower's `DAAvailability`).
package protocol DAFetchObserver: Sendable {
    /// The DA node answered a fetch (with blobs, "not found" or "from the future").
    func fetchAnswered(height: UInt64)
    /// A fetch failed with a fault; it is tried again after `retryIn`.
    func fetchFailed(height: UInt64, error: DAError, attempt: Int, retryIn: Duration)
}

/// How a retrieval retries a height whose fetch failed: that height alone, again and again with
/// its own backoff (starting afresh for every height), while the other fetches go on.
package struct DAFetchRetry: Sendable {
    /// Delays between attempts at one height; `maxAttempts` is ignored (the height is needed).
    package var policy: RetryPolicy
    package var observer: (any DAFetchObserver)?
    /// Hedge stalled requests: when an answer takes more than 4× the slowest recent answer
    /// (at least `minimumHedgeDelay`), the same request is sent once more and the first answer
    /// wins. A DA node that stalls one request in a hundred then costs the walk a fraction of
    /// the stall instead of all of it (the in-order consumer waits on the stalled height). The
    /// minimum is well above the time a large answer takes to arrive and decode on a busy
    /// machine, so that a healthy catch-up never downloads a height twice.
    package var hedge: Bool
    package var minimumHedgeDelay: Duration

    package init(policy: RetryPolicy, observer: (any DAFetchObserver)? = nil, hedge: Bool = true,
                minimumHedgeDelay: Duration = .seconds(1)) {
        self.policy = policy
        self.observer = observer
        self.hedge = hedge
        self.minimumHedgeDelay = minimumHedgeDelay
    }
}

/// The slowest recent answer time, decaying, for the hedge delay.
final class AnswerLatency: Sendable {
    private let slowest = Mutex<Double?>(nil)

    package func record(_ d: Duration) {
        let seconds = Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        slowest.withLock { $0 = max(($0 ?? 0) * 0.9, seconds) }
    }

    /// nil until an answer was seen: the first requests are never hedged.
    func hedgeDelay(minimum: Duration) -> Duration? {
        guard let s = slowest.withLock({ $0 }) else { return nil }
        return max(minimum, .milliseconds(Int64(min(s * 4, 60) * 1000)))
    }
}

/// One request raced against a copy sent `delay` later; the first answer wins and the other is
/// cancelled (without waiting for it: a stalled transfer notices its cancellation late).
final class HedgedRequest: Sendable {
    private struct State {
        var continuation: CheckedContinuation<Result<[DABlob], DAError>, Never>?
        var pending = 2
        var hedgeStarted = false
        var failure: DAError?
        var tasks: [Task<Void, Never>] = []
    }
    private let state = Mutex(State())

    package static func run(delay: Duration, latency: AnswerLatency,
                    _ request: @escaping @Sendable () async -> Result<[DABlob], DAError>) async -> Result<[DABlob], DAError> {
        let race = HedgedRequest()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                race.state.withLock { $0.continuation = continuation }
                let primary = Task {
                    let started = ContinuousClock.now
                    let result = await request()
                    if case .success = result { latency.record(.now - started) }
                    race.finish(result, hedge: false)
                }
                let hedge = Task {
                    do {
                        try await Task.sleep(for: delay)
                    } catch {
                        race.finish(.failure(.cancelled), hedge: true)
                        return
                    }
                    guard race.startHedge() else { return }
                    race.finish(await request(), hedge: true)
                }
                race.state.withLock { $0.tasks = [primary, hedge] }
                // Cancelled before the tasks existed: the handler below ran too early to stop them.
                if Task.isCancelled { race.cancelAll() }
            }
        } onCancel: {
            race.cancelAll()
        }
    }

    private func startHedge() -> Bool {
        state.withLock { s in
            guard s.continuation != nil else { s.pending -= 1; return false }
            s.hedgeStarted = true
            return true
        }
    }

    private func finish(_ result: Result<[DABlob], DAError>, hedge: Bool) {
        typealias Continuation = CheckedContinuation<Result<[DABlob], DAError>, Never>
        let outcome = state.withLock { s -> (Continuation, Result<[DABlob], DAError>, [Task<Void, Never>])? in
            s.pending -= 1
            guard let continuation = s.continuation else { return nil }
            var final: Bool
            switch result {
            case .success:
                final = true
            case .failure(let error):
                // A hedge whose timer was cancelled has nothing to report.
                if !(hedge && !s.hedgeStarted) { s.failure = s.failure ?? error }
                switch error {
                case .notFound, .heightFromFuture:
                    final = true
                default:
                    // The primary failed before the hedge went out, or both are done.
                    final = s.pending == 0 || (!hedge && !s.hedgeStarted)
                }
            }
            guard final else { return nil }
            s.continuation = nil
            let answer: Result<[DABlob], DAError>
            switch result {
            case .success: answer = result
            case .failure(let error):
                if case .notFound = error { answer = result } else if case .heightFromFuture = error { answer = result }
                else { answer = .failure(s.failure ?? error) }
            }
            return (continuation, answer, s.tasks)
        }
        guard let (continuation, answer, tasks) = outcome else { return }
        continuation.resume(returning: answer)
        for task in tasks { task.cancel() }
    }

    private func cancelAll() {
        let tasks = state.withLock { $0.tasks }
        for task in tasks { task.cancel() }
    }
}

/// What a paced, preparing retrieval yields, strictly in height order: each height's blobs
/// after `prepare` (see `DAClient.retrieve(heights:namespaces:pacer:retry:prepare:)`).
package enum DAPreparedEvent<Prepared: Sendable>: Sendable {
    case height(UInt64, Prepared)
    /// As `DARetrievalEvent.headReached`.
    case headReached(next: UInt64)
}

extension DAClient {
    /// Retrieves the DA heights in `heights` with up to `parallelism` requests in flight and
    /// yields them strictly in height order.
    ///
    /// Pull-driven: at most `parallelism` heights past the last one consumed are fetched or held,
    /// so a slow consumer holds back the fetching (bounded memory). Ends after the last height,
    /// or with `.headReached(next:)` at the first height above the DA node's head.
    ///
    /// Without `retry`, fails with the first other `DAError` (after the client's own retries),
    /// in order: heights below the failed one are all yielded first. With `retry`, a fault at a
    /// height (HTTP error, transport, malformed answer) is retried for that height only until it
    /// is answered or the walk is cancelled; only a client that was shut down ends the walk.
    package func retrieve(heights: ClosedRange<UInt64>, namespaces: [DANamespace],
                         parallelism: Int, retry: DAFetchRetry? = nil) -> DAHeightSequence {
        DAHeightSequence(window: FetchWindow(client: self, heights: heights, namespaces: namespaces,
                                             pacer: .fixed(max(1, parallelism)), retry: retry) { _, blobs in blobs })
    }

    /// As `retrieve(heights:namespaces:parallelism:retry:)`, with the heights in flight paced by
    /// `pacer` (adapted to the DA node's latency and faults, bounded in bytes and by the known
    /// head), and each height's blobs handed to `prepare` as soon as they arrive, in the fetch's
    /// task: the walk's consumer receives them prepared, in height order, while the later heights
    /// are still being fetched and prepared. An error `prepare` throws ends the walk at that
    /// height, in order.
    package func retrieve<Prepared: Sendable>(
        heights: ClosedRange<UInt64>, namespaces: [DANamespace], pacer: DAFetchPacer, retry: DAFetchRetry?,
        prepare: @escaping @Sendable (UInt64, [DABlob]) async throws -> Prepared
    ) -> DAPreparedHeights<Prepared> {
        DAPreparedHeights(window: FetchWindow(client: self, heights: heights, namespaces: namespaces, pacer: pacer,
                                              retry: retry, prepare: prepare))
    }
}

/// An ordered, bounded-parallel walk over DA heights; see `DAClient.retrieve`.
package struct DAHeightSequence: AsyncSequence, Sendable {
    package typealias Element = DARetrievalEvent

    let window: FetchWindow<[DABlob]>

    package func makeAsyncIterator() -> Iterator {
        Iterator(window: window)
    }

    package struct Iterator: AsyncIteratorProtocol {
        let window: FetchWindow<[DABlob]>

        package mutating func next() async throws -> DARetrievalEvent? {
            switch try await window.next() {
            case .height(let height, let blobs)?: .height(DAHeightBlobs(height: height, blobs: blobs))
            case .headReached(let next)?: .headReached(next: next)
            case nil: nil
            }
        }
    }
}

/// An ordered, paced walk over DA heights, prepared behind the fetches; see `DAClient.retrieve`.
/// Iterate it once.
package struct DAPreparedHeights<Prepared: Sendable>: AsyncSequence, Sendable {
    package typealias Element = DAPreparedEvent<Prepared>

    let window: FetchWindow<Prepared>

    package func makeAsyncIterator() -> Iterator {
        Iterator(window: window)
    }

    package struct Iterator: AsyncIteratorProtocol {
        let window: FetchWindow<Prepared>

        package mutating func next() async throws -> DAPreparedEvent<Prepared>? {
            try await window.next()
        }
    }
}

/// The fetches in flight for one retrieval. Dropping it (with its iterator) cancels them.
final class FetchWindow<Prepared: Sendable>: Sendable {
    /// Shared with the fetch tasks (which must not keep the window alive: its deinit cancels them).
    final class Shared: Sendable {
        package struct State {
            /// The next height to hand to the consumer.
            package var next: UInt64
            /// The next height to start fetching; `nil` once past the upper bound.
            var unlaunched: UInt64?
            var fetches: [UInt64: Task<Prepared, any Error>] = [:]
            /// Bytes of the heights answered and not yet handed over, by height.
            package var held: [UInt64: Int] = [:]
            var heldBytes = 0
            package var finished = false
        }
        package let state: Mutex<State>
        package let pacer: DAFetchPacer

        init(first: UInt64, pacer: DAFetchPacer) {
            state = Mutex(State(next: first, unlaunched: first))
            self.pacer = pacer
        }

        /// Whether a (re)try at `height` may go out now.
        func mayFetch(_ height: UInt64) -> Bool {
            state.withLock { s in
                !s.finished && pacer.mayFetch(height, next: s.next, inFlight: s.fetches.count - s.held.count, held: s.heldBytes)
            }
        }

        package func answered(_ height: UInt64, bytes: Int) {
            pacer.answered(height: height, bytes: bytes)
            state.withLock { s in
                guard !s.finished, height >= s.next, s.held[height] == nil else { return }
                s.held[height] = bytes
                s.heldBytes += bytes
            }
        }
    }

    private let client: any DAClient
    private let upper: UInt64
    private let namespaces: [DANamespace]
    private let retry: DAFetchRetry?
    private let prepare: @Sendable (UInt64, [DABlob]) async throws -> Prepared
    private let latency = AnswerLatency()
    private let shared: Shared

    init(client: any DAClient, heights: ClosedRange<UInt64>, namespaces: [DANamespace], pacer: DAFetchPacer,
         retry: DAFetchRetry? = nil, prepare: @escaping @Sendable (UInt64, [DABlob]) async throws -> Prepared) {
        self.client = client
        self.upper = heights.upperBound
        self.namespaces = namespaces
        self.retry = retry
        self.prepare = prepare
        self.shared = Shared(first: heights.lowerBound, pacer: pacer)
    }

    deinit {
        shared.state.withLock { s in
            s.finished = true
            for task in s.fetches.values { task.cancel() }
        }
    }

    package func next() async throws -> DAPreparedEvent<Prepared>? {
        let pending: (UInt64, Task<Prepared, any Error>)? = shared.state.withLock { s in
            guard !s.finished, s.next <= upper else { return nil }
            // Keep the window full, as far as the pacer allows: the height the consumer waits
            // for is always in flight or done.
            while let h = s.unlaunched,
                  shared.pacer.mayFetch(h, next: s.next, inFlight: s.fetches.count - s.held.count, held: s.heldBytes) {
                let client = self.client
                let namespaces = self.namespaces
                let retry = self.retry
                let latency = self.latency
                let shared = self.shared
                let prepare = self.prepare
                s.fetches[h] = Task {
                    let blobs = try await Self.fetch(h, client: client, namespaces: namespaces, retry: retry,
                                                     latency: latency, shared: shared)
                    return try await prepare(h, blobs)
                }
                s.unlaunched = h < upper ? h + 1 : nil
            }
            return (s.next, s.fetches[s.next]!)
        }
        guard let (height, task) = pending else { return nil }
        let result = await withTaskCancellationHandler {
            await task.result
        } onCancel: {
            self.stop()
        }
        shared.state.withLock { s in
            s.fetches[height] = nil
            if let bytes = s.held.removeValue(forKey: height) { s.heldBytes -= bytes }
            s.next = height + 1
        }
        switch result {
        case .success(let prepared):
            return .height(height, prepared)
        case .failure(let error):
            switch error as? DAError {
            case .heightFromFuture?:
                stop()
                return .headReached(next: height)
            default:
                stop()
                if Task.isCancelled { throw DAError.cancelled }
                throw error
            }
        }
    }

    /// One height's blobs (none for "not found"); with `retry`, faults are retried here, for
    /// this height alone, each retry waiting until the pacer lets it go out.
    private static func fetch(_ height: UInt64, client: any DAClient, namespaces: [DANamespace],
                              retry: DAFetchRetry?, latency: AnswerLatency, shared: Shared) async throws(DAError) -> [DABlob] {
        var attempt = 0
        while true {
            do throws(DAError) {
                let blobs: [DABlob]
                if let retry, retry.hedge, let delay = latency.hedgeDelay(minimum: retry.minimumHedgeDelay) {
                    blobs = try await HedgedRequest.run(delay: delay, latency: latency) { () async -> Result<[DABlob], DAError> in
                        do throws(DAError) {
                            return .success(try await client.getAll(height: height, namespaces: namespaces))
                        } catch {
                            return .failure(error)
                        }
                    }.get()
                } else {
                    let started = ContinuousClock.now
                    blobs = try await client.getAll(height: height, namespaces: namespaces)
                    latency.record(.now - started)
                }
                shared.answered(height, bytes: blobs.reduce(0) { $0 + $1.data.count })
                retry?.observer?.fetchAnswered(height: height)
                return blobs
            } catch {
                switch error {
                case .notFound:
                    shared.answered(height, bytes: 0)
                    retry?.observer?.fetchAnswered(height: height)
                    return []
                case .heightFromFuture:
                    retry?.observer?.fetchAnswered(height: height)
                    throw error
                case .cancelled, .setup:
                    throw error
                default:
                    guard let retry, !Task.isCancelled else { throw error }
                    shared.pacer.faulted()
                    attempt += 1
                    let delay = retry.policy.delay(afterAttempt: attempt)
                    retry.observer?.fetchFailed(height: height, error: error, attempt: attempt, retryIn: delay)
                    do {
                        try await Task.sleep(for: delay)
                        // A window that shrank on the faults holds this height back until the
                        // consumer comes near: a failing DA node sees fewer requests, not more.
                        while !shared.mayFetch(height) {
                            try await Task.sleep(for: .milliseconds(20))
                        }
                    } catch {
                        throw .cancelled
                    }
                }
            }
        }
    }

    /// Ends the walk and cancels every fetch still in flight.
    private func stop() {
        shared.state.withLock { s in
            s.finished = true
            for task in s.fetches.values { task.cancel() }
            s.fetches.removeAll()
            s.held.removeAll()
            s.heldBytes = 0
        }
    }
}
