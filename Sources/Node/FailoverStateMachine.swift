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
///     HA aggregator (etcd):  syncing (follower) ──elected, store at etcd's head──▶ aggregating (leader)
///                                  ▲                                                   │
///                                  └──────── lease lost / fence refused a block ───────┘
///
/// * A full node goes to `syncing` and stays there.
/// * An aggregator without catchup goes straight to `aggregating`.
/// * An aggregator with `--catchup-timeout` syncs first and is promoted only when the
///   `CatchupGate` finds every condition true: DA head reached, P2P caught up to every height a
///   peer proved, nothing waiting to be applied, the equivocation fence clear, and no divergence
///   recovery pending — then once more after the syncer has stopped. If waiting cannot help, it
///   fails closed and the process exits non-zero, never producing.
/// * An HA aggregator follows (syncing, plus etcd's replicated block) while it campaigns; once
///   elected and its store holds etcd's latest block it leads, each block fenced through etcd.
///   Losing the lease, or a fence refusal, sends it back to following: it never halts for that.
/// * Any failure of a background part (syncer, DA follower, producer, submitter) ends the phase
///   with that failure: the node halts and says why; nothing is swallowed.
struct FailoverStateMachine: Sendable {
    enum Mode: Sendable {
        case fullNode
        case aggregator
        case aggregatorWithCatchup(timeout: Duration)
        case haAggregator(HARuntime)
    }

