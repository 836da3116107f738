import Primitives
import Production
import Config
import Logging
import P2PSync
import RemoteSigner

/// The failover driver (SPEC §6): runs the syncer, the gate, the producer and etcd's campaign,
/// and takes each phase change as a step of `FailoverMachine`, whose table lists every legal
/// one. Read top to bottom:
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
/// * A promotable node (`--evnode.node.promotable`, ev-node v1.2 rotation) follows until the
///   stored state names its key as the next proposer; then the same conditions as a catchup
///   (the signer's mark included) must hold, checked again after the syncer stopped, before it
///   produces. When the chain names another key it stops producing and follows again.
/// * An aggregator whose key the chain rotated away stops producing, says so, and follows the
///   chain as a full node.
/// * Any failure of a background part (syncer, DA follower, producer, submitter) ends the phase
///   with that failure: the node halts and says why; nothing is swallowed.
struct FailoverDriver: Sendable {
    let role: NodeRole
    /// The failover rules (`FailoverMachine`): every phase this driver enters is a step they allow.
    let progress: FailoverProgress
    let state: NodeState
    let sync: SyncRuntime
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

    init(role: NodeRole, state: NodeState, sync: SyncRuntime, p2p: P2PService, peersConfigured: Bool,
         signerMark: (any SignerMark)?, metrics: NodeMetrics, logger: Logger) {
        self.role = role
        self.progress = FailoverProgress(role: role.kind)
        self.state = state
        self.sync = sync
        self.p2p = p2p
        self.peersConfigured = peersConfigured
        self.signerMark = signerMark
        self.metrics = metrics
        self.logger = logger
    }

    /// Takes `event` by the failover rules and enters the phase they answer, with `reason`. A
    /// step they refuse changes nothing: after a halt that is by design (a part still winding
    /// down); any other refusal is a fault of this driver, logged.
    private func move(_ event: FailoverMachine.Event, reason: String? = nil) {
        do throws(FailoverMachine.Refused) {
            state.enter(try progress.step(event), reason: reason)
        } catch {
            if case .halted = error.from { return }
            logger.error("failover step refused", metadata: ["error": "\(error)"])
        }
    }

    /// The phases, beside the gossip relay for the node's life (gossip that arrives while
    /// producing is judged by the second-signer watch; while syncing it is applied).
    func run() async throws(NodeFailure) {
        _ = try await FirstChildWins<Void>([
            .init(.failover) { try await runUntilHalted() },
            .init(.gossipRelay) { await sync.relayGossip() },
        ], logger: logger).run()
    }

