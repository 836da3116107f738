import Primitives
import Etcd
import Production
import Logging
import Synchronization

/// When the group decides that its leader is gone (README "HA aggregators on etcd").
struct HATiming: Sendable, Equatable {
    /// The leader key's lease: a leader that dies is replaced at the latest when it expires.
    var leaseTTL: Duration
    /// How often the leader proves it is alive by putting the heartbeat key (every fenced
    /// block does too). Zero: no heartbeats, a dead leader is replaced once its lease expires.
    var heartbeatInterval: Duration = .milliseconds(100)
    /// How long a follower that holds etcd's latest block waits without seeing a heartbeat
    /// before it takes the leader key over.
    var heartbeatTimeout: Duration = .milliseconds(500)

    var heartbeats: Bool { heartbeatInterval > .zero }

    /// A node deposed by a take-over leaves the next take-overs to the others for this long
    /// (doubling with each deposition in `holdoffWindow`, at most `maxHoldoff`): two nodes that
    /// each see the other as silent cannot hand the leadership back and forth faster.
    var holdoffBase: Duration { heartbeatTimeout * 4 }
    var maxHoldoff: Duration { .seconds(60) }
    static let holdoffWindow: Duration = .seconds(600)
}

/// One term of leadership: the lease that holds the leader key, and the leader key's mod
/// revision when this term wrote it (created it, or took it over), which no other term shares:
/// the term's holder never writes the key again. The lease is trusted locally only until
/// `validUntil`, computed from when a renewal was *sent*, so this node stops trusting it before
/// etcd can expire it.
final class LeaderTerm: Sendable {
    let lease: Int64
    let revision: Int64
    let ttl: Duration
    private struct Mutable {
        var validUntil: ContinuousClock.Instant
        /// Height of the last block committed to etcd (by this term, or found when it began).
        var replicatedHeight: UInt64?
        /// When the last heartbeat (or the term's first write, which puts one) was sent.
        var lastBeat: ContinuousClock.Instant
        /// The node that took the leader key over from this term, once seen.
        var deposedBy: String?
        var depositionTaken = false
    }
    private let box: Mutex<Mutable>

    init(lease: Int64, revision: Int64, ttl: Duration, grantedAt: ContinuousClock.Instant) {
        self.lease = lease
        self.revision = revision
        self.ttl = ttl
        box = Mutex(Mutable(validUntil: grantedAt + Self.trusted(ttl), replicatedHeight: nil, lastBeat: grantedAt,
                            deposedBy: nil, depositionTaken: false))
    }

    /// Nine tenths of the TTL: room for clock-rate differences and etcd's expiry sweep.
    private static func trusted(_ ttl: Duration) -> Duration { ttl * 9 / 10 }

    var validUntil: ContinuousClock.Instant { box.withLock { $0.validUntil } }
    func isValid(at now: ContinuousClock.Instant = .now) -> Bool { now < validUntil }

    /// A renewal sent at `sentAt` succeeded with `remaining` TTL.
    func renewed(sentAt: ContinuousClock.Instant, remaining: Duration) {
        box.withLock { $0.validUntil = max($0.validUntil, sentAt + Self.trusted(remaining)) }
    }

    var replicatedHeight: UInt64? {
        get { box.withLock { $0.replicatedHeight } }
        set { box.withLock { $0.replicatedHeight = newValue } }
    }

    var lastBeat: ContinuousClock.Instant { box.withLock { $0.lastBeat } }
    func beat(sentAt: ContinuousClock.Instant) { box.withLock { $0.lastBeat = max($0.lastBeat, sentAt) } }

    var deposedBy: String? { box.withLock { $0.deposedBy } }
    func deposed(by holder: String) { box.withLock { $0.deposedBy = $0.deposedBy ?? holder } }

    /// Who deposed this term, the first time it is asked (a deposition is counted once).
    func takeDeposition() -> String? {
        box.withLock { m -> String? in
            guard !m.depositionTaken, let by = m.deposedBy else { return nil }
            m.depositionTaken = true
            return by
        }
    }
}

/// What a follower knows of the term that leads.
struct LeaderView: Sendable, Equatable {
    var holder: String
    /// The leader key's mod revision: the term.
    var revision: Int64
    var lease: Int64
    /// The mod revision of the term's last heartbeat; nil while the term has put none (its
    /// leader sends none: it is then replaced only when its lease expires).
    var heartbeatRevision: Int64?
    /// The interval the leader says it beats at.
    var heartbeatInterval: Duration?
    /// etcd's last replicated height when this was read; nil when etcd holds no block.
    var replicatedHeight: UInt64?
    var replicatedHeightKnown: Bool

