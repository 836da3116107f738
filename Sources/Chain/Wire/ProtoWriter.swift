/// Protobuf wire types used by the schema.
enum WireType: UInt8 {
    case varint = 0
    case fixed64 = 1
    case lengthDelimited = 2
    case fixed32 = 5
}

/// Appends protobuf fields to a byte buffer. Callers compute each message's size first
/// (`encodedSize`) so nested messages are written in one pass into one exactly-sized buffer,
/// with no intermediate arrays.
///
/// Proto3 rules: scalar fields equal to their default (0, empty) are omitted; repeated bytes
/// emit every element, empty ones included.
struct ProtoWriter {
    var bytes: [UInt8]

    init(capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Starts with a prefix already in the buffer (the 0x00 domain byte of data hashes).
    init(prefix: UInt8, capacity: Int) {
        bytes = []
        bytes.reserveCapacity(capacity + 1)
        bytes.append(prefix)
    }

    @inline(__always)
    mutating func varint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    @inline(__always)
    mutating func tag(_ field: Int, _ type: WireType) {
        varint(UInt64(field) << 3 | UInt64(type.rawValue))
    }

    @inline(__always)
    mutating func uint64Field(_ field: Int, _ value: UInt64) {
        guard value != 0 else { return }
        tag(field, .varint)
        varint(value)
    }

    @inline(__always)
    mutating func bytesField(_ field: Int, _ value: [UInt8]) {
        guard !value.isEmpty else { return }
        tag(field, .lengthDelimited)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    /// One element of a repeated bytes field: written even when empty.
    @inline(__always)
    mutating func repeatedBytesElement(_ field: Int, _ value: [UInt8]) {
        tag(field, .lengthDelimited)
        varint(UInt64(value.count))
        bytes.append(contentsOf: value)
    }

    @inline(__always)
    mutating func stringField(_ field: Int, _ value: String) {
        let utf8 = value.utf8
        guard !utf8.isEmpty else { return }
        tag(field, .lengthDelimited)
        varint(UInt64(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    /// A nested message of known size; `body` must write exactly `size` bytes.
    @inline(__always)
    mutating func messageField(_ field: Int, size: Int, _ body: (inout ProtoWriter) -> Void) {
        tag(field, .lengthDelimited)
        varint(UInt64(size))
        body(&self)
    }
}

/// Encoded sizes, for exact pre-allocation.
enum WireSize {
    @inline(__always)
    static func varint(_ value: UInt64) -> Int {
        // 1 byte per started group of 7 bits; 0 still takes one byte.
        (64 - (value | 1).leadingZeroBitCount + 6) / 7
    }

    /// All field numbers of the schema are below 16, so every tag is one byte.
    @inline(__always)
    static func uint64Field(_ value: UInt64) -> Int {
        value == 0 ? 0 : 1 + varint(value)
    }

    @inline(__always)
    static func bytesField(_ count: Int) -> Int {
        count == 0 ? 0 : 1 + varint(UInt64(count)) + count
    }

    @inline(__always)
    static func repeatedElement(_ count: Int) -> Int {
        1 + varint(UInt64(count)) + count
    }

    @inline(__always)
    static func messageField(_ size: Int) -> Int {
        1 + varint(UInt64(size)) + size
    }
}
