import Primitives
import DAClient
import Execution
import Chain
import Store
import Config
import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import Telemetry

/// Settings of the DA submitter.
package struct SubmitterOptions: Sendable, Equatable {
    package var headerNamespace: DANamespace
    package var dataNamespace: DANamespace
    /// Most bytes of blob data in one `blob.Submit`.
    package var maxBlobSize: Int
    /// The DA block time: the batching strategies' default `max_delay` (with the default `time`
    /// strategy, everything pending is posted once per DA block time) and the unit of
    /// `mempoolTTL`.
    package var interval: Duration
    /// Wait between attempts while the DA node fails. `maxAttempts` is ev-node's
    /// `da.max_submit_attempts`: failed attempts of one batch after which the submitter stops
    /// with `SubmitterError.gaveUp` (`.max`: retried for as long as it takes).
    package var backoff: RetryPolicy
    /// ev-node's `da.batching_strategy` and its knobs: when pending blocks are posted.
    package var batching = DABatchingConfig()
    /// ev-node's `da.mempool_ttl`: a submission that was not included in time (it may still sit
    /// in the DA node's mempool) is posted again only after this many DA blocks (`interval`
    /// each); 0: after the ordinary backoff.
    package var mempoolTTL: UInt64 = 0
    /// The producer's back-pressure limit (`--max-pending-blocks`; 0: off): that many blocks
    /// waiting are posted whatever the batching strategy says.
    package var maxPendingBlocks: UInt64 = 0
    /// Most blocks looked at for one submission (bounds memory after a long DA outage).
    package var maxBlocksPerSubmission: Int
    /// celestia-node's TxConfig sent with every `blob.Submit`; its gas price is where fee
    /// escalation starts.
    package var txConfig = DATxConfig()
    /// Fee escalation step (1: off) and ceiling.
    package var gasMultiplier: Double = 1
    package var maxGasPrice: Double = DATxConfig.celestiaDefaultMaxGasPrice
    /// Used in turn as each submission's `signer_address` (empty: the TxConfig's or the DA node's).
    package var signingAddresses: [String] = []

    package init(headerNamespace: DANamespace, dataNamespace: DANamespace, maxBlobSize: Int,
                interval: Duration, backoff: RetryPolicy = RetryPolicy(maxAttempts: .max, initialDelay: .milliseconds(250),
                                                                        maxDelay: .seconds(30)),
                maxBlocksPerSubmission: Int = 10_000) {
        self.headerNamespace = headerNamespace
        self.dataNamespace = dataNamespace
        self.maxBlobSize = maxBlobSize
        self.interval = interval
        self.backoff = backoff
        self.maxBlocksPerSubmission = maxBlocksPerSubmission
    }

    /// From the node configuration (namespaces derived from their names, SPEC §5).
    package init(config: DAConfig, chainID: String) {
        self.init(headerNamespace: DANamespace(name: config.headerNamespaceName(chainID: chainID)),
                  dataNamespace: DANamespace(name: config.dataNamespaceName(chainID: chainID)),
                  maxBlobSize: config.maxBlobSize, interval: config.blockTime)
        txConfig = config.txConfig
        gasMultiplier = config.gasMultiplier
        maxGasPrice = config.maxGasPrice
        signingAddresses = config.signingAddresses
        batching = config.batching
        mempoolTTL = config.mempoolTTL
        // ev-node never submits with 0 attempts; here 0 (or less) means "never give up".
        if config.maxSubmitAttempts > 0 { backoff.maxAttempts = config.maxSubmitAttempts }
    }

    /// When to post, from `batching`, `interval` and `maxBlobSize`.
    package var batchingPolicy: BatchingPolicy {
        BatchingPolicy(config: batching, daBlockTime: interval, maxBlobSize: maxBlobSize,
                       backPressureLimit: maxPendingBlocks)
    }

    package var resubmitDelay: ResubmitDelay {
        ResubmitDelay(mempoolTTL: mempoolTTL, daBlockTime: interval)
    }
}

