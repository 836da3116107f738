/// The wire messages of SPEC §3 (plus the store's own `State`), named in decoding errors.
package enum WireMessage: String, Sendable, Hashable {
    case version = "Version"
    case header = "Header"
    case signer = "Signer"
    case signedHeader = "SignedHeader"
    case daHeaderEnvelope = "DAHeaderEnvelope"
    case metadata = "Metadata"
    case data = "Data"
    case signedData = "SignedData"
    case state = "State"
    /// The store's double-sign evidence record (not a wire message of ev-node).
    case doubleSignEvidence = "DoubleSignEvidence"
}

/// Why bytes could not be decoded as a wire message. Every case names the message and, where
/// one is involved, the field number, so a bad blob or frame can be reported precisely.
///
/// Protobuf has no end marker: bytes after the last field are read as further fields. Garbage
/// appended to a valid encoding therefore surfaces as `invalidTag`, `truncated`,
/// `lengthOverflow`, `wrongWireType` or `duplicateField` — always an error, never a silent
/// success, except when the extra bytes happen to form a well-formed field with an unknown
/// number, which is skipped for forward compatibility.
package enum WireError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The input is larger than the limit for this message kind.
    case tooLarge(message: WireMessage, size: Int, limit: Int)
    /// The input ends inside a tag or a field value. `field` is 0 when it ends inside a tag.
    case truncated(message: WireMessage, field: Int)
    /// A varint longer than 10 bytes or above 2^64-1.
    case varintOverflow(message: WireMessage, field: Int)
    /// A length prefix that runs past the end of the enclosing message.
    case lengthOverflow(message: WireMessage, field: Int, length: UInt64, available: Int)
    /// A known field with a wire type other than the schema's.
    case wrongWireType(message: WireMessage, field: Int, expected: UInt8, actual: UInt8)
    /// A tag with field number 0, a field number above 2^29-1, or a group/reserved wire type.
    case invalidTag(message: WireMessage, offset: Int, tag: UInt64)
    /// A singular known field that occurs twice. Our encoder never emits this, and accepting it
    /// would give one message several encodings (and several hashes).
    case duplicateField(message: WireMessage, field: Int)
    /// A `string` field that is not valid UTF-8.
    case invalidUTF8(message: WireMessage, field: Int)

    package var message: WireMessage {
        switch self {
        case .tooLarge(let m, _, _), .truncated(let m, _), .varintOverflow(let m, _),
             .lengthOverflow(let m, _, _, _), .wrongWireType(let m, _, _, _), .invalidTag(let m, _, _),
             .duplicateField(let m, _), .invalidUTF8(let m, _):
            return m
        }
    }

    package var description: String {
        switch self {
        case .tooLarge(let m, let size, let limit):
            return "\(m.rawValue): \(size) bytes is over the limit of \(limit)"
        case .truncated(let m, let field):
            return field == 0 ? "\(m.rawValue): input ends inside a field tag"
                : "\(m.rawValue): input ends inside field \(field)"
        case .varintOverflow(let m, let field):
            return "\(m.rawValue): varint overflow in field \(field == 0 ? "tag" : String(field))"
        case .lengthOverflow(let m, let field, let length, let available):
            return "\(m.rawValue): field \(field) claims \(length) bytes but only \(available) remain"
        case .wrongWireType(let m, let field, let expected, let actual):
            return "\(m.rawValue): field \(field) has wire type \(actual), expected \(expected)"
        case .invalidTag(let m, let offset, let tag):
            return "\(m.rawValue): invalid field tag \(tag) at offset \(offset)"
        case .duplicateField(let m, let field):
            return "\(m.rawValue): field \(field) occurs more than once"
        case .invalidUTF8(let m, let field):
            return "\(m.rawValue): field \(field) is not valid UTF-8"
        }
    }
}

/// Size bounds applied before decoding, so hostile input cannot make us allocate without limit.
package enum WireLimits {
    /// Upper bound of an encoded `Data` / `SignedData` (and of any single block message).
    package static let maxBlockBytes = 8 << 20
    /// Upper bound of an encoded `Header`, `SignedHeader` or `DAHeaderEnvelope`. Real headers
    /// are about 300 bytes; the slack allows unknown future fields.
    package static let maxHeaderBytes = 64 << 10
    /// Upper bound of the txs of one block as the producer fills it (leaves room for metadata
    /// and the `SignedData` envelope inside `maxBlockBytes`).
    package static let maxTxBytesPerBlock = maxBlockBytes - (64 << 10)
}