    init(holder: String, revision: Int64, lease: Int64) {
        self.holder = holder
        self.revision = revision
        self.lease = lease
        replicatedHeightKnown = false
    }

    /// A heartbeat of this term (one under the leader key's lease) was seen at `revision`.
    mutating func heard(_ value: [UInt8], at revision: Int64, lease: Int64) -> Bool {
        guard lease == self.lease, lease != 0 else { return false }
        heartbeatRevision = revision
        heartbeatInterval = UInt64(String(decoding: value, as: UTF8.self)).map { .milliseconds(Int64(clamping: $0)) }
        return true
    }
}

/// The outcome of one election attempt.
enum CampaignOutcome: Sendable {
    case elected(LeaderTerm)
    /// Another node leads (nil: the key went between the compare and the get); watch the
    /// leader key from `revision` on.
    case ledBy(LeaderView?, revision: Int64)
}

/// The outcome of one heartbeat.
enum HeartbeatOutcome: Sendable, Equatable {
    case beat(revision: Int64)
    /// The term is over (why).
    case over(String)
}

/// The HA group's protocol on etcd (SPEC §2 HA aggregator): election by creating the leader key
/// under a lease, keep-alive and heartbeats, the take-over of a silent leader's key, the fence
/// each block passes before it leaves the leader, and the latest replicated block. Holds no
/// opinion on when to do what: `HARuntime` decides.
final class HAGroup: Sendable {
    let etcd: EtcdClient
    let keys: HAKeys
    let nodeID: String
    let timing: HATiming
    let logger: Logger
    /// Chores queued by the calls below, done by `runChores` (bounded: `HAChore.queueLimit`).
    private let chores: AsyncStream<HAChore>
    private let queue: AsyncStream<HAChore>.Continuation

    var leaseTTL: Duration { timing.leaseTTL }

    init(etcd: EtcdClient, chainID: String, nodeID: String, timing: HATiming, logger: Logger) {
        self.etcd = etcd
        self.keys = HAKeys(chainID: chainID)
        self.nodeID = nodeID
        self.timing = timing
        self.logger = logger
        (chores, queue) = AsyncStream.makeStream(of: HAChore.self, bufferingPolicy: .bufferingOldest(HAChore.queueLimit))
    }

    convenience init(etcd: EtcdClient, chainID: String, nodeID: String, leaseTTL: Duration,
                     heartbeatInterval: Duration = .milliseconds(100), heartbeatTimeout: Duration = .milliseconds(500),
                     logger: Logger) {
        self.init(etcd: etcd, chainID: chainID, nodeID: nodeID,
                  timing: HATiming(leaseTTL: leaseTTL, heartbeatInterval: heartbeatInterval,
                                   heartbeatTimeout: heartbeatTimeout),
                  logger: logger)
    }

    private var ttlSeconds: Int64 { Int64((leaseTTL.nanosecondsClamped + 999_999_999) / 1_000_000_000) }

    /// The heartbeat key's value: the interval in milliseconds, so a follower configured with a
    /// shorter timeout never takes over from a leader that beats slower by design.
    private var heartbeatValue: [UInt8] {
        Array(String(timing.heartbeatInterval.nanosecondsClamped / 1_000_000).utf8)
    }

    private func heartbeatPut(_ lease: Int64) -> [EtcdOperation] {
        timing.heartbeats ? [.put(key: keys.heartbeat, value: heartbeatValue, lease: lease)] : []
    }

    /// What a failed election or take-over found: leader key, heartbeat, height.
    private var viewGets: [EtcdOperation] { [.get(key: keys.leader), .get(key: keys.heartbeat), .get(key: keys.height)] }

    private static func view(_ found: [EtcdKeyValue?]) -> LeaderView? {
        guard let leader = found.first ?? nil else { return nil }
        var view = LeaderView(holder: String(decoding: leader.value, as: UTF8.self), revision: leader.modRevision,
                              lease: leader.lease)
        if found.count > 1, let beat = found[1] {
            _ = view.heard(beat.value, at: beat.modRevision, lease: beat.lease)
        }
        if found.count > 2 {
            view.replicatedHeightKnown = true
            view.replicatedHeight = found[2].flatMap { UInt64(String(decoding: $0.value, as: UTF8.self)) }
        }
        return view
    }

