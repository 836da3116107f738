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
            // Stopped (SIGTERM/SIGINT) while syncing: never go on to produce.
            guard try await catchUp(timeout: timeout) else { return }
            try await aggregate()
        }
    }

    // MARK: syncing → caughtUp

    /// Runs the sync phase until the gate promotes (true) or the node is stopped (false). Throws
    /// when the gate fails closed or the syncer fails: the node halts and says why.
    private func catchUp(timeout: Duration) async throws(NodeFailure) -> Bool {
        state.enter(.syncing, reason: "catching up before producing")
        logger.notice("catchup: syncing from DA and peers before producing", metadata: [
            "timeout": "\(DurationParser.format(timeout))", "peers_configured": "\(peersConfigured)"])
        let gate = CatchupGate(timeout: timeout)
        let promoted: Bool
        do {
            promoted = try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    try await sync.run()
                    return false   // the syncer ends by itself only when the node stops
                }
                group.addTask { try await waitForPromotion(gate) }
                let first = try await group.next() ?? false
                group.cancelAll()
                // Wait for the other task to end: a failure the syncer reports while stopping
                // is thrown here, not swallowed.
                while try await group.next() != nil {}
                guard first else { return false }
                // The submitter must resume after what DA already holds, including the last
                // blocks applied after the follower last looked.
                try await sync.settle()
                return true
            }
        } catch let failure as NodeFailure {
            state.enter(.halted, reason: failure.description)
            throw failure
        } catch {
            let failure = NodeFailure.daFollower("catchup ended unexpectedly: \(error)")
            state.enter(.halted, reason: failure.description)
            throw failure
        }
        guard promoted, !Task.isCancelled else { return false }
        let height = sync.pipeline.progress.storeHeight
        state.updateCatchup { $0.active = false; $0.blocked_by = nil }
        state.enter(.caughtUp, reason: "all four catchup conditions hold at height \(height)")
        return true
    }

    /// Samples the node every `pollInterval` and asks the gate; logs progress every
    /// `progressLogInterval`. Returns true on promotion, false when cancelled; throws `failClosed`.
    private func waitForPromotion(_ gate: CatchupGate) async throws(NodeFailure) -> Bool {
        let clock = ContinuousClock()
        let started = clock.now
        var lastLog = started
        var rate = RateMeter(startHeight: sync.pipeline.progress.storeHeight, at: started)
        state.updateCatchup { $0.active = true }
        // Nothing signs while syncing, so the mark is read once. Unreadable means unknown: which
        // heights this key signed cannot be told, so the fence cannot be cleared.
        let mark: UInt64?
        do throws(ConfigError) {
            mark = try signerMark?.load()
        } catch {
            throw .failClosed("the signer's high-water mark cannot be read (\(error)); refusing to produce without knowing which heights were signed (`evnode signer reset --height N` rewrites it)")
        }
        while !Task.isCancelled {
            let now = clock.now
            let follower = sync.follower.status
            let snapshot = sample(mark: mark, follower: follower, startedAt: started, now: now)
            rate.record(height: snapshot.storeHeight, at: now)
            // A divergence recovery in progress rewrites the store: never promote in the middle of it.
            let decision = state.phase == .recovering
                ? .keepSyncing("recovering from a divergence") : gate.evaluate(snapshot)
            let target = max(snapshot.p2pMaxHeight ?? 0, snapshot.highestKnownHeader, snapshot.storeHeight)
            // Before the DA head is reached the chain's height is not known (DA heights are
            // not block heights), unless a peer announced one: no ETA then.
            let targetKnown = snapshot.daHeadReached || (snapshot.p2pMaxHeight ?? 0) > snapshot.storeHeight
            let eta = targetKnown ? rate.eta(from: snapshot.storeHeight, to: target) : nil
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
                return true
            case .failClosed(let why):
                throw .failClosed(why)
            case .keepSyncing(let why):
                if now - lastLog >= progressLogInterval {
                    lastLog = now
                    logger.info("catchup: syncing", metadata: [
                        "height": "\(snapshot.storeHeight)", "target": "\(target)",
                        "blocks_per_s": "\(Int(rate.blocksPerSecond))",
                        "eta_s": "\(eta.map { String(Int($0)) } ?? "unknown")",
                        "da_height": "\(max(follower.nextDAHeight, 1) - 1)", "da_head": "\(follower.daHead)",
                        "da_head_reached": "\(snapshot.daHeadReached)", "waiting_for": "\(why)"])
                }
            }
            try? await Task.sleep(for: pollInterval)
        }
        return false
    }

    /// One consistent-enough look at everything the gate needs.
    private func sample(mark: UInt64?, follower: DAFollowerStatus, startedAt: ContinuousClock.Instant,
                        now: ContinuousClock.Instant) -> CatchupSnapshot {
        let progress = sync.pipeline.progress
        return CatchupSnapshot(
            daHeadReached: follower.headReached,
            storeHeight: progress.storeHeight,
            p2pMaxHeight: p2p.maxPeerHeight,
            peersConfigured: peersConfigured,
            waitingToApply: progress.waiting,
            highestKnownHeader: max(progress.highestKnownHeader, follower.highestHeader),
            signerHighWaterMark: mark,
            elapsed: now - startedAt,
            sinceLastProgress: now - max(progress.lastProgress, startedAt),
            daError: follower.lastError)
    }

    // MARK: caughtUp → aggregating

    private func aggregate() async throws(NodeFailure) {
        guard let aggregator, !Task.isCancelled else { return }
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
