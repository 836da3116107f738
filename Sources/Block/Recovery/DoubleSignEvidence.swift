import Config
import Logging
import Synchronization

/// Two different headers for one height, both validly signed by the genesis proposer: proof that
/// the proposer's key signed twice (SPEC §7). Kept in the store for operators (`GET /evidence`).
public struct DoubleSignEvidence: Sendable, Equatable {
    public var height: UInt64
    /// The header seen first (the stored one, or DA's first at that height).
    public var first: SignedHeader
    public var second: SignedHeader
    /// Where each was seen: "store", "DA height 12", "peer …".
    public var firstSeen: String
    public var secondSeen: String
    /// When this node recorded it (unix ns).
    public var recordedAt: UInt64

    public init(height: UInt64, first: SignedHeader, firstSeen: String, second: SignedHeader, secondSeen: String,
                recordedAt: UInt64) {
        self.height = height
        self.first = first
        self.second = second
        self.firstSeen = firstSeen
        self.secondSeen = secondSeen
        self.recordedAt = recordedAt
    }

    /// The store's encoding (protobuf layout): height=1, first=2, second=3 (encoded signed
    /// headers), first_seen=4, second_seen=5, recorded_at=6.
    public func encoded() -> [UInt8] {
        let a = first.encoded(), b = second.encoded()
        var w = ProtoWriter(capacity: 64 + a.count + b.count + firstSeen.utf8.count + secondSeen.utf8.count)
        w.uint64Field(1, height)
        w.bytesField(2, a)
        w.bytesField(3, b)
        w.stringField(4, firstSeen)
        w.stringField(5, secondSeen)
        w.uint64Field(6, recordedAt)
        return w.bytes
    }

    public init<Bytes: Collection<UInt8>>(decoding bytes: Bytes) throws(WireError) {
        self = try DoubleSignEvidence.decodeWire(bytes, limit: 4 * WireLimits.maxHeaderBytes)
    }
}

extension DoubleSignEvidence: WireDecodable {
    static var wireMessage: WireMessage { .doubleSignEvidence }

    init(reader r: inout ProtoReader) throws(WireError) {
        var height: UInt64 = 0
        var first: [UInt8] = [], second: [UInt8] = []
        var firstSeen = "", secondSeen = ""
        var recordedAt: UInt64 = 0
        var seen = SeenFields()
        while let (field, type) = try r.nextField() {
            switch field {
            case 1: try seen.mark(field, in: r.message); height = try r.uint64(field: 1, type: type)
            case 2: try seen.mark(field, in: r.message); first = try r.bytes(field: 2, type: type)
            case 3: try seen.mark(field, in: r.message); second = try r.bytes(field: 3, type: type)
            case 4: try seen.mark(field, in: r.message); firstSeen = try r.string(field: 4, type: type)
            case 5: try seen.mark(field, in: r.message); secondSeen = try r.string(field: 5, type: type)
            case 6: try seen.mark(field, in: r.message); recordedAt = try r.uint64(field: 6, type: type)
            default: try r.skip(field: field, type: type)
            }
        }
        self.init(height: height, first: try SignedHeader(decoding: first), firstSeen: firstSeen,
                  second: try SignedHeader(decoding: second), secondSeen: secondSeen, recordedAt: recordedAt)
    }
}

/// The node's double-sign evidence, persisted in the block store (its own key range, untouched
/// by rollbacks) so that it survives restarts and recoveries. Everything that sees two different
/// signed headers at one height — the sync pipeline, the DA follower, divergence recovery —
/// records them here; the same pair is stored once.
///
/// Only real evidence is kept: both headers must verify as signed by the genesis proposer, be for
/// the same height and differ. Anything else is refused without a write.
public final class EvidenceLog: Sendable {
    public let store: BlockStore
    public let validator: BlockValidator
    private let logger: Logger
    /// Records held; guarded with the check-then-write of `record` so a pair is counted once.
    private let counter: Mutex<Int>

    /// Opens the log over `store` (counting the records already there).
    public init(store: BlockStore, validator: BlockValidator, logger: Logger) throws(StoreError) {
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
    public var count: Int { counter.withLock { $0 } }

    /// Records `first` and `second` as evidence when they are two different headers for one
    /// height, both validly signed by the proposer. Returns true when the record is new; false
    /// when it was already held or the pair is not evidence.
    @discardableResult
    public func record(first: SignedHeader, firstSeen: String, second: SignedHeader,
                       secondSeen: String) throws(StoreError) -> Bool {
        let height = first.header.height
        guard second.header.height == height else { return false }
        let a = first.header.hash, b = second.header.hash
        guard a != b else { return false }
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
            // Evidence must outlive a crash even in the middle of a catch-up.
            try store.write(batch, .logged)
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
    public func all(limit: Int = 1000) throws(StoreError) -> [DoubleSignEvidence] {
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