    // MARK: Election

    /// Grants a lease and creates the leader key under it if no node holds it. A key left by an
    /// earlier run of this node (killed before its lease expired) is waited out like any other
    /// (or taken over once its heartbeat is silent): telling it from a second process configured
    /// with the same node id is not possible here, and revoking a live leader's lease would make
    /// two such processes fight.
    func campaign() async throws(EtcdError) -> CampaignOutcome {
        let sentAt = ContinuousClock.now
        let (lease, granted) = try await etcd.grantLease(ttlSeconds: ttlSeconds)
        let result: EtcdTxnResult
        do {
            result = try await etcd.transaction(
                if: [.createRevision(key: keys.leader, equals: 0)],
                then: [.put(key: keys.leader, value: Array(nodeID.utf8), lease: lease)] + heartbeatPut(lease),
                else: viewGets)
        } catch {
            try? await etcd.revoke(lease: lease)
            throw error
        }
        if result.succeeded {
            return .elected(LeaderTerm(lease: lease, revision: result.revision, ttl: .seconds(granted),
                                       grantedAt: sentAt))
        }
        revokeLater(lease)
        return .ledBy(Self.view(result.found), revision: result.revision)
    }

    /// The outcome of a take-over attempt.
    enum TakeoverAttempt: Sendable {
        case elected(LeaderTerm)
        /// etcd no longer matches `seen` (what it holds instead; nil: no leader key).
        case refused(LeaderView?, revision: Int64)
    }

    /// Takes the leader key over from the term `seen` in one transaction, which holds only if
    /// that term still holds the key, has put no heartbeat since the one `seen` holds (the
    /// caller waited the heartbeat timeout after seeing it), and etcd's last replicated height
    /// is `height` (nil: etcd holds no block): the caller's store must hold it, so the new term
    /// continues the chain where the old one left it.
    func takeOver(_ seen: LeaderView, height: UInt64?) async throws(EtcdError) -> TakeoverAttempt {
        guard let beat = seen.heartbeatRevision else { return .refused(seen, revision: 0) }
        let sentAt = ContinuousClock.now
        let (lease, granted) = try await etcd.grantLease(ttlSeconds: ttlSeconds)
        let heightCheck: EtcdCompare = height.map { .value(key: keys.height, equals: Array(String($0).utf8)) }
            ?? .createRevision(key: keys.height, equals: 0)
        let result: EtcdTxnResult
        do {
            result = try await etcd.transaction(
                if: [.modRevision(key: keys.leader, equals: seen.revision),
                     .modRevision(key: keys.heartbeat, equals: beat), heightCheck],
                then: [.put(key: keys.leader, value: Array(nodeID.utf8), lease: lease)] + heartbeatPut(lease),
                else: viewGets)
        } catch {
            try? await etcd.revoke(lease: lease)
            throw error
        }
        if result.succeeded {
            let term = LeaderTerm(lease: lease, revision: result.revision, ttl: .seconds(granted), grantedAt: sentAt)
            term.replicatedHeight = height
            return .elected(term)
        }
        revokeLater(lease)
        return .refused(Self.view(result.found), revision: result.revision)
    }

    /// Returns the changes of the leader key and its heartbeat after `revision` (or none after
    /// `timeout`), and the revision to watch from next. `compacted`: etcd dropped that history.
    func watchLeader(after revision: Int64, timeout: Duration) async throws(EtcdError)
        -> (events: [EtcdWatchEvent], revision: Int64, compacted: Bool) {
        let result = try await etcd.watch(keys.leader, rangeEnd: keys.leaderRangeEnd, fromRevision: revision + 1,
                                          timeout: timeout)
        if result.compacted { return ([], revision, true) }
        return (result.events, max(revision, result.nextRevision - 1), false)
    }

    /// Renews the term's lease. False when etcd no longer knows it: the term is over.
    func keepAlive(_ term: LeaderTerm) async throws(EtcdError) -> Bool {
        let sentAt = ContinuousClock.now
        let remaining = try await etcd.keepAlive(lease: term.lease)
        guard remaining > 0 else { return false }
        term.renewed(sentAt: sentAt, remaining: .seconds(remaining))
        return true
    }

