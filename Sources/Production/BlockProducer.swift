import Primitives
import Chain
import Config
import Execution
import Logging
import NIOPosix
import Store
import Telemetry

/// Why production stopped. Each case is something an operator must look at.
package enum ProductionError: Error, Sendable, CustomStringConvertible {
    case build(height: UInt64, BuildError)
    case store(height: UInt64, StoreError)
    case highWaterMark(height: UInt64, ConfigError)
    /// The signer's mark cannot be read: which heights were signed is unknown, so none is signed.
    case unreadableMark(ConfigError)
    /// The signer already signed this height (its mark says so) and the store does not hold it.
    case fence(nextHeight: UInt64, mark: UInt64)
    /// The block kept beside the mark (signed at the next height before a crash) cannot be
    /// committed on top of the store: it is the only block that may ever stand at that height.
    case keptBlock(height: UInt64, reason: String)
    case notInitialized
    /// The thread pool for blocking work was shut down (the node is stopping).
    case stopped
    /// The fence (HA: etcd) refused the block: another node leads now. The block was neither
    /// stored nor published; it stays recorded as unpublished.
    case refused(height: UInt64, FenceRefusal)
    /// The chain state names another key as the proposer of the next height (ev-node v1.2
    /// rotation): this node's key may not sign it. Nothing was built or signed.
    case notProposer(height: UInt64, expected: [UInt8], signer: [UInt8])

    /// True when production must stop because the chain handed it to another key.
    package var isNotProposer: Bool {
        if case .notProposer = self { return true }
        return false
    }

    package var description: String {
        switch self {
        case let .build(h, e): return "building block \(h) failed: \(e)"
        case let .store(h, e): return "storing produced block \(h) failed: \(e)"
        case let .highWaterMark(h, e): return "recording the signer's high-water mark for height \(h) failed: \(e)"
        case let .unreadableMark(e):
            return "the signer's high-water mark cannot be read (\(e)); refusing to sign without knowing which heights were signed (`evnode signer reset` rewrites it)"
        case let .fence(next, mark):
            return "the signer's high-water mark is \(mark) but the next height is \(next): heights \(next)…\(mark) were already signed; refusing to sign them again (`evnode signer reset` accepts the risk)"
        case let .keptBlock(h, reason):
            return "the block this key signed at height \(h) before the last stop (kept beside the signer's mark) cannot be committed: \(reason); refusing to sign another block at \(h) (`evnode signer reset` accepts the risk)"
        case .notInitialized: return "the store has no genesis state"
        case .stopped: return "production stopped: the node is shutting down"
        case let .refused(h, refusal): return "block \(h) was not admitted, neither stored nor published: \(refusal)"
        case let .notProposer(h, expected, signer):
            return "the chain expects \(Hex.encode(expected)) to sign block \(h), not this node's key \(Hex.encode(signer)): production is handed over"
        }
    }
}

/// Admits each produced block before it is stored or published. An HA leader's fence commits the
/// block to etcd only while this node still holds the leadership; a refusal means another node
/// leads (or may lead) now, and the block must never leave this one.
package protocol BlockFence: Sendable {
    func admit(_ block: BlockCommit) async throws(FenceRefusal)
}

/// Why a fence refused a block, in words for the operator.
package struct FenceRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    package var reason: String
    package init(_ reason: String) { self.reason = reason }
    package var description: String { reason }
}

/// The points between the steps of producing one block, for crash tests (`onStep`).
package enum ProductionStep: String, Sendable, CaseIterable {
    /// The signer's mark (with the signed block) is durable; the store does not hold the block.
    case markRecorded = "after-mark"
    /// The block is committed to the store; nothing was published yet.
    case committed = "after-commit"
    /// The block was handed to gossip and the DA submitter.
    case published = "after-publish"
}

/// Holds production back while it must not go on (back-pressure: too many blocks not on DA yet).
/// `waitUntilOpen` returns when the next block may be produced; it throws when cancelled.
package protocol ProductionGate: Sendable {
    func waitUntilOpen() async throws
}

