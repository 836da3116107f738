import Synchronization

/// The blobs of one DA height (empty when the height holds none in the asked namespaces).
public struct DAHeightBlobs: Sendable, Equatable {
    public let height: UInt64
    public let blobs: [DABlob]

    public init(height: UInt64, blobs: [DABlob]) {
        self.height = height
        self.blobs = blobs
    }
}

/// What a range retrieval yields, strictly in height order.
public enum DARetrievalEvent: Sendable, Equatable {
    case height(DAHeightBlobs)
    /// The DA node's head was reached: `next` is above it (`given height is from the future`).
    /// Nothing follows this event; retrieve again from `next` later.
    case headReached(next: UInt64)
}

/// Told of every answer and fault of a retrieval's fetches (the follower's `DAAvailability`).
public protocol DAFetchObserver: Sendable {
    /// The DA node answered a fetch (with blobs, "not found" or "from the future").
    func fetchAnswered(height: UInt64)
    /// A fetch failed with a fault; it is tried again after `retryIn`.
    func fetchFailed(height: UInt64, error: DAError, attempt: Int, retryIn: Duration)
}

/// How a retrieval retries a height whose fetch failed: that height alone, again and again with
/// its own backoff (starting afresh for every height), while the other fetches go on.
public struct DAFetchRetry: Sendable {
    /// Delays between attempts at one height; `maxAttempts` is ignored (the height is needed).
    public var policy: RetryPolicy
    public var observer: (any DAFetchObserver)?
    /// Hedge stalled requests: when an answer takes more than 4× the slowest recent answer
    /// (at least `minimumHedgeDelay`), the same request is sent once more and the first answer
    /// wins. A DA node that stalls one request in a hundred then costs the walk a fraction of
    /// the stall instead of all of it (the in-order consumer waits on the stalled height). The
    /// minimum is well above the time a large answer takes to arrive and decode on a busy
    /// machine, so that a healthy catch-up never downloads a height twice.
    public var hedge: Bool
    public var minimumHedgeDelay: Duration

    public init(policy: RetryPolicy, observer: (any DAFetchObserver)? = nil, hedge: Bool = true,
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

    func record(_ d: Duration) {
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

    static func run(delay: Duration, latency: AnswerLatency,
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
    public func retrieve(heights: ClosedRange<UInt64>, namespaces: [DANamespace],
                         parallelism: Int, retry: DAFetchRetry? = nil) -> DAHeightSequence {
        DAHeightSequence(client: self, heights: heights, namespaces: namespaces, parallelism: max(1, parallelism),
                         retry: retry)
    }
}

/// An ordered, bounded-parallel walk over DA heights; see `DAClient.retrieve`.
public struct DAHeightSequence: AsyncSequence, Sendable {
    public typealias Element = DARetrievalEvent

    let client: any DAClient
    let heights: ClosedRange<UInt64>
    let namespaces: [DANamespace]
    let parallelism: Int
    let retry: DAFetchRetry?

    public func makeAsyncIterator() -> Iterator {
        Iterator(window: FetchWindow(client: client, heights: heights, namespaces: namespaces, parallelism: parallelism,
                                     retry: retry))
    }

    public struct Iterator: AsyncIteratorProtocol {
        let window: FetchWindow

        public mutating func next() async throws -> DARetrievalEvent? {
            try await window.next()
        }
    }
}

/// The fetches in flight for one retrieval. Dropping it (with its iterator) cancels them.
final class FetchWindow: Sendable {
    private struct State {
        /// The next height to hand to the consumer.
        var next: UInt64
        /// The next height to start fetching; `nil` once past the upper bound.
        var unlaunched: UInt64?
        var fetches: [UInt64: Task<[DABlob], any Error>] = [:]
        var finished = false
    }

    private let client: any DAClient
    private let upper: UInt64
    private let namespaces: [DANamespace]
    private let parallelism: Int
    private let retry: DAFetchRetry?
    private let latency = AnswerLatency()
    private let state: Mutex<State>

    init(client: any DAClient, heights: ClosedRange<UInt64>, namespaces: [DANamespace], parallelism: Int,
         retry: DAFetchRetry? = nil) {
        self.client = client
        self.upper = heights.upperBound
        self.namespaces = namespaces
        self.parallelism = parallelism
        self.retry = retry
        self.state = Mutex(State(next: heights.lowerBound, unlaunched: heights.lowerBound))
    }

    deinit {
        state.withLock { s in
            for task in s.fetches.values { task.cancel() }
        }
    }

    func next() async throws -> DARetrievalEvent? {
        let pending: (UInt64, Task<[DABlob], any Error>)? = state.withLock { s in
            guard !s.finished, s.next <= upper else { return nil }
            // Keep the window full: heights next ..< next + parallelism are in flight or done.
            while let h = s.unlaunched, h - s.next < UInt64(parallelism) {
                let client = self.client
                let namespaces = self.namespaces
                let retry = self.retry
                let latency = self.latency
                s.fetches[h] = Task {
                    try await Self.fetch(h, client: client, namespaces: namespaces, retry: retry, latency: latency)
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
        state.withLock { s in
            s.fetches[height] = nil
            s.next = height + 1
        }
        switch result {
        case .success(let blobs):
            return .height(DAHeightBlobs(height: height, blobs: blobs))
        case .failure(let error):
            switch error as? DAError {
            case .notFound?:
                return .height(DAHeightBlobs(height: height, blobs: []))
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

    /// One height's blobs; with `retry`, faults are retried here, for this height alone.
    private static func fetch(_ height: UInt64, client: any DAClient, namespaces: [DANamespace],
                              retry: DAFetchRetry?, latency: AnswerLatency) async throws(DAError) -> [DABlob] {
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
                retry?.observer?.fetchAnswered(height: height)
                return blobs
            } catch {
                switch error {
                case .notFound, .heightFromFuture:
                    retry?.observer?.fetchAnswered(height: height)
                    throw error
                case .cancelled, .setup:
                    throw error
                default:
                    guard let retry, !Task.isCancelled else { throw error }
                    attempt += 1
                    let delay = retry.policy.delay(afterAttempt: attempt)
                    retry.observer?.fetchFailed(height: height, error: error, attempt: attempt, retryIn: delay)
                    do {
                        try await Task.sleep(for: delay)
                    } catch {
                        throw .cancelled
                    }
                }
            }
        }
    }

    /// Ends the walk and cancels every fetch still in flight.
    private func stop() {
        state.withLock { s in
            s.finished = true
            for task in s.fetches.values { task.cancel() }
            s.fetches.removeAll()
        }
    }
}
