import Primitives
import Chain
import Logging
import Synchronization

/// The node's double-sign evidence, persisted in the block store (its own key range, untouched
/// by rollbacks) so that it survives restarts and recoveries. Everything that sees two different
/// signed headers at one height — the sync pipeline, the DA follower, divergence recovery —
/// records them here; the same pair is stored once.
///
/// Only real evidence is kept: both headers must verify as signed by the genesis proposer, be for
/// the same height and differ. Anything else is refused without a write.
package final class EvidenceLog: Sendable {
    package let store: BlockStore
    package let validator: BlockValidator
    private let logger: Logger
    /// Records held; guarded with the check-then-write of `record` so a pair is counted once.
    private let counter: Mutex<Int>

    /// Opens the log over `store` (counting the records already there).
    package init(store: BlockStore, validator: BlockValidator, logger: Logger) throws(StoreError) {
        self.store = store
        self.validator = validator
        self.logger = logger
        let lower = [StoreKeys.evidencePrefix]
        let count = try store.db.withIterator(lower: lower, upper: [StoreKeys.evidencePrefix + 1]) {
            (it) throws(StoreError) -> Int in
            var n = 0
            it.seekToFirst()
            while it.isValid {
                n += 1
                it.next()
            }
            return n
        }
        counter = Mutex(count)
    }

    /// Records held.
    package var count: Int { counter.withLock { $0 } }

    /// Records `first` and `second` as evidence when they are two different headers for one
    /// height, both validly signed by the proposer. Returns true when the record is new; false
    /// when it was already held or the pair is not evidence.
    @discardableResult
    package func record(first: SignedHeader, firstSeen: String, second: SignedHeader,
                       secondSeen: String) throws(StoreError) -> Bool {
        let height = first.header.height
        guard second.header.height == height else { return false }
        let a = first.header.hash, b = second.header.hash
        guard a != b else { return false }
        // A double sign is one key signing twice, and only a key the chain named counts: headers
        // of two keys at one height are a block and a stranger's (or a rotated-away key's) header.
        let proposer = first.header.proposerAddress
        guard second.header.proposerAddress == proposer,
              proposer == validator.proposerAddress || store.namedProposers.contains(proposer) else { return false }
        let key = StoreKeys.evidence(height: height, a, b)
        // The common case is a pair already held (a peer keeps gossiping the other branch):
        // answer it with one read, before verifying any signature.
        if try store.db.get(key) != nil { return false }
        guard (try? validator.verifySignature(first)) != nil, (try? validator.verifySignature(second)) != nil else {
            return false
        }
        let evidence = DoubleSignEvidence(height: height, first: first, firstSeen: firstSeen, second: second,
                                          secondSeen: secondSeen, recordedAt: BlockValidator.currentTime())
        let added = try counter.withLock { (n) throws(StoreError) -> Bool in
            if try store.db.get(key) != nil { return false }
            let batch = WriteBatch()
            batch.put(key, evidence.encoded())
            // In the WAL: evidence outlives a crash of the process.
            try store.db.write(batch, sync: false)
            n += 1
            return true
        }
        if added {
            logger.error("double-sign evidence: the proposer signed two different headers at one height", metadata: [
                "height": "\(height)", "first": "\(Hex.encode(a))", "first_seen": "\(firstSeen)",
                "second": "\(Hex.encode(b))", "second_seen": "\(secondSeen)"])
        }
        return added
    }

    /// The records in height order, at most `limit`.
    package func all(limit: Int = 1000) throws(StoreError) -> [DoubleSignEvidence] {
        try store.db.withIterator(lower: [StoreKeys.evidencePrefix], upper: [StoreKeys.evidencePrefix + 1]) {
            (it) throws(StoreError) -> [DoubleSignEvidence] in
            var out: [DoubleSignEvidence] = []
            it.seekToFirst()
            while it.isValid, out.count < limit {
                do throws(WireError) {
                    out.append(try DoubleSignEvidence(decoding: it.value))
                } catch {
                    throw .corrupted(what: "double-sign evidence record", reason: error.description)
                }
                it.next()
            }
            return out
        }
    }
}
