/// Reads protobuf fields from a borrowed buffer. Nested messages are read by sub-readers over a
/// range of the same buffer, so decoding copies bytes only into the resulting field values.
///
/// Every failure is a `WireError` naming the message being read; nothing here traps on bad
/// input (all arithmetic is checked against the remaining length before use).
struct ProtoReader {
    private let base: UnsafeBufferPointer<UInt8>
    private(set) var position: Int
    private let end: Int
    let message: WireMessage

    init(_ buffer: UnsafeBufferPointer<UInt8>, message: WireMessage) {
        base = buffer
        position = 0
        end = buffer.count
        self.message = message
    }

    private init(base: UnsafeBufferPointer<UInt8>, range: Range<Int>, message: WireMessage) {
        self.base = base
        position = range.lowerBound
        end = range.upperBound
        self.message = message
    }

    var isAtEnd: Bool { position >= end }

    /// The next field's number and wire type, or nil at the end of the message.
    @inline(__always)
    mutating func nextField() throws(WireError) -> (field: Int, type: UInt8)? {
        guard position < end else { return nil }
        let offset = position
        let key = try varint(field: 0)
        let type = UInt8(key & 7)
        let field = key >> 3
        // Field 0 is invalid; groups (3, 4) are not part of proto3; 6 and 7 do not exist.
        guard field != 0, field <= 0x1FFF_FFFF, type == 0 || type == 1 || type == 2 || type == 5 else {
            throw .invalidTag(message: message, offset: offset, tag: key)
        }
        return (Int(field), type)
    }

    @inline(__always)
    mutating func varint(field: Int) throws(WireError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard position < end else { throw .truncated(message: message, field: field) }
            let byte = base[position]
            position += 1
            if shift == 63 && byte > 1 { throw .varintOverflow(message: message, field: field) }
            result |= UInt64(byte & 0x7f) << shift
            if byte < 0x80 { return result }
            shift += 7
        }
    }

    /// Reads a length prefix and returns the absolute range of the value.
    @inline(__always)
    mutating func lengthDelimited(field: Int) throws(WireError) -> Range<Int> {
        let length = try varint(field: field)
        let available = end - position
        guard length <= UInt64(available) else {
            throw .lengthOverflow(message: message, field: field, length: length, available: available)
        }
        let start = position
        position += Int(length)
        return start..<position
    }

    @inline(__always)
    func expect(_ type: UInt8, _ wanted: WireType, field: Int) throws(WireError) {
        guard type == wanted.rawValue else {
            throw .wrongWireType(message: message, field: field, expected: wanted.rawValue, actual: type)
        }
    }

    mutating func uint64(field: Int, type: UInt8) throws(WireError) -> UInt64 {
        try expect(type, .varint, field: field)
        return try varint(field: field)
    }

    mutating func bytes(field: Int, type: UInt8) throws(WireError) -> [UInt8] {
        try expect(type, .lengthDelimited, field: field)
        let range = try lengthDelimited(field: field)
        return Array(UnsafeBufferPointer(rebasing: base[range]))
    }

    mutating func string(field: Int, type: UInt8) throws(WireError) -> String {
        try expect(type, .lengthDelimited, field: field)
        let range = try lengthDelimited(field: field)
        guard let text = String(validating: UnsafeBufferPointer(rebasing: base[range]), as: UTF8.self) else {
            throw .invalidUTF8(message: message, field: field)
        }
        return text
    }

    /// Decodes a nested message with a sub-reader limited to its length.
    mutating func message<T>(field: Int, type: UInt8, as nested: WireMessage,
                             _ decode: (inout ProtoReader) throws(WireError) -> T) throws(WireError) -> T {
        try expect(type, .lengthDelimited, field: field)
        let range = try lengthDelimited(field: field)
        var sub = ProtoReader(base: base, range: range, message: nested)
        return try decode(&sub)
    }

    /// Skips a field we do not know (forward compatibility).
    mutating func skip(field: Int, type: UInt8) throws(WireError) {
        switch type {
        case WireType.varint.rawValue:
            _ = try varint(field: field)
        case WireType.lengthDelimited.rawValue:
            _ = try lengthDelimited(field: field)
        case WireType.fixed64.rawValue:
            guard end - position >= 8 else { throw .truncated(message: message, field: field) }
            position += 8
        default: // fixed32; other types were rejected by nextField
            guard end - position >= 4 else { throw .truncated(message: message, field: field) }
            position += 4
        }
    }
}

/// Tracks which singular fields were seen, to reject duplicates.
struct SeenFields {
    private var mask: UInt32 = 0

    @inline(__always)
    mutating func mark(_ field: Int, in message: WireMessage) throws(WireError) {
        let bit: UInt32 = 1 << UInt32(field)
        if mask & bit != 0 { throw .duplicateField(message: message, field: field) }
        mask |= bit
    }
}

/// A message that can be read from the wire.
protocol WireDecodable {
    static var wireMessage: WireMessage { get }
    init(reader: inout ProtoReader) throws(WireError)
}

extension WireDecodable {
    /// Decodes a whole top-level message from any contiguous byte collection (`[UInt8]`,
    /// `ArraySlice<UInt8>`, `Data`, …) without copying it first.
    static func decodeWire<Bytes: Collection<UInt8>>(_ bytes: Bytes, limit: Int) throws(WireError) -> Self {
        let count = bytes.count
        guard count <= limit else { throw .tooLarge(message: wireMessage, size: count, limit: limit) }
        let result: Result<Self, WireError>? = bytes.withContiguousStorageIfAvailable { buffer in
            Result { () throws(WireError) -> Self in
                var reader = ProtoReader(buffer, message: wireMessage)
                return try Self(reader: &reader)
            }
        }
        if let result { return try result.get() }
        let copy = Array(bytes)
        return try copy.withUnsafeBufferPointer { buffer throws(WireError) -> Self in
            var reader = ProtoReader(buffer, message: wireMessage)
            return try Self(reader: &reader)
        }
    }
}