/// Why the submitter stopped. Every case is something retrying cannot fix.
package enum SubmitterError: Error, Sendable, Equatable, CustomStringConvertible {
    case store(StoreError)
    /// One blob alone is over the DA node's (or the configured) size limit: it can never be posted.
    case blobTooLarge(kind: DABlobKind, height: UInt64, size: Int, limit: String)
    case signing(height: UInt64, SigningError)
    /// A height at or below the store height is missing from the store.
    case missingBlock(height: UInt64)
    /// The DA node refused in a way retrying cannot fix (authentication, malformed answers).
    case da(DAError)
    /// `attempts` submissions of the blocks `heights` failed in a row (`da.max_submit_attempts`);
    /// `lastError` is the DA node's last answer. Nothing is lost: the blocks stay in the store
    /// and a restarted node posts them.
    case gaveUp(heights: ClosedRange<UInt64>, attempts: Int, lastError: DAError)

    package var description: String {
        switch self {
        case .store(let e): return "DA submitter: \(e)"
        case let .blobTooLarge(kind, height, size, limit):
            return "DA submitter: the \(kind) blob of block \(height) is \(size) bytes, over the size limit (\(limit)); it cannot be posted"
        case let .signing(height, e): return "DA submitter: signing the blobs of block \(height): \(e)"
        case .missingBlock(let h): return "DA submitter: block \(h) is missing from the store"
        case .da(let e): return "DA submitter: \(e)"
        case let .gaveUp(heights, attempts, lastError):
            return "DA submitter: gave up posting blocks \(heights.lowerBound)-\(heights.upperBound) after \(attempts) failed attempts (da.max_submit_attempts); last DA error: \(lastError)"
        }
    }
}

/// What the submitter is doing, for status pages and metrics.
package struct SubmitterStatus: Sendable, Equatable {
    /// Successful `blob.Submit` calls since start.
    package var submissions = 0
    /// Failed attempts since the last success (0 while the DA node answers).
    package var consecutiveFailures = 0
    package var lastError: String?
    /// DA height of the last successful submission.
    package var lastDAHeight: UInt64?
    /// The gas price the next submission offers (nil: the DA node estimates).
    package var gasPrice: Double?
    /// Times the gas price was raised since start.
    package var feeEscalations = 0
    /// `signer_address` of the last submission attempt, when addresses are configured.
    package var lastSigner: String?
}

