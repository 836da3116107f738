/// Forced-inclusion epochs (ev-node's `types/epoch.go` rules, README "Forced inclusion and based
/// sequencing"): DA heights from genesis `da_start_height` S on are cut into epochs of
/// `da_epoch_forced_inclusion` E heights. Epoch 0 is everything below S; epoch n ≥ 1 covers
/// [S + (n−1)E, S + nE − 1]. An epoch's forced transactions are read once, at its last height.
package struct ForcedInclusionEpochs: Sendable, Hashable {
    package let startHeight: UInt64
    package let size: UInt64

    /// `size` ≥ 1 (genesis refuses 0, which would make every height one endless epoch).
    package init(startHeight: UInt64, size: UInt64) {
        precondition(size >= 1, "da_epoch_forced_inclusion must be at least 1")
        self.startHeight = startHeight
        self.size = size
    }

    /// 0 below the start height, else ⌊(d − S)/E⌋ + 1.
    package func epoch(of daHeight: UInt64) -> UInt64 {
        daHeight < startHeight ? 0 : (daHeight - startHeight) / size + 1
    }

    /// First and last DA height of the epoch holding `daHeight` (≥ the start height).
    package func bounds(containing daHeight: UInt64) -> ClosedRange<UInt64> {
        let n = epoch(of: max(daHeight, startHeight))
        let first = startHeight + (n - 1) * size
        return first...(first + size - 1)
    }

    package func isEpochEnd(_ daHeight: UInt64) -> Bool {
        daHeight >= startHeight && bounds(containing: daHeight).upperBound == daHeight
    }
}

/// Where a sequencer stands in the forced-inclusion stream: the next DA height to read and how
/// many of that epoch's transactions (after the size drop) were already consumed. Persisted in
/// the store in the same batch as the block that consumed them, so that a restart at any moment
/// neither repeats nor skips one.
package struct ForcedInclusionCheckpoint: Sendable, Hashable, CustomStringConvertible {
    package var daHeight: UInt64
    package var txIndex: UInt64

    package init(daHeight: UInt64, txIndex: UInt64) {
        self.daHeight = daHeight
        self.txIndex = txIndex
    }

    /// 16 bytes: DA height and index, each big-endian.
    package var encoded: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(16)
        for v in [daHeight, txIndex] {
            for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: v >> UInt64(shift))) }
        }
        return out
    }

    /// Nil unless exactly 16 bytes.
    package init?(encoded bytes: [UInt8]) {
        guard bytes.count == 16 else { return nil }
        func word(_ at: Int) -> UInt64 { bytes[at..<(at + 8)].reduce(0) { $0 << 8 | UInt64($1) } }
        self.init(daHeight: word(0), txIndex: word(8))
    }

    package var description: String { "DA height \(daHeight), tx index \(txIndex)" }
}

/// ev-node's fixed numbers for forced inclusion.
package enum ForcedInclusionRules {
    /// Forced blobs larger than ev-node's `DefaultMaxBlobSize` are dropped: no block could hold them.
    package static let maxTxBytes = 5_242_880
    /// The most bytes of forced transactions one block takes (ev-node's batch bound, 5 MiB).
    package static let maxBatchBytes: UInt64 = 5_242_880
    /// Grace threshold: 0.8 × 5 MiB of block-transaction bytes per DA height on average (how
    /// full the chain's blocks were while the epoch was due, not how many forced bytes it had).
    package static let graceFullness: UInt64 = 4_194_304
    /// The longest grace, in epochs.
    package static let maxGraceEpochs: UInt64 = 4
    /// Spacing of forced-transaction block times within an epoch (1 ms).
    package static let timeStep: UInt64 = 1_000_000

    /// Grace in epochs for an epoch over whose DA heights the verifier saw `blockTxBytes` bytes
    /// of transactions in DA-sourced blocks, in all (ev-node's `gracePeriodForEpoch`: the bytes
    /// of every block's txs recorded under the DA height that completed it, averaged over the
    /// epoch's E heights, empty heights counting 0): 1 + (avg − T)/T (integer division) when the
    /// average exceeds T, capped at 4. Congested blocks buy the sequencer time; forced bytes do not.
    package static func graceEpochs(blockTxBytes: UInt64, epochSize: UInt64) -> UInt64 {
        let average = blockTxBytes / max(1, epochSize)
        guard average > graceFullness else { return 1 }
        return min(1 + (average - graceFullness) / graceFullness, maxGraceEpochs)
    }

    /// The time of a block that consumed forced transactions: `endTime − N ms + k ms`, where N is
    /// the epoch's transaction count after the size drop and k the cumulative count consumed.
    /// Saturates instead of wrapping (a genesis start time within N ms of the epoch is absurd,
    /// not a reason to trap).
    package static func blockTime(epochEndTime: UInt64, epochTxCount: UInt64, consumed: UInt64) -> UInt64 {
        let back = epochTxCount.multipliedReportingOverflow(by: timeStep)
        let start = back.overflow ? 0 : (epochEndTime >= back.partialValue ? epochEndTime - back.partialValue : 0)
        let forward = consumed.multipliedReportingOverflow(by: timeStep)
        let (time, overflow) = start.addingReportingOverflow(forward.overflow ? .max : forward.partialValue)
        return overflow ? .max : time
    }
}