    /// Puts the heartbeat key if the term still holds the leader key.
    func heartbeat(_ term: LeaderTerm) async throws(EtcdError) -> HeartbeatOutcome {
        let sentAt = ContinuousClock.now
        let result: EtcdTxnResult
        do {
            result = try await etcd.transaction(
                if: [.modRevision(key: keys.leader, equals: term.revision)],
                then: heartbeatPut(term.lease),
                else: [.get(key: keys.leader)])
        } catch {
            if case .refused(_, _, _, let message) = error, message.contains("lease not found") {
                return .over("etcd no longer knows the lease (expired or revoked)")
            }
            throw error
        }
        guard result.succeeded else { return .over(Self.lostTerm(result.found.first ?? nil, term)) }
        term.beat(sentAt: sentAt)
        return .beat(revision: result.revision)
    }

    /// Why `term` no longer holds the leader key, which is now `leader`.
    private static func lostTerm(_ leader: EtcdKeyValue?, _ term: LeaderTerm) -> String {
        guard let leader else { return "the leader key is gone: this node's lease (\(term.lease)) expired or was revoked" }
        let holder = String(decoding: leader.value, as: UTF8.self)
        term.deposed(by: holder)
        return "the leader key is now held by \(holder) (term \(leader.modRevision), ours was \(term.revision))"
    }

    /// Ends the term at once so another node can be elected without waiting for the TTL. A term
    /// that does not know yet whether another node holds the key now (it stopped trusting its
    /// lease first) looks, so that a deposition is noticed whichever way the term learned its end.
    func resign(_ term: LeaderTerm) async {
        if term.deposedBy == nil, let (leader, _) = try? await etcd.get(keys.leader), let leader,
           leader.modRevision != term.revision {
            _ = Self.lostTerm(leader, term)
        }
        do {
            try await etcd.revoke(lease: term.lease)
        } catch {
            logger.warning("HA: could not revoke the lease on stepping down; it expires by itself", metadata: [
                "lease": "\(term.lease)", "error": "\(error)"])
        }
    }

    /// A lease granted for an election that was lost: revoked without holding up the caller
    /// (it holds no key; if the revoke fails it expires after its TTL).
    private func revokeLater(_ lease: Int64) {
        queue.yield(.revoke(lease: lease))
    }

    /// Does the queued chores one at a time until cancelled (run once, by the HA runtime's lease
    /// keeper, for the node's life). A failure is logged: neither chore is needed for safety.
    func runChores() async {
        for await chore in chores {
            switch chore {
            case .revoke(let lease):
                do {
                    try await etcd.revoke(lease: lease)
                } catch {
                    logger.debug("HA: could not revoke the lease of a lost election; it expires by itself",
                                 metadata: ["lease": "\(lease)", "error": "\(error)"])
                }
            case .compact(let revision):
                do {
                    try await etcd.compact(revision: revision)
                    logger.debug("HA: compacted etcd's history", metadata: ["revision": "\(revision)"])
                } catch {
                    logger.warning("HA: compacting etcd's history failed; it grows until the next attempt",
                                   metadata: ["revision": "\(revision)", "error": "\(error)"])
                }
            }
        }
    }

    // MARK: Replicated blocks

    /// The latest block a leader committed, nil when none ever was.
    func head() async throws(EtcdError) -> (block: ReplicatedBlock?, revision: Int64) {
        let (kv, revision) = try await etcd.get(keys.block)
        guard let kv else { return (nil, revision) }
        do throws(ReplicationError) {
            return (try ReplicatedBlock(replicatedValue: kv.value), revision)
        } catch {
            throw .malformed(endpoint: etcd.endpoints.joined(separator: ","), path: "/v3/kv/range",
                             reason: error.description)
        }
    }

    /// Waits up to `timeout` for a new replicated block after `revision`.
    /// `compacted`: etcd dropped the history asked for; read the head again instead.
    func waitForBlock(after revision: Int64, timeout: Duration) async throws(EtcdError)
        -> (blocks: [[UInt8]], revision: Int64, compacted: Bool) {
        let result = try await etcd.watch(keys.block, fromRevision: revision + 1, timeout: timeout)
        if result.compacted {
            return ([], revision, true)
        }
        let values = result.events.filter { $0.kind == .put }.map(\.value)
        return (values, max(revision, result.nextRevision - 1), false)
    }

