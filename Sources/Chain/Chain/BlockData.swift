/// `evnode.v1.Metadata`: ties a `Data` to its block.
package struct Metadata: Sendable, Hashable {
    package var chainID: String
    package var height: UInt64
    /// Unix nanoseconds, equal to the header's time.
    package var time: UInt64
    /// `fullHash` of the previous block's data; empty for the chain's first block.
    package var lastDataHash: [UInt8]

    package init(chainID: String, height: UInt64, time: UInt64, lastDataHash: [UInt8]) {
        self.chainID = chainID
        self.height = height
        self.time = time
        self.lastDataHash = lastDataHash
    }

    var encodedSize: Int {
        WireSize.bytesField(chainID.utf8.count) + WireSize.uint64Field(height) + WireSize.uint64Field(time)
            + WireSize.bytesField(lastDataHash.count)
    }

    func encode(to w: inout ProtoWriter) {
        w.stringField(1, chainID)
        w.uint64Field(2, height)
        w.uint64Field(3, time)
        w.bytesField(4, lastDataHash)
    }

    package func encoded() -> [UInt8] {
        var w = ProtoWriter(capacity: encodedSize)
        encode(to: &w)
        return w.bytes
    }
}

extension Metadata: WireDecodable {
    static var wireMessage: WireMessage { .metadata }

    init(reader r: inout ProtoReader) throws(WireError) {
        self.init(chainID: "", height: 0, time: 0, lastDataHash: [])
        var seen = SeenFields()
        while let (field, type) = try r.nextField() {
            switch field {
            case 1: try seen.mark(field, in: r.message); chainID = try r.string(field: 1, type: type)
            case 2: try seen.mark(field, in: r.message); height = try r.uint64(field: 2, type: type)
            case 3: try seen.mark(field, in: r.message); time = try r.uint64(field: 3, type: type)
            case 4: try seen.mark(field, in: r.message); lastDataHash = try r.bytes(field: 4, type: type)
            default: try r.skip(field: field, type: type)
            }
        }
    }
}

/// The wire message `evnode.v1.Data` (named `BlockData` because `Data` is Foundation's):
/// a block's transactions, with optional metadata binding them to a height.
package struct BlockData: Sendable, Hashable {
    package var metadata: Metadata?
    package var txs: [[UInt8]]

    package init(metadata: Metadata?, txs: [[UInt8]]) {
        self.metadata = metadata
        self.txs = txs
    }

    /// SHA-256(0x00) – the `dataHash` of a block without txs.
    package static let emptyDataHash: [UInt8] = Hashing.sha256([0])

    /// The data of a block whose header says it has no txs, rebuilt from the header (such data is
    /// never posted to DA). `lastDataHash` is the `fullHash` of the previous block's data.
    package static func empty(for header: Header, lastDataHash: [UInt8]) -> BlockData {
        BlockData(metadata: Metadata(chainID: header.chainID, height: header.height, time: header.time,
                                     lastDataHash: lastDataHash),
                  txs: [])
    }

    private var txsEncodedSize: Int {
        var size = 0
        for tx in txs { size += WireSize.repeatedElement(tx.count) }
        return size
    }

    private var encodedSize: Int {
        txsEncodedSize + (metadata.map { WireSize.messageField($0.encodedSize) } ?? 0)
    }

    private func encode(to w: inout ProtoWriter, includeMetadata: Bool) {
        if includeMetadata, let metadata {
            w.messageField(1, size: metadata.encodedSize) { metadata.encode(to: &$0) }
        }
        for tx in txs { w.repeatedBytesElement(2, tx) }
    }

    /// The encoding posted to DA and signed in `SignedData` (metadata included when present).
    package func encoded() -> [UInt8] {
        var w = ProtoWriter(capacity: encodedSize)
        encode(to: &w, includeMetadata: true)
        return w.bytes
    }

    /// Total size of the txs in bytes (not counting framing).
    package var txBytes: Int { txs.reduce(0) { $0 + $1.count } }

    /// SHA-256(0x00 ‖ encoded `Data` holding only the txs): the header's `data_hash`.
    package var dataHash: [UInt8] {
        var w = ProtoWriter(prefix: 0, capacity: txsEncodedSize)
        encode(to: &w, includeMetadata: false)
        return Hashing.sha256(w.bytes)
    }

    /// SHA-256(0x00 ‖ encoded `Data` with metadata): chains to the next block's
    /// `Metadata.lastDataHash`.
    package var fullHash: [UInt8] {
        var w = ProtoWriter(prefix: 0, capacity: encodedSize)
        encode(to: &w, includeMetadata: true)
        return Hashing.sha256(w.bytes)
    }

    /// `dataHash` of a list of txs, without building a `BlockData`.
    package static func dataHash(of txs: [[UInt8]]) -> [UInt8] {
        BlockData(metadata: nil, txs: txs).dataHash
    }

    package init<Bytes: Collection<UInt8>>(decoding bytes: Bytes,
                                          limit: Int = WireLimits.maxBlockBytes) throws(WireError) {
        self = try BlockData.decodeWire(bytes, limit: limit)
    }

    package var wireSize: Int { encodedSize }

    func encodeWire(to w: inout ProtoWriter) { encode(to: &w, includeMetadata: true) }
}

extension BlockData: WireDecodable {
    static var wireMessage: WireMessage { .data }

    init(reader r: inout ProtoReader) throws(WireError) {
        var metadata: Metadata?
        var txs: [[UInt8]] = []
        var seen = SeenFields()
        while let (field, type) = try r.nextField() {
            switch field {
            case 1:
                try seen.mark(field, in: r.message)
                metadata = try r.message(field: 1, type: type, as: .metadata) { (s) throws(WireError) in
                    try Metadata(reader: &s)
                }
            case 2:
                txs.append(try r.bytes(field: 2, type: type))
            default: try r.skip(field: field, type: type)
            }
        }
        self.init(metadata: metadata, txs: txs)
    }
}

/// `evnode.v1.SignedData`: the data blob posted to DA, signed by the proposer over
/// `data.encoded()`.
package struct SignedData: Sendable, Hashable {
    package var data: BlockData
    package var signature: [UInt8]
    package var signer: Signer

    package init(data: BlockData, signature: [UInt8], signer: Signer) {
        self.data = data
        self.signature = signature
        self.signer = signer
    }

    package func encoded() -> [UInt8] {
        let dataSize = data.wireSize
        var w = ProtoWriter(capacity: WireSize.messageField(dataSize) + WireSize.bytesField(signature.count)
            + signerFieldSize(signer))
        w.messageField(1, size: dataSize) { data.encodeWire(to: &$0) }
        w.bytesField(2, signature)
        encodeSignerField(signer, to: &w)
        return w.bytes
    }

    package init<Bytes: Collection<UInt8>>(decoding bytes: Bytes,
                                          limit: Int = WireLimits.maxBlockBytes) throws(WireError) {
        self = try SignedData.decodeWire(bytes, limit: limit)
    }
}

extension SignedData: WireDecodable {
    static var wireMessage: WireMessage { .signedData }

    init(reader r: inout ProtoReader) throws(WireError) {
        let fields = try SignedMessageFields.decode(&r, body: .data, empty: BlockData(metadata: nil, txs: []),
                                                    envelope: false) { (s) throws(WireError) in
            try BlockData(reader: &s)
        }
        self.init(data: fields.body, signature: fields.signature, signer: fields.signer)
    }
}