    private func runUntilHalted() async throws(NodeFailure) {
        do throws(NodeFailure) {
            try await runPhases()
        } catch {
            guard case .forcedInclusion = error else { throw error }
            // ev-node exits; evnode stays up, halted, so that monitoring can still scrape why
            // (/status, readiness, metrics) until the operator stops it (README "Forced
            // inclusion and based sequencing"). Then it exits with the failure.
            move(.halt(reason: error.description), reason: error.description)
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(3600))
            }
            throw error
        }
    }

    private func runPhases() async throws(NodeFailure) {
        state.enter(.starting)
        switch role {
        case .full:
            move(.follow(.chain))
            try await sync.run()
        case .aggregator(let aggregator):
            if try await aggregate(aggregator) { try await followAfterRotation() }
        case .aggregatorWithCatchup(let aggregator, let timeout):
            // Stopped (SIGTERM/SIGINT) while syncing: never go on to produce.
            guard try await catchUp(timeout: timeout) else { return }
            if try await aggregate(aggregator) { try await followAfterRotation() }
        case .ha(let ha, let aggregator):
            try await runHA(ha, aggregator)
        case .promotable(let aggregator, let timeout, let namesThisNode):
            try await runPromotable(aggregator, timeout: timeout, namesThisNode: namesThisNode)
        case .based(let based):
            move(.produce, reason: "based sequencer: blocks derived from the forced-inclusion namespace")
            do throws(ProductionError) {
                try await based.run()
            } catch {
                let failure = NodeFailure.production(error)
                move(.halt(reason: failure.description), reason: failure.description)
                throw failure
            }
        }
    }

    // MARK: promotable ⇄ following

    /// Follows until the chain names this node's key and the promotion conditions hold, produces
    /// until the chain names another key, and follows again; ends only when the node stops.
    private func runPromotable(_ aggregator: AggregatorRuntime, timeout: Duration,
                               namesThisNode: @escaping @Sendable () -> Bool) async throws(NodeFailure) {
        while !Task.isCancelled {
            guard try await catchUp(timeout: timeout, mayLead: namesThisNode) else { return }
            guard try await aggregate(aggregator) else { return }
            logger.notice("promotable: the chain names another proposer; following again until it names this node's key")
        }
    }

    /// A plain aggregator whose key the chain rotated away: a full node from now on.
    private func followAfterRotation() async throws(NodeFailure) {
        move(.follow(.afterRotation), reason: "the chain rotated production to another key: following as a full node")
        try await sync.run()
    }

    // MARK: syncing → caughtUp

    /// Runs the sync phase until the gate promotes (true) or the node is stopped (false). Throws
    /// when the gate fails closed or the syncer fails: the node halts and says why.
    ///
    /// The gate decides while the syncer runs; stopping the syncer takes a moment, in which
    /// gossip, announcements and DA keep delivering and held blocks are dropped. So once the
    /// syncer has fully stopped, every condition is evaluated again over all that arrived; if
    /// one no longer holds, the node syncs again.
    private func catchUp(timeout: Duration, mayLead: (@Sendable () -> Bool)? = nil) async throws(NodeFailure) -> Bool {
        if mayLead != nil {
            move(.follow(.awaitingKey), reason: "promotable: following until the chain names this node's key")
            logger.notice("promotable: following; producing once the chain names this node's key and every catchup condition holds",
                          metadata: ["timeout": "\(DurationParser.format(timeout))", "peers_configured": "\(peersConfigured)"])
        } else {
            move(.follow(.catchingUp), reason: "catching up before producing")
            logger.notice("catchup: syncing from DA and peers before producing", metadata: [
                "timeout": "\(DurationParser.format(timeout))", "peers_configured": "\(peersConfigured)"])
        }
        var check = promotionCheck(timeout: timeout, startedAt: .now)
        do throws(NodeFailure) {
            // This node signs nothing while syncing, so the mark is read at the start; and again
            // for the check after the syncer stopped, where a remote signer shared with another
            // node (or raised by hand) may have moved meanwhile.
            var mark = try await check.unrecoverableMark()
            while true {
                guard let used = try await syncUntilGateOpens(check, mark: mark, mayLead: mayLead), !Task.isCancelled else {
                    return false
                }
                check = used
                await afterSyncerStopped?()
                if let mayLead, !mayLead() {
                    logger.notice("promotable: the chain no longer names this node's key now that the syncer has stopped; following again")
                    continue
                }
                mark = try await check.unrecoverableMark()
                let snapshot = check.sample(mark: mark, follower: sync.follower.status, now: .now)
                switch check.gate.evaluate(snapshot) {
                case .promote:
                    // The submitter must resume after what DA already holds, including the last
                    // blocks applied after the follower last looked.
                    try await sync.settle()
                    state.updateCatchup { $0.active = false; $0.blocked_by = nil }
                    move(.caughtUp, reason: "every catchup condition holds at height \(snapshot.storeHeight), checked again after the syncer stopped")
                    return true
                case .failClosed(let why):
                    throw NodeFailure.failClosed(why)
                case .keepSyncing(let why):
                    logger.warning("catchup: a condition no longer holds now that the syncer has stopped; syncing again",
                                   metadata: ["height": "\(snapshot.storeHeight)", "reason": "\(why)"])
                }
            }
        } catch {
            move(.halt(reason: error.description), reason: error.description)
            throw error
        }
    }

    /// The promotion conditions over this node's parts, counted from `startedAt`.
    func promotionCheck(timeout: Duration, startedAt: ContinuousClock.Instant) -> PromotionCheck {
        PromotionCheck(gate: CatchupGate(timeout: timeout, remoteSigner: signerMark is RemoteSignerMark), sync: sync, p2p: p2p, state: state,
                       peersConfigured: peersConfigured, signerMark: signerMark, startedAt: startedAt)
    }

    /// One run of the syncer beside the gate's sampling: the check that promoted once the gate
    /// promoted and the syncer has fully stopped (its errors thrown, not swallowed), nil when the
    /// node stops.
    private func syncUntilGateOpens(_ check: PromotionCheck, mark: UInt64?,
                                    mayLead: (@Sendable () -> Bool)?) async throws(NodeFailure) -> PromotionCheck? {
        // The syncer ends by itself only when the node stops; a failure it reports while
        // stopping after the gate opened is thrown, not swallowed.
        let promoted = try await FirstChildWins<PromotionCheck?>([
            .init(.syncer) {
                try await sync.run()
                return nil
            },
            .init(.catchupGate) {
                let promoted = try await waitForPromotion(check, mark: mark, mayLead: mayLead)
                if promoted != nil { await beforeSyncerStops?() }
                return promoted
            },
        ], logger: logger).run()
        return promoted ?? nil
    }

    /// Samples the node every `pollInterval` and asks the gate; logs progress every
    /// `progressLogInterval`. Returns the check on promotion, nil when cancelled; throws
    /// `failClosed`. With `mayLead`, the gate is asked only while it holds, and its timeout
    /// counts from the moment it began to hold (a promotable node may follow for days first).
    private func waitForPromotion(_ initial: PromotionCheck, mark: UInt64?,
                                  mayLead: (@Sendable () -> Bool)?) async throws(NodeFailure) -> PromotionCheck? {
        let clock = ContinuousClock()
        var check = initial
        var started = check.startedAt
        var lastLog = clock.now
        var rate = RateMeter(startHeight: sync.pipeline.progress.storeHeight, at: lastLog)
        var waitingForKey = false
        state.updateCatchup { $0.active = true }
        while !Task.isCancelled {
            let now = clock.now
            if let mayLead {
                if !mayLead() {
                    if !waitingForKey {
                        waitingForKey = true
                        state.updateCatchup { $0.blocked_by = "the chain names another proposer" }
                    }
                    try? await Task.sleep(for: pollInterval)
                    continue
                }
                if waitingForKey {
                    waitingForKey = false
                    started = now
                    check = promotionCheck(timeout: check.gate.timeout, startedAt: now)
                    logger.notice("promotable: the chain names this node's key as the next proposer; checking every catchup condition before producing",
                                  metadata: ["next": "\(sync.pipeline.progress.storeHeight + 1)"])
                }
            }
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
                return check
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
        return nil
    }

    // MARK: caughtUp → aggregating

    /// Produces until the node stops (false) or the chain names another key as the next
    /// proposer (true: production handed over, nothing was signed at that height).
    private func aggregate(_ aggregator: AggregatorRuntime) async throws(NodeFailure) -> Bool {
        guard !Task.isCancelled else { return false }
        move(.produce)
        do {
            try await aggregator.run()
            return false
        } catch {
            if case .production(let production) = error, case .notProposer(let height, let expected, let own) = production {
                logger.notice("proposer rotated: the chain expects another key to sign the next block; this node stops producing and follows the chain",
                              metadata: ["height": "\(height)", "expected": "\(Hex.encode(expected))",
                                         "this_key": "\(Hex.encode(own))"])
                return true
            }
            move(.halt(reason: error.description), reason: error.description)
            throw error
        }
    }
}