    let mode: Mode
    let state: NodeState
    let sync: SyncRuntime
    let aggregator: AggregatorRuntime?
    let p2p: P2PService
    let peersConfigured: Bool
    let signerMark: (any SignerMark)?
    let metrics: NodeMetrics
    let logger: Logger
    /// How often the catchup conditions are sampled, and how often progress is logged.
    var pollInterval: Duration = .milliseconds(100)
    var progressLogInterval: Duration = .seconds(5)
    /// Runs once the syncer has fully stopped after the gate opened, before the re-check (tests
    /// deliver what arrives in that moment here). Nil in a node.
    var afterSyncerStopped: (@Sendable () async -> Void)?
    /// Runs once the gate opened while the syncer still runs, before it is told to stop (tests
    /// deliver what the syncer takes and holds in that moment here). Nil in a node.
    var beforeSyncerStops: (@Sendable () async -> Void)?
    /// The HA bootstrap's promotion-check timeout (`HARuntime.bootstrapTimeout` when nil).
    var haBootstrapTimeout: Duration?

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
        case .haAggregator(let ha):
            try await runHA(ha)
        }
    }

    // MARK: syncing → caughtUp

    /// Runs the sync phase until the gate promotes (true) or the node is stopped (false). Throws
    /// when the gate fails closed or the syncer fails: the node halts and says why.
    ///
    /// The gate decides while the syncer runs; stopping the syncer takes a moment, in which
    /// gossip, announcements and DA keep delivering and held blocks are dropped. So once the
    /// syncer has fully stopped, every condition is evaluated again over all that arrived; if
    /// one no longer holds, the node syncs again.
    private func catchUp(timeout: Duration) async throws(NodeFailure) -> Bool {
        state.enter(.syncing, reason: "catching up before producing")
        logger.notice("catchup: syncing from DA and peers before producing", metadata: [
            "timeout": "\(DurationParser.format(timeout))", "peers_configured": "\(peersConfigured)"])
        let check = promotionCheck(timeout: timeout, startedAt: .now)
        do throws(NodeFailure) {
            // This node signs nothing while syncing, so the mark is read at the start; and again
            // for the check after the syncer stopped, where a remote signer shared with another
            // node (or raised by hand) may have moved meanwhile.
            var mark = try await check.unrecoverableMark()
            while true {
                guard try await syncUntilGateOpens(check, mark: mark), !Task.isCancelled else {
                    return false
                }
                await afterSyncerStopped?()
                mark = try await check.unrecoverableMark()
                let snapshot = check.sample(mark: mark, follower: sync.follower.status, now: .now)
                switch check.gate.evaluate(snapshot) {
                case .promote:
                    // The submitter must resume after what DA already holds, including the last
                    // blocks applied after the follower last looked.
                    try await sync.settle()
                    state.updateCatchup { $0.active = false; $0.blocked_by = nil }
                    state.enter(.caughtUp, reason: "every catchup condition holds at height \(snapshot.storeHeight), checked again after the syncer stopped")
                    return true
                case .failClosed(let why):
                    throw NodeFailure.failClosed(why)
                case .keepSyncing(let why):
                    logger.warning("catchup: a condition no longer holds now that the syncer has stopped; syncing again",
                                   metadata: ["height": "\(snapshot.storeHeight)", "reason": "\(why)"])
                }
            }
        } catch {
            state.enter(.halted, reason: error.description)
            throw error
        }
    }

    /// The promotion conditions over this node's parts, counted from `startedAt`.
    func promotionCheck(timeout: Duration, startedAt: ContinuousClock.Instant) -> PromotionCheck {
        PromotionCheck(gate: CatchupGate(timeout: timeout), sync: sync, p2p: p2p, state: state,
                       peersConfigured: peersConfigured, signerMark: signerMark, startedAt: startedAt)
    }

    /// One run of the syncer beside the gate's sampling: true once the gate promoted and the
    /// syncer has fully stopped (its errors thrown, not swallowed), false when the node stops.
    private func syncUntilGateOpens(_ check: PromotionCheck, mark: UInt64?) async throws(NodeFailure) -> Bool {
        do {
            return try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    try await sync.run()
                    return false   // the syncer ends by itself only when the node stops
                }
                group.addTask {
                    let promoted = try await waitForPromotion(check, mark: mark)
                    if promoted { await beforeSyncerStops?() }
                    return promoted
                }
                let first = try await group.next() ?? false
                group.cancelAll()
                // Wait for the other task to end: a failure the syncer reports while stopping
                // is thrown here, not swallowed.
                while try await group.next() != nil {}
                return first
            }
        } catch let failure as NodeFailure {
            throw failure
        } catch {
            throw NodeFailure.daFollower("catchup ended unexpectedly: \(error)")
        }
    }

    /// Samples the node every `pollInterval` and asks the gate; logs progress every
    /// `progressLogInterval`. Returns true on promotion, false when cancelled; throws `failClosed`.
    private func waitForPromotion(_ check: PromotionCheck, mark: UInt64?) async throws(NodeFailure) -> Bool {
        let clock = ContinuousClock()
        let started = check.startedAt
        var lastLog = clock.now
        var rate = RateMeter(startHeight: sync.pipeline.progress.storeHeight, at: lastLog)
        state.updateCatchup { $0.active = true }
        while !Task.isCancelled {
            let now = clock.now
            let follower = sync.follower.status
            let snapshot = check.sample(mark: mark, follower: follower, now: now)
            rate.record(height: snapshot.storeHeight, at: now)
            let decision = check.gate.evaluate(snapshot)
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

    // MARK: caughtUp → aggregating

    private func aggregate() async throws(NodeFailure) {
        guard let aggregator, !Task.isCancelled else { return }
        // Gossip that arrives while producing is judged by the second-signer watch.
        sync.relayGossip()
        state.enter(.aggregating)
        do {
            try await aggregator.run()
        } catch {
            state.enter(.halted, reason: error.description)
            throw error
        }
    }
}

// MARK: HA: following ⇄ leading

extension FailoverStateMachine {
    /// The lease keeper and the follower of etcd's block key run for the node's life; the role
    /// loop alternates between following and leading until the node stops or fails.
    private func runHA(_ ha: HARuntime) async throws(NodeFailure) {
        // The first leader of a group passes the catchup's promotion check; its peers had
        // since the node started to answer.
        var bootstrap = promotionCheck(timeout: haBootstrapTimeout ?? ha.bootstrapTimeout, startedAt: .now)
        let store = ha.store
        bootstrap.holdsSignedBlock = { HARuntime.holdsUnpublishedBlock(at: $0, store: store) }
        let check = bootstrap
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await ha.keepLeases() }
                group.addTask { await ha.replicate(isFollowing: { sync.isActive }) }
                group.addTask { try await haRoles(ha, bootstrap: check) }
                defer { group.cancelAll() }
                // keepLeases and replicate end only when cancelled; the role loop ends the node.
                try await group.next()
            }
        } catch let failure as NodeFailure {
            state.enter(.halted, reason: failure.description)
            throw failure
        } catch {
            if Task.isCancelled { return }
            throw .ha("ended unexpectedly: \(error)")
        }
    }

    private func haRoles(_ ha: HARuntime, bootstrap: PromotionCheck) async throws(NodeFailure) {
        var pause: Duration = .zero
        while !Task.isCancelled {
            if pause > .zero {
                // This node just could not lead: give the others the first chance.
                try? await Task.sleep(for: pause)
            }
            state.enter(.syncing, reason: "HA follower: syncing and campaigning for leadership")
            guard let term = try await followUntilElected(ha, bootstrap: bootstrap) else { return }
            state.enter(.aggregating, reason: "HA leader (term \(term.revision))")
            let why: StepDown?
            do throws(NodeFailure) {
                why = try await lead(ha, term)
            } catch {
                // Halting: hand the leadership over now rather than after the TTL.
                await ha.resign(term)
                throw error
            }
            await ha.resign(term)
            guard let why, !Task.isCancelled else { return }
            ha.noteStepDown(why.reason)
            logger.warning("HA: stepped down, following again", metadata: ["reason": "\(why)"])
            pause = why.cannotLead ? term.ttl * 2 : .zero
        }
    }

    /// Syncs (DA, peers, and etcd's replicated block through `replicate`) and campaigns; returns
    /// the term once this node is elected and its store holds etcd's latest block; nil when the
    /// node stops.
    ///
    /// When etcd holds no block yet, the store becomes the chain's head: `bootstrap` (the
    /// catchup's promotion check) must promote it while the syncer runs and, as in a catchup,
    /// once more after the syncer stopped — what arrived meanwhile (gossip, held blocks, a
    /// divergence) is counted; if a condition no longer holds the node resigns and follows again.
    /// A fail-closed outcome never halts an HA node: it steps down and keeps following. It
    /// never leads on that store, and another member of the group (same key, its own mark and
    /// peers) may be able to; HA rides out what it cannot decide, as it does when etcd is down.
    private func followUntilElected(_ ha: HARuntime, bootstrap: PromotionCheck) async throws(NodeFailure) -> LeaderTerm? {
        while true {
            let term = try await electedWhileSyncing(ha, bootstrap: bootstrap)
            guard let term, !Task.isCancelled else {
                if let term { await ha.resign(term) }
                return nil
            }
            if term.replicatedHeight == nil {
                // Bootstrapping: nothing is in etcd yet, this store is about to be the head.
                await afterSyncerStopped?()
                let (snapshot, decision) = bootstrap.decide()
                if decision != .promote {
                    await ha.resign(term)
                    ha.noteStepDown("a catchup condition no longer holds now that the syncer has stopped: \(decision)")
                    logger.warning("HA: a catchup condition no longer holds now that the syncer has stopped; following again",
                                   metadata: ["height": "\(snapshot?.storeHeight ?? ha.store.height)", "reason": "\(decision)"])
                    state.enter(.syncing, reason: "HA follower: syncing and campaigning for leadership")
                    continue
                }
            }
            // The submitter must resume after what DA already holds.
            do throws(NodeFailure) {
                try await sync.settle()
            } catch {
                await ha.resign(term)
                throw error
            }
            ha.markLeading(term)
            return term
        }
    }

    /// One round of following: the syncer runs beside the campaign until a term is won and
    /// taken over (returned, the syncer stopped) or the node stops (nil).
    private func electedWhileSyncing(_ ha: HARuntime, bootstrap: PromotionCheck) async throws(NodeFailure) -> LeaderTerm? {
        do {
            return try await withThrowingTaskGroup(of: LeaderTerm?.self) { group in
                group.addTask {
                    try await sync.run()
                    // The syncer ends by itself only when cancelled; anything else is a fault.
                    if !Task.isCancelled { throw NodeFailure.ha("the sync phase ended while following") }
                    return nil
                }
                group.addTask {
                    while let term = await ha.campaign() {
                        switch try await ha.takeOver(term, bootstrap: { bootstrap.decide().1 }) {
                        case .ready(let term):
                            return term
                        case .stepDown(let term, let why):
                            ha.noteStepDown(why)
                            logger.warning("HA: elected but cannot lead, stepping down", metadata: ["reason": "\(why)"])
                            await ha.resign(term)
                            try? await Task.sleep(for: term.ttl * 2)
                        }
                    }
                    return nil
                }
                // The campaign ends the phase; the syncer ends only when cancelled.
                var elected: LeaderTerm?
                while let next = try await group.next() {
                    elected = next
                    break
                }
                group.cancelAll()
                // A term won while the others were being cancelled is handed back at once.
                while let late = try await group.next() {
                    if let term = late, term !== elected { await ha.resign(term) }
                }
                return elected
            }
        } catch let failure as NodeFailure {
            throw failure
        } catch {
            if Task.isCancelled { return nil }
            throw .ha("the follower phase ended unexpectedly: \(error)")
        }
    }

    /// Produces (every block fenced through etcd) and submits until the term ends; returns why
    /// it ended, nil when the node stops. A fence refusal is a step-down, not a failure.
    private func lead(_ ha: HARuntime, _ term: LeaderTerm) async throws(NodeFailure) -> StepDown? {
        guard let aggregator else { return nil }
        do {
            return try await withThrowingTaskGroup(of: StepDown?.self) { group in
                group.addTask {
                    await ha.waitUntilLost(term).map { StepDown(reason: "leadership lost: \($0)", cannotLead: false) }
                }
                group.addTask {
                    do throws(NodeFailure) {
                        try await aggregator.run()
                        return nil
                    } catch {
                        if case .production(let production) = error {
                            switch production {
                            case .refused:
                                return StepDown(reason: production.description, cannotLead: false)
                            case .fence:
                                return StepDown(reason: production.description, cannotLead: true)
                            default: break
                            }
                        }
                        throw error
                    }
                }
                let first = try await group.next() ?? nil
                group.cancelAll()
                // A failure the aggregator reports while stopping (e.g. the store) is not dropped.
                while try await group.next() != nil {}
                return first
            }
        } catch let failure as NodeFailure {
            throw failure
        } catch {
            if Task.isCancelled { return nil }
            throw .ha("the leader phase ended unexpectedly: \(error)")
        }
    }
}

/// Why an HA leader stepped down, and whether it should let others try first.
struct StepDown: Sendable, CustomStringConvertible {
    var reason: String
    var cannotLead: Bool
    var description: String { reason }
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