/// How the executor judges one candidate transaction for a block (ev-node's `FilterTxs`).
package enum TxFilterStatus: Sendable, Hashable {
    /// Goes into the block.
    case include
    /// Never valid: dropped, but counted as consumed.
    case remove
    /// Valid but does not fit this block: stays for a later one, in order.
    case postpone
}

/// One forced-inclusion epoch as read from DA at its last height.
package struct ForcedInclusionEpoch: Sendable, Equatable {
    /// The epoch's DA heights.
    package let daHeights: ClosedRange<UInt64>
    /// Its forced transactions: every non-empty blob in the namespace, ascending DA height then
    /// blob order, without those over `ForcedInclusionRules.maxTxBytes`.
    package let txs: [[UInt8]]
    /// Blobs dropped for their size (said in the log by the caller, counted here).
    package let droppedOversize: Int
    /// The DA header time of the epoch's last height, unix ns (DA time never goes back, so it is
    /// the latest time among the epoch's heights).
    package let endTime: UInt64

    package init(daHeights: ClosedRange<UInt64>, txs: [[UInt8]], droppedOversize: Int, endTime: UInt64) {
        self.daHeights = daHeights
        self.txs = txs
        self.droppedOversize = droppedOversize
        self.endTime = endTime
    }
}

/// What reading forced transactions at one DA height gives.
package enum ForcedInclusionRead: Sendable, Equatable {
    /// The height is inside an epoch: nothing is read there (ev-node reads at epoch ends only).
    case notEpochEnd(daHeight: UInt64)
    case epoch(ForcedInclusionEpoch)
}

package enum ForcedInclusionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Below genesis `da_start_height`: there are no epochs there.
    case beforeStart(daHeight: UInt64, startHeight: UInt64)
    /// A height of the epoch is above the DA node's head: read again later. Not a fault.
    case heightFromFuture(daHeight: UInt64)
    /// The DA node failed at `daHeight` (after the client's own retries). The whole epoch is
    /// unread: a partial epoch is never handed out as if it were complete (ev-node returns an
    /// empty one, which a sequencer would then skip; evnode retries instead).
    case unavailable(daHeight: UInt64, reason: String)
    /// The executor could not say how much gas a block may use, so forced transactions cannot
    /// be filtered yet (asked again later; nothing is skipped).
    case gasLimitUnavailable(reason: String)

    package var description: String {
        switch self {
        case let .beforeStart(d, s):
            return "DA height \(d) is below da_start_height \(s): no forced-inclusion epoch holds it"
        case let .heightFromFuture(d):
            return "DA height \(d) is not produced yet: forced transactions are read once the epoch has ended"
        case let .unavailable(d, reason):
            return "reading forced-inclusion blobs at DA height \(d) failed: \(reason)"
        case let .gasLimitUnavailable(reason):
            return "the execution layer's block gas limit, needed to filter forced transactions, is unknown: \(reason)"
        }
    }
}

/// Where forced transactions come from (the DA retriever in a node).
package protocol ForcedInclusionSource: Sendable {
    /// Nothing inside an epoch; the whole epoch at its last height.
    func read(at daHeight: UInt64) async throws(ForcedInclusionError) -> ForcedInclusionRead
    /// The epoch holding `daHeight`, read whole (a verifier or a sequencer that jumps to it).
    func epoch(containing daHeight: UInt64) async throws(ForcedInclusionError) -> ForcedInclusionEpoch
    /// The DA head (a returning sequencer compares its checkpoint with it once).
    func latestDAHeight() async throws(ForcedInclusionError) -> UInt64
}

