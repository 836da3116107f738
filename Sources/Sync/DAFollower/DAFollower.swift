import Execution
import Primitives
import DAClient
import Chain
import Store
import Logging
import NIOPosix
import Synchronization
import Telemetry

/// What the DA follower has seen, for the failover state machine and `/status`.
package struct DAFollowerStatus: Sendable, Equatable {
    /// The next DA height to read.
    package var nextDAHeight: UInt64
    /// Latest DA head observed (network head or the height where "from the future" began).
    package var daHead: UInt64
    /// Sticky: every DA height up to a head observed after start was processed (SPEC §6, 1).
    package var headReached: Bool
    /// Headers and data seen on DA and not yet matched or applied.
    package var unresolved: Int
    /// Highest height of a validly signed header seen on DA (the equivocation fence needs it).
    package var highestHeader: UInt64
    /// The last DA error, while DA is failing; nil once a request succeeds again.
    package var lastError: String?
    /// When DA started failing; nil while it answers.
    package var failingSince: ContinuousClock.Instant?
    /// Blobs that failed to decode or verify, and unclaimed data dropped.
    package var badBlobs: Int
    /// The DA node refuses the credentials (HTTP 401/403) and has answered nothing since.
    package var authError: String? = nil
    /// Failed DA requests in the current episode of trouble (0 when DA answers cleanly).
    package var failedAttempts: Int = 0
    /// Bytes of data blobs held while they wait for their header.
    package var heldDataBytes: Int = 0
    /// Data blobs dropped because the held bytes reached `maxHeldDataBytes`.
    package var droppedForSpace: Int = 0
    /// DA heights fetched or held ahead of the one being processed now (adapted to the DA node),
    /// and the most so far.
    package var fetchWindow: Int = 0
    package var fetchWindowPeak: Int = 0
    /// The lowest DA height that keeps failing (the follower cannot go past it), if any.
    package var stalled: DAAvailability.StalledHeight? = nil
    /// Headers without an envelope signature are dropped (`EnvelopeStrictMode`).
    package var strictEnvelopes: Bool = false
    /// Headers dropped because strict mode wants an envelope they do not carry.
    package var droppedWithoutEnvelope: Int = 0
    /// DA height hints from P2P (`DAHeightHints`): how many arrived, are held, were ignored,
    /// woke the follower, and were passed by its walk.
    package var hints = DAHeightHints.Counts()
}