/// Produces the chain as the proposer: one block every block time (lazy: when transactions wait,
/// or every lazy interval), in this order for each height:
/// build and sign → record the signer's high-water mark with the signed block (fsynced) → commit
/// to the store (synced) → publish (gossip, DA submitter wake-up). A committed block is already
/// visible to peers' range requests, height announcements and the DA submitter, so the mark comes
/// first: a crash at any point leaves the mark at or above every height visible anywhere.
///
/// A crash between the mark and the commit leaves the store one block behind the mark; the block
/// kept beside the mark is the only one this key signed there, so the next start commits exactly
/// it (`recoverKeptBlock`) instead of refusing to go on or signing a second block at that height.
package struct BlockProducer: Sendable {
    package struct Timing: Sendable {
        package var blockTime: Duration
        package var lazy: Bool
        package var lazyInterval: Duration

        package init(blockTime: Duration, lazy: Bool = false, lazyInterval: Duration = .seconds(60)) {
            self.blockTime = blockTime
            self.lazy = lazy
            self.lazyInterval = lazyInterval
        }
    }

    let store: BlockStore
    let executor: any Executor
    let builder: BlockBuilder
    /// `signer.state`, or the remote signer's own mark (read before every block all the same).
    let mark: any SignerMark
    let timing: Timing
    let maxTxsPerBlock: Int
    let maxBlockBytes: Int
    let logger: Logger
    let publish: @Sendable (BlockCommit) async -> Void
    /// With a fence the order per height is: build and sign → record the block as unpublished
    /// and the signer's mark (both synced) → fence → commit → publish.
    let fence: (any BlockFence)?
    /// Asked before each block; while closed, nothing is produced.
    let gate: (any ProductionGate)?
    /// Each block's time (the wall clock, bounded by the time that really passed).
    let clock: BlockClock
    /// Called after each step of each block, on the thread that did it (crash tests kill the
    /// process here). Nil in a node.
    package var onStep: (@Sendable (ProductionStep, UInt64) -> Void)?
    /// ev-node's chain series, fed as each block is stored (nil: not counted).
    let chainMetrics: ChainSeries?
    /// Forced inclusion (nil: off): each block takes the forced transactions due first.
    let forcedInclusion: ForcedInclusionQueue?

    package init(store: BlockStore, executor: any Executor, signer: BlockSigner, mark: any SignerMark,
                timing: Timing, maxTxsPerBlock: Int = 10_000, maxBlockBytes: Int = 1 << 20,
                fence: (any BlockFence)? = nil,
                gate: (any ProductionGate)? = nil, clock: BlockClock? = nil, chainMetrics: ChainSeries? = nil,
                forcedInclusion: ForcedInclusionQueue? = nil,
                logger: Logger, publish: @escaping @Sendable (BlockCommit) async -> Void) {
        self.chainMetrics = chainMetrics
        self.forcedInclusion = forcedInclusion
        self.gate = gate
        self.clock = clock ?? BlockClock(logger: logger)
        self.fence = fence
        self.store = store
        self.executor = executor
        self.builder = BlockBuilder(signer: signer, executor: executor)
        self.mark = mark
        self.timing = timing
        self.maxTxsPerBlock = maxTxsPerBlock
        self.maxBlockBytes = maxBlockBytes
        self.logger = logger
        self.publish = publish
    }

    /// Produces until cancelled. Throws on the first failure: producing past one would risk the
    /// chain, so the node halts and says why.
    package func run() async throws(ProductionError) {
        let thread = ProducerThread()
        do throws(ProductionError) {
            try await run(on: thread)
        } catch {
            await thread.shutdown()
            throw error
        }
        await thread.shutdown()
    }

    private func run(on thread: ProducerThread) async throws(ProductionError) {
        guard store.state != nil else { throw .notInitialized }
        // The HA leader has its own record of what it signed but did not publish.
        if fence == nil, let kept = try await recoverKeptBlock(on: thread) {
            await publish(kept)
            onStep?(.published, kept.height)
        }
        // A kept block carries no checkpoint (it lived in the batch the crash lost), and blocks
        // applied by syncing carry none either: derived from them before the first block.
        if let forcedInclusion {
            guard try await resumeForcedInclusion(forcedInclusion, on: thread) else { return }
        }
        guard let start = store.state else { throw .notInitialized }
        // Checked again before every height (`checkMark`); here so that a node that may not
        // sign says so before it waits for its first slot. On the producer's thread: a remote
        // signer's mark is a network call.
        _ = try await thread.run(at: nil) { () throws(ProductionError) in try self.checkMark(before: start.nextHeight) }
        logger.info("producing blocks", metadata: [
            "next_height": "\(start.nextHeight)", "block_time": "\(DurationParser.format(timing.blockTime))",
            "lazy": "\(timing.lazy)"])
        let clock = ContinuousClock()
        // When the next block is due. The producer's thread waits for it and builds the block
        // right then; this task only hands over and publishes.
        var slot = clock.now
        var lastBlockAt = clock.now
        var lastForcedLook: ContinuousClock.Instant?
        while !Task.isCancelled {
            if timing.lazy {
                if slot > clock.now { try? await clock.sleep(until: slot) }
                let due = clock.now - lastBlockAt >= timing.lazyInterval
                if !due, await !executor.hasPendingTransactions(), !(await forcedDue(lastLook: &lastForcedLook)) {
                    slot = slot.advanced(by: timing.blockTime)
                    continue
                }
            }
            // Back-pressure counts blocks not yet on DA; until the catch-up from base is
            // settled the submitter waits (AggregatorRuntime), so the gate must not.
            let settling = forcedInclusion.map { $0.catchUp == .unchecked } ?? false
            if let gate, (forcedInclusion?.catchUp ?? .done) == .done {
                do {
                    try await gate.waitUntilOpen()
                } catch {
                    return
                }
            }
            if let forcedInclusion {
                do throws(ForcedInclusionError) {
                    try await forcedInclusion.refresh(lastBlockTime: store.state?.lastBlockTime,
                                                     executor: builder.executor)
                } catch {
                    // Never skip an epoch: the block waits until its forced transactions are known.
                    logger.warning("forced-inclusion transactions cannot be read; the block waits for DA", metadata: [
                        "next_height": "\(store.height + 1)", "error": "\(error)"])
                    try? await clock.sleep(for: .seconds(1))
                    slot = clock.now
                    continue
                }
                // The catch-up check just ran and found none: back-pressure applies again first.
                if settling && !forcedInclusion.isCatchingUp { continue }
                // Catching up from base: a step that includes nothing makes no block.
                if forcedInclusion.isCatchingUp,
                   try await thread.run(at: nil, { () throws(ProductionError) in try self.catchUpStepWithoutBlock() }) ?? false {
                    continue
                }
            }
            let produced: BlockCommit?
            do throws(ProductionError) {
                produced = if let fence {
                    try await produceFenced(fence, at: slot, on: thread)
                } else if executor is any SynchronousExecutor {
                    try await thread.run(at: slot) { () throws(ProductionError) in try self.produceOne() }
                } else {
                    try await produceAwaitingExecutor(at: slot, on: thread)
                }
            } catch {
                // An execution layer that cannot be reached decided nothing: nothing was signed or
                // stored, so the same height is built again once it answers — never skipped.
                guard case .build(let height, .execution(let e)) = error, e.isUnavailable else { throw error }
                logger.warning("execution layer unavailable; block waits for it", metadata: [
                    "height": "\(height)", "error": "\(e)"])
                try? await clock.sleep(for: .seconds(1))
                slot = clock.now
                continue
            }
            guard let block = produced else { return }
            await publish(block)
            onStep?(.published, block.height)
            lastBlockAt = clock.now
            slot = slot.advanced(by: timing.blockTime)
            // Slots missed because a block took longer than the block time are skipped, not
            // produced in a burst. Catch-up blocks follow each other at once: the missed forced
            // transactions should reach DA together (README), and their times are the formula's.
            if slot < clock.now || forcedInclusion?.isCatchingUp == true {
                slot = clock.now
            }
        }
    }

    /// How often a lazy producer with nothing else to do asks DA whether an epoch of forced
    /// transactions ended: one header request at most this often (or per block time, if longer).
    static let lazyForcedLookInterval: Duration = .seconds(1)

    /// Lazy mode: whether forced transactions wait for a block (an epoch that ended on DA, or
    /// the catch-up from base still to check). ev-node's lazy loop wakes only for mempool
    /// transactions and its lazy interval, so a forced transaction can wait a whole lazy
    /// interval, longer than the full nodes' grace; evnode makes the block at the next tick
    /// (README). A DA fault counts as due: the block path reads again, says why, and waits.
    private func forcedDue(lastLook: inout ContinuousClock.Instant?) async -> Bool {
        guard let forcedInclusion else { return false }
        if forcedInclusion.catchUp != .done || forcedInclusion.pending() != nil { return true }
        let now = ContinuousClock.now
        if let lastLook, now - lastLook < max(Self.lazyForcedLookInterval, timing.blockTime) { return false }
        lastLook = now
        do throws(ForcedInclusionError) {
            try await forcedInclusion.refresh(lastBlockTime: store.state?.lastBlockTime)
        } catch {
            return true
        }
        return forcedInclusion.pending() != nil || forcedInclusion.isCatchingUp
    }

    /// The fenced order: the block is remembered as unpublished and the mark recorded before
    /// the fence sees it (the fence sends it out of the process), and stored only once admitted,
    /// so a refused block never reaches the store.
    private func produceFenced(_ fence: any BlockFence, at slot: ContinuousClock.Instant,
                               on thread: ProducerThread) async throws(ProductionError) -> BlockCommit? {
        let signed: (block: BlockCommit, started: ContinuousClock.Instant)??
        if executor is any SynchronousExecutor {
            signed = try await thread.run(at: slot) { () throws(ProductionError) in
                let started = ContinuousClock.now
                return (block: try self.signAndRemember(), started: started)
            }
        } else {
            signed = try await signAndRememberAwaitingExecutor(at: slot, on: thread)
        }
        guard let signed, let (block, started) = signed else { return nil }
        do throws(FenceRefusal) {
            try await fence.admit(block)
        } catch {
            throw .refused(height: block.height, error)
        }
        _ = try await thread.run(at: nil) { () throws(ProductionError) in try self.commit(block) }
        count(block, since: started)
        return block
    }

    private func signAndRemember() throws(ProductionError) -> BlockCommit {
        guard let state = store.state else { throw .notInitialized }
        let height = state.nextHeight
        // The fenced (HA) path too: a rotated-away leader must step down, not fail to build.
        try checkProposer(for: height)
        try checkMark(before: height)
        let block = try build(on: state)
        try remember(block)
        return block
    }

    /// `signAndRemember` for an executor over the network: the producer's thread makes the
    /// checks, the task awaits the executor, the thread signs and remembers. Nil when cancelled
    /// while waiting for the slot.
    private func signAndRememberAwaitingExecutor(at slot: ContinuousClock.Instant, on thread: ProducerThread)
        async throws(ProductionError) -> (block: BlockCommit, started: ContinuousClock.Instant)?? {
        guard let executed = try await executeAwaiting(at: slot, on: thread) else { return nil }
        return try await thread.run(at: nil) { () throws(ProductionError) in
            let block = try self.finish(executed)
            try self.remember(block)
            return (block: block, started: executed.started)
        }
    }

    /// The fenced order's record before the fence sees the block: kept as unpublished, then the mark.
    private func remember(_ block: BlockCommit) throws(ProductionError) {
        do throws(StoreError) {
            try UnpublishedBlock.record(block, in: store)
        } catch {
            throw .store(height: block.height, error)
        }
        try recordMark(block.height)
    }

    /// The mempool's transactions from an in-process executor, on the producer's thread.
    private func localGetTxs(max: Int, maxBytes: Int, height: UInt64) throws(ExecutionError) -> [[UInt8]] {
        guard let local = builder.local else { throw .notInProcess(method: "getTxs", height: height) }
        return try local.getTxs(max: max, maxBytes: maxBytes)
    }

    /// The signer's mark must be below `height` before a block there is signed: a height at or
    /// below it was signed already (by this process, an earlier one, or — after a restore — the
    /// same key elsewhere). Read from the file for every height, not once at start: the file is
    /// the authority, and `SignerHighWaterMark.record` refuses to go down as a last resort.
    /// The producer signs only what the chain state says its key signs.
    private func checkProposer(for height: UInt64) throws(ProductionError) {
        let expected = store.expectedNextProposer
        let own = builder.signer.signer.address
        guard expected == own else { throw .notProposer(height: height, expected: expected, signer: own) }
    }

    private func checkMark(before height: UInt64) throws(ProductionError) {
        let signed: UInt64?
        do throws(ConfigError) {
            signed = try mark.load()
        } catch {
            throw .unreadableMark(error)
        }
        if let signed, signed >= height { throw .fence(nextHeight: height, mark: signed) }
    }

    private func recordMark(_ height: UInt64) throws(ProductionError) {
        do throws(ConfigError) {
            try mark.record(height)
        } catch {
            throw .highWaterMark(height: height, error)
        }
    }

    private func commit(_ block: BlockCommit) throws(ProductionError) {
        do throws(StoreError) {
            try store.commit(block, sync: true)
        } catch {
            throw .store(height: block.height, error)
        }
        if let checkpoint = block.forcedInclusionCheckpoint { forcedInclusion?.committed(checkpoint) }
    }

    private func build(on state: State) throws(ProductionError) -> BlockCommit {
        let forced = takeForced()
        let txs: [[UInt8]]
        do throws(ExecutionError) {
            let room = maxBlockBytes - min(maxBlockBytes, forced.bytes)
            // Catching up from base: forced transactions only (ev-node skips the mempool too).
            let catchingUp = forcedInclusion?.isCatchingUp ?? false
            let mempool = forced.txs.count >= maxTxsPerBlock || room == 0 || catchingUp ? []
                : try localGetTxs(max: maxTxsPerBlock - forced.txs.count, maxBytes: room, height: state.nextHeight)
            txs = forced.txs + mempool
        } catch {
            throw .build(height: state.nextHeight, .execution(error))
        }
        let time = forced.time ?? clock.nextBlockTime(after: state.lastBlockTime)
        do throws(BuildError) {
            var block = try builder.build(on: state, txs: txs, time: time)
            block.forcedInclusionCheckpoint = forced.checkpoint
            return block
        } catch {
            throw .build(height: state.nextHeight, error)
        }
    }

    /// The forced transactions the next block takes (ev-node's order): the executor's filter runs
    /// on what is due with ev-node's 5 MiB batch bound; included and removed ones are consumed, the
    /// first postponed one stops the walk, so order is kept. A block that consumed any takes
    /// the formula's time instead of the wall clock (the builder still keeps it at or after its
    /// parent's time).
    private func takeForced() -> (txs: [[UInt8]], bytes: Int, time: UInt64?, checkpoint: ForcedInclusionCheckpoint?) {
        guard let forcedInclusion else { return ([], 0, nil, nil) }
        guard let pending = forcedInclusion.pending() else {
            return ([], 0, nil, forcedInclusion.checkpoint(afterConsuming: 0, of: nil))
        }
        let taken = ForcedInclusionQueue.select(from: pending, executor: builder.executor, maxTxs: maxTxsPerBlock)
        return (taken.txs, taken.bytes, taken.time, forcedInclusion.checkpoint(afterConsuming: taken.consumed, of: pending))
    }

    /// Sets `queue` to the store's checkpoint, moved past the forced transactions of the blocks
    /// stored after it was recorded: blocks applied by syncing (a sequencer promoted after
    /// catchup on a store it synced, an HA node that followed another leader) or the block kept
    /// beside the mark. Each is matched against the epoch due then, in the producer's order
    /// (`ForcedInclusionQueue.consumed`); the result is stored as valid after the store head.
    /// DA faults are retried (never guessed). False when cancelled.
    private func resumeForcedInclusion(_ queue: ForcedInclusionQueue, on thread: ProducerThread) async throws(ProductionError) -> Bool {
        guard let (record, head, genesisHeight) = try await thread.run(at: nil, { () throws(ProductionError) in
            guard let state = self.store.state else { throw ProductionError.notInitialized }
            do throws(StoreError) {
                return (try self.store.forcedInclusionCheckpointRecord(), state.lastBlockHeight,
                        state.initialHeight == 0 ? 0 : state.initialHeight - 1)
            } catch {
                throw ProductionError.store(height: state.nextHeight, error)
            }
        }) else { return false }
        queue.resume(from: record?.checkpoint ?? ForcedInclusionCheckpoint(daHeight: queue.epochs.startHeight, txIndex: 0))
        let from = max(record?.height ?? genesisHeight, genesisHeight)
        guard from < head else { return true }
        var height = from
        while height < head {
            if Task.isCancelled { return false }
            let due: ForcedInclusionQueue.Due
            do throws(ForcedInclusionError) {
                due = try await queue.loadDue(executor: builder.executor)
            } catch {
                logger.warning("deriving the forced-inclusion checkpoint: DA cannot be read; waiting for it", metadata: [
                    "height": "\(height)", "checkpoint": "\(queue.checkpoint)", "error": "\(error)"])
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            // Not ended on DA now: no stored block can hold those transactions.
            if due == .notEnded { break }
            if due == .walked { continue }
            let start = height
            guard let reached = try await thread.run(at: nil, { () throws(ProductionError) in
                try self.matchStoredBlocks(after: start, through: head, queue: queue)
            }) else { return false }
            height = reached
        }
        let derived = queue.checkpoint
        guard try await thread.run(at: nil, { () throws(ProductionError) -> Bool in
            do throws(StoreError) {
                try self.store.setForcedInclusionCheckpoint(derived)
                return true
            } catch {
                throw ProductionError.store(height: head + 1, error)
            }
        }) == true else { return false }
        logger.notice("forced-inclusion checkpoint derived from the blocks stored after it", metadata: [
            "from_height": "\(from + 1)", "to_height": "\(head)", "recorded": "\(record.map { "\($0.checkpoint)" } ?? "none")",
            "checkpoint": "\(derived)"])
        return true
    }

    /// Matches stored blocks `after + 1 … through` against the loaded epoch until it is
    /// consumed (the caller loads the next) or the blocks end; returns the last height matched.
    /// Blocking: store reads and the executor's filter.
    private func matchStoredBlocks(after: UInt64, through head: UInt64, queue: ForcedInclusionQueue) throws(ProductionError) -> UInt64 {
        var height = after
        var judged: (pending: ForcedInclusionQueue.Pending, statuses: [TxFilterStatus])?
        while height < head, let pending = queue.pending() {
            if judged?.pending != pending {
                judged = (pending, builder.executor.filterTxs(pending.txs, maxBytes: ForcedInclusionRules.maxBatchBytes,
                                                                        maxGas: pending.maxGas, hasForced: true))
            }
            let block: (signedHeader: SignedHeader, data: BlockData)?
            do throws(StoreError) {
                block = try store.block(at: height + 1)
            } catch {
                throw .store(height: height + 1, error)
            }
            guard let block else {
                // Pruned (or never stored): what it consumed cannot be known; the checkpoint
                // stays where the blocks still prove it (README, "Not built yet").
                logger.warning("deriving the forced-inclusion checkpoint: block not in the store; stopping there", metadata: [
                    "height": "\(height + 1)", "checkpoint": "\(queue.checkpoint)"])
                return head
            }
            let consumed = ForcedInclusionQueue.consumed(by: block.data.txs, from: pending, statuses: judged!.statuses)
            if consumed > 0 { queue.committed(queue.checkpoint(afterConsuming: consumed, of: pending)) }
            height += 1
        }
        return height
    }

    /// During catch-up from base: true when the next step includes no forced transaction (none
    /// due yet in memory, or the filter removed all of them), after storing the checkpoint it
    /// moved to (synced: it may be the only record of those removals); false when a block is due.
    private func catchUpStepWithoutBlock() throws(ProductionError) -> Bool {
        guard let forcedInclusion else { return false }
        let moved: ForcedInclusionCheckpoint
        if let pending = forcedInclusion.pending() {
            let taken = ForcedInclusionQueue.select(from: pending, executor: builder.executor, maxTxs: maxTxsPerBlock)
            guard taken.txs.isEmpty else { return false }
            moved = forcedInclusion.checkpoint(afterConsuming: taken.consumed, of: pending)
        } else {
            moved = forcedInclusion.checkpoint
        }
        do throws(StoreError) {
            if try store.forcedInclusionCheckpoint() != moved { try store.setForcedInclusionCheckpoint(moved) }
        } catch {
            throw .store(height: store.height + 1, error)
        }
        forcedInclusion.committed(moved)
        return true
    }

    /// Produces the next block, records the signer's mark with it, then stores it; returns the
    /// block for publishing. Blocking (two fsyncs): call it from a thread that may block.
    @discardableResult
    package func produceOne() throws(ProductionError) -> BlockCommit {
        let started = ContinuousClock.now
        guard let state = store.state else { throw .notInitialized }
        try checkProposer(for: state.nextHeight)
        try checkMark(before: state.nextHeight)
        let block = try build(on: state)
        try markAndCommit(block, since: started)
        return block
    }

    /// `produceOne` for an executor that answers over the network (an EL): the producer's
    /// thread makes the checks, then signs, records the mark and commits; between the two the
    /// task awaits the executor, so no thread waits for it.
    private func produceAwaitingExecutor(at slot: ContinuousClock.Instant,
                                         on thread: ProducerThread) async throws(ProductionError) -> BlockCommit? {
        guard let executed = try await executeAwaiting(at: slot, on: thread) else { return nil }
        return try await thread.run(at: nil) { () throws(ProductionError) -> BlockCommit in
            let block = try self.finish(executed)
            try self.markAndCommit(block, since: executed.started)
            return block
        }
    }

    /// A drafted block and the executor's answer for it, not yet signed.
    private struct Executed: Sendable {
        let draft: BlockDraft
        let result: ExecutionResult
        let checkpoint: ForcedInclusionCheckpoint?
        let started: ContinuousClock.Instant
    }

    /// The steps before signing for an executor over the network: the checks on the producer's
    /// thread at `slot`, then the executor's getTxs and executeTxs awaited. Nil when cancelled
    /// while waiting for the slot.
    private func executeAwaiting(at slot: ContinuousClock.Instant,
                                 on thread: ProducerThread) async throws(ProductionError) -> Executed? {
        guard let (state, forced, started) = try await thread.run(at: slot, { () throws(ProductionError) in
            let started = ContinuousClock.now
            guard let state = self.store.state else { throw .notInitialized }
            try self.checkProposer(for: state.nextHeight)
            try self.checkMark(before: state.nextHeight)
            return (state, self.takeForced(), started)
        }) else {
            return nil
        }
        let height = state.nextHeight
        var txs = forced.txs
        let room = maxBlockBytes - min(maxBlockBytes, forced.bytes)
        // Catching up from base: forced transactions only (ev-node skips the mempool too).
        let catchingUp = forcedInclusion?.isCatchingUp ?? false
        do throws(BuildError) {
            do throws(ExecutionError) {
                if forced.txs.count < maxTxsPerBlock, room > 0, !catchingUp {
                    txs += try await executor.getTxs(max: maxTxsPerBlock - forced.txs.count, maxBytes: room)
                }
            } catch {
                throw .execution(error)
            }
            let draft = try builder.draft(on: state, txs: txs,
                                          time: forced.time ?? clock.nextBlockTime(after: state.lastBlockTime))
            do throws(ExecutionError) {
                let result = try await executor.executeTxs(draft.data.txs, height: height, time: draft.time,
                                                           previousRoot: state.appHash)
                return Executed(draft: draft, result: result, checkpoint: forced.checkpoint, started: started)
            } catch {
                throw .execution(error)
            }
        } catch {
            throw .build(height: height, error)
        }
    }

    /// Signs an executed block (on the producer's thread: a remote signer is a network call).
    private func finish(_ executed: Executed) throws(ProductionError) -> BlockCommit {
        var block: BlockCommit
        do throws(BuildError) {
            block = try builder.finish(executed.draft, result: executed.result)
        } catch {
            throw .build(height: executed.draft.height, error)
        }
        block.forcedInclusionCheckpoint = executed.checkpoint
        return block
    }

    /// The signer's mark, then the store (synced): a crash between the two leaves the block
    /// beside the mark, where `recoverKeptBlock` finds it.
    private func markAndCommit(_ block: BlockCommit, since started: ContinuousClock.Instant) throws(ProductionError) {
        do throws(ConfigError) {
            try mark.record(block.height, block: SignedBlockBytes.encode(block.signedHeader, block.data))
        } catch {
            throw .highWaterMark(height: block.height, error)
        }
        onStep?(.markRecorded, block.height)
        try commit(block)
        onStep?(.committed, block.height)
        count(block, since: started)
    }

    private func count(_ block: BlockCommit, since started: ContinuousClock.Instant) {
        guard let chainMetrics else { return }
        let txs = block.data.txs
        chainMetrics.produced(height: block.height, txs: txs.count, txBytes: txs.reduce(0) { $0 + $1.count },
                              took: .now - started)
    }

    /// When the mark is exactly one above the store and keeps the block signed there, commits
    /// that block (validated and executed like any received block) and returns it for
    /// publishing. Nil when there is nothing to recover. The store and the mark are read and
    /// written on the producer's thread; an executor over the network is awaited between.
    func recoverKeptBlock(on thread: ProducerThread) async throws(ProductionError) -> BlockCommit? {
        guard let found = try await thread.run(at: nil, { () throws(ProductionError) in try self.keptBlock() }),
              let (state, kept) = found else { return nil }
        let height = kept.signedHeader.height
        let applier = BlockApplier(store: store, executor: executor,
                                   validator: BlockValidator(chainID: state.chainID,
                                                             proposerAddress: builder.signer.signer.address))
        let now = max(BlockValidator.currentTime(), kept.signedHeader.header.time)
        let block: BlockCommit?
        if applier.local != nil {
            block = try await thread.run(at: nil) { () throws(ProductionError) in
                let block: BlockCommit
                do throws(ApplyError) {
                    block = try applier.prepare(kept.signedHeader, kept.data, state: state, now: now)
                } catch {
                    throw .keptBlock(height: height, reason: error.description)
                }
                try self.commit(block)
                return block
            }
        } else {
            let prepared: BlockCommit
            do throws(ApplyError) {
                prepared = try await applier.prepareAwaitingExecutor(kept.signedHeader, kept.data, state: state, now: now)
            } catch {
                throw .keptBlock(height: height, reason: error.description)
            }
            block = try await thread.run(at: nil) { () throws(ProductionError) in
                try self.commit(prepared)
                return prepared
            }
        }
        guard let block else { return nil }
        onStep?(.committed, height)
        logger.notice("committed the block signed before the last stop (kept beside the signer's mark)", metadata: [
            "height": "\(height)", "hash": "\(Hex.encode(block.signedHeader.header.hash))"])
        return block
    }

    /// The block kept beside the signer's mark when the mark is exactly one above the store, with
    /// the state it goes on. Blocking (the store, the mark's file or remote signer).
    private func keptBlock() throws(ProductionError) -> (state: State, kept: (signedHeader: SignedHeader, data: BlockData))? {
        guard let state = store.state else { throw .notInitialized }
        let record: SignerHighWaterMark.Record?
        do throws(ConfigError) {
            record = try mark.loadRecord()
        } catch {
            throw .unreadableMark(error)
        }
        guard let record, record.height == state.nextHeight, let bytes = record.block else { return nil }
        let height = record.height
        let kept: (signedHeader: SignedHeader, data: BlockData)
        do throws(WireError) {
            kept = try SignedBlockBytes.decode(bytes)
        } catch {
            throw .keptBlock(height: height, reason: "it does not decode: \(error)")
        }
        guard kept.signedHeader.height == height else {
            throw .keptBlock(height: height, reason: "the kept block is for height \(kept.signedHeader.height)")
        }
        return (state, kept)
    }
}

/// The last block a fenced producer signed, kept in the store until a newer one replaces it. A
/// node that signed height h but was refused (or crashed before the fence answered) can offer
/// exactly this block again when it leads at h, instead of signing a second block at h.
package enum UnpublishedBlock {
    static let key = "producer/unpublished"

    static func record(_ block: BlockCommit, in store: BlockStore) throws(StoreError) {
        try store.setMetadata(key, SignedBlockBytes.encode(block.signedHeader, block.data), sync: true)
    }

    /// The recorded block, nil when none was recorded. A damaged record is an error, never nil.
    package static func load(from store: BlockStore) throws(StoreError) -> (signedHeader: SignedHeader, data: BlockData)? {
        guard let bytes = try store.metadata(key) else { return nil }
        do throws(WireError) {
            return try SignedBlockBytes.decode(bytes)
        } catch {
            throw .corrupted(what: key, reason: "unpublished block record does not decode: \(error)")
        }
    }
}
