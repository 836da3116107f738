/// Two different headers for one height, both validly signed by the genesis proposer: proof that
/// the proposer's key signed twice (SPEC §7). Kept in the store for operators (`GET /evidence`).
package struct DoubleSignEvidence: Sendable, Equatable {
    package var height: UInt64
    /// The header seen first (the stored one, or DA's first at that height).
    package var first: SignedHeader
    package var second: SignedHeader
    /// Where each was seen: "store", "DA height 12", "peer …".
    package var firstSeen: String
    package var secondSeen: String
    /// When this node recorded it (unix ns).
    package var recordedAt: UInt64

    package init(height: UInt64, first: SignedHeader, firstSeen: String, second: SignedHeader, secondSeen: String,
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
    package func encoded() -> [UInt8] {
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

    package init<Bytes: Collection<UInt8>>(decoding bytes: Bytes) throws(WireError) {
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
