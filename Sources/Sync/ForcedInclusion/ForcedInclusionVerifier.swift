import Primitives
import Chain
import Crypto
import Logging
import Synchronization
import Telemetry

/// A sequencer omitted forced transactions past their grace boundary (README "Forced inclusion
/// and based sequencing"). The blocks of the DA height that showed it were not applied; the
/// node halts and tells the operator the two ways on.
package struct ForcedInclusionViolation: Error, Sendable, Equatable, CustomStringConvertible {
    /// Forced transactions the filter accepts that no DA-sourced block carried in time.
    package var missingCount: Int
    /// SHA-256 of the first few of them (hex), for the operator to look up on DA.
    package var missingHashes: [String]
    /// The DA heights of the epochs they were posted in.
    package var postedAt: ClosedRange<UInt64>
    /// The last DA height by which they had to be in a block.
    package var graceBoundary: UInt64
    /// The DA height whose blocks showed the omission (they are left unapplied).
    package var daHeight: UInt64
    /// The block heights left unapplied (nil when the DA height held none new to the store).
    package var unappliedBlocks: ClosedRange<UInt64>?
    /// The forced-inclusion namespace name.
    package var namespace: String

    package static let maxListedHashes = 8

    package var description: String {
        let blocks = unappliedBlocks.map { " Blocks \($0.lowerBound)…\($0.upperBound) from DA height \(daHeight) were not applied." }
            ?? " Nothing from DA height \(daHeight) was applied."
        return "SEQUENCER IS MALICIOUS: \(missingCount) forced transaction(s) posted to the forced-inclusion namespace "
            + "'\(namespace)' at DA heights \(postedAt.lowerBound)…\(postedAt.upperBound) are in no block by the grace "
            + "boundary, DA height \(graceBoundary) (seen at DA height \(daHeight)); sha256 "
            + missingHashes.joined(separator: ", ") + (missingCount > missingHashes.count ? ", …" : "") + "."
            + blocks
            + " Restart as a based sequencer (--evnode.node.aggregator --evnode.node.based_sequencer) to continue the"
            + " chain from DA alone, or keep the chain halted."
    }
}

