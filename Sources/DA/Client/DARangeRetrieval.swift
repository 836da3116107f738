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

extension DAClient {
    /// Retrieves the DA heights in `heights` with up to `parallelism` requests in flight and
    /// yields them strictly in height order.
    ///
    /// Pull-driven: at most `parallelism` heights past the last one consumed are fetched or held,
    /// so a slow consumer holds back the fetching (bounded memory). Ends after the last height,
    /// or with `.headReached(next:)` at the first height above the DA node's head. Fails with
    /// the first other `DAError` (after the client's own retries), in order: heights below the
    /// failed one are all yielded first.
    public func retrieve(heights: ClosedRange<UInt64>, namespaces: [DANamespace],
                         parallelism: Int) -> DAHeightSequence {
        DAHeightSequence(client: self, heights: heights, namespaces: namespaces, parallelism: max(1, parallelism))
    }
}

/// An ordered, bounded-parallel walk over DA heights; see `DAClient.retrieve`.
public struct DAHeightSequence: AsyncSequence, Sendable {
    public typealias Element = DARetrievalEvent

    let client: any DAClient
    let heights: ClosedRange<UInt64>
    let namespaces: [DANamespace]
    let parallelism: Int

    public func makeAsyncIterator() -> Iterator {
        Iterator(window: FetchWindow(client: client, heights: heights, namespaces: namespaces, parallelism: parallelism))
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
    private let state: Mutex<State>

    init(client: any DAClient, heights: ClosedRange<UInt64>, namespaces: [DANamespace], parallelism: Int) {
        self.client = client
        self.upper = heights.upperBound
        self.namespaces = namespaces
        self.parallelism = parallelism
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
                s.fetches[h] = Task { try await client.getAll(height: h, namespaces: namespaces) }
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

    /// Ends the walk and cancels every fetch still in flight.
    private func stop() {
        state.withLock { s in
            s.finished = true
            for task in s.fetches.values { task.cancel() }
            s.fetches.removeAll()
        }
    }
}