    /// The fence: commits `block` to etcd only if this term still holds the leader key (its mod
    /// revision is the term's) and etcd's last replicated height is the block's parent. Outcome unknown (etcd unreachable, an answer
    /// lost): re-reads what etcd holds until the term's lease is no longer trusted.
    func commit(_ block: ReplicatedBlock, term: LeaderTerm) async throws(FenceRefusal) {
        let previous = term.replicatedHeight
        if let previous, block.height != previous + 1 {
            throw FenceRefusal("block \(block.height) does not follow etcd's last replicated height \(previous)")
        }
        let heightCheck: EtcdCompare = previous.map { .value(key: keys.height, equals: Array(String($0).utf8)) }
            ?? .createRevision(key: keys.height, equals: 0)
        let value = block.replicatedValue()
        var attempt = 0
        while true {
            guard term.isValid() else {
                throw FenceRefusal("the leader lease (\(term.lease)) is no longer trusted: its last renewal is older than its TTL")
            }
            if Task.isCancelled { throw FenceRefusal("production was cancelled (stepping down or stopping)") }
            attempt += 1
            let outcome: Result<EtcdTxnResult, EtcdError>
            do throws(EtcdError) {
                outcome = .success(try await etcd.transaction(
                    if: [.modRevision(key: keys.leader, equals: term.revision), heightCheck],
                    then: [.put(key: keys.height, value: Array(String(block.height).utf8)),
                           .put(key: keys.block, value: value)],
                    else: [.get(key: keys.leader), .get(key: keys.height), .get(key: keys.block)]))
            } catch {
                outcome = .failure(error)
            }
            switch outcome {
            case .success(let result):
                // Refused because an earlier attempt whose answer was lost already landed: success.
                guard result.succeeded || Self.holds(result.found.last ?? nil, block) else {
                    throw FenceRefusal(Self.whyRefused(result, term: term, expectedParent: previous))
                }
                term.replicatedHeight = block.height
                if result.succeeded, block.height % Self.compactionInterval == 0 {
                    compact(through: result.revision)
                }
                return
            case .failure(.refused(_, _, _, let message)):
                throw FenceRefusal("etcd refused the fence transaction: \(message)")
            case .failure(.unavailable(let why)) where why.contains("database space exceeded"):
                logger.critical("HA: etcd is out of space (NOSPACE alarm); no block can be fenced until an operator compacts, defragments and disarms it")
                throw FenceRefusal("etcd is out of space: \(why)")
            case .failure(let error):
                // The transaction may or may not have happened: look.
                if (try? await landed(block)) == true {
                    term.replicatedHeight = block.height
                    return
                }
                if attempt == 1 || attempt % 10 == 0 {
                    logger.warning("HA: fence transaction failed, retrying while the lease is trusted", metadata: [
                        "height": "\(block.height)", "error": "\(error)", "attempt": "\(attempt)"])
                }
                try? await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// Every this many heights the leader compacts etcd's history up to the fence's revision:
    /// each block's value stays in etcd's history until compacted, and etcd stops taking writes
    /// at its space quota.
    static let compactionInterval: UInt64 = 1000

    /// Queues a compaction up to `revision` (done by `runChores`).
    func compact(through revision: Int64) {
        queue.yield(.compact(through: revision))
    }

    private static func holds(_ kv: EtcdKeyValue?, _ block: ReplicatedBlock) -> Bool {
        guard let kv, let stored = try? ReplicatedBlock(replicatedValue: kv.value) else { return false }
        return stored.height == block.height && stored.headerHash == block.headerHash
    }

    /// Whether etcd's replicated block is `block` (then a lost answer hid a success).
    private func landed(_ block: ReplicatedBlock) async throws(EtcdError) -> Bool {
        let (current, _) = try await head()
        return current?.height == block.height && current?.headerHash == block.headerHash
    }

    private static func whyRefused(_ result: EtcdTxnResult, term: LeaderTerm, expectedParent: UInt64?) -> String {
        let leader = result.found.first ?? nil
        if leader?.modRevision != term.revision { return lostTerm(leader, term) }
        let height = (result.found.count > 1 ? result.found[1] : nil).map { String(decoding: $0.value, as: UTF8.self) }
        return "etcd's last replicated height is \(height ?? "none"), not \(expectedParent.map(String.init) ?? "none")"
    }
}
