import Primitives
import Etcd
import Chain
import Store
import Execution
import Sync
import Production
import Config
import Logging
import NIOPosix
import P2PSync
import Synchronization

/// What `/status` shows of the HA group.
package struct HAStatus: Sendable, Codable, Equatable {
    /// `follower`, `candidate` (electing), `taking-over` (elected, bringing the store to etcd's
    /// latest block; no production yet) or `leader`.
    package var role: String = "candidate"
    package var node_id: String
    /// The node that holds the leader key, as last seen; nil when none does.
    package var leader: String?
    /// This node's lease while it leads.
    package var lease_id: String?
    package var lease_ttl_seconds: Double
    /// The leader's heartbeat interval (0: no heartbeats; a dead leader is replaced when its
    /// lease expires) and how long a follower waits without one before it takes over.
    package var heartbeat_interval_seconds: Double = 0
    package var heartbeat_timeout_seconds: Double = 0
    /// The leader key's mod revision while this node leads (one per term).
    package var term: Int64?
    /// The height of the latest block committed to etcd, as last seen.
    package var last_replicated_height: UInt64 = 0
    /// The last etcd failure, nil once etcd answers again.
    package var etcd_error: String?
    /// Why this node last gave up a term it won (could not lead, lost the lease, a catchup
    /// condition failed closed for the group's first block).
    package var last_step_down: String?
}

/// How a leadership attempt ended without producing.
enum TakeoverOutcome: Sendable {
    case ready(LeaderTerm)
    /// This node must not lead now (why); another node should.
    case stepDown(LeaderTerm, String)
}

/// The moving parts of an HA aggregator around the failover state machine: keeping the lease
/// of the current term alive, following etcd's replicated block, campaigning, taking over (the
/// store must reach etcd's latest block first), and the fence each produced block passes.
final class HARuntime: Sendable {
    let group: HAGroup
    let store: BlockStore
    let pipeline: SyncPipeline
    let applier: BlockApplier
    let blockCheck: SignedBlockValidator
    /// This node's `signer.state`, or the remote signer the group shares (issue 29): then the
    /// mark, and the block kept beside it, may be another member's.
    let mark: any SignerMark
    let p2p: P2PService
    let logger: Logger
    /// The group's signing key's address; nil when not known here. While the chain's state
    /// names another key as the next proposer (ev-node v1.2 rotation), this node does not
    /// campaign: as leader it could not sign, and would only win, step down and win again.
    let proposerKey: [UInt8]?
    /// The most a new leader waits for its store to reach etcd's latest block before it lets
    /// another node try; also how long the first leader of a group waits for its configured
    /// peers (the promotion check's timeout, `bootstrapTimeout`).
    let takeoverLimit: Duration

    /// How many blocks below etcd's latest block a node may be and still campaign (the take-over
    /// brings it the rest of the way).
    static let campaignLag: UInt64 = 2

    private let termBox = Mutex<LeaderTerm?>(nil)
    private struct Lost: Sendable { var lease: Int64; var reason: String }
    private let lost = Mutex<Lost?>(nil)
    private let statusBox: Mutex<HAStatus>

    init(group: HAGroup, store: BlockStore, pipeline: SyncPipeline, applier: BlockApplier,
         blockCheck: SignedBlockValidator, mark: any SignerMark, p2p: P2PService, logger: Logger,
         proposerKey: [UInt8]? = nil) {
        self.group = group
        self.store = store
        self.pipeline = pipeline
        self.applier = applier
        self.blockCheck = blockCheck
        self.mark = mark
        self.p2p = p2p
        self.logger = logger
        self.proposerKey = proposerKey
        self.takeoverLimit = max(.seconds(30), group.leaseTTL * 10)
        var status = HAStatus(node_id: group.nodeID, lease_ttl_seconds: Self.seconds(group.leaseTTL))
        if group.timing.heartbeats {
            status.heartbeat_interval_seconds = Self.seconds(group.timing.heartbeatInterval)
            status.heartbeat_timeout_seconds = Self.seconds(group.timing.heartbeatTimeout)
        }
        statusBox = Mutex(status)
    }

