import Block
import Config
import Logging
import Synchronization

/// One term of leadership: the lease that holds the leader key, and the key's create revision,
/// which no other term shares (a key that expired and was created again has a new one). The
/// lease is trusted locally only until `validUntil`, computed from when a renewal was *sent*,
/// so this node stops trusting it before etcd can expire it.
final class LeaderTerm: Sendable {
    let lease: Int64
    let createRevision: Int64
    let ttl: Duration
    private struct Mutable {
        var validUntil: ContinuousClock.Instant
        /// Height of the last block committed to etcd (by this term, or found when it began).
        var replicatedHeight: UInt64?
    }
    private let box: Mutex<Mutable>

    init(lease: Int64, createRevision: Int64, ttl: Duration, grantedAt: ContinuousClock.Instant) {
        self.lease = lease
        self.createRevision = createRevision
        self.ttl = ttl
        box = Mutex(Mutable(validUntil: grantedAt + Self.trusted(ttl), replicatedHeight: nil))
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
}

/// The outcome of one election attempt.
enum CampaignOutcome: Sendable {
    case elected(LeaderTerm)
    /// Another node leads; watch the leader key from `revision` on.
    case ledBy(String, revision: Int64)
}

/// The HA group's protocol on etcd (SPEC §2 HA aggregator): election by creating the leader key
/// under a lease, keep-alive, the fence each block passes before it leaves the leader, and the
/// latest replicated block. Holds no opinion on when to do what: `HARuntime` decides.
final class HAGroup: Sendable {
    let etcd: EtcdClient
    let keys: HAKeys
    let nodeID: String
    let leaseTTL: Duration
    let logger: Logger

    init(etcd: EtcdClient, chainID: String, nodeID: String, leaseTTL: Duration, logger: Logger) {
        self.etcd = etcd
        self.keys = HAKeys(chainID: chainID)
        self.nodeID = nodeID
        self.leaseTTL = leaseTTL
        self.logger = logger
    }

    private var ttlSeconds: Int64 { Int64((leaseTTL.nanosecondsClamped + 999_999_999) / 1_000_000_000) }

    // MARK: Election

    /// Grants a lease and creates the leader key under it if no node holds it. A key left by an
    /// earlier run of this node (killed before its lease expired) is waited out like any other:
    /// telling it from a second process configured with the same node id is not possible here,
    /// and revoking a live leader's lease would make two such processes fight.
    func campaign() async throws(EtcdError) -> CampaignOutcome {
        let sentAt = ContinuousClock.now
        let (lease, granted) = try await etcd.grantLease(ttlSeconds: ttlSeconds)
        let result: EtcdTxnResult
        do {
            result = try await etcd.transaction(
                if: [.createRevision(key: keys.leader, equals: 0)],
                then: [.put(key: keys.leader, value: Array(nodeID.utf8), lease: lease)],
                else: [.get(key: keys.leader)])
        } catch {
            try? await etcd.revoke(lease: lease)
            throw error
        }
        if result.succeeded {
            return .elected(LeaderTerm(lease: lease, createRevision: result.revision, ttl: .seconds(granted),
                                       grantedAt: sentAt))
        }
        try? await etcd.revoke(lease: lease)
        guard let holder = result.found.first ?? nil else {
            // Deleted between the compare and the get: try again at once.
            return .ledBy("", revision: result.revision)
        }
        return .ledBy(String(decoding: holder.value, as: UTF8.self), revision: result.revision)
    }

    /// Returns when the leader key changed after `revision` (deleted, e.g. its lease expired) or
    /// after `timeout`; the revision to watch from next.
    func waitForLeaderChange(after revision: Int64, timeout: Duration) async throws(EtcdError) -> Int64 {
        let result = try await etcd.watch(keys.leader, fromRevision: revision + 1, timeout: timeout)
        return max(revision, result.nextRevision - 1)
    }

    /// Renews the term's lease. False when etcd no longer knows it: the term is over.
    func keepAlive(_ term: LeaderTerm) async throws(EtcdError) -> Bool {
        let sentAt = ContinuousClock.now
        let remaining = try await etcd.keepAlive(lease: term.lease)
        guard remaining > 0 else { return false }
        term.renewed(sentAt: sentAt, remaining: .seconds(remaining))
        return true
    }

    /// Ends the term at once so another node can be elected without waiting for the TTL.
    func resign(_ term: LeaderTerm) async {
        do {
            try await etcd.revoke(lease: term.lease)
        } catch {
            logger.warning("HA: could not revoke the lease on stepping down; it expires by itself", metadata: [
                "lease": "\(term.lease)", "error": "\(error)"])
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

    /// The fence: commits `block` to etcd only if this term still holds the leader key and etcd's
    /// last replicated height is the block's parent. Outcome unknown (etcd unreachable, an answer
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
                    if: [.createRevision(key: keys.leader, equals: term.createRevision), heightCheck],
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

    private func compact(through revision: Int64) {
        let etcd = self.etcd
        let logger = self.logger
        Task.detached {
            do {
                try await etcd.compact(revision: revision)
                logger.debug("HA: compacted etcd's history", metadata: ["revision": "\(revision)"])
            } catch {
                logger.warning("HA: compacting etcd's history failed; it grows until the next attempt",
                               metadata: ["revision": "\(revision)", "error": "\(error)"])
            }
        }
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
        if leader?.createRevision != term.createRevision {
            if let leader {
                return "the leader key is now held by \(String(decoding: leader.value, as: UTF8.self)) (term \(leader.createRevision), ours was \(term.createRevision))"
            }
            return "the leader key is gone: this node's lease (\(term.lease)) expired"
        }
        let height = (result.found.count > 1 ? result.found[1] : nil).map { String(decoding: $0.value, as: UTF8.self) }
        return "etcd's last replicated height is \(height ?? "none"), not \(expectedParent.map(String.init) ?? "none")"
    }
}
