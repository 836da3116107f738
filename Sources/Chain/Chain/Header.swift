/// `evnode.v1.Version`: block and app protocol versions.
package struct Version: Sendable, Hashable {
    package var block: UInt64
    package var app: UInt64

    package init(block: UInt64 = 0, app: UInt64 = 0) {
        self.block = block
        self.app = app
    }

    var encodedSize: Int { WireSize.uint64Field(block) + WireSize.uint64Field(app) }

    func encode(to w: inout ProtoWriter) {
        w.uint64Field(1, block)
        w.uint64Field(2, app)
    }
}

extension Version: WireDecodable {
    static var wireMessage: WireMessage { .version }

    init(reader r: inout ProtoReader) throws(WireError) {
        self.init()
        var seen = SeenFields()
        while let (field, type) = try r.nextField() {
            switch field {
            case 1: try seen.mark(1, in: r.message); block = try r.uint64(field: 1, type: type)
            case 2: try seen.mark(2, in: r.message); app = try r.uint64(field: 2, type: type)
            default: try r.skip(field: field, type: type)
            }
        }
    }
}

/// `evnode.v1.Header`: what the proposer signs for each block (SPEC §3).
///
/// Its hash is SHA-256 of *our canonical encoding* (fields in number order, defaults omitted,
/// `version` always present). For every header made by an ev-node-compatible encoder this is
/// exactly the bytes that were signed; fields unknown to this schema are dropped on decoding
/// and so do not take part in the hash or the signature check.
package struct Header: Sendable, Hashable {
    package var version: Version
    package var height: UInt64
    /// Unix nanoseconds.
    package var time: UInt64
    /// Hash of the previous block's header; empty for the chain's first block.
    package var lastHeaderHash: [UInt8]
    /// SHA-256(0x00 ‖ encoded `Data` holding only the txs), see `BlockData.dataHash`.
    package var dataHash: [UInt8]
    /// State root *before* this block's txs.
    package var appHash: [UInt8]
    /// SHA-256 of the proposer's raw Ed25519 public key.
    package var proposerAddress: [UInt8]
    package var validatorHash: [UInt8]
    package var chainID: String

    package init(version: Version = Version(), height: UInt64, time: UInt64, lastHeaderHash: [UInt8],
                dataHash: [UInt8], appHash: [UInt8], proposerAddress: [UInt8],
                validatorHash: [UInt8] = [], chainID: String) {
        self.version = version
        self.height = height
        self.time = time
        self.lastHeaderHash = lastHeaderHash
        self.dataHash = dataHash
        self.appHash = appHash
        self.proposerAddress = proposerAddress
        self.validatorHash = validatorHash
        self.chainID = chainID
    }

    var encodedSize: Int {
        WireSize.messageField(version.encodedSize)
            + WireSize.uint64Field(height)
            + WireSize.uint64Field(time)
            + WireSize.bytesField(lastHeaderHash.count)
            + WireSize.bytesField(dataHash.count)
            + WireSize.bytesField(appHash.count)
            + WireSize.bytesField(proposerAddress.count)
            + WireSize.bytesField(validatorHash.count)
            + WireSize.bytesField(chainID.utf8.count)
    }

    func encode(to w: inout ProtoWriter) {
        // Always present, even when empty (`0a 00`), as ev-node encodes it.
        w.messageField(1, size: version.encodedSize) { version.encode(to: &$0) }
        w.uint64Field(2, height)
        w.uint64Field(3, time)
        w.bytesField(4, lastHeaderHash)
        w.bytesField(6, dataHash)
        w.bytesField(8, appHash)
        w.bytesField(10, proposerAddress)
        w.bytesField(11, validatorHash)
        w.stringField(12, chainID)
    }

    /// The canonical encoding: the bytes the proposer signs and the header hash is taken of.
    package func encoded() -> [UInt8] {
        var w = ProtoWriter(capacity: encodedSize)
        encode(to: &w)
        return w.bytes
    }

    /// SHA-256 of `encoded()`.
    package var hash: [UInt8] { Hashing.sha256(encoded()) }

    package init<Bytes: Collection<UInt8>>(decoding bytes: Bytes,
                                          limit: Int = WireLimits.maxHeaderBytes) throws(WireError) {
        self = try Header.decodeWire(bytes, limit: limit)
    }
}

extension Header: WireDecodable {
    static var wireMessage: WireMessage { .header }

    /// All fields at their proto3 defaults: what a decoder starts from.
    static let empty = Header(height: 0, time: 0, lastHeaderHash: [], dataHash: [], appHash: [], proposerAddress: [],
                              chainID: "")

    init(reader r: inout ProtoReader) throws(WireError) {
        self = .empty
        var seen = SeenFields()
        while let (field, type) = try r.nextField() {
            switch field {
            case 1:
                try seen.mark(field, in: r.message)
                version = try r.message(field: 1, type: type, as: .version) { (s) throws(WireError) in
                    try Version(reader: &s)
                }
            case 2: try seen.mark(field, in: r.message); height = try r.uint64(field: 2, type: type)
            case 3: try seen.mark(field, in: r.message); time = try r.uint64(field: 3, type: type)
            case 4: try seen.mark(field, in: r.message); lastHeaderHash = try r.bytes(field: 4, type: type)
            case 6: try seen.mark(field, in: r.message); dataHash = try r.bytes(field: 6, type: type)
            case 8: try seen.mark(field, in: r.message); appHash = try r.bytes(field: 8, type: type)
            case 10: try seen.mark(field, in: r.message); proposerAddress = try r.bytes(field: 10, type: type)
            case 11: try seen.mark(field, in: r.message); validatorHash = try r.bytes(field: 11, type: type)
            case 12: try seen.mark(field, in: r.message); chainID = try r.string(field: 12, type: type)
            default: try r.skip(field: field, type: type)
            }
        }
    }
}
