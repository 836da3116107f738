import Block
import Config
import Dispatch
import Foundation
import Logging
import NIOPosix
import Synchronization

/// What the DA follower has seen, for the failover state machine and `/status`.
public struct DAFollowerStatus: Sendable, Equatable {
    /// The next DA height to read.
    public var nextDAHeight: UInt64
    /// Latest DA head observed (network head or the height where "from the future" began).
    public var daHead: UInt64
    /// Sticky: every DA height up to a head observed after start was processed (SPEC §6, 1).
    public var headReached: Bool
    /// Headers and data seen on DA and not yet matched or applied.
    public var unresolved: Int
    /// Highest height of a validly signed header seen on DA (the equivocation fence needs it).
    public var highestHeader: UInt64
    /// The last DA error, while DA is failing; nil once a request succeeds again.
    public var lastError: String?
    /// Blobs that failed to decode or verify.
    public var badBlobs: Int
}

/// Walks the DA layer from the chain's DA start height: fetches heights in parallel (in order),
/// decodes and verifies header and data blobs, pairs each header with its data, hands complete
/// blocks to the sync pipeline, and advances the finalized height over blocks whose stored hash
/// DA confirms (DA-included = finalized, SPEC §5).
public final class DAFollower: Sendable {
    public struct Options: Sendable {
        public var headerNamespace: DANamespace
        public var dataNamespace: DANamespace
        public var startHeight: UInt64
        public var parallelism: Int
        /// Pause between polls once the head is reached.
        public var pollInterval: Duration
        /// Most unmatched headers or data held.
        public var maxUnresolved: Int

        public init(headerNamespace: DANamespace, dataNamespace: DANamespace, startHeight: UInt64,
                    parallelism: Int, pollInterval: Duration, maxUnresolved: Int = 100_000) {
            self.headerNamespace = headerNamespace
            self.dataNamespace = dataNamespace
            self.startHeight = startHeight
            self.parallelism = parallelism
            self.pollInterval = pollInterval
            self.maxUnresolved = maxUnresolved
        }
    }

    static let resumeKey = "da_follower_resume_height"

    let client: any DAClient
    let options: Options
    let sink: any CandidateSink
    let store: BlockStore
    let executor: any Executor
    let validator: BlockValidator
    let blockingPool: NIOThreadPool
    let logger: Logger
    private let state: Mutex<DAFollowerStatus>

    public init(client: any DAClient, options: Options, sink: any CandidateSink, store: BlockStore,
                executor: any Executor, validator: BlockValidator, blockingPool: NIOThreadPool = .singleton,
                logger: Logger) {
        self.client = client
        self.options = options
        self.sink = sink
        self.store = store
        self.executor = executor
        self.validator = validator
        self.blockingPool = blockingPool
        self.logger = logger
        state = Mutex(DAFollowerStatus(nextDAHeight: options.startHeight, daHead: 0, headReached: false,
                                       unresolved: 0, highestHeader: 0, lastError: nil, badBlobs: 0))
    }

    public var status: DAFollowerStatus { state.withLock { $0 } }

    /// Follows DA until cancelled. DA failures are retried with backoff and reported in
    /// `status.lastError`; only a store failure ends the follower (thrown).
    public func run() async throws {
        // A finalization batch still running when the follower is cancelled completes on its own.
        var follow = FollowState()
        var next = resumeHeight()
        state.withLock { $0.nextDAHeight = next }
        logger.info("following DA", metadata: ["from_da_height": "\(next)",
                                               "header_namespace": "\(options.headerNamespace)",
                                               "data_namespace": "\(options.dataNamespace)"])
        var backoff = Backoff(policy: RetryPolicy(maxAttempts: .max, initialDelay: .milliseconds(200),
                                                  maxDelay: .seconds(10)))
        // Condition 1 of SPEC §6 needs a head observed *after* start.
        var targetHead: UInt64?
        while !Task.isCancelled {
            do {
                if targetHead == nil {
                    let head = try await client.networkHead().height
                    targetHead = head
                    state.withLock { $0.daHead = max($0.daHead, head) }
                }
                let reachedHead = try await walk(from: &next, follow: &follow)
                backoff.reset()
                if reachedHead {
                    // What was finalized is on disk before the head counts as reached (an
                    // aggregator promoted then resumes its submitter from these records).
                    if let last = follow.finalizing {
                        follow.finalizing = nil
                        try await last.value
                    }
                    if let target = targetHead, next > target {
                        let first = state.withLock { s -> Bool in
                            defer { s.headReached = true }
                            return !s.headReached
                        }
                        if first {
                            logger.notice("DA head reached", metadata: ["da_height": "\(next - 1)"])
                        }
                    }
                    try await Task.sleep(for: options.pollInterval)
                }
            } catch let error as DAError {
                if case .cancelled = error { return }
                let delay = backoff.nextDelay()
                let firstFailure = state.withLock { s -> Bool in
                    defer { s.lastError = error.description }
                    return s.lastError == nil
                }
                if firstFailure || backoff.failures % 10 == 0 {
                    logger.warning("DA unavailable; retrying", metadata: [
                        "da_height": "\(next)", "error": "\(error)", "retry_in": "\(delay)"])
                }
                try await Task.sleep(for: delay)
            }
        }
    }

