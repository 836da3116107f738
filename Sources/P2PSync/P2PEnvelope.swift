import Libp2p
/// ev-node's P2P payloads (types/p2p_envelope.go): `P2PSignedHeader` is `SignedHeader`'s fields
/// 1–3 plus `da_height_hint = 4`; `P2PData` is `Data`'s fields 1–2 plus `da_height_hint = 3`.
/// The hint is always written, even 0. The Block module encodes and hashes the rest, so the
/// envelope is the canonical encoding with the hint field appended, and decoding takes the hint
/// out before the Block module sees the bytes.
enum P2PEnvelope {
    static let headerHintField: UInt64 = 4
    static let dataHintField: UInt64 = 3

    static func header(encodedSignedHeader: [UInt8], daHeightHint: UInt64) -> [UInt8] {
        var out = encodedSignedHeader
        Varint.append(headerHintField << 3, to: &out)
        Varint.append(daHeightHint, to: &out)
        return out
    }

    static func data(encodedData: [UInt8], daHeightHint: UInt64) -> [UInt8] {
        var out = encodedData
        Varint.append(dataHintField << 3, to: &out)
        Varint.append(daHeightHint, to: &out)
        return out
    }

    /// The envelope without its hint field (what the Block module decodes), and the hint.
    static func strip(_ bytes: [UInt8], hintField: UInt64) throws(EnvelopeError) -> (body: [UInt8], hint: UInt64?) {
        var body: [UInt8] = []
        body.reserveCapacity(bytes.count)
        var hint: UInt64?
        var i = 0
        while i < bytes.count {
            let start = i
            guard let tag = Varint.read(bytes, at: &i) else { throw .malformed("bad field tag at byte \(start)") }
            let field = tag >> 3
            let wire = tag & 7
            switch wire {
            case 0:
                guard let v = Varint.read(bytes, at: &i) else { throw .malformed("bad varint in field \(field)") }
                if field == hintField {
                    hint = v
                    continue
                }
            case 2:
                guard let n = Varint.read(bytes, at: &i), n <= UInt64(bytes.count - i) else {
                    throw .malformed("field \(field) runs past the end")
                }
                i += Int(n)
            case 1:
                guard i + 8 <= bytes.count else { throw .malformed("field \(field) runs past the end") }
                i += 8
            case 5:
                guard i + 4 <= bytes.count else { throw .malformed("field \(field) runs past the end") }
                i += 4
            default:
                throw .malformed("wire type \(wire) in field \(field)")
            }
            if field == hintField { throw .malformed("da_height_hint (field \(field)) is not a varint") }
            body += bytes[start..<i]
        }
        return (body, hint)
    }
}

enum EnvelopeError: Error, CustomStringConvertible {
    case malformed(String)

    var description: String {
        switch self {
        case .malformed(let what): return "P2P envelope does not decode: \(what)"
        }
    }
}
