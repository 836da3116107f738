/// `evnode.v1.Signer`: who signed, as carried next to a signature.
package struct Signer: Sendable, Hashable {
    /// SHA-256 of the raw public key.
    package var address: [UInt8]
    /// `08 01 12 20` ‖ raw 32-byte Ed25519 public key (a libp2p-style key protobuf).
    package var pubKey: [UInt8]

    package init(address: [UInt8], pubKey: [UInt8]) {
        self.address = address
        self.pubKey = pubKey
    }

    /// The signer for a raw 32-byte Ed25519 public key.
    package init(rawPublicKey raw: [UInt8]) {
        address = Hashing.sha256(raw)
        pubKey = Signer.protoKeyPrefix + raw
    }

    /// Prefix of `pubKey`: field 1 (key type) = 1 (Ed25519), field 2 (data) of 32 bytes.
    package static let protoKeyPrefix: [UInt8] = [0x08, 0x01, 0x12, 0x20]

    /// The raw 32-byte key inside `pubKey`, or nil when `pubKey` is not an Ed25519 key protobuf.
    package var rawPublicKey: [UInt8]? {
        guard pubKey.count == 36, pubKey[0] == 0x08, pubKey[1] == 0x01, pubKey[2] == 0x12,
              pubKey[3] == 0x20 else { return nil }
        return Array(pubKey[4...])
    }

    var encodedSize: Int { WireSize.bytesField(address.count) + WireSize.bytesField(pubKey.count) }

    func encode(to w: inout ProtoWriter) {
        w.bytesField(1, address)
        w.bytesField(2, pubKey)
    }

    package func encoded() -> [UInt8] {
        var w = ProtoWriter(capacity: encodedSize)
        encode(to: &w)
        return w.bytes
    }

    package init<Bytes: Collection<UInt8>>(decoding bytes: Bytes,
                                          limit: Int = WireLimits.maxHeaderBytes) throws(WireError) {
        self = try Signer.decodeWire(bytes, limit: limit)
    }
}

extension Signer: WireDecodable {
    static var wireMessage: WireMessage { .signer }

    init(reader r: inout ProtoReader) throws(WireError) {
        self.init(address: [], pubKey: [])
        var seen = SeenFields()
        while let (field, type) = try r.nextField() {
            switch field {
            case 1: try seen.mark(field, in: r.message); address = try r.bytes(field: 1, type: type)
            case 2: try seen.mark(field, in: r.message); pubKey = try r.bytes(field: 2, type: type)
            default: try r.skip(field: field, type: type)
            }
        }
    }

    static func decodeNested(_ r: inout ProtoReader, field: Int, type: UInt8) throws(WireError) -> Signer {
        try r.message(field: field, type: type, as: .signer) { (s) throws(WireError) in try Signer(reader: &s) }
    }
}

/// `evnode.v1.SignedHeader`: a header with the proposer's signature over `header.encoded()`.
/// This is what P2P gossips and what the store keeps per height.
package struct SignedHeader: Sendable, Hashable {
    package var header: Header
    package var signature: [UInt8]
    package var signer: Signer

    package init(header: Header, signature: [UInt8], signer: Signer) {
        self.header = header
        self.signature = signature
        self.signer = signer
    }

    package var height: UInt64 { header.height }

    var encodedSize: Int {
        WireSize.messageField(header.encodedSize) + WireSize.bytesField(signature.count)
            + signerFieldSize(signer)
    }

    func encode(to w: inout ProtoWriter) {
        w.messageField(1, size: header.encodedSize) { header.encode(to: &$0) }
        w.bytesField(2, signature)
        encodeSignerField(signer, to: &w)
    }

    /// The encoding that a `DAHeaderEnvelope`'s `envelope_signature` signs.
    package func encoded() -> [UInt8] {
        var w = ProtoWriter(capacity: encodedSize)
        encode(to: &w)
        return w.bytes
    }

    /// The encoding plus the range of the embedded header's bytes within it (field 1 comes
    /// first), so the header hash can be taken without encoding the header a second time.
    package func encodedWithHeaderRange() -> (bytes: [UInt8], header: Range<Int>) {
        let headerSize = header.encodedSize
        let start = 1 + WireSize.varint(UInt64(headerSize))
        return (encoded(), start..<(start + headerSize))
    }

    package init<Bytes: Collection<UInt8>>(decoding bytes: Bytes,
                                          limit: Int = WireLimits.maxHeaderBytes) throws(WireError) {
        self = try SignedHeader.decodeWire(bytes, limit: limit)
    }
}