    /// Reads DA heights from `next` in order until the head; true when the head was reached.
    private func walk(from next: inout UInt64, follow: inout FollowState) async throws -> Bool {
        let namespaces = options.headerNamespace == options.dataNamespace
            ? [options.headerNamespace] : [options.headerNamespace, options.dataNamespace]
        for try await event in client.retrieve(heights: next...(next + 1_000_000), namespaces: namespaces,
                                               parallelism: options.parallelism) {
            switch event {
            case .height(let blobs):
                try await process(blobs, follow: &follow)
                next = blobs.height + 1
                let reached = next
                state.withLock {
                    $0.nextDAHeight = reached
                    $0.daHead = max($0.daHead, blobs.height)
                    $0.lastError = nil
                }
            case .headReached(let at):
                next = at
                return true
            }
            try Task.checkCancellation()
        }
        return false
    }

    /// DA heights start at 1; a start height of 0 in genesis means "from the first".
    private func resumeHeight() -> UInt64 {
        let first = max(options.startHeight, 1)
        if let bytes = try? store.metadata(Self.resumeKey), bytes.count == 8 {
            let saved = bytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            return max(saved, first)
        }
        return first
    }

    /// Decodes and verifies one DA height's blobs, hands complete blocks to the pipeline and
    /// advances finalization.
    ///
    /// Verification is the catch-up's main cost, so it runs on the blocking pool, spread over
    /// the cores, and each header signature is checked once: the pipeline is told
    /// (`signatureVerified`) and does not check it again.
    private func process(_ height: DAHeightBlobs, follow: inout FollowState) async throws {
        let decoder = BlobDecoder(headerNamespace: options.headerNamespace, dataNamespace: options.dataNamespace,
                                  validator: validator)
        let blobs = height.blobs
        let decoded = try await blockingPool.runIfActive { decoder.decode(blobs) }
        var bad = 0
        // Headers first: data then pairs with a header of this height wherever it sits.
        for case .header(let header) in decoded {
            follow.tracker.addHeader(header, daHeight: height.height, logger: logger)
        }
        for blob in decoded {
            switch blob {
            case .header: continue
            case .data(let data): follow.tracker.addData(data, daHeight: height.height)
            case .bad: bad += 1
            }
        }
        if bad > 0 {
            logger.warning("ignored DA blobs that are not validly signed blocks of this chain",
                           metadata: ["da_height": "\(height.height)", "count": "\(bad)"])
        }
        let complete = follow.tracker.takeComplete(above: store.height)
        if !complete.isEmpty {
            await sink.submit(complete)
        }
        follow.tracker.trim(max: options.maxUnresolved)
        try await finalize(&follow, processedThrough: height.height)
        let unresolved = follow.tracker.unresolved
        let highest = follow.tracker.highestHeader
        state.withLock {
            $0.badBlobs += bad
            $0.unresolved = unresolved
            $0.highestHeader = max($0.highestHeader, highest)
        }
    }