/// Walks the DA layer from the chain's DA start height: fetches heights in parallel (as many in
/// flight as the DA node's latency and faults call for, see `DAFetchPacer`), decodes and verifies
/// header and data blobs behind the fetches, takes the heights in DA order, pairs each header
/// with its data, hands complete blocks to the sync pipeline, and advances the finalized height
/// over blocks whose stored hash DA confirms (DA-included = finalized, SPEC §5).
///
/// DA order decides between conflicting headers (SPEC §7): the first validly signed header for a
/// height is authoritative and goes to `authority`; a later different one is double-sign
/// evidence and is not handed on. At a finalized height, a different header is only evidence when
/// the stored block was included on DA first; otherwise it is handed on, and the pipeline reports
/// the finalized divergence. After a rollback, `rewind(after:)` reads DA again for the blocks
/// above the common ancestor.
package final class DAFollower: Sendable {
    package struct Options: Sendable {
        package var headerNamespace: DANamespace
        package var dataNamespace: DANamespace
        package var startHeight: UInt64
        /// Most DA heights in flight (`da.fetch_parallelism`): the number adapts below it, from
        /// 8, growing while the DA node answers faster for it and halving on faults.
        package var parallelism: Int
        /// Most bytes of fetched DA heights held ahead of the one being processed.
        package var maxBufferedBytes: Int
        /// Pause between polls once the head is reached.
        package var pollInterval: Duration
        /// Most unmatched headers or data held.
        package var maxUnresolved: Int
        /// Most bytes of data blobs held while they wait for their header (`da.max_held_data`).
        package var maxHeldDataBytes: Int
        /// Backoff between attempts at one DA height that failed (starts afresh per height).
        package var retry: RetryPolicy
        /// ev-node's `da_retrieval_*_total`, counted as each fetch is answered or fails.
        package var metrics: SyncSeries?
        /// The forced-inclusion check of DA-sourced blocks (nil: forced inclusion off). Made by
        /// `run()` from the resume height: see `ForcedInclusionVerifier.init`.
        package var forcedInclusion: (@Sendable (_ resumeDAHeight: UInt64) -> ForcedInclusionVerifier)?

        package static let defaultMaxHeldDataBytes = 64 << 20
        package static let defaultRetry = RetryPolicy(maxAttempts: .max, initialDelay: .milliseconds(200),
                                                     maxDelay: .seconds(10))

        package init(headerNamespace: DANamespace, dataNamespace: DANamespace, startHeight: UInt64,
                    parallelism: Int, pollInterval: Duration, maxUnresolved: Int = 100_000,
                    maxHeldDataBytes: Int = defaultMaxHeldDataBytes, retry: RetryPolicy = defaultRetry,
                    maxBufferedBytes: Int = DAFetchPacer.defaultMaxBufferedBytes) {
            self.headerNamespace = headerNamespace
            self.dataNamespace = dataNamespace
            self.startHeight = startHeight
            self.parallelism = parallelism
            self.pollInterval = pollInterval
            self.maxUnresolved = maxUnresolved
            self.maxHeldDataBytes = maxHeldDataBytes
            self.retry = retry
            self.maxBufferedBytes = maxBufferedBytes
        }
    }

    let client: any DAClient
    let options: Options
    let sink: any CandidateSink
    let store: BlockStore
    let executor: any Executor
    /// Writes what DA makes final (the follower only works it out).
    let finalityRecorder: DAFinalityRecorder
    let checker: DABlobChecker
    let blockingPool: NIOThreadPool
    /// The in-order lane of the latest `run()` or `settle()` (see `withInOrderLane`), kept so
    /// that a test can see it was shut down when that call ended.
    private let lastInOrderLane = Mutex<BlockingLane?>(nil)

    /// Whether the in-order lane of the latest `run()` or `settle()` still takes work: it must
    /// not once they returned (a follower that stopped holds no thread).
    var lastInOrderLaneTakesWork: Bool {
        get async {
            guard let lane = lastInOrderLane.withLock({ $0 }) else { return false }
            return !lane.isShutDown
        }
    }
    let logger: Logger
    /// Answers and faults of every DA request: the log's one WARNING, summaries and INFO, and
    /// the failure fields of `status`.
    package let availability: DAAvailability
    /// The first validly signed header DA holds for each unfinalized height.
    package let authority: AuthoritativeHeaders
    let evidence: EvidenceLog?
    /// How many DA heights are in flight; kept across walks (the polls at the head are walks).
    let pacer: DAFetchPacer
    private let state: Mutex<DAFollowerStatus>
    /// The lowest common ancestor a rollback asked to replay from, until the run loop takes it.
    private let rewindRequest = Mutex<UInt64?>(nil)
    /// The current run's forced-inclusion check.
    private let forcedInclusion = Mutex<ForcedInclusionVerifier?>(nil)
    /// What `run()` knew when it ended: DA confirmations of blocks that may have been applied
    /// after it last finalized. `settle()` records them.
    private let leftover = Mutex<InclusionTracker?>(nil)

    package init(client: any DAClient, options: Options, sink: any CandidateSink, store: BlockStore,
                executor: any Executor, validator: BlockValidator,
                authority: AuthoritativeHeaders = AuthoritativeHeaders(), evidence: EvidenceLog? = nil,
                blockingPool: NIOThreadPool = .singleton, logger: Logger) {
        self.client = client
        self.options = options
        self.sink = sink
        self.store = store
        self.executor = executor
        finalityRecorder = DAFinalityRecorder(store: store, executor: executor)
        var checker = DABlobChecker(validator: validator, headerNamespace: options.headerNamespace,
                                    dataNamespace: options.dataNamespace)
        checker.isNamed = { store.namedProposers.contains($0) }
        self.checker = checker
        self.authority = authority
        self.evidence = evidence
        self.blockingPool = blockingPool
        self.logger = logger
        availability = DAAvailability(logger: logger)
        pacer = DAFetchPacer(maximum: options.parallelism, maxBufferedBytes: options.maxBufferedBytes)
        state = Mutex(DAFollowerStatus(nextDAHeight: options.startHeight, daHead: 0, headReached: false,
                                       unresolved: 0, highestHeader: 0, lastError: nil, failingSince: nil,
                                       badBlobs: 0))
    }

    package var status: DAFollowerStatus {
        var s = state.withLock { $0 }
        let da = availability.snapshot
        s.lastError = da.lastError
        s.failingSince = da.failingSince
        s.authError = da.authError
        s.failedAttempts = da.failedAttempts
        s.stalled = da.stalled
        s.fetchWindow = pacer.limit
        s.fetchWindowPeak = pacer.peak
        s.hints = heightHints.withLock { $0.counts }
        return s
    }

    /// How often the DA network head is asked for again once known, so that `status.daHead` shows
    /// how far behind the follower is even while it reads a long way behind or waits at the head.
    static let headRefreshInterval: Duration = .seconds(10)
    private let headCheckedAt = Mutex(ContinuousClock.now)

    /// Waits `pollInterval` at the DA head, or less: a head source or a hint's wake ends it, and
    /// a hint held without a wake (one was spent within the last `DAHeightHints.wakeInterval`)
    /// ends it at the next wake interval. Only the held hints are looked at in between, not DA.
    private func waitAtHead() async throws {
        let deadline = ContinuousClock.now + options.pollInterval
        while true {
            let left = deadline - .now
            guard left > .zero else { return }
            let slice = min(left, DAHeightHints.wakeInterval)
            let began = ContinuousClock.now
            try await headSignal.wait(atMost: slice)
            // Back before the slice ended: signalled.
            if ContinuousClock.now - began < slice || heightHints.withLock({ !$0.isEmpty }) { return }
        }
    }

    /// After a rollback to `height`: reads DA again from the lowest DA height holding a block
    /// above it, so the authoritative chain is replayed. Takes effect between two DA heights
    /// (at once when the follower waits at the head). Call it after the rollback is done: blocks
    /// read again before it would still meet the old stored ones.
    package func rewind(after height: UInt64) {
        rewindRequest.withLock { $0 = min($0 ?? .max, height) }
    }

    private var rewindPending: Bool { rewindRequest.withLock { $0 != nil } }

    /// Ends the wait at the DA head now: a head source (`DAHeadSubscription`) saw a new height.
    package func wake() {
        headSignal.signal()
    }

    private let headSignal = WakeUpSignal()

    /// P2P's DA height hints, bounded (`DAHeightHints`).
    private let heightHints = Mutex(DAHeightHints())

    /// A peer's hint that a block is included at `daHeight` (header or data). Advisory: it may
    /// end the wait at the DA head early (at most once per `DAHeightHints.wakeInterval`), so
    /// the inclusion is read sooner; the follower still reads every DA height in order, and a
    /// wrong hint costs at most one poll. Never blocks.
    package func hint(daHeight: UInt64) {
        let (next, head) = state.withLock { ($0.nextDAHeight, $0.daHead) }
        let outcome = heightHints.withLock { $0.offer(daHeight, next: next, knownHead: head) }
        if case .held(wake: true) = outcome {
            logger.debug("a P2P DA height hint wakes the DA follower", metadata: [
                "da_height_hint": "\(daHeight)", "next_da_height": "\(next)"])
            headSignal.signal()
        }
    }

    /// Follows DA until cancelled. A DA fault at one height is retried for that height alone
    /// (with a backoff of its own, while the other fetches go on); faults are reported through
    /// `availability` (log and `status`), never per retry. Only a store failure ends the
    /// follower (thrown).
    package func run() async throws {
        try await withInOrderLane { lane in try await follow(on: lane) }
    }

    /// Runs `body` with the follower's own thread for the work done in DA order — each height's
    /// second pass and its finalization writes. On the shared blocking pool they would wait
    /// behind the first passes (signature checks) of every later height in flight, and the
    /// applier would sit idle while the cores check heights it cannot take yet. The thread lives
    /// as long as `body`: a follower that stopped holds none (an HA node that follows, leads
    /// and follows again starts one per run), and its shutdown is awaited, not left to `deinit`.
    private func withInOrderLane<T>(_ body: (BlockingLane) async throws -> T) async throws -> T {
        try await BlockingLane.with(name: "da-follower-in-order", threads: 1) { lane in
            lastInOrderLane.withLock { $0 = lane }
            return try await body(lane)
        }
    }

    private func follow(on lane: BlockingLane) async throws {
        var tracker = InclusionTracker()
        defer { leftover.withLock { $0 = tracker } }
        var next = resumeHeight()
        state.withLock { $0.nextDAHeight = next }
        let verifier = options.forcedInclusion?(next)
        forcedInclusion.withLock { $0 = verifier }
        logger.info("following DA", metadata: ["from_da_height": "\(next)",
                                               "header_namespace": "\(options.headerNamespace)",
                                               "data_namespace": "\(options.dataNamespace)"])
        // For what fails outside a walk's per-height retries (the head query).
        var backoff = Backoff(policy: options.retry)
        // Condition 1 of SPEC §6 needs a head observed *after* start.
        var targetHead: UInt64?
        while !Task.isCancelled {
            if let ancestor = rewindRequest.withLock({ r -> UInt64? in defer { r = nil }; return r }) {
                next = rewound(next, after: ancestor, tracker: &tracker)
            }
            let before = next
            do {
                if targetHead == nil {
                    let head = try await client.networkHead().height
                    availability.answered()
                    pacer.headKnown(head)
                    backoff.reset()
                    targetHead = head
                    state.withLock { $0.daHead = max($0.daHead, head) }
                }
                let reachedHead = try await walk(from: &next, tracker: &tracker, on: lane)
                backoff.reset()
                if reachedHead {
                    let reached = next
                    heightHints.withLock { $0.headReached(at: reached) }
                    if let target = targetHead, next > target {
                        let first = state.withLock { s -> Bool in
                            defer { s.headReached = true }
                            return !s.headReached
                        }
                        if first {
                            logger.notice("DA head reached", metadata: ["da_height": "\(next - 1)"])
                        }
                    }
                    await refreshHeadIfDue()
                    if !rewindPending {
                        try await waitAtHead()
                    }
                }
            } catch let error as DAError {
                if case .cancelled = error { return }
                // Every DA height completed resets the backoff (issue 14).
                if next > before { backoff.reset() }
                let delay = backoff.nextDelay()
                availability.failed(error, context: targetHead == nil ? "header.NetworkHead" : "DA walk at height \(next)")
                try await Task.sleep(for: delay)
            }
        }
    }

    /// Where to read DA next after a rollback to `ancestor`: the tracker forgets the blocks above
    /// it and DA is read again from the lowest DA height that held any of them.
    private func rewound(_ next: UInt64, after ancestor: UInt64, tracker: inout InclusionTracker) -> UInt64 {
        let fromTracker = tracker.rewind(after: ancestor)
        let fromAuthority = authority.lowestDAHeight(above: ancestor)
        let target = min(fromTracker ?? .max, fromAuthority ?? .max, next)
        logger.notice("reading DA again to replay the authoritative chain after a rollback", metadata: [
            "ancestor": "\(ancestor)", "from_da_height": "\(target)", "was_at_da_height": "\(next)"])
        state.withLock { $0.nextDAHeight = target }
        return target
    }

    /// Records the DA inclusion (and finalization) of stored blocks that DA confirmed but that
    /// were applied only after `run()` last looked — typically the last blocks of a catchup,
    /// applied after the final DA height was read. Call after `run()` has ended: the aggregator
    /// does so before its submitter starts, so that the submitter never posts them again.
    package func settle() async throws {
        guard var tracker = leftover.withLock({ $0.take() }) else { return }
        let next = state.withLock { $0.nextDAHeight }
        guard next > 0 else { return }
        try await withInOrderLane { lane in try await finalize(&tracker, processedThrough: next - 1, on: lane) }
    }

    /// Reads DA heights from `next` in order until the head; true when the head was reached.
    /// Returns false early when a rewind is requested.
    private func walk(from next: inout UInt64, tracker: inout InclusionTracker, on lane: BlockingLane) async throws -> Bool {
        let namespaces = options.headerNamespace == options.dataNamespace
            ? [options.headerNamespace] : [options.headerNamespace, options.dataNamespace]
        var observer: any DAFetchObserver = availability
        if let metrics = options.metrics { observer = CountedFetches(inner: availability, series: metrics) }
        let retry = DAFetchRetry(policy: options.retry, observer: observer)
        // The first pass of the checks runs in each fetch's task, on the blocking pool, as soon
        // as its blobs arrive; the DA heights are then taken one by one in DA order.
        let checker = self.checker
        let pool = blockingPool
        let upper = next > UInt64.max - 1_000_000 ? UInt64.max : next + 1_000_000
        let heights = client.retrieve(heights: next...upper, namespaces: namespaces, pacer: pacer,
                                      retry: retry) { _, blobs in
            try await pool.runIfActive { checker.decode(blobs) }
        }
        for try await event in heights {
            switch event {
            case .height(let height, let decoded):
                try await process(height, decoded, tracker: &tracker, on: lane)
                next = height + 1
                let reached = next
                state.withLock {
                    $0.nextDAHeight = reached
                    $0.daHead = max($0.daHead, height)
                }
                heightHints.withLock { $0.passed(below: reached) }
                if rewindPending { return false }
                await refreshHeadIfDue()
            case .headReached(let at):
                next = at
                return true
            }
            try Task.checkCancellation()
        }
        return false
    }

    /// Asks DA for its head when the last answer is `headRefreshInterval` old. Only `/status`
    /// needs it: a failure is reported like any DA fault and asked again next interval, and
    /// never interrupts the walk.
    private func refreshHeadIfDue() async {
        let due = headCheckedAt.withLock { last -> Bool in
            guard ContinuousClock.now - last >= Self.headRefreshInterval else { return false }
            last = .now
            return true
        }
        guard due else { return }
        do {
            let head = try await client.networkHead().height
            availability.answered()
            pacer.headKnown(head)
            state.withLock { $0.daHead = max($0.daHead, head) }
        } catch {
            if case .cancelled = error { return }
            availability.failed(error, context: "header.NetworkHead")
        }
    }

    /// DA heights start at 1; a start height of 0 in genesis means "from the first".
    private func resumeHeight() -> UInt64 {
        let first = max(options.startHeight, 1)
        if let saved = finalityRecorder.resumeDAHeight() {
            return max(saved, first)
        }
        return first
    }

    /// Checks one DA height's decoded blobs, hands complete blocks to the pipeline and
    /// advances finalization.
    private func process(_ daHeight: UInt64, _ decoded: [DABlobChecker.Decoded], tracker: inout InclusionTracker,
                         on lane: BlockingLane) async throws {
        var bad = 0
        // The second pass (data no header claims needs its own signature), off the cooperative pool.
        let checker = self.checker
        let claimed = tracker.waitingDataHashes
        // Before the data is resolved: a header strict mode drops must not claim data.
        let admitted = applyStrictMode(decoded, daHeight: daHeight)
        let results = try await lane.run { checker.resolve(admitted, claimed: claimed) }
        let finalized = store.finalizedHeight
        for checked in results {
            switch checked {
            case .header(let header, _):
                try take(header, daHeight: daHeight, tracker: &tracker)
            case .data(let data, let hash, let bytes, let verified):
                if !tracker.addData(data, hash: hash, bytes: bytes, verified: verified, daHeight: daHeight,
                                    finalized: finalized) {
                    bad += 1
                }
            case .rejected:
                bad += 1
            }
        }
        if bad > 0 {
            logger.warning("ignored DA blobs that are not validly signed blocks of this chain, or data no header will claim",
                           metadata: ["da_height": "\(daHeight)", "count": "\(bad)"])
        }
        // Known before it is handed over: the hand-over may wait for room in the pipeline, or
        // be cut short when the sync phase stops, and the equivocation fence must count these
        // headers either way (SPEC §6: re-checked over all that was delivered).
        let known = tracker.highestHeader
        state.withLock { $0.highestHeader = max($0.highestHeader, known) }
        let complete = tracker.takeAllComplete()
        if !complete.isEmpty {
            // Checked before the pipeline sees them: a violation leaves them unapplied (thrown,
            // it ends the follower and the node halts).
            if let verifier = forcedInclusion.withLock({ $0 }) {
                try await verifier.check(daHeight: daHeight, blocks: complete)
            }
            await sink.submit(complete)
        }
        let dropped = tracker.trim(max: options.maxUnresolved, maxDataBytes: options.maxHeldDataBytes)
        if dropped > 0 {
            logger.warning("dropped held DA data blobs: waiting data exceeds its bound (da.max_held_data)", metadata: [
                "da_height": "\(daHeight)", "count": "\(dropped)", "held_bytes": "\(tracker.heldDataBytes)",
                "max_bytes": "\(options.maxHeldDataBytes)"])
        }
        try await finalize(&tracker, processedThrough: daHeight, on: lane)
        let unresolved = tracker.unresolved
        let highest = tracker.highestHeader
        let held = tracker.heldDataBytes
        state.withLock {
            $0.badBlobs += bad
            $0.droppedForSpace += dropped
            $0.unresolved = unresolved
            $0.heldDataBytes = held
            $0.highestHeader = max($0.highestHeader, highest)
        }
    }

    /// ev-node's envelope strict mode over one DA height's headers, in blob order
    /// (`EnvelopeStrictMode`): a legacy header it drops becomes `.rejected`.
    private func applyStrictMode(_ decoded: [DABlobChecker.Decoded], daHeight: UInt64) -> [DABlobChecker.Decoded] {
        var out = decoded
        for (i, d) in decoded.enumerated() {
            guard case .header(let header, let enveloped) = d else { continue }
            let proposer = header.header.proposerAddress
            let named = proposer == checker.validator.proposerAddress || store.namedProposers.contains(proposer)
            let admitted = state.withLock { s -> Bool in
                var strict = EnvelopeStrictMode(isOn: s.strictEnvelopes)
                defer { s.strictEnvelopes = strict.isOn }
                guard strict.admits(enveloped: enveloped, proposerNamed: named) else {
                    s.droppedWithoutEnvelope += 1
                    return false
                }
                return true
            }
            if !admitted {
                logger.info("dropped a DA header posted without an envelope signature: strict mode is on", metadata: [
                    "height": "\(header.height)", "hash": "\(Hex.encode(header.header.hash))", "da_height": "\(daHeight)"])
                out[i] = .rejected
            }
        }
        return out
    }

    /// Sorts a validly signed header by DA order: the first for its height becomes authoritative
    /// and is paired with its data; a different later one is evidence.
    private func take(_ header: SignedHeader, daHeight: UInt64, tracker: inout InclusionTracker) throws {
        let height = header.height
        if height <= store.finalizedHeight {
            try takeFinalized(header, daHeight: daHeight, tracker: &tracker)
            return
        }
        // ev-node's DA pre-filter (reference §1): at the next height the state says who signs;
        // a header of another key is dropped before it takes the height's authoritative slot,
        // and one of the expected proposer replaces a wrong-key header that took it first.
        let expected = height == store.height + 1 ? store.expectedProposer(at: height) : nil
        if let expected, header.header.proposerAddress != expected {
            logger.info("dropped a DA header of a proposer the chain does not expect at its height", metadata: [
                "height": "\(height)", "proposer": "\(Hex.encode(header.header.proposerAddress))",
                "expected": "\(Hex.encode(expected))", "da_height": "\(daHeight)"])
            return
        }
        switch authority.record(header, daHeight: daHeight) {
        case .conflicts(let first) where first.signedHeader.header.proposerAddress != header.header.proposerAddress:
            // Two keys, not a double sign. The expected proposer's header takes the slot; when
            // the state cannot say yet, a key the chain has named beats one it never named
            // (anyone can post a self-signed header to the namespace); otherwise the first stays
            // and the pipeline's validation decides.
            let mine = header.header.proposerAddress
            let theirs = first.signedHeader.header.proposerAddress
            let wins: Bool
            if let expected {
                wins = mine == expected
            } else {
                let named = store.namedProposers
                wins = named.contains(mine) && !named.contains(theirs)
            }
            if wins {
                authority.replace(header, daHeight: daHeight)
                tracker.replaceHeader(header, daHeight: daHeight)
            }
        case .conflicts(let first):
            logger.error("DA holds two different headers signed by the proposer at one height (double sign); the first is authoritative",
                         metadata: ["height": "\(height)", "first": "\(Hex.encode(first.hash))",
                                    "first_da_height": "\(first.daHeight)", "second": "\(Hex.encode(header.header.hash))",
                                    "da_height": "\(daHeight)"])
            recordEvidence(first: first.signedHeader, firstSeen: "DA height \(first.daHeight)",
                           second: header, secondSeen: "DA height \(daHeight)")
        case .recorded, .alreadyKnown, .final:
            tracker.addHeader(header, daHeight: daHeight)
        case .full:
            logger.warning("too many unfinalized DA headers to keep for divergence recovery", metadata: [
                "height": "\(height)", "capacity": "\(authority.capacity)"])
            tracker.addHeader(header, daHeight: daHeight)
        }
    }

    /// A header at a finalized height: the same as stored (a re-read) is nothing; a different
    /// one is evidence when our block was included on DA first, and otherwise DA's first header
    /// contradicts finality — handed on, so the pipeline reports the conflict and the node halts.
    private func takeFinalized(_ header: SignedHeader, daHeight: UInt64, tracker: inout InclusionTracker) throws {
        let height = header.height
        guard let stored = try store.signedHeader(at: height), stored.header.hash != header.header.hash else { return }
        if let included = try store.daInclusion(at: height).headerDAHeight, included <= daHeight {
            recordEvidence(first: stored, firstSeen: "store (finalized, DA height \(included))",
                           second: header, secondSeen: "DA height \(daHeight)")
            return
        }
        logger.critical("DA's first header at a finalized height is not the stored block", metadata: [
            "height": "\(height)", "stored": "\(Hex.encode(stored.header.hash))",
            "da": "\(Hex.encode(header.header.hash))", "da_height": "\(daHeight)",
            "finalized": "\(store.finalizedHeight)"])
        tracker.addHeader(header, daHeight: daHeight)
    }

    private func recordEvidence(first: SignedHeader, firstSeen: String, second: SignedHeader, secondSeen: String) {
        guard let evidence else { return }
        do throws(StoreError) {
            try evidence.record(first: first, firstSeen: firstSeen, second: second, secondSeen: secondSeen)
        } catch {
            logger.error("could not record double-sign evidence", metadata: [
                "height": "\(first.height)", "error": "\(error)"])
        }
    }

    /// Advances the finalized height over consecutive stored blocks whose hash DA confirms, and
    /// persists where a restart must resume reading DA.
    private func finalize(_ tracker: inout InclusionTracker, processedThrough daHeight: UInt64,
                          on lane: BlockingLane) async throws {
        let store = self.store
        let recorder = finalityRecorder
        let finality = try tracker.finality(finalized: store.finalizedHeight, storeHeight: store.height,
                                            processedThrough: daHeight) { height throws(StoreError) in
            try store.headerHash(at: height)
        }
        let f = finality.finalizedHeight
        try await recorder.record(finality, on: lane)
        let unclaimed = tracker.forget(through: f)
        authority.forget(through: store.finalizedHeight)
        if unclaimed > 0 {
            // Junk that names the proposer, or a second copy of data already paired (the
            // submitter retried after a lost answer). Dropped so it does not hold the resume height back.
            logger.warning("dropped DA data blobs that no header claimed, their heights are final", metadata: [
                "count": "\(unclaimed)", "finalized": "\(f)"])
            state.withLock { $0.badBlobs += unclaimed }
        }
    }
}

/// Counts every DA fetch as ev-node's `da_retrieval_{attempts,successes,failures}_total`, then
/// passes it on. An answer ("not found" and "from the future" included) is a success; a fault,
/// retried, is a failure.
struct CountedFetches: DAFetchObserver {
    package let inner: any DAFetchObserver
    package let series: SyncSeries

    package func fetchAnswered(height: UInt64) {
        series.daRetrievalAttempts.add(1)
        series.daRetrievalSuccesses.add(1)
        inner.fetchAnswered(height: height)
    }

    package func fetchFailed(height: UInt64, error: DAError, attempt: Int, retryIn: Duration) {
        series.daRetrievalAttempts.add(1)
        series.daRetrievalFailures.add(1)
        inner.fetchFailed(height: height, error: error, attempt: attempt, retryIn: retryIn)
    }
}
