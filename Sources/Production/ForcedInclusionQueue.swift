import Chain
import Logging
import Synchronization

/// The sequencer's side of forced inclusion (README "Forced inclusion and based sequencing"):
/// which forced transactions the next block must take first, from the persisted checkpoint on.
///
/// The producer calls `refresh()` in its task before each block (it may wait on DA), then
/// `pending()` on its thread while it builds, and `committed(_:)` once the block that carried
/// the new checkpoint is in the store. The checkpoint in memory moves only on commit, so a block
/// that fails is built again from the same forced transactions.
package final class ForcedInclusionQueue: Sendable {
    /// The forced transactions the next block starts with.
    package struct Pending: Sendable, Equatable {
        /// Not yet consumed, in order.
        package var txs: [[UInt8]]
        /// The epoch's count after the size drop (N of the time formula).
        package var epochTxCount: UInt64
        /// Consumed before this block (k before it).
        package var consumedBefore: UInt64
        /// max(previous epoch end times, genesis start time, this epoch's end time).
        package var endTime: UInt64
        /// The epoch's last DA height.
        package var epochEnd: UInt64
        /// The block's gas as the executor's filter takes it (0: no gas).
        package var maxGas: UInt64

        package init(txs: [[UInt8]], epochTxCount: UInt64, consumedBefore: UInt64, endTime: UInt64, epochEnd: UInt64,
                    maxGas: UInt64 = 0) {
            self.txs = txs
            self.epochTxCount = epochTxCount
            self.consumedBefore = consumedBefore
            self.endTime = endTime
            self.epochEnd = epochEnd
            self.maxGas = maxGas
        }
    }

    /// At most this many empty or exhausted epochs are walked past per block, so a sequencer far
    /// behind DA still produces while it catches up.
    package static let maxEpochsPerRefresh = 64

    /// The returning sequencer's catch-up from base (ev-node's `updateCatchUpState`): checked
    /// once, at the first refresh; while in progress, blocks take forced transactions only.
    package enum CatchUp: Sendable, Equatable {
        case unchecked
        case inProgress
        case done
    }

    private struct Current {
        var checkpoint: ForcedInclusionCheckpoint
        var epoch: ForcedInclusionEpoch?
        var endTime: UInt64
        var catchUp: CatchUp = .unchecked
        /// The executor's block gas, asked once (ev-node caches it the same way).
        var maxGas: UInt64?
    }

    package let source: any ForcedInclusionSource
    package let epochs: ForcedInclusionEpochs
    private let logger: Logger
    private let current: Mutex<Current>

    /// `checkpoint`: the store's (nil before the first epoch: start at da_start_height).
    /// `startTime`: the floor of forced block times before any epoch was read (genesis start time).
    package init(source: any ForcedInclusionSource, epochs: ForcedInclusionEpochs,
                checkpoint: ForcedInclusionCheckpoint?, startTime: UInt64, logger: Logger) {
        self.source = source
        self.epochs = epochs
        self.logger = logger
        let start = checkpoint ?? ForcedInclusionCheckpoint(daHeight: epochs.startHeight, txIndex: 0)
        current = Mutex(Current(checkpoint: ForcedInclusionCheckpoint(daHeight: max(start.daHeight, epochs.startHeight),
                                                                      txIndex: start.txIndex),
                                epoch: nil, endTime: startTime))
    }

    package var checkpoint: ForcedInclusionCheckpoint { current.withLock { $0.checkpoint } }

    package var catchUp: CatchUp { current.withLock { $0.catchUp } }
    /// Catching up from base: blocks hold forced transactions only, and only when some are included.
    package var isCatchingUp: Bool { catchUp == .inProgress }

    /// Returns once the catch-up check ran and no catch-up is in progress; throws when cancelled.
    package func waitUntilCatchUpSettled() async throws {
        while catchUp != .done {
            try await Task.sleep(for: .milliseconds(50))
        }
    }

    /// Once per process: a checkpoint at least one epoch behind the DA head means forced
    /// transactions were posted while nobody sequenced; they are replayed first, in blocks of
    /// their own, timed by the formula from max(epoch end time, `lastBlockTime`) (the chain's
    /// last block time is the floor: a based node's blocks may be timed earlier, README).
    private func checkCatchUp(lastBlockTime: UInt64?) async throws(ForcedInclusionError) {
        guard current.withLock({ $0.catchUp }) == .unchecked else { return }
        let head = try await source.latestDAHeight()
        current.withLock { c in
            let behind = head > c.checkpoint.daHeight && epochs.epoch(of: head) > epochs.epoch(of: c.checkpoint.daHeight)
            guard behind else {
                c.catchUp = .done
                return
            }
            c.catchUp = .inProgress
            if let lastBlockTime { c.endTime = max(c.endTime, lastBlockTime) }
        }
        if isCatchingUp {
            logger.notice("catch-up from base: the forced-inclusion checkpoint is at least one epoch behind the DA head; replaying forced transactions before producing normally", metadata: [
                "checkpoint": "\(checkpoint)", "da_head": "\(head)",
                "epochs_behind": "\(epochs.epoch(of: head) - epochs.epoch(of: checkpoint.daHeight))"])
        }
    }

    /// Loads the epoch at the checkpoint when it has ended on DA; walks past epochs with nothing
    /// left to take. An epoch not yet ended is no error: the block goes without forced
    /// transactions. DA faults are thrown (the producer retries; an epoch is never skipped).
    /// `executor`: asked for its block gas once forced transactions are due (nil: no gas bound).
    package func refresh(lastBlockTime: UInt64? = nil, executor: (any Executor)? = nil) async throws(ForcedInclusionError) {
        try await checkCatchUp(lastBlockTime: lastBlockTime)
        if try await loadDue(executor: executor) == .notEnded {
            let finished = current.withLock { c -> Bool in
                defer { if c.catchUp == .inProgress { c.catchUp = .done } }
                return c.catchUp == .inProgress
            }
            if finished {
                logger.notice("catch-up from base complete: reached the DA head, producing normally", metadata: [
                    "checkpoint": "\(checkpoint)"])
            }
        }
    }

    /// What `loadDue` found.
    package enum Due: Sendable, Equatable {
        /// An epoch with transactions left to take is loaded (`pending()` holds them).
        case loaded
        /// The epoch at the checkpoint has not ended on DA: nothing can be taken yet.
        case notEnded
        /// `maxEpochsPerRefresh` epochs with nothing to take were walked past; ask again.
        case walked
    }

    /// Loads the epoch at the checkpoint when it has ended on DA, walking past epochs with
    /// nothing left to take. DA faults are thrown (an epoch is never skipped). `executor`: asked
    /// for its block gas once forced transactions are due (nil: no gas bound), so that the
    /// producer's selection and the checkpoint derivation filter alike.
    package func loadDue(executor: (any Executor)? = nil) async throws(ForcedInclusionError) -> Due {
        let due = try await loadEpoch()
        guard due == .loaded, let executor, current.withLock({ $0.maxGas == nil }) else { return due }
        do throws(ExecutionError) {
            let gas = try await executor.maxGasPerBlock()
            current.withLock { $0.maxGas = gas }
        } catch {
            throw .gasLimitUnavailable(reason: error.description)
        }
        return due
    }

    private func loadEpoch() async throws(ForcedInclusionError) -> Due {
        for _ in 0..<Self.maxEpochsPerRefresh {
            let (checkpoint, loaded) = current.withLock { ($0.checkpoint, $0.epoch) }
            if let loaded, loaded.daHeights.contains(checkpoint.daHeight), checkpoint.txIndex < UInt64(loaded.txs.count) {
                return .loaded
            }
            let epoch: ForcedInclusionEpoch
            do throws(ForcedInclusionError) {
                epoch = try await source.epoch(containing: checkpoint.daHeight)
            } catch {
                guard case .heightFromFuture = error else { throw error }
                return .notEnded
            }
            if epoch.droppedOversize > 0 {
                logger.warning("forced-inclusion blobs over the size limit dropped", metadata: [
                    "da_heights": "\(epoch.daHeights)", "dropped": "\(epoch.droppedOversize)",
                    "limit_bytes": "\(ForcedInclusionRules.maxTxBytes)"])
            }
            let exhausted = current.withLock { c -> Bool in
                c.endTime = max(c.endTime, epoch.endTime)
                c.epoch = epoch
                guard c.checkpoint.txIndex >= UInt64(epoch.txs.count) else {
                    c.checkpoint.daHeight = epoch.daHeights.upperBound
                    return false
                }
                // Nothing (left) to take: the checkpoint moves on in memory; the next block
                // stores it (re-reading an empty epoch after a crash costs nothing).
                c.checkpoint = ForcedInclusionCheckpoint(daHeight: epoch.daHeights.upperBound + 1, txIndex: 0)
                c.epoch = nil
                return true
            }
            if !exhausted {
                logger.info("forced-inclusion epoch read", metadata: [
                    "da_heights": "\(epoch.daHeights)", "txs": "\(epoch.txs.count)"])
                return .loaded
            }
        }
        return .walked
    }

    /// A producer starts from the store's checkpoint (after deriving it past the blocks it
    /// synced): an HA node leads again after following, so what it held in memory from its last
    /// term is stale. The catch-up check runs again, once for this run.
    package func resume(from checkpoint: ForcedInclusionCheckpoint) {
        current.withLock { c in
            c.checkpoint = ForcedInclusionCheckpoint(daHeight: max(checkpoint.daHeight, epochs.startHeight),
                                                     txIndex: checkpoint.txIndex)
            c.epoch = nil
            c.catchUp = .unchecked
        }
    }

    /// How many of `pending` a stored block consumed (open question 9: the checkpoint of blocks
    /// this node did not produce, README). Walked in the producer's order: a forced transaction
    /// the block holds next was included (whatever the filter says now: the block is a fact); one
    /// it does not hold was consumed only if the filter removes it (removed ones leave no trace,
    /// and skipping them is harmless: they would be removed again); anything else ends the walk
    /// (not included yet: postponed, or the block was built before the epoch was read).
    package static func consumed(by blockTxs: [[UInt8]], from pending: Pending, statuses: [TxFilterStatus]) -> UInt64 {
        var next = 0
        var consumed: UInt64 = 0
        for (tx, status) in zip(pending.txs, statuses) {
            if next < blockTxs.count, blockTxs[next] == tx {
                next += 1
            } else if status != .remove {
                break
            }
            consumed += 1
        }
        return consumed
    }

    /// The forced transactions waiting for the next block; nil when there are none.
    package func pending() -> Pending? {
        current.withLock { c -> Pending? in
            guard let epoch = c.epoch, epoch.daHeights.contains(c.checkpoint.daHeight),
                  c.checkpoint.txIndex < UInt64(epoch.txs.count) else { return nil }
            return Pending(txs: Array(epoch.txs[Int(c.checkpoint.txIndex)...]), epochTxCount: UInt64(epoch.txs.count),
                           consumedBefore: c.checkpoint.txIndex, endTime: c.endTime, epochEnd: epoch.daHeights.upperBound,
                           maxGas: c.maxGas ?? 0)
        }
    }

    /// The checkpoint after the next block consumes `consumed` of `pending` (nil pending: the
    /// checkpoint as it stands, which may have moved past empty epochs).
    package func checkpoint(afterConsuming consumed: UInt64, of pending: Pending?) -> ForcedInclusionCheckpoint {
        guard let pending else { return checkpoint }
        let index = pending.consumedBefore + consumed
        if index >= pending.epochTxCount {
            return ForcedInclusionCheckpoint(daHeight: pending.epochEnd + 1, txIndex: 0)
        }
        return ForcedInclusionCheckpoint(daHeight: pending.epochEnd, txIndex: index)
    }

    /// What one block takes of `pending` (ev-node's order): the executor's filter runs with
    /// ev-node's 5 MiB batch bound; included and removed ones are consumed, the first postponed
    /// one (or the `maxTxs`-th included) stops the walk, so order is kept. `time`: the formula's,
    /// nil when nothing was consumed.
    package struct Selection: Sendable, Equatable {
        package var txs: [[UInt8]]
        package var bytes: Int
        package var consumed: UInt64
        package var time: UInt64?
    }

    package static func select(from pending: Pending, executor: any Executor, maxTxs: Int) -> Selection {
        let statuses = executor.filterTxs(pending.txs, maxBytes: ForcedInclusionRules.maxBatchBytes, maxGas: pending.maxGas,
                                           hasForced: true)
        var included: [[UInt8]] = []
        var bytes = 0
        var consumed: UInt64 = 0
        for (tx, status) in zip(pending.txs, statuses) {
            if status == .postpone || included.count >= maxTxs { break }
            consumed += 1
            if status == .include {
                included.append(tx)
                bytes += tx.count
            }
        }
        let time = consumed == 0 ? nil
            : ForcedInclusionRules.blockTime(epochEndTime: pending.endTime, epochTxCount: pending.epochTxCount,
                                             consumed: pending.consumedBefore + consumed)
        return Selection(txs: included, bytes: bytes, consumed: consumed, time: time)
    }

    /// The block carrying `checkpoint` is in the store.
    package func committed(_ checkpoint: ForcedInclusionCheckpoint) {
        current.withLock { c in
            c.checkpoint = checkpoint
            if let epoch = c.epoch, !epoch.daHeights.contains(checkpoint.daHeight) { c.epoch = nil }
        }
    }
}