    private static func seconds(_ d: Duration) -> Double { Double(d.nanosecondsClamped) / 1e9 }

    var status: HAStatus { statusBox.withLock { $0 } }
    var currentTerm: LeaderTerm? { termBox.withLock { $0 } }

    /// Whether this node may let a block out now: it leads and trusts its lease.
    var mayPublish: Bool { currentTerm?.isValid() ?? false }

    // MARK: The lease

    /// Renews the current term's lease every third of its TTL and puts its heartbeat every
    /// heartbeat interval, for the node's life. A term whose lease etcd no longer knows, that
    /// could not be renewed before it stopped being trusted, or whose leader key another node
    /// took over, is marked lost; `waitUntilLost` reports it. Also does the group's etcd chores
    /// (`HAChore`: revoking the leases of lost elections, compacting etcd's history).
    func keepLeases() async {
        await withTaskGroup(of: Void.self) { tasks in
            tasks.addTask { await self.renewLeases() }
            tasks.addTask { await self.group.runChores() }
            if group.timing.heartbeats { tasks.addTask { await self.sendHeartbeats() } }
        }
    }

    private func renewLeases() async {
        while !Task.isCancelled {
            guard let term = currentTerm else {
                try? await Task.sleep(for: .milliseconds(50))
                continue
            }
            let next = ContinuousClock.now + term.ttl / 3
            do throws(EtcdError) {
                if try await group.keepAlive(term) {
                    noteEtcd(nil)
                } else {
                    markLost(term, "etcd no longer knows the lease (expired or revoked)")
                    continue
                }
            } catch {
                noteEtcd(error)
                if !term.isValid() {
                    markLost(term, "the lease could not be renewed before its TTL ran out: \(error)")
                    continue
                }
                try? await Task.sleep(for: .milliseconds(200))
                continue
            }
            try? await Task.sleep(until: next)
        }
    }

    /// Every this many heartbeats the leader compacts etcd's history up to the revision of the
    /// heartbeat as many beats before: a leader that produces no blocks (lazy) still writes a
    /// revision every interval.
    static let heartbeatCompactionInterval = 1000

    /// The leader's heartbeat: the heartbeat key put every interval, under the condition that
    /// this term still holds the leader key (a deposed leader learns it here within an interval).
    private func sendHeartbeats() async {
        let interval = group.timing.heartbeatInterval
        var beats = 0
        var failures = 0
        var compactTo: Int64?
        while !Task.isCancelled {
            guard let term = currentTerm else {
                try? await Task.sleep(for: min(interval, .milliseconds(20)))
                continue
            }
            let due = term.lastBeat + interval
            if ContinuousClock.now < due {
                try? await Task.sleep(until: due)
                continue
            }
            do throws(EtcdError) {
                switch try await group.heartbeat(term) {
                case .beat(let revision):
                    failures = 0
                    beats += 1
                    if beats % Self.heartbeatCompactionInterval == 0 {
                        if let compactTo { group.compact(through: compactTo) }
                        compactTo = revision
                    }
                case .over(let why):
                    markLost(term, why)
                }
            } catch {
                if case .cancelled = error { return }
                failures += 1
                noteEtcd(error)
                if failures == 1 || failures % 50 == 0 {
                    logger.warning("HA: heartbeat failed; followers take over if none lands within their timeout", metadata: [
                        "error": "\(error)", "attempts": "\(failures)"])
                }
                try? await Task.sleep(for: interval)
            }
        }
    }