// MARK: HA: following ⇄ leading

extension FailoverDriver {
    /// The lease keeper and the follower of etcd's block key run for the node's life; the role
    /// loop alternates between following and leading until the node stops or fails.
    private func runHA(_ ha: HARuntime, _ aggregator: AggregatorRuntime) async throws(NodeFailure) {
        // The first leader of a group passes the catchup's promotion check; its peers had
        // since the node started to answer.
        var bootstrap = promotionCheck(timeout: haBootstrapTimeout ?? ha.bootstrapTimeout, startedAt: .now)
        let store = ha.store
        bootstrap.holdsSignedBlock = { HARuntime.holdsUnpublishedBlock(at: $0, store: store) }
        let check = bootstrap
        do throws(NodeFailure) {
            // keepLeases and replicate end only when cancelled; the role loop ends the node.
            _ = try await FirstChildWins<Void>([
                .init(.haLeases) { await ha.keepLeases() },
                .init(.haReplication) { await ha.replicate(isFollowing: { sync.isActive }) },
                .init(.haRoles) { try await haRoles(ha, aggregator, bootstrap: check) },
            ], logger: logger).run()
        } catch {
            move(.halt(reason: error.description), reason: error.description)
            throw error
        }
    }

    private func haRoles(_ ha: HARuntime, _ aggregator: AggregatorRuntime, bootstrap: PromotionCheck) async throws(NodeFailure) {
        var pause: Duration = .zero
        while !Task.isCancelled {
            if pause > .zero {
                // This node just could not lead: give the others the first chance.
                try? await Task.sleep(for: pause)
            }
            move(.follow(.haFollower), reason: "HA follower: syncing and campaigning for leadership")
            guard let term = try await followUntilElected(ha, bootstrap: bootstrap) else { return }
            move(.produce, reason: "HA leader (term \(term.revision))")
            let why: StepDown?
            do throws(NodeFailure) {
                why = try await lead(ha, term, aggregator)
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
                let (snapshot, decision) = await bootstrap.decide()
                if decision != .promote {
                    await ha.resign(term)
                    ha.noteStepDown("a catchup condition no longer holds now that the syncer has stopped: \(decision)")
                    logger.warning("HA: a catchup condition no longer holds now that the syncer has stopped; following again",
                                   metadata: ["height": "\(snapshot?.storeHeight ?? ha.store.height)", "reason": "\(decision)"])
                    move(.follow(.haFollower), reason: "HA follower: syncing and campaigning for leadership")
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
        // The campaign ends the phase; the syncer ends only when cancelled.
        var race = FirstChildWins<LeaderTerm?>([
            .init(.syncer) {
                try await sync.run()
                // The syncer ends by itself only when cancelled; anything else is a fault.
                if !Task.isCancelled { throw NodeFailure.failed(.syncer, underlying: SyncPhaseEndedWhileFollowing()) }
                return nil
            },
            .init(.haCampaign) {
                while let term = await ha.campaign() {
                    switch try await ha.takeOver(term, bootstrap: { await bootstrap.decide().1 }) {
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
            },
        ], logger: logger)
        // A term won while the others were being cancelled is handed back at once.
        race.lateValue = { late in
            if let term = late { await ha.resign(term) }
        }
        let elected = try await race.run()
        return elected ?? nil
    }

    /// Produces (every block fenced through etcd) and submits until the term ends; returns why
    /// it ended, nil when the node stops. A fence refusal is a step-down, not a failure.
    private func lead(_ ha: HARuntime, _ term: LeaderTerm, _ aggregator: AggregatorRuntime) async throws(NodeFailure) -> StepDown? {
        // A failure the aggregator reports while stopping (e.g. the store) is not dropped.
        let why = try await FirstChildWins<StepDown?>([
            .init(.haLeadership) {
                await ha.waitUntilLost(term).map { StepDown(reason: "leadership lost: \($0)", cannotLead: false) }
            },
            .init(.aggregator) {
                do throws(NodeFailure) {
                    try await aggregator.run()
                    return nil
                } catch {
                    if case .production(let production) = error, let stepDown = Self.stepDown(after: production) {
                        return stepDown
                    }
                    throw error
                }
            },
        ], logger: logger).run()
        return why ?? nil
    }

    /// A production error that ends an HA term without halting the node, and whether this node
    /// should let the others try first; nil for one that halts it.
    private static func stepDown(after production: ProductionError) -> StepDown? {
        switch production {
        case .refused:
            return StepDown(reason: production.description, cannotLead: false)
        case .fence:
            return StepDown(reason: production.description, cannotLead: true)
        case .build(_, .signing):
            // A shared remote signer refused (another member signed that height: its block is
            // etcd's or kept beside the signer's mark, and whoever leads next goes on from it)
            // or did not answer (it may have signed: the next leader reads its mark first).
            // Nothing was signed here at that height; another member may lead, and this node,
            // as a follower, takes that block.
            return StepDown(reason: production.description, cannotLead: true)
        case .notProposer:
            // The chain rotated production to another key (its blocks drained to DA by the
            // aggregator): follow; the campaign waits until the chain names this key again.
            return StepDown(reason: production.description, cannotLead: false)
        default:
            return nil
        }
    }
}

/// The sync phase of an HA follower ended by itself: it ends only when cancelled.
struct SyncPhaseEndedWhileFollowing: Error, CustomStringConvertible {
    var description: String { "the sync phase ended while following" }
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
        // A rollback during catch-up lowers the height: the samples before it measure a chain
        // that no longer exists, so the window starts again here.
        if let last = samples.last, height < last.height { samples.removeAll() }
        samples.append((height, at))
        while let first = samples.first, at - first.at > window, samples.count > 2 {
            samples.removeFirst()
        }
    }

    var blocksPerSecond: Double {
        guard let first = samples.first, let last = samples.last, last.at > first.at else { return 0 }
        let seconds = Double((last.at - first.at).nanosecondsClamped) / 1e9
        return Double(last.height - first.height) / seconds
    }

    func eta(from height: UInt64, to target: UInt64) -> Double? {
        guard target > height else { return 0 }
        let r = blocksPerSecond
        return r > 0 ? Double(target - height) / r : nil
    }
}
