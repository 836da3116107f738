import Block
import Config
import DA
import Logging
import P2PSync

/// The failover state machine (SPEC §6), read top to bottom:
///
///     starting ──▶ syncing ──▶ caughtUp ──▶ aggregating
///        │            │  (full node: stays syncing)
///        └────────────┴──────────▶ halted(reason)
///
/// * A full node goes to `syncing` and stays there.
/// * An aggregator without catchup goes straight to `aggregating`.
/// * An aggregator with `--catchup-timeout` syncs first and is promoted only when the
///   `CatchupGate` finds all four conditions true: DA head reached, P2P caught up, nothing
///   waiting to be applied, and the equivocation fence clear. If waiting cannot help, it fails
///   closed and the process exits non-zero, never producing.
/// * Any failure of a background part (syncer, DA follower, producer, submitter) ends the phase
///   with that failure: the node halts and says why; nothing is swallowed.
struct FailoverStateMachine: Sendable {
    enum Mode: Sendable {
        case fullNode
        case aggregator
        case aggregatorWithCatchup(timeout: Duration)
    }

    let mode: Mode
    let state: NodeState
    let sync: SyncRuntime
    let aggregator: AggregatorRuntime?
    let p2p: P2PService
    let peersConfigured: Bool
    let signerMark: SignerHighWaterMark?
    let metrics: NodeMetrics
    let logger: Logger
    /// How often the catchup conditions are sampled, and how often progress is logged.
    var pollInterval: Duration = .milliseconds(100)
    var progressLogInterval: Duration = .seconds(5)

    func run() async throws(NodeFailure) {
        state.enter(.starting)
        switch mode {
        case .fullNode:
            state.enter(.syncing)
            try await sync.run()
        case .aggregator:
            try await aggregate()
        case .aggregatorWithCatchup(let timeout):
            try await catchUp(timeout: timeout)
            try await aggregate()
        }
    }

    // MARK: syncing → caughtUp

    /// Runs the sync phase until the gate promotes (returns) or fails closed (throws).
    private func catchUp(timeout: Duration) async throws(NodeFailure) {
        state.enter(.syncing, reason: "catching up before producing")
        logger.notice("catchup: syncing from DA and peers before producing", metadata: [
            "timeout": "\(DurationParser.format(timeout))", "peers_configured": "\(peersConfigured)"])
        let gate = CatchupGate(timeout: timeout)
        do {
            try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    try await sync.run()
                    return false   // cancelled: only the gate ends the phase normally
                }
                group.addTask {
                    try await waitForPromotion(gate)
                    return true
                }
                let promoted = try await group.next() ?? false
                group.cancelAll()
                if !promoted { throw CancellationError() }
            }
        } catch let failure as NodeFailure {
            state.enter(.halted, reason: failure.description)
            throw failure
        } catch {
            // Cancelled (SIGTERM): the caller stops the process cleanly.
            return
        }
        let height = sync.pipeline.progress.storeHeight
        state.updateCatchup { $0.active = false; $0.blocked_by = nil }
        state.enter(.caughtUp, reason: "all four catchup conditions hold at height \(height)")
    }

    /// Samples the node every `pollInterval` and asks the gate; logs progress every
    /// `progressLogInterval`. Returns on promotion, throws `failClosed`.
    private func waitForPromotion(_ gate: CatchupGate) async throws(NodeFailure) {
        let clock = ContinuousClock()
        let started = clock.now
        var lastLog = started
        var rate = RateMeter(startHeight: sync.pipeline.progress.storeHeight, at: started)
        state.updateCatchup { $0.active = true }
        while !Task.isCancelled {
            let now = clock.now
            let snapshot = sample(startedAt: started, now: now)
            rate.record(height: snapshot.storeHeight, at: now)
            let decision = gate.evaluate(snapshot)
            let target = max(snapshot.p2pMaxHeight ?? 0, snapshot.highestKnownHeader, snapshot.storeHeight)
            let eta = rate.eta(from: snapshot.storeHeight, to: target)
            state.updateCatchup {
                $0.target = target
                $0.blocks_per_second = rate.blocksPerSecond
                $0.eta_seconds = eta
                $0.elapsed_seconds = Double((now - started).nanosecondsClamped) / 1e9
                $0.da_head_reached = snapshot.daHeadReached
                $0.waiting_to_apply = snapshot.waitingToApply
                if case .keepSyncing(let why) = decision { $0.blocked_by = why } else { $0.blocked_by = nil }
            }
            metrics.catchupTarget.set(Double(target))
            metrics.catchupBlocksPerSecond.set(rate.blocksPerSecond)
            switch decision {
            case .promote:
                logger.notice("catchup: caught up, promoting to block producer", metadata: [
                    "height": "\(snapshot.storeHeight)", "next": "\(snapshot.storeHeight + 1)",
                    "elapsed_s": "\(Double((now - started).nanosecondsClamped / 1_000_000) / 1000)"])
                return
            case .failClosed(let why):
                throw .failClosed(why)
            case .keepSyncing(let why):
                if now - lastLog >= progressLogInterval {
                    lastLog = now
                    logger.info("catchup: syncing", metadata: [
                        "height": "\(snapshot.storeHeight)", "target": "\(target)",
                        "blocks_per_s": "\(Int(rate.blocksPerSecond))",
                        "eta_s": "\(eta.map { String(Int($0)) } ?? "unknown")",
                        "da_head_reached": "\(snapshot.daHeadReached)", "waiting_for": "\(why)"])
                }
            }
            try? await Task.sleep(for: pollInterval)
        }
    }

    /// One consistent-enough look at everything the gate needs.
    private func sample(startedAt: ContinuousClock.Instant, now: ContinuousClock.Instant) -> CatchupSnapshot {
        let progress = sync.pipeline.progress
        let follower = sync.follower.status
        let mark = (try? signerMark?.load()) ?? nil
        return CatchupSnapshot(
            daHeadReached: follower.headReached,
            storeHeight: progress.storeHeight,
            p2pMaxHeight: p2p.maxPeerHeight,
            peersConfigured: peersConfigured,
            waitingToApply: progress.waiting,
            highestKnownHeader: max(progress.highestKnownHeader, follower.highestHeader),
            signerHighWaterMark: mark,
            elapsed: now - startedAt,
            sinceLastProgress: now - max(progress.lastProgress, startedAt))
    }

    // MARK: caughtUp → aggregating

    private func aggregate() async throws(NodeFailure) {
        guard let aggregator else { return }
        state.enter(.aggregating)
        do {
            try await aggregator.run()
        } catch {
            state.enter(.halted, reason: error.description)
            throw error
        }
    }
}

/// Blocks per second over a sliding window of recent samples.
struct RateMeter {
    private var samples: [(height: UInt64, at: ContinuousClock.Instant)] = []
    private let window: Duration = .seconds(10)

    init(startHeight: UInt64, at: ContinuousClock.Instant) {
        samples.append((startHeight, at))
    }

    mutating func record(height: UInt64, at: ContinuousClock.Instant) {
        samples.append((height, at))
        while let first = samples.first, at - first.at > window, samples.count > 2 {
            samples.removeFirst()
        }
    }

    var blocksPerSecond: Double {
        guard let first = samples.first, let last = samples.last, last.at > first.at else { return 0 }
        let seconds = Double((last.at - first.at).nanosecondsClamped) / 1e9
        return Double(last.height &- first.height) / seconds
    }

    func eta(from height: UInt64, to target: UInt64) -> Double? {
        guard target > height else { return 0 }
        let r = blocksPerSecond
        return r > 0 ? Double(target - height) / r : nil
    }
}
