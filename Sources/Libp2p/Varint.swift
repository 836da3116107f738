import NIOCore

/// Unsigned LEB128 varints, as multistream-select, multihash, multiaddr and every
/// length-prefixed libp2p message use them.
package enum Varint {
    package static func encode(_ value: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        append(value, to: &out)
        return out
    }

    package static func append(_ value: UInt64, to out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }

    package static func write(_ value: UInt64, to buffer: inout ByteBuffer) {
        var v = value
        while v >= 0x80 {
            buffer.writeInteger(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        buffer.writeInteger(UInt8(v))
    }

    package enum Parse: Equatable {
        case value(UInt64, length: Int)
        /// More bytes are needed.
        case incomplete
        /// Longer than 9 bytes (the multiformats limit) or overflowing 63 bits.
        case invalid
    }

    /// Parses a varint at the start of `bytes`.
    package static func parse<C: Collection>(_ bytes: C) -> Parse where C.Element == UInt8 {
        var value: UInt64 = 0
        var shift: UInt64 = 0
        var length = 0
        for byte in bytes {
            length += 1
            if length > 9 { return .invalid }
            value |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 {
                // Minimal encoding only (multiformats unsigned-varint): no trailing zero groups.
                if byte == 0 && length > 1 { return .invalid }
                return .value(value, length: length)
            }
            shift += 7
        }
        return .incomplete
    }

    /// Reads a varint from a byte array at `offset`, advancing it; nil when malformed or cut.
    package static func read(_ bytes: [UInt8], at offset: inout Int) -> UInt64? {
        guard offset <= bytes.count else { return nil }
        guard case .value(let v, let n) = parse(bytes[offset...]) else { return nil }
        offset += n
        return v
    }
}