/// A present but empty Signer still encodes as `1a 00`; an all-default one is omitted, as
/// proto3 omits unset message fields (we never produce a signer without an address).
@inline(__always)
func signerFieldSize(_ signer: Signer) -> Int {
    let size = signer.encodedSize
    return size == 0 ? 0 : WireSize.messageField(size)
}

@inline(__always)
func encodeSignerField(_ signer: Signer, to w: inout ProtoWriter) {
    let size = signer.encodedSize
    guard size != 0 else { return }
    w.messageField(3, size: size) { signer.encode(to: &$0) }
}

extension SignedHeader: WireDecodable {
    static var wireMessage: WireMessage { .signedHeader }

    init(reader r: inout ProtoReader) throws(WireError) {
        let fields = try SignedMessageFields.decode(&r, body: .header, empty: Header.empty, envelope: false) {
            (s) throws(WireError) in try Header(reader: &s)
        }
        self.init(header: fields.body, signature: fields.signature, signer: fields.signer)
    }
}

/// `evnode.v1.DAHeaderEnvelope`: the header blob posted to DA. `envelopeSignature` is the
/// proposer's signature over the encoded `SignedHeader` (header, signature, signer).
package struct DAHeaderEnvelope: Sendable, Hashable {
    package var header: Header
    package var signature: [UInt8]
    package var signer: Signer
    package var envelopeSignature: [UInt8]

    package init(header: Header, signature: [UInt8], signer: Signer, envelopeSignature: [UInt8]) {
        self.header = header
        self.signature = signature
        self.signer = signer
        self.envelopeSignature = envelopeSignature
    }

    package init(signedHeader: SignedHeader, envelopeSignature: [UInt8]) {
        self.init(header: signedHeader.header, signature: signedHeader.signature, signer: signedHeader.signer,
                  envelopeSignature: envelopeSignature)
    }

    /// The signed header inside the envelope (what `envelopeSignature` covers).
    package var signedHeader: SignedHeader {
        SignedHeader(header: header, signature: signature, signer: signer)
    }

    var encodedSize: Int {
        WireSize.messageField(header.encodedSize) + WireSize.bytesField(signature.count)
            + signerFieldSize(signer) + WireSize.bytesField(envelopeSignature.count)
    }

    package func encoded() -> [UInt8] {
        var w = ProtoWriter(capacity: encodedSize)
        w.messageField(1, size: header.encodedSize) { header.encode(to: &$0) }
        w.bytesField(2, signature)
        encodeSignerField(signer, to: &w)
        w.bytesField(4, envelopeSignature)
        return w.bytes
    }

    package init<Bytes: Collection<UInt8>>(decoding bytes: Bytes,
                                          limit: Int = WireLimits.maxHeaderBytes) throws(WireError) {
        self = try DAHeaderEnvelope.decodeWire(bytes, limit: limit)
    }
}

extension DAHeaderEnvelope: WireDecodable {
    static var wireMessage: WireMessage { .daHeaderEnvelope }

    init(reader r: inout ProtoReader) throws(WireError) {
        let fields = try SignedMessageFields.decode(&r, body: .header, empty: Header.empty, envelope: true) {
            (s) throws(WireError) in try Header(reader: &s)
        }
        self.init(header: fields.body, signature: fields.signature, signer: fields.signer,
                  envelopeSignature: fields.envelopeSignature)
    }
}

/// The fields the signed messages share: 1 the signed message, 2 its signature, 3 the signer,
/// and for `DAHeaderEnvelope` 4 the envelope signature (elsewhere field 4 is unknown and skipped).
struct SignedMessageFields<Body> {
    var body: Body
    var signature: [UInt8] = []
    var signer = Signer(address: [], pubKey: [])
    var envelopeSignature: [UInt8] = []

    static func decode(_ r: inout ProtoReader, body nested: WireMessage, empty: Body, envelope: Bool,
                       _ decodeBody: (inout ProtoReader) throws(WireError) -> Body) throws(WireError) -> Self {
        var fields = Self(body: empty)
        var seen = SeenFields()
        while let (field, type) = try r.nextField() {
            switch field {
            case 1:
                try seen.mark(field, in: r.message)
                fields.body = try r.message(field: 1, type: type, as: nested, decodeBody)
            case 2: try seen.mark(field, in: r.message); fields.signature = try r.bytes(field: 2, type: type)
            case 3: try seen.mark(field, in: r.message); fields.signer = try Signer.decodeNested(&r, field: 3, type: type)
            case 4 where envelope:
                try seen.mark(field, in: r.message); fields.envelopeSignature = try r.bytes(field: 4, type: type)
            default: try r.skip(field: field, type: type)
            }
        }
        return fields
    }
}