    /// Advances the finalized height over consecutive stored blocks whose hash DA confirms, and
    /// persists where a restart must resume reading DA.
    ///
    /// The store writes (inclusion records, the finalized height with the executor's `setFinal`,
    /// which prunes state, and the resume height) run on the blocking pool while the follower
    /// goes on with the next DA height: they are a large part of a catch-up's serial work. One
    /// batch is in flight at a time, in order; a failure is thrown by the next call.
    private func finalize(_ follow: inout FollowState, processedThrough daHeight: UInt64) async throws {
        let store = self.store
        let executor = self.executor
        var confirmed: [(height: UInt64, header: UInt64, data: UInt64?)] = []
        var f = max(store.finalizedHeight, follow.finalizingThrough)
        let head = store.height
        while f < head, let seen = follow.tracker.confirmed[f + 1], seen.isComplete,
              let stored = try store.headerHash(at: f + 1), stored == seen.hash {
            confirmed.append((f + 1, seen.headerDAHeight, seen.dataDAHeight))
            f += 1
        }
        let resume = follow.tracker.lowestUnresolvedDAHeight(after: f) ?? (daHeight + 1)
        let finalizedHeight = f
        let toRecord = confirmed
        if let previous = follow.finalizing {
            follow.finalizing = nil
            try await previous.value
        }
        let pool = blockingPool
        follow.finalizing = Task {
            try await pool.runIfActive {
                // One write per kind and DA height (a DA height holds thousands of blocks).
                var headers: [UInt64: [UInt64]] = [:]
                var data: [UInt64: [UInt64]] = [:]
                for entry in toRecord {
                    headers[entry.header, default: []].append(entry.height)
                    if let d = entry.data { data[d, default: []].append(entry.height) }
                }
                for (daHeight, heights) in headers {
                    try store.recordDAInclusion(.header, heights: heights, daHeight: daHeight, sync: false)
                }
                for (daHeight, heights) in data {
                    try store.recordDAInclusion(.data, heights: heights, daHeight: daHeight, sync: false)
                }
                if finalizedHeight > store.finalizedHeight {
                    try store.setFinalizedHeight(finalizedHeight, executor: executor)
                }
                var bytes = [UInt8](repeating: 0, count: 8)
                for i in 0..<8 { bytes[i] = UInt8(truncatingIfNeeded: resume >> (56 - 8 * UInt64(i))) }
                try store.setMetadata(Self.resumeKey, bytes)
            }
        }
        follow.finalizingThrough = f
        follow.tracker.forget(through: f)
    }
}

/// The follower's working state from one DA height to the next.
struct FollowState {
    var tracker = InclusionTracker()
    /// The finalization writes still running (at most one batch) …
    var finalizing: Task<Void, any Error>?
    /// … and the height they finalize through.
    var finalizingThrough: UInt64 = 0
}

/// Headers and data seen on DA, paired by data hash, and what DA confirms per block height.
struct InclusionTracker {
    struct Seen {
        var hash: [UInt8]
        var headerDAHeight: UInt64
        var dataDAHeight: UInt64?
        var needsData: Bool
        var isComplete: Bool { !needsData || dataDAHeight != nil }
    }

    /// Headers waiting for their data, by height.
    private(set) var waiting: [UInt64: (header: SignedHeader, daHeight: UInt64)] = [:]
    /// Data waiting for its header, by data hash (txs only, as in the header).
    private(set) var data: [[UInt8]: (data: BlockData, daHeight: UInt64)] = [:]
    /// Complete blocks not yet handed over.
    private var complete: [UInt64: CandidateBlock] = [:]
    /// What DA holds for each height not yet finalized.
    private(set) var confirmed: [UInt64: Seen] = [:]

    var unresolved: Int { waiting.count + data.count }
    private(set) var highestHeader: UInt64 = 0

    mutating func addHeader(_ header: SignedHeader, daHeight: UInt64, logger: Logger) {
        let height = header.height
        let hash = header.header.hash
        if let first = confirmed[height] {
            // DA order decides: the first validly signed header for a height is authoritative.
            if first.hash != hash {
                logger.error("DA holds two different headers signed by the proposer at one height (double sign)",
                             metadata: ["height": "\(height)", "first": "\(Hex.encode(first.hash))",
                                        "second": "\(Hex.encode(hash))", "da_height": "\(daHeight)"])
            }
            return
        }
        highestHeader = max(highestHeader, height)
        let needsData = header.header.dataHash != BlockData.emptyDataHash
        confirmed[height] = Seen(hash: hash, headerDAHeight: daHeight, dataDAHeight: nil, needsData: needsData)
        if !needsData {
            complete[height] = CandidateBlock(signedHeader: header, data: BlockData(metadata: nil, txs: []),
                                              origin: .da(daHeight: daHeight), signatureVerified: true)
        } else if let held = data.removeValue(forKey: header.header.dataHash) {
            confirmed[height]?.dataDAHeight = held.daHeight
            complete[height] = CandidateBlock(signedHeader: header, data: held.data, origin: .da(daHeight: daHeight),
                                              signatureVerified: true)
        } else {
            waiting[height] = (header, daHeight)
        }
    }