/// The full node's forced-inclusion check (ev-node's `VerifyForcedInclusionTxs`, README "Forced
/// inclusion and based sequencing"). Only DA-sourced blocks are checked: the DA follower calls
/// `check` at every DA height that completed blocks, before handing them to the pipeline.
///
/// It records the transactions (SHA-256) and their bytes under the DA height that completed
/// their block; then, for each epoch whose grace boundary lies below that DA height, every
/// forced transaction of the epoch that the executor's filter includes must have been seen.
/// The grace is 1 epoch, plus one per 0.8 × 5 MiB by which the average bytes of block
/// transactions per DA height of the epoch exceed 0.8 × 5 MiB, at most 4.
package final class ForcedInclusionVerifier: Sendable {
    private struct Tracking {
        /// SHA-256 of every tx seen in a DA-sourced block not yet pruned, with its count (a tx
        /// may be in two blocks; pruning one DA height must not forget the other).
        var seen: [[UInt8]: Int] = [:]
        var seenByHeight: [UInt64: [[UInt8]]] = [:]
        /// DA height → bytes of block transactions completed there.
        var bytes: [UInt64: UInt64] = [:]
        /// The last epoch end checked (nil: none yet).
        var lastCheckedEpochEnd: UInt64?
        /// The executor's block gas, asked once (as the sequencer's queue does).
        var maxGas: UInt64?
    }

    package let source: any ForcedInclusionSource
    package let epochs: ForcedInclusionEpochs
    package let executor: any Executor
    package let namespace: String
    let metrics: ForcedInclusionSeries?
    let retry: RetryPolicy
    let logger: Logger
    private let tracking: Mutex<Tracking>

    /// `resumeDAHeight`: the first DA height the follower reads. Epochs that ended below it count
    /// as checked (what a previous run saw is not remembered; ev-node resumes the same way from
    /// its state's DA height).
    package init(source: any ForcedInclusionSource, epochs: ForcedInclusionEpochs, executor: any Executor,
                namespace: String, resumeDAHeight: UInt64, metrics: ForcedInclusionSeries?,
                retry: RetryPolicy = RetryPolicy(maxAttempts: .max, initialDelay: .milliseconds(200), maxDelay: .seconds(10)),
                logger: Logger) {
        self.source = source
        self.epochs = epochs
        self.executor = executor
        self.namespace = namespace
        self.metrics = metrics
        self.retry = retry
        self.logger = logger
        var t = Tracking()
        let firstEnd = epochs.startHeight + epochs.size - 1
        if resumeDAHeight > firstEnd {
            let last = resumeDAHeight - 1
            t.lastCheckedEpochEnd = firstEnd + (last - firstEnd) / epochs.size * epochs.size
        }
        tracking = Mutex(t)
    }

    package var lastCheckedEpochEnd: UInt64? { tracking.withLock { $0.lastCheckedEpochEnd } }

    /// Records `blocks` (complete at `daHeight`) and checks every epoch whose grace ended below
    /// `daHeight`. DA faults reading an epoch are retried here (logged), never skipped: an
    /// unread epoch is not a checked one. Throws the violation, or `CancellationError`.
    package func check(daHeight: UInt64, blocks: [CandidateBlock]) async throws {
        record(daHeight: daHeight, blocks: blocks)
        guard daHeight >= epochs.startHeight else { return }
        var missing: [[UInt8]] = []
        var posted: ClosedRange<UInt64>?
        var boundary: UInt64 = 0
        while true {
            let (epochEnd, grace) = tracking.withLock { t -> (UInt64, UInt64) in
                let end = t.lastCheckedEpochEnd.map { $0 + epochs.size } ?? (epochs.startHeight + epochs.size - 1)
                let start = end - (epochs.size - 1)
                let total = (start...end).reduce(UInt64(0)) { $0 &+ (t.bytes[$1] ?? 0) }
                return (end, ForcedInclusionRules.graceEpochs(blockTxBytes: total, epochSize: epochs.size))
            }
            let epochBoundary = epochEnd + grace * epochs.size
            if epochBoundary >= daHeight { break }
            let epoch = try await read(epochEnd)
            if !epoch.txs.isEmpty {
                // Only what the filter includes in one block is enforced: garbage is no one's fault,
                // and what does not fit one block may wait.
                let maxGas = try await blockGas()
                let statuses = executor.filterTxs(epoch.txs, maxBytes: ForcedInclusionRules.maxBatchBytes, maxGas: maxGas,
                                                  hasForced: true)
                let omitted = tracking.withLock { t in
                    zip(epoch.txs, statuses).filter { $0.1 == .include }.map { Self.hash($0.0) }
                        .filter { (t.seen[$0] ?? 0) == 0 }
                }
                if !omitted.isEmpty {
                    missing += omitted
                    posted = (posted?.lowerBound ?? epoch.daHeights.lowerBound)...epoch.daHeights.upperBound
                    boundary = max(boundary, epochBoundary)
                    logger.warning("forced transactions past their grace boundary are in no block", metadata: [
                        "epoch": "\(epoch.daHeights)", "grace_boundary": "\(epochBoundary)", "da_height": "\(daHeight)",
                        "missing": "\(omitted.count)", "first_sha256": "\(Hex.encode(omitted[0]))"])
                }
            }
            prune(through: epochEnd)
        }
        guard let posted else { return }
        metrics?.txsMalicious.add(UInt64(missing.count))
        let heights = blocks.map(\.height)
        throw ForcedInclusionViolation(
            missingCount: missing.count, missingHashes: missing.prefix(ForcedInclusionViolation.maxListedHashes).map { Hex.encode($0) },
            postedAt: posted, graceBoundary: boundary, daHeight: daHeight,
            unappliedBlocks: heights.min().map { $0...(heights.max() ?? $0) }, namespace: namespace)
    }

    private func record(daHeight: UInt64, blocks: [CandidateBlock]) {
        guard !blocks.isEmpty else { return }
        let hashes = blocks.flatMap { $0.data.txs.map(Self.hash) }
        let bytes = blocks.reduce(UInt64(0)) { sum, b in b.data.txs.reduce(sum) { $0 &+ UInt64($1.count) } }
        tracking.withLock { t in
            // Below the last checked epoch end nothing will be asked again.
            if let checked = t.lastCheckedEpochEnd, daHeight <= checked { return }
            for h in hashes { t.seen[h, default: 0] += 1 }
            t.seenByHeight[daHeight, default: []] += hashes
            t.bytes[daHeight, default: 0] &+= bytes
        }
    }

    private func prune(through epochEnd: UInt64) {
        tracking.withLock { t in
            for height in t.seenByHeight.keys where height <= epochEnd {
                for h in t.seenByHeight.removeValue(forKey: height) ?? [] {
                    let n = (t.seen[h] ?? 1) - 1
                    t.seen[h] = n > 0 ? n : nil
                }
            }
            for height in t.bytes.keys where height <= epochEnd { t.bytes.removeValue(forKey: height) }
            t.lastCheckedEpochEnd = epochEnd
        }
    }

    /// The epoch ending at `epochEnd`, retried until DA answers (below the DA height being
    /// processed, so never from the future for long).
    private func read(_ epochEnd: UInt64) async throws -> ForcedInclusionEpoch {
        var backoff = Backoff(policy: retry)
        while true {
            do throws(ForcedInclusionError) {
                return try await source.epoch(containing: epochEnd)
            } catch {
                let delay = backoff.nextDelay()
                logger.warning("cannot read forced-inclusion transactions to check them; retrying", metadata: [
                    "epoch_end": "\(epochEnd)", "error": "\(error)", "retry_in": "\(delay)"])
                try await Task.sleep(for: delay)
            }
        }
    }

    /// The executor's block gas, retried until it answers: a check filtered with no gas bound
    /// could blame the sequencer for a transaction it rightly removed.
    private func blockGas() async throws -> UInt64 {
        if let known = tracking.withLock({ $0.maxGas }) { return known }
        var backoff = Backoff(policy: retry)
        while true {
            do throws(ExecutionError) {
                let gas = try await executor.maxGasPerBlock()
                tracking.withLock { $0.maxGas = gas }
                return gas
            } catch {
                let delay = backoff.nextDelay()
                logger.warning("cannot ask the execution layer for its block gas limit to check forced transactions; retrying",
                               metadata: ["error": "\(error)", "retry_in": "\(delay)"])
                try await Task.sleep(for: delay)
            }
        }
    }

    static func hash(_ tx: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: tx))
    }
}