    /// Returns why `term` ended, once it has (polled: the lease is checked against the clock too,
    /// so a process paused past its TTL notices on the first look after it resumes).
    func waitUntilLost(_ term: LeaderTerm) async -> String? {
        while !Task.isCancelled {
            if let why = lost.withLock({ $0?.lease == term.lease ? $0?.reason : nil }) { return why }
            if !term.isValid() { return "the lease is no longer trusted: its last renewal is older than its TTL" }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return nil
    }

    private func markLost(_ term: LeaderTerm, _ reason: String) {
        lost.withLock { $0 = Lost(lease: term.lease, reason: reason) }
        let current = termBox.withLock { t -> Bool in
            guard t === term else { return false }
            t = nil
            return true
        }
        if current { statusBox.withLock { $0.role = "follower" } }
    }

    /// Ends this node's term (stepping down): nothing more is fenced with it, and the lease is
    /// revoked so another node is elected without waiting for the TTL.
    func resign(_ term: LeaderTerm) async {
        termBox.withLock { if $0 === term { $0 = nil } }
        statusBox.withLock {
            $0.role = "follower"
            $0.lease_id = nil
            $0.term = nil
            if $0.leader == group.nodeID { $0.leader = nil }
        }
        // Detached, the one unstructured task of the node (README "Concurrency"): it must also
        // run when the node stops (this task cancelled, which would cancel a child's etcd call
        // at once), because a revoked lease lets another node take over now instead of after
        // the TTL. It is awaited, so it never outlives the caller.
        let haGroup = group
        await Task.detached { await haGroup.resign(term) }.value
        if let by = term.takeDeposition() { noteDeposed(by: by) }
    }

    // MARK: Following

    /// Follows etcd's replicated block for the node's life: while `isFollowing()` (the sync phase
    /// runs) each new block goes to the pipeline. It is never cancelled between roles, so a node
    /// elected leader does not wait for an in-flight watch to notice a cancellation. etcd
    /// failures are waited out (and shown in `/status`).
    func replicate(isFollowing: @escaping @Sendable () -> Bool) async {
        var revision: Int64 = 0
        var reread = true
        var failures = 0
        var wasFollowing = false
        while !Task.isCancelled {
            // Back to following (after leading, or at start): the head may have been skipped.
            let following = isFollowing()
            if following && !wasFollowing { reread = true }
            wasFollowing = following
            do throws(EtcdError) {
                if reread {
                    let (block, at) = try await group.head()
                    if let block { await offer(block, if: isFollowing) }
                    revision = at
                    reread = false
                }
                let (values, next, compacted) = try await group.waitForBlock(after: revision, timeout: .seconds(1))
                if compacted { reread = true }
                revision = next
                for value in values {
                    do throws(ReplicationError) {
                        await offer(try ReplicatedBlock(replicatedValue: value), if: isFollowing)
                    } catch {
                        logger.error("HA: \(error)")
                    }
                }
                failures = 0
            } catch {
                if case .cancelled = error { return }
                failures += 1
                noteEtcd(error)
                reread = true
                try? await Task.sleep(for: .milliseconds(min(2000, 100 * failures)))
            }
        }
    }

    private func offer(_ block: ReplicatedBlock, if isFollowing: @Sendable () -> Bool) async {
        noteReplicated(block.height)
        if isFollowing() { await offer(block) }
    }

    /// Checks a replicated block like a gossiped one and hands it to the pipeline when it is
    /// the store's next height (others the pipeline drops or already has).
    private func offer(_ block: ReplicatedBlock) async {
        statusBox.withLock { $0.last_replicated_height = max($0.last_replicated_height, block.height) }
        guard block.height > store.height else { return }
        switch blockCheck.check(block) {
        case .success(let checked):
            let leader = status.leader ?? "unknown"
            await pipeline.submit([CandidateBlock(signedHeader: checked.signedHeader, data: checked.data,
                                                  origin: .replicated(leader: leader), signatureVerified: true)])
        case .failure(let problem):
            logger.error("HA: the replicated block in etcd is not acceptable", metadata: [
                "height": "\(block.height)", "problem": "\(problem)"])
        }
    }

    /// Campaigns until this node is elected (nil when cancelled). While another node leads it
    /// watches the leader key and its heartbeat: it campaigns again as soon as the key goes, and
    /// takes the key over once the leader's heartbeat has been silent for the heartbeat timeout
    /// and this node's store holds etcd's latest block.
    func campaign() async -> LeaderTerm? {
        var failures = 0
        var lastLeader: String?
        var loggedLag = false
        var loggedRotation = false
        var watched: WatchedTerm?
        while !Task.isCancelled {
            if let key = proposerKey, store.expectedNextProposer != key {
                if !loggedRotation {
                    loggedRotation = true
                    logger.notice("HA: not campaigning: the chain names another key as the next proposer; following", metadata: [
                        "store_height": "\(store.height)", "expected": "\(Hex.encode(store.expectedNextProposer))",
                        "this_key": "\(Hex.encode(key))"])
                }
                statusBox.withLock { $0.role = "follower" }
                // ev-node's promotable nodes look at the state every 300 ms.
                try? await Task.sleep(for: .milliseconds(300))
                continue
            }
            loggedRotation = false
            do throws(EtcdError) {
                // A node far behind etcd's head would hold the leadership while it catches up,
                // and nobody would produce meanwhile: it lets the others lead until it is close.
                let head = try await group.head().block?.height ?? 0
                noteReplicated(head)
                if head > store.height + Self.campaignLag {
                    if !loggedLag {
                        loggedLag = true
                        logger.notice("HA: not campaigning while behind etcd's latest block", metadata: [
                            "store_height": "\(store.height)", "replicated_height": "\(head)"])
                    }
                    statusBox.withLock { $0.role = "follower" }
                    try? await Task.sleep(for: .milliseconds(100))
                    continue
                }
                loggedLag = false
                switch try await group.campaign() {
                case .elected(let term):
                    elected(term, how: "elected leader", metadata: [:])
                    return term
                case .ledBy(let view, let revision):
                    failures = 0
                    noteEtcd(nil)
                    guard let view else { continue }  // the key went meanwhile: at once again
                    following(view.holder, &lastLeader)
                    // Silence is counted from the last sign of life of the term, across the
                    // re-reads of this loop.
                    if var w = watched, w.view.revision == view.revision, w.view.heartbeatRevision == view.heartbeatRevision {
                        w.view = view
                        watched = w
                    } else {
                        watched = WatchedTerm(view: view, lastSign: .now)
                    }
                    var w = watched!
                    defer { watched = w }
                    if let term = try await follow(&w, from: revision, lastLeader: &lastLeader) { return term }
                }
            } catch {
                if case .cancelled = error { return nil }
                failures += 1
                statusBox.withLock { $0.role = "candidate" }
                noteEtcd(error)
                if failures == 1 || failures % 20 == 0 {
                    logger.warning("HA: cannot campaign, etcd does not answer; no node can produce until it does", metadata: [
                        "error": "\(error)", "attempts": "\(failures)"])
                }
                try? await Task.sleep(for: .milliseconds(min(1000, 100 * failures)))
            }
        }
        return nil
    }

    /// The term a follower watches, and when it last showed life (its first write or a
    /// heartbeat), by this node's monotonic clock.
    struct WatchedTerm: Sendable {
        var view: LeaderView
        var lastSign: ContinuousClock.Instant
    }

    /// Watches the leader key and its heartbeat from `revision` on. Returns the term this node
    /// took over with; nil to campaign again: the key went, etcd compacted the history, or five
    /// seconds passed (the campaign loop re-checks how far behind this node is).
    private func follow(_ watched: inout WatchedTerm, from revision: Int64,
                        lastLeader: inout String?) async throws(EtcdError) -> LeaderTerm? {
        let clock = ContinuousClock()
        let recheckAt = clock.now + .seconds(5)
        var revision = revision
        var notBefore = clock.now
        var loggedAhead = false
        while !Task.isCancelled, clock.now < recheckAt {
            let silence = silenceLimit(for: watched.view)
            var until = recheckAt
            if let silence { until = min(until, max(notBefore, watched.lastSign + silence, holdoffUntil)) }
            let result = try await group.watchLeader(after: revision, timeout: max(.milliseconds(5), until - clock.now))
            if result.compacted { return nil }
            revision = result.revision
            for event in result.events {
                if event.key == group.keys.leader {
                    guard event.kind == .put else { return nil }  // vacant: campaign at once
                    watched = WatchedTerm(view: LeaderView(holder: String(decoding: event.value, as: UTF8.self),
                                                           revision: event.modRevision, lease: event.lease),
                                          lastSign: clock.now)
                    following(watched.view.holder, &lastLeader)
                } else if event.key == group.keys.heartbeat, event.kind == .put,
                          watched.view.heard(event.value, at: event.modRevision, lease: event.lease) {
                    watched.lastSign = clock.now
                }
            }
            guard result.events.isEmpty, let silence, clock.now >= watched.lastSign + silence,
                  clock.now >= holdoffUntil, clock.now >= notBefore else { continue }
            // A follower must hold etcd's latest block before it may take over: the new term
            // continues from it, and the take-over's transaction checks that etcd agrees. What
            // this node saw of etcd's height is a lower bound (heights only grow).
            let height = store.height
            let replicated = max(watched.view.replicatedHeight ?? 0, status.last_replicated_height)
            if replicated > height {
                notBefore = clock.now + .milliseconds(20)
                continue
            }
            // etcd known to hold no block: the take-over expects none (the new leader then waits
            // for its store to be caught up, as the group's first leader does).
            let expected: UInt64? = watched.view.replicatedHeightKnown && watched.view.replicatedHeight == nil ? nil : height
            let silentFor = clock.now - watched.lastSign
            switch try await group.takeOver(watched.view, height: expected) {
            case .elected(let term):
                elected(term, how: "took over the leadership: the leader's heartbeat was silent", metadata: [
                    "from": "\(watched.view.holder)", "silent_ms": "\(silentFor.nanosecondsClamped / 1_000_000)",
                    "old_term": "\(watched.view.revision)", "height": "\(expected.map(String.init) ?? "none")"])
                return term
            case .refused(let now, _):
                guard let now else { return nil }  // the key went: campaign
                if now.revision != watched.view.revision {
                    watched = WatchedTerm(view: now, lastSign: clock.now)
                    following(now.holder, &lastLeader)
                } else if now.heartbeatRevision != watched.view.heartbeatRevision {
                    // The leader beat after all (this node saw it late): it lives.
                    watched = WatchedTerm(view: now, lastSign: clock.now)
                } else if let etcdHeight = now.replicatedHeight, etcdHeight < height {
                    // Blocks above etcd's head were never fenced: this store cannot continue the
                    // chain from etcd's head (a take-over would step down anyway).
                    watched.view = now
                    if !loggedAhead {
                        loggedAhead = true
                        logger.warning("HA: not taking over: the store holds blocks above etcd's last replicated height", metadata: [
                            "store_height": "\(height)", "replicated_height": "\(etcdHeight)"])
                    }
                    notBefore = clock.now + .seconds(1)
                } else {
                    // Only the height differed: this store must catch up first.
                    watched.view = now
                    notBefore = clock.now + .milliseconds(20)
                }
            }
        }
        return nil
    }

    /// How long the term `view` may be silent before this node takes it over; nil: never (this
    /// node sends no heartbeats itself, or the term has put none: its leader sends none).
    private func silenceLimit(for view: LeaderView) -> Duration? {
        guard group.timing.heartbeats, view.heartbeatRevision != nil else { return nil }
        // Never faster than twice the leader's own interval, whatever this node is configured with.
        return max(group.timing.heartbeatTimeout, (view.heartbeatInterval ?? .zero) * 2)
    }

    private func following(_ leader: String, _ lastLeader: inout String?) {
        statusBox.withLock {
            $0.role = "follower"
            $0.leader = leader.isEmpty ? nil : leader
        }
        if leader != lastLeader, !leader.isEmpty {
            lastLeader = leader
            logger.notice("HA: following", metadata: ["leader": "\(leader)"])
        }
    }

    private func elected(_ term: LeaderTerm, how: String, metadata: Logger.Metadata) {
        lost.withLock { $0 = nil }
        termBox.withLock { $0 = term }
        statusBox.withLock {
            // "leader" once the store holds etcd's latest block (`markLeading`).
            $0.role = "taking-over"
            $0.leader = group.nodeID
            $0.lease_id = String(term.lease)
            $0.lease_ttl_seconds = Double(term.ttl.components.seconds)
            $0.term = term.revision
            $0.etcd_error = nil
        }
        var all = metadata
        all["node_id"] = "\(group.nodeID)"
        all["lease"] = "\(term.lease)"
        all["term"] = "\(term.revision)"
        all["ttl_s"] = "\(term.ttl.components.seconds)"
        logger.notice("HA: \(how)", metadata: all)
    }

    // MARK: Flapping

    private struct Depositions: Sendable {
        var at: [ContinuousClock.Instant] = []
        var holdoffUntil: ContinuousClock.Instant = .now
    }
    private let depositions = Mutex(Depositions())

    /// Until when this node takes over from no silent leader (it was deposed lately).
    var holdoffUntil: ContinuousClock.Instant { depositions.withLock { $0.holdoffUntil } }

    /// This node's term was taken over by `holder`: it leaves the next take-overs to the
    /// others for a while, doubling with each deposition in the last ten minutes.
    private func noteDeposed(by holder: String) {
        let timing = group.timing
        let now = ContinuousClock.now
        let holdoff = depositions.withLock { d -> Duration in
            d.at = d.at.filter { now - $0 < HATiming.holdoffWindow } + [now]
            var holdoff = timing.holdoffBase
            for _ in 1..<min(d.at.count, 16) { holdoff = min(timing.maxHoldoff, holdoff * 2) }
            holdoff = min(timing.maxHoldoff, holdoff)
            d.holdoffUntil = now + holdoff
            return holdoff
        }
        logger.notice("HA: deposed by a take-over; not taking over from a silent leader for a while", metadata: [
            "by": "\(holder)", "holdoff": "\(DurationParser.format(holdoff))"])
    }

    // MARK: Taking over

    /// The take-over of `term` is done: this node produces now.
    func markLeading(_ term: LeaderTerm) {
        // Under the term's lock: a term lost meanwhile (`markLost`) must not be shown as leading.
        termBox.withLock { t in
            guard t === term else { return }
            statusBox.withLock { $0.role = "leader" }
        }
    }

    /// The promotion check's timeout for the first leader of a group (SPEC §6 through
    /// `PromotionCheck`): there is no `--catchup-timeout` in HA, and a new leader gets this long
    /// anyway before it lets another node try.
    var bootstrapTimeout: Duration { takeoverLimit }

    /// Whether the store holds the block this node signed at `height` but never published, on
    /// top of its head: a leader offers exactly that block again (`offerUnpublished`), so the
    /// promotion check does not count that height as signed beyond reach.
    static func holdsUnpublishedBlock(at height: UInt64, store: BlockStore) -> Bool {
        guard let state = store.state, height == state.nextHeight,
              let recorded = (try? UnpublishedBlock.load(from: store)) ?? nil else { return false }
        return recorded.signedHeader.header.height == height
            && recorded.signedHeader.header.lastHeaderHash == state.lastHeaderHash
    }

    /// Brings the store to etcd's latest block (the sync phase runs meanwhile and this offers
    /// the block itself), then resolves a block this node signed but never published.
    ///
    /// When etcd holds no block yet (a new group, or HA switched on for a running chain) this
    /// store becomes the chain's head: `bootstrap` — the catchup's promotion check, all five
    /// conditions of SPEC §6 — must promote it first. While it says to keep syncing the node
    /// waits (up to `takeoverLimit`); when it fails closed the node steps down at once and never
    /// leads on that store (see `FailoverDriver.followUntilElected`).
    func takeOver(_ term: LeaderTerm, bootstrap: @Sendable () async -> CatchupDecision) async throws(NodeFailure) -> TakeoverOutcome {
        let clock = ContinuousClock()
        let deadline = clock.now + takeoverLimit
        var offered: UInt64?
        /// What the promotion check last waited for (etcd holding no block).
        var bootstrapWait: String?
        // While this term holds the leader key nobody else can change etcd's head: it is read
        // once, then only the store is watched.
        var known: ReplicatedBlock??
        while true {
            if Task.isCancelled { return .stepDown(term, "the node is stopping") }
            guard term.isValid(), currentTerm === term else {
                return .stepDown(term, "the lease was lost while taking over")
            }
            guard clock.now < deadline else {
                if let waitingFor = bootstrapWait {
                    return .stepDown(term, "etcd holds no block yet and this store did not pass the catchup conditions within \(DurationParser.format(takeoverLimit)): \(waitingFor)")
                }
                return .stepDown(term, "the store did not reach etcd's latest block within \(DurationParser.format(takeoverLimit))")
            }
            if known == nil {
                do throws(EtcdError) {
                    known = .some(try await group.head().block)
                } catch {
                    noteEtcd(error)
                    try? await Task.sleep(for: .milliseconds(100))
                    continue
                }
            }
            guard let head = known ?? nil else {
                // etcd holds no block yet (a new group, or HA switched on for a running chain):
                // the first leader's store becomes the chain's head, so it must pass what a
                // catchup must pass before it produces.
                switch await bootstrap() {
                case .promote:
                    term.replicatedHeight = nil
                case .keepSyncing(let missing):
                    if bootstrapWait == nil {
                        logger.notice("HA: etcd holds no block yet; leading only once this store passes the catchup conditions",
                                      metadata: ["waiting_for": "\(missing)", "height": "\(store.height)"])
                    }
                    bootstrapWait = missing
                    try? await Task.sleep(for: .milliseconds(100))
                    continue
                case .failClosed(let why):
                    return .stepDown(term, "etcd holds no block yet and this store cannot become the chain's head: catchup failed closed: \(why)")
                }
                break
            }
            statusBox.withLock { $0.last_replicated_height = max($0.last_replicated_height, head.height) }
            let height = store.height
            if height >= head.height {
                let stored = (try? store.headerHash(at: head.height)) ?? nil
                    ?? (store.state?.lastBlockHeight == head.height ? store.state?.lastHeaderHash : nil)
                guard height == head.height, stored == head.headerHash else {
                    return .stepDown(term, height > head.height
                        ? "the store holds blocks above etcd's last replicated height \(head.height) (store height \(height)); they were never fenced"
                        : "the store's block \(head.height) differs from etcd's (\(Hex.encode(stored ?? [])) vs \(Hex.encode(head.headerHash)))")
                }
                term.replicatedHeight = head.height
                break
            }
            if height + 1 == head.height, offered != head.height {
                offered = head.height
                await offer(head)
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return try await offerUnpublished(term)
    }

    /// A block signed but never got through the fence (refused, or the process died first)
    /// holds the signer's mark above the store. If that block extends the head it is offered
    /// again, so no second block is ever signed at that height; otherwise this node cannot lead
    /// and says so.
    ///
    /// The block comes from where the signature was kept: beside the remote signer's mark when
    /// the group shares one (issue 29: the old leader died after the signer's answer and before
    /// etcd replicated its block; the signer refuses any other header there, so the new leader
    /// adopts exactly that one), else this node's own unpublished-block record. The mark is read
    /// afresh from the signer: another member may have raised it.
    private func offerUnpublished(_ term: LeaderTerm) async throws(NodeFailure) -> TakeoverOutcome {
        let record: SignerHighWaterMark.Record?
        do throws(ConfigError) {
            record = try await mark.currentRecord()
        } catch {
            return .stepDown(term, "the signer's high-water mark cannot be read: \(error)")
        }
        guard let record, let state = store.state, record.height > state.lastBlockHeight else { return .ready(term) }
        let signed = record.height
        let refusal = "the signer's key signed height \(signed), above the store (\(state.lastBlockHeight)) and etcd's last replicated block, and that block cannot be offered again; no second block may be signed there, so this node cannot lead (another member may; the operator's way past it is `evnode signer reset` on the signer's home)"
        let recorded: (signedHeader: SignedHeader, data: BlockData)?
        let source: String
        do throws(StoreError) {
            if let bytes = record.block {
                source = "kept beside the signer's mark"
                do throws(WireError) {
                    recorded = try SignedBlockBytes.decode(bytes)
                } catch {
                    return .stepDown(term, "\(refusal): the block kept beside the mark does not decode: \(error)")
                }
            } else {
                source = "this node's unpublished block"
                recorded = try UnpublishedBlock.load(from: store)
            }
        } catch {
            return .stepDown(term, "\(refusal): \(error)")
        }
        guard signed == state.nextHeight, let recorded, recorded.signedHeader.header.height == signed,
              recorded.signedHeader.header.lastHeaderHash == state.lastHeaderHash else {
            return .stepDown(term, "\(refusal) (\(source): \(recorded.map { "height \($0.signedHeader.height), parent \(Hex.encode($0.signedHeader.header.lastHeaderHash))" } ?? "none"); the store's head is \(state.lastBlockHeight), hash \(Hex.encode(state.lastHeaderHash)))")
        }
        let applier = self.applier
        let commit: BlockCommit
        do throws(ApplyError) {
            if applier.local != nil {
                // An in-process executor's work is blocking: off Swift's cooperative threads, on a
                // lane of this one step (a re-offer happens once per refusal, not per block).
                commit = try await BlockingLane.with(name: "ha-reoffer", threads: 1) { lane throws(ApplyError) in
                    try await lane.run(orIfShutDown: ApplyError.store(.closed)) { () throws(ApplyError) in
                        try applier.prepare(recorded.signedHeader, recorded.data, state: state,
                                            now: BlockValidator.currentTime())
                    }
                }
            } else {
                commit = try await applier.prepareAwaitingExecutor(recorded.signedHeader, recorded.data, state: state,
                                                                   now: BlockValidator.currentTime())
            }
        } catch {
            return .stepDown(term, "\(refusal): \(error)")
        }
        do throws(FenceRefusal) {
            try await group.commit(ReplicatedBlock(commit), term: term)
        } catch {
            return .stepDown(term, "offering the unpublished block \(signed) again: \(error)")
        }
        // The sync phase still runs and is the store's only writer meanwhile (etcd's copy of the
        // block may reach it first, through the replication follower): the block goes through it.
        let block = ReplicatedBlock(commit)
        await offer(block)
        let deadline = ContinuousClock.now + takeoverLimit
        while store.height < signed {
            guard term.isValid(), ContinuousClock.now < deadline, !Task.isCancelled else {
                return .stepDown(term, "the re-offered block \(signed) was fenced but not applied in time")
            }
            try? await Task.sleep(for: .milliseconds(20))
        }
        guard (try? store.headerHash(at: signed)) ?? nil == block.headerHash
            || store.state?.lastHeaderHash == block.headerHash else {
            return .stepDown(term, "the store's block \(signed) is not the one this node fenced")
        }
        logger.notice("HA: published the block signed at the mark but never replicated (adopted, not signed again)", metadata: [
            "height": "\(signed)", "hash": "\(Hex.encode(commit.signedHeader.header.hash))", "source": "\(source)"])
        p2p.publish(commit)
        return .ready(term)
    }

    // MARK: Status

    func noteStepDown(_ why: String) {
        statusBox.withLock { $0.last_step_down = why }
    }

    func noteReplicated(_ height: UInt64) {
        statusBox.withLock { $0.last_replicated_height = max($0.last_replicated_height, height) }
    }

    private func noteEtcd(_ error: EtcdError?) {
        statusBox.withLock { $0.etcd_error = error?.description }
    }
}

/// The fence of an HA leader's producer: each block is committed to etcd under the current term.
struct HAFence: BlockFence {
    let runtime: HARuntime

    func admit(_ block: BlockCommit) async throws(FenceRefusal) {
        guard let term = runtime.currentTerm else { throw FenceRefusal("this node does not lead") }
        try await runtime.group.commit(ReplicatedBlock(block), term: term)
        runtime.noteReplicated(block.height)
    }
}