/// Posts the blocks of the store that are not yet on DA (SPEC §5): for each height a
/// `DAHeaderEnvelope` blob and, when the block has txs, a `SignedData` blob, in height order,
/// as many per `blob.Submit` as fit in the size limit.
///
/// Progress lives in the store: per block the DA height its header / data were included at, the
/// submitter progress (last header / data height posted) and the finalized height, which is
/// min(last header, last data) — DA-included means final — and goes to the executor's
/// `setFinal` in the same store write. After a restart the submitter resumes from that record:
/// a height with a recorded inclusion is never posted again.
///
/// DA failures are retried with capped exponential backoff for as long as it takes (nothing is
/// lost; the blocks wait in the store). A batch the DA node finds too large is split in half.
/// `run()` returns when cancelled and throws only what retrying cannot fix.
package final class DASubmitter: Service, Sendable {
    private let client: any DAClient
    private let store: BlockStore
    private let executor: (any Executor)?
    private let signer: BlockSigner
    package let options: SubmitterOptions
    private let logger: Logger
    /// Store reads, signing and synced store writes run here, off Swift's cooperative threads;
    /// one thread, so the submitter's writes keep their order.
    private let worker = BlockingLane(name: "da-submitter", threads: 1)
    private let statusBox: Mutex<SubmitterStatus>
    /// Gas price and signer rotation; touched by the one running submission only.
    private let fees: Mutex<(ladder: GasPriceLadder, signers: SignerRotation)>
    private let wakeUp = WakeUpSignal()
    /// Set by `wake()`: the next check posts whatever the batching policy says.
    private let forcePost = Mutex(false)
    /// Asked before every `blob.Submit`; while false nothing is posted (an HA node that may no
    /// longer lead must not publish, even blocks that were fenced).
    private let publishGate: (@Sendable () -> Bool)?
    /// ev-node's `da_submitter_*` series and `operation_duration_seconds{operation=da_submission}`.
    private let metrics: EvNodeMetrics?
    /// Every `blob.Submit` attempt, for the DA visualizer (`/da*`).
    private let submissions: DASubmissionLog?

    package init(client: any DAClient, store: BlockStore, executor: (any Executor)?, signer: BlockSigner,
                options: SubmitterOptions, publishGate: (@Sendable () -> Bool)? = nil,
                metrics: EvNodeMetrics? = nil, submissions: DASubmissionLog? = nil,
                logger: Logger = Logger(label: "evnode.da.submitter")) {
        self.metrics = metrics
        self.submissions = submissions
        self.publishGate = publishGate
        precondition(options.maxBlobSize > 0 && options.maxBlocksPerSubmission > 0, "submitter limits must be positive")
        self.client = client
        self.store = store
        self.executor = executor
        self.signer = signer
        self.options = options
        self.logger = logger
        let ladder = GasPriceLadder(base: options.txConfig.gasPrice, multiplier: options.gasMultiplier,
                                    max: options.maxGasPrice)
        self.fees = Mutex((ladder, SignerRotation(addresses: options.signingAddresses)))
        var status = SubmitterStatus()
        status.gasPrice = ladder.current
        self.statusBox = Mutex(status)
    }

    package var status: SubmitterStatus { statusBox.withLock { $0 } }

    /// Ends the current wait between checks of the store and posts what is pending now,
    /// whatever the batching strategy says (e.g. before a stop, or when a test needs it).
    package func wake() {
        forcePost.withLock { $0 = true }
        wakeUp.signal()
    }

    /// Submits until cancelled or until the service group shuts down gracefully (then returns).
    /// The batching policy (`options.batchingPolicy`) decides when what is pending is posted;
    /// a backlog found at start is posted at once. A graceful shutdown lets the submission in
    /// flight finish and be recorded; cancellation aborts it (its blobs may then be posted again
    /// after a restart, which syncers tolerate).
    package func run() async throws {
        let policy = options.batchingPolicy
        var lastPost: ContinuousClock.Instant?
        do {
            try await finalize(try await onWorker { () throws(SubmitterError) in try self.reconcile() })
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                let forced = forcePost.withLock { f in defer { f = false }; return f }
                let load = try await onWorker { () throws(SubmitterError) in try self.pendingLoad(policy: policy) }
                let decision = forced ? .post : policy.decide(load, sinceLastPost: lastPost.map { .now - $0 })
                switch decision {
                case .post:
                    if try await submitPending() > 0 { lastPost = .now }
                case .wait(let delay):
                    try await cancelWhenGracefulShutdown { try await self.wakeUp.wait(atMost: delay) }
                }
            }
        } catch is CancellationError {
            return
        }
    }

    /// What waits for DA, as the batching policy weighs it: blocks whose header or data is not
    /// posted, and their encoded bytes. Bytes are read only when the policy looks at them, and
    /// only until its threshold is reached (a long backlog costs one bounded read per check).
    func pendingLoad(policy: BatchingPolicy) throws(SubmitterError) -> BatchingPolicy.Load {
        let progress = try effectiveProgress()
        let top = store.height
        let from = min(progress.lastHeaderHeight, progress.lastDataHeight) + 1
        guard from <= top else { return BatchingPolicy.Load(blocks: 0, bytes: 0) }
        let blocks = Int(clamping: top - from + 1)
        guard policy.strategy == .size || policy.strategy == .adaptive else {
            return BatchingPolicy.Load(blocks: blocks, bytes: 0)
        }
        var bytes = 0
        var height = from
        let last = min(top, from + UInt64(options.maxBlocksPerSubmission) - 1)
        while height <= last, bytes < policy.sizeThresholdBytes {
            let chunkEnd = min(last, height + 255)
            do {
                for block in try store.encodedBlocks(in: height...chunkEnd) {
                    bytes += block.header.count + block.data.count
                }
            } catch {
                throw .store(error)
            }
            height = chunkEnd + 1
        }
        return BatchingPolicy.Load(blocks: blocks, bytes: bytes)
    }

    /// Posts everything the store holds that is not on DA yet, then returns the number of
    /// `blob.Submit` calls that succeeded.
    @discardableResult
    package func submitPending() async throws -> Int {
        var submissions = 0
        while !Task.isShuttingDownGracefully {
            try Task.checkCancellation()
            let batches = try await onWorker { () throws(SubmitterError) in try self.nextBatches() }
            if batches.isEmpty { return submissions }
            for batch in batches {
                submissions += try await submit(batch)
            }
        }
        return submissions
    }

    // MARK: Planning

    /// One block's part waiting for DA. `blob` is nil for data without txs: never posted (its
    /// header implies it), yet counted as done once the blocks before it are.
    struct Item: Sendable {
        let kind: DABlobKind
        let height: UInt64
        let blob: DABlob?
    }

    /// Items for one `blob.Submit`, in height order.
    struct Batch: Sendable {
        var items: [Item]
        var blobs: [DABlob] { items.compactMap(\.blob) }
        var size: Int { items.reduce(0) { $0 + ($1.blob?.data.count ?? 0) } }
    }

    /// The next submissions: one for both kinds when headers and data share a namespace, else
    /// one per kind; each the longest run of pending items that fits the size limit.
    func nextBatches() throws(SubmitterError) -> [Batch] {
        let progress = try effectiveProgress()
        let top = store.height
        let pendingHeaders = top > progress.lastHeaderHeight ? top - progress.lastHeaderHeight : 0
        let pendingData = top > progress.lastDataHeight ? top - progress.lastDataHeight : 0
        metrics?.submitter.pendingBlobs.set(pendingHeaders + pendingData)
        let sameNamespace = options.headerNamespace == options.dataNamespace
        if sameNamespace {
            let from = min(progress.lastHeaderHeight, progress.lastDataHeight) + 1
            let batch = try collect(from: from, to: top) { h in
                (h > progress.lastHeaderHeight, h > progress.lastDataHeight)
            }
            return batch.items.isEmpty ? [] : [batch]
        }
        var out: [Batch] = []
        let headers = try collect(from: progress.lastHeaderHeight + 1, to: top) { _ in (true, false) }
        if !headers.items.isEmpty { out.append(headers) }
        let data = try collect(from: progress.lastDataHeight + 1, to: top) { _ in (false, true) }
        if !data.items.isEmpty { out.append(data) }
        return out
    }

    private func collect(from: UInt64, to top: UInt64,
                         parts: (UInt64) -> (header: Bool, data: Bool)) throws(SubmitterError) -> Batch {
        var batch = Batch(items: [])
        guard from <= top else { return batch }
        var size = 0
        var blocks = 0
        var height = from
        while height <= top, blocks < options.maxBlocksPerSubmission {
            let (wantHeader, wantData) = parts(height)
            let block: (signedHeader: SignedHeader, data: BlockData)?
            do {
                block = try store.block(at: height)
            } catch {
                throw .store(error)
            }
            guard let (signedHeader, data) = block else { throw .missingBlock(height: height) }
            // A header of another key: after a proposer rotation (ev-node v1.2), the previous
            // proposer's last blocks may not be on DA yet when this node takes over. It is posted
            // as that proposer signed it, without an envelope signature: an envelope signature
            // must verify under the header's own key (reference §5), which this node does not
            // hold. Only a key the chain named may have signed a stored block (validation).
            let foreign = signedHeader.signer != signer.signer
            var items: [Item] = []
            do throws(SigningError) {
                if wantHeader {
                    let envelope = foreign ? DAHeaderEnvelope(signedHeader: signedHeader, envelopeSignature: [])
                        : try signer.envelope(for: signedHeader)
                    items.append(Item(kind: .header, height: height,
                                      blob: DABlob(namespace: options.headerNamespace, data: envelope.encoded())))
                }
                if wantData {
                    let blob = data.txs.isEmpty
                        ? nil : DABlob(namespace: options.dataNamespace, data: try signer.sign(data: data).encoded())
                    items.append(Item(kind: .data, height: height, blob: blob))
                }
            } catch {
                throw .signing(height: height, error)
            }
            let added = items.reduce(0) { $0 + ($1.blob?.data.count ?? 0) }
            if size + added > options.maxBlobSize {
                if batch.blobs.isEmpty {
                    // Nothing before it: this block alone is over the limit.
                    let big = items.first { ($0.blob?.data.count ?? 0) > 0 }!
                    if big.blob!.data.count > options.maxBlobSize || items.count == 1 {
                        throw .blobTooLarge(kind: big.kind, height: height, size: big.blob!.data.count,
                                            limit: "\(options.maxBlobSize) bytes (da.max_blob_size)")
                    }
                    // Header and data together are too large but each fits: post the header now.
                    batch.items.append(items[0])
                }
                break
            }
            batch.items.append(contentsOf: items)
            size += added
            blocks += 1
            height += 1
        }
        return batch
    }

    // MARK: Submitting

    /// Posts `batch`, splitting it when the DA node finds it too large; returns the number of
    /// successful submissions. Retries DA failures with backoff until they pass or are fatal.
    private func submit(_ batch: Batch) async throws -> Int {
        let blobs = batch.blobs
        if blobs.isEmpty {
            // Only data without txs: nothing to post, only progress to record.
            try await finalize(try await onWorker { () throws(SubmitterError) in try self.record(batch, daHeight: nil) })
            return 0
        }
        var backoff = Backoff(policy: options.backoff)
        let resubmit = options.resubmitDelay
        var attempts = 0
        while true {
            while let gate = publishGate, !gate() {
                try await Task.sleep(for: .milliseconds(50))
            }
            if attempts > 0 { metrics?.submitter.resends.add(1) }
            attempts += 1
            let daHeight: UInt64
            let txConfig = nextTxConfig()
            let sentAt = ContinuousClock.now
            do {
                daHeight = try await client.submit(blobs, options: txConfig)
                metrics?.chain.operationDuration(.daSubmission).observe(.now - sentAt)
                submissions?.record(.init(daHeight: daHeight, blobs: blobs, gasPrice: txConfig.gasPrice,
                                          status: .success, message: nil))
            } catch {
                metrics?.chain.operationDuration(.daSubmission).observe(.now - sentAt)
                let failure = SubmitFailure.classify(error)
                let reason = failure.evNodeReason(of: error)
                metrics?.submitter.failed(reason, unixTime: Date().timeIntervalSince1970)
                submissions?.record(.init(daHeight: 0, blobs: blobs, gasPrice: txConfig.gasPrice,
                                          status: DASubmissionRecord.Status(reason), message: error.description))
                // celestia-app's "tx too large" is the size limit by another name: split as well.
                let error = failure == .txTooLarge ? DAError.blobTooLarge(message: error.description) : error
                switch error {
                case .blobTooLarge(let message):
                    let blobIndices = batch.items.indices.filter { batch.items[$0].blob != nil }
                    guard blobIndices.count > 1 else {
                        let item = batch.items[blobIndices[0]]
                        throw SubmitterError.blobTooLarge(kind: item.kind, height: item.height,
                                                          size: item.blob!.data.count, limit: "DA node: \(message)")
                    }
                    let cut = blobIndices[blobIndices.count / 2]
                    logger.info("DA node refused the submission as too large, splitting it", metadata: [
                        "blobs": "\(blobIndices.count)", "bytes": "\(batch.size)",
                        "heights": "\(batch.items.first!.height)-\(batch.items.last!.height)",
                    ])
                    let first = try await submit(Batch(items: Array(batch.items[..<cut])))
                    let second = try await submit(Batch(items: Array(batch.items[cut...])))
                    return first + second
                case .cancelled:
                    throw CancellationError()
                case .transport, .httpStatus, .rpc:
                    // 4xx other than 429 means a configuration problem (e.g. the auth token).
                    if case .httpStatus = error, !error.isRetryable { throw SubmitterError.da(error) }
                    if case .transport = error, !error.isRetryable { throw SubmitterError.da(error) }
                    let failures = statusBox.withLock { s in
                        s.consecutiveFailures += 1
                        s.lastError = error.description
                        return s.consecutiveFailures
                    }
                    if attempts >= options.backoff.maxAttempts {
                        throw SubmitterError.gaveUp(heights: batch.items.first!.height...batch.items.last!.height,
                                                    attempts: attempts, lastError: error)
                    }
                    if failure.escalates { escalateFee(after: failure, heights: batch) }
                    // Another signer's sequence is not behind: try it at once.
                    let delay = failure == .sequenceMismatch && options.signingAddresses.count > 1
                        ? Duration.zero
                        : resubmit.delay(after: failure, backoff: backoff.nextDelay(), sentAgo: .now - sentAt)
                    logger.warning("DA submission failed, retrying", metadata: [
                        "reason": "\(failure)", "error": "\(error)", "failures": "\(failures)",
                        "retry_in": "\(DurationParser.format(delay))",
                        "gas_price": "\(txConfig.gasPrice.map(DATxConfig.decimal) ?? "estimated")",
                        "signer": "\(txConfig.signerAddress ?? "default")",
                        "heights": "\(batch.items.first!.height)-\(batch.items.last!.height)",
                    ])
                    try await cancelWhenGracefulShutdown { try await Task.sleep(for: delay) }
                    continue
                default:
                    throw SubmitterError.da(error)
                }
            }
            try await finalize(try await onWorker { () throws(SubmitterError) in try self.record(batch, daHeight: daHeight) })
            let price = fees.withLock { f -> Double? in
                f.ladder.relax()
                return f.ladder.current
            }
            statusBox.withLock { s in
                s.submissions += 1
                s.consecutiveFailures = 0
                s.lastError = nil
                s.lastDAHeight = daHeight
                s.gasPrice = price
            }
            logger.debug("posted blocks to DA", metadata: [
                "da_height": "\(daHeight)", "blobs": "\(blobs.count)", "bytes": "\(batch.size)",
                "heights": "\(batch.items.first!.height)-\(batch.items.last!.height)",
            ])
            return 1
        }
    }

    // MARK: Fees

    /// The TxConfig of the next attempt: the configured one with the current gas price and the
    /// next signing address.
    private func nextTxConfig() -> DATxConfig {
        var tx = options.txConfig
        let (price, signer) = fees.withLock { f in (f.ladder.current, f.signers.take()) }
        tx.gasPrice = price
        if let signer { tx.signerAddress = signer }
        // The DA node caps its own estimate with this; escalation never goes above it either.
        tx.maxGasPrice = options.maxGasPrice
        statusBox.withLock { s in
            if let signer { s.lastSigner = signer }
        }
        return tx
    }

    private func escalateFee(after failure: SubmitFailure, heights batch: Batch) {
        var estimated: Double?
        if case .feeTooLow(let e) = failure { estimated = e }
        let step = fees.withLock { $0.ladder.escalate(estimatedPrice: estimated) }
        let heights = "\(batch.items.first!.height)-\(batch.items.last!.height)"
        switch step {
        case let .raised(from, to):
            statusBox.withLock { s in
                s.gasPrice = to
                s.feeEscalations += 1
            }
            logger.notice("raising the DA gas price", metadata: [
                "reason": "\(failure)", "from": "\(from.map(DATxConfig.decimal) ?? "estimated")",
                "to": "\(DATxConfig.decimal(to))", "max": "\(DATxConfig.decimal(options.maxGasPrice))",
                "heights": "\(heights)"])
        case .atMax(let max):
            logger.warning("the DA gas price is at --da.max-gas-price and cannot be raised further", metadata: [
                "reason": "\(failure)", "gas_price": "\(DATxConfig.decimal(max))", "heights": "\(heights)"])
        case .estimated:
            logger.info("the DA node estimates the gas price; set --da.gas-price to escalate from a known price",
                        metadata: ["reason": "\(failure)", "heights": "\(heights)"])
        case .off:
            break
        }
    }

    // MARK: Bookkeeping

    /// Records a posted batch: inclusion per block and the submitter progress in one synced
    /// write (the commit point, see `reconcile`); returns the progress to finalize up to.
    private func record(_ batch: Batch, daHeight: UInt64?) throws(SubmitterError) -> SubmitterProgress {
        do {
            var progress = try effectiveProgress()
            var inclusions: [UInt64: DAInclusion] = [:]
            for item in batch.items {
                switch item.kind {
                case .header:
                    progress.lastHeaderHeight = max(progress.lastHeaderHeight, item.height)
                    if daHeight != nil { inclusions[item.height, default: DAInclusion()].headerDAHeight = daHeight }
                case .data:
                    progress.lastDataHeight = max(progress.lastDataHeight, item.height)
                    // Data without txs is never posted: nothing to record.
                    if daHeight != nil, item.blob != nil {
                        inclusions[item.height, default: DAInclusion()].dataDAHeight = daHeight
                    }
                }
            }
            try store.recordDAInclusions(inclusions.sorted { $0.key < $1.key }.map { ($0.key, $0.value) },
                                         submitterProgress: progress, sync: true)
            return progress
        } catch let error as StoreError {
            throw .store(error)
        } catch let error as SubmitterError {
            throw error
        } catch {
            throw .store(.io(operation: "record DA inclusion", reason: "\(error)"))
        }
    }

    /// Raises the finalized height to what `progress` says is on DA, with the executor's
    /// SetFinal: awaited (a remote executor answers over the network), the store's part on the
    /// worker lane.
    private func finalize(_ progress: SubmitterProgress) async throws(SubmitterError) {
        let store = self.store
        let included = min(progress.lastHeaderHeight, progress.lastDataHeight, store.height)
        guard included > store.finalizedHeight else { return }
        do throws(StoreError) {
            if let executor {
                try await ChainExecution(store: store, executor: executor)
                    .finalize(through: included, sync: true, on: worker)
            } else {
                // No executor state to finalize with: the height alone.
                try await worker.run(orIfShutDown: StoreError.closed) { () throws(StoreError) in
                    while let plan = try store.planFinality(included) {
                        if try store.finalize(plan, executorWrites: WriteSet(), sync: true) { break }
                    }
                }
            }
        } catch {
            throw .store(error)
        }
        logger.debug("finalized", metadata: ["height": "\(included)"])
    }

    /// The stored progress, never below the chain's genesis (a chain may start above height 1).
    private func effectiveProgress() throws(SubmitterError) -> SubmitterProgress {
        var progress: SubmitterProgress
        do {
            progress = try store.submitterProgress()
        } catch {
            throw .store(error)
        }
        let floor = (store.state?.initialHeight ?? 1) - 1
        progress.lastHeaderHeight = max(progress.lastHeaderHeight, floor)
        progress.lastDataHeight = max(progress.lastDataHeight, floor)
        return progress
    }

    /// Brings the progress up to what the store says is on DA: heights past the progress whose
    /// inclusion is recorded (the process stopped between recording inclusion and progress, or
    /// a syncer filled the store from DA before this node became the aggregator). Then
    /// returns it, to finalize up to. Such heights are never posted again.
    func reconcile() throws(SubmitterError) -> SubmitterProgress {
        do {
            let stored = try store.submitterProgress()
            var progress = try effectiveProgress()
            let top = store.height
            while progress.lastHeaderHeight < top,
                  try store.daInclusion(at: progress.lastHeaderHeight + 1).headerDAHeight != nil {
                progress.lastHeaderHeight += 1
            }
            while progress.lastDataHeight < top {
                let next = progress.lastDataHeight + 1
                if try store.daInclusion(at: next).dataDAHeight != nil {
                    progress.lastDataHeight = next
                    continue
                }
                // Data without txs is never posted: it is on DA once the header before or at it is.
                guard next <= progress.lastHeaderHeight, let data = try store.blockData(at: next), data.txs.isEmpty else { break }
                progress.lastDataHeight = next
            }
            if progress != stored {
                logger.info("DA submitter resumes after blocks already on DA", metadata: [
                    "last_header": "\(progress.lastHeaderHeight)", "last_data": "\(progress.lastDataHeight)",
                ])
                try store.setSubmitterProgress(progress, sync: true)
            }
            return progress
        } catch let error as StoreError {
            throw .store(error)
        } catch {
            throw .store(.io(operation: "reconcile submitter progress", reason: "\(error)"))
        }
    }

    private func onWorker<T: Sendable>(_ body: @escaping @Sendable () throws(SubmitterError) -> T) async throws(SubmitterError) -> T {
        try await worker.run(orIfShutDown: SubmitterError.store(.closed), body)
    }
}