    mutating func addData(_ blockData: BlockData, daHeight: UInt64) {
        let hash = blockData.dataHash
        let found: UInt64?
        if let height = blockData.metadata?.height, let w = waiting[height], w.header.header.dataHash == hash {
            found = height
        } else {
            found = waiting.first(where: { $0.value.header.header.dataHash == hash })?.key
        }
        if let height = found, let w = waiting.removeValue(forKey: height) {
            confirmed[height]?.dataDAHeight = daHeight
            complete[height] = CandidateBlock(signedHeader: w.header, data: blockData, origin: .da(daHeight: w.daHeight),
                                              signatureVerified: true)
            return
        }
        if data[hash] == nil { data[hash] = (blockData, daHeight) }
    }

    /// Complete blocks in height order. Those at or below the store height are handed over too:
    /// the pipeline compares them with what it stored.
    mutating func takeComplete(above storeHeight: UInt64) -> [CandidateBlock] {
        let out = complete.values.sorted { $0.height < $1.height }
        complete.removeAll(keepingCapacity: true)
        return out
    }

    /// Keeps memory bounded against a DA namespace full of data nobody signed a header for.
    mutating func trim(max: Int) {
        if data.count > max {
            let drop = data.sorted { $0.value.daHeight < $1.value.daHeight }.prefix(data.count - max)
            for (k, _) in drop { data.removeValue(forKey: k) }
        }
        if waiting.count > max {
            for h in waiting.keys.sorted().suffix(waiting.count - max) { waiting.removeValue(forKey: h) }
        }
    }

    func lowestUnresolvedDAHeight(after finalized: UInt64) -> UInt64? {
        var lowest: UInt64?
        for (h, seen) in confirmed where h > finalized {
            lowest = min(lowest ?? .max, seen.headerDAHeight, seen.dataDAHeight ?? .max)
        }
        for (_, d) in data { lowest = min(lowest ?? .max, d.daHeight) }
        return lowest
    }

    mutating func forget(through height: UInt64) {
        for h in confirmed.keys where h <= height { confirmed.removeValue(forKey: h) }
    }
}

/// A DA blob after decoding and the checks that need no chain state.
enum DecodedBlob: Sendable {
    /// A header blob whose header and envelope signatures verified.
    case header(SignedHeader)
    /// A data blob signed by the proposer.
    case data(BlockData)
    /// Not a validly signed block part of this chain.
    case bad
}

/// Decodes a DA height's blobs and verifies their signatures, spread over the cores. Pure
/// work on values: runs on any thread.
struct BlobDecoder: Sendable {
    let headerNamespace: DANamespace
    let dataNamespace: DANamespace
    let validator: BlockValidator

    func decode(_ blobs: [DABlob]) -> [DecodedBlob] {
        concurrentMap(blobs) { decodeOne($0) }
    }

    private func decodeOne(_ blob: DABlob) -> DecodedBlob {
        if blob.namespace == headerNamespace, let envelope = try? DAHeaderEnvelope(decoding: blob.data) {
            if (try? validator.verifyEnvelope(envelope)) != nil {
                return .header(envelope.signedHeader)
            }
        }
        if blob.namespace == dataNamespace, let signed = try? SignedData(decoding: blob.data) {
            if (try? validator.verifyData(signed)) != nil {
                return .data(signed.data)
            }
        }
        return .bad
    }
}

/// `transform` applied to every element, in chunks spread over the cores; results in order.
func concurrentMap<T: Sendable, R: Sendable>(_ items: [T], _ transform: @Sendable (T) -> R) -> [R] {
    let chunks = max(1, min(ProcessInfo.processInfo.activeProcessorCount * 2, items.count / 16))
    if chunks == 1 { return items.map(transform) }
    var results = [R?](repeating: nil, count: items.count)
    results.withUnsafeMutableBufferPointer { out in
        nonisolated(unsafe) let slots = out.baseAddress!
        DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
            let lo = items.count * chunk / chunks
            let hi = items.count * (chunk + 1) / chunks
            for i in lo..<hi { slots[i] = transform(items[i]) }
        }
    }
    return results.map { $0! }
}
