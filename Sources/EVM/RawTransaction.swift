/// What the forced-inclusion filter needs of a signed EVM transaction in its EIP-2718 encoding:
/// whether it decodes at all, and its gas limit.
///
/// Forced transactions come from strangers (anyone may post a blob to the forced-inclusion
/// namespace), so this decoder never trusts a length: every RLP length is checked against the
/// bytes that remain before it is used, nothing is allocated from a length, and the nesting
/// depth is fixed by the transaction schema (no recursion on input). It checks the same things
/// go-ethereum's `Transaction.UnmarshalBinary` checks (which ev-node's EVM filter uses), so that
/// an ev-node full node and evnode agree on what is garbage: canonical RLP (no leading zeros in
/// integers or lengths, single bytes below 0x80 not wrapped, long forms only from 56 bytes),
/// the exact field count of each type, integer widths (uint64 fields at most 8 bytes, uint256
/// fields at most 32, uint8 at most 1), addresses of exactly 20 bytes, hashes and storage keys
/// of exactly 32, and nothing after the transaction. Signatures are not checked (nor does
/// go-ethereum when decoding).
package enum RawTransaction {
    /// The EIP-2718 transaction types the test EL (py-evm Prague) and ev-reth accept.
    package enum Kind: UInt8, Sendable, CaseIterable {
        case legacy = 0
        case accessList = 1
        case dynamicFee = 2
        case blob = 3
        case setCode = 4
    }

    package struct Decoded: Sendable, Equatable {
        package var kind: Kind
        package var gasLimit: UInt64
    }

    package enum DecodeError: Error, Sendable, Equatable, CustomStringConvertible {
        case empty
        /// A typed transaction with nothing after its type byte.
        case shortTyped
        case unsupportedType(UInt8)
        /// The RLP or the field layout is wrong at byte `offset`.
        case malformed(offset: Int, reason: String)

        package var description: String {
            switch self {
            case .empty: return "empty transaction"
            case .shortTyped: return "typed transaction without a payload"
            case .unsupportedType(let t): return "transaction type \(t) is not supported"
            case let .malformed(offset, reason): return "malformed transaction at byte \(offset): \(reason)"
            }
        }
    }

    /// Decodes `bytes` (legacy RLP list, or type byte ‖ RLP list).
    package static func decode(_ bytes: [UInt8]) throws(DecodeError) -> Decoded {
        guard let first = bytes.first else { throw .empty }
        var reader = RLPReader(bytes)
        let kind: Kind
        if first > 0x7f {
            kind = .legacy
        } else {
            guard bytes.count > 1 else { throw .shortTyped }
            guard let typed = Kind(rawValue: first), typed != .legacy else { throw .unsupportedType(first) }
            kind = typed
            reader.position = 1
        }
        let body = try reader.list()
        guard reader.position == bytes.count else {
            throw .malformed(offset: reader.position, reason: "bytes after the transaction")
        }
        var fields = RLPReader(bytes, range: body)
        let gas = try fields.readSchema(schema(of: kind))
        guard fields.position == body.upperBound else {
            throw .malformed(offset: fields.position, reason: "more fields than a type-\(kind.rawValue) transaction has")
        }
        return Decoded(kind: kind, gasLimit: gas)
    }

    /// The fields of each type, in order (go-ethereum's `LegacyTx`, `AccessListTx`,
    /// `DynamicFeeTx`, `BlobTx`, `SetCodeTx`). Types 0–2 keep go-ethereum's `*big.Int` fields
    /// (any width, canonical) and a `To` that may be empty (contract creation); types 3 and 4 use
    /// uint256 and require a recipient.
    static func schema(of kind: Kind) -> [RLPField] {
        switch kind {
        case .legacy:
            return [.uint64, .bigInt, .gas, .optionalAddress, .bigInt, .bytes, .bigInt, .bigInt, .bigInt]
        case .accessList:
            return [.bigInt, .uint64, .bigInt, .gas, .optionalAddress, .bigInt, .bytes, .accessList,
                    .bigInt, .bigInt, .bigInt]
        case .dynamicFee:
            return [.bigInt, .uint64, .bigInt, .bigInt, .gas, .optionalAddress, .bigInt, .bytes, .accessList,
                    .bigInt, .bigInt, .bigInt]
        case .blob:
            return [.uint256, .uint64, .uint256, .uint256, .gas, .address, .uint256, .bytes, .accessList,
                    .uint256, .hashList, .uint256, .uint256, .uint256]
        case .setCode:
            return [.uint256, .uint64, .uint256, .uint256, .gas, .address, .uint256, .bytes, .accessList,
                    .authorizationList, .uint256, .uint256, .uint256]
        }
    }
}

/// One field of a transaction's RLP list.
enum RLPField: Sendable {
    /// The gas limit: a uint64, returned.
    case gas
    case uint64
    case uint8
    case uint256
    /// go-ethereum's `*big.Int`: canonical, any width.
    case bigInt
    case bytes
    case address
    /// Empty (contract creation) or 20 bytes.
    case optionalAddress
    /// A list of 32-byte strings (blob versioned hashes).
    case hashList
    /// [[address, [storage key (32 bytes)...]]...]
    case accessList
    /// [[chain id, address, nonce, y parity, r, s]...] (EIP-7702)
    case authorizationList
}

/// A cursor over RLP items in `bytes[range]`. Lengths are compared with what is left before any
/// index is formed from them; nothing is allocated.
struct RLPReader {
    let bytes: [UInt8]
    let end: Int
    var position: Int

    init(_ bytes: [UInt8], range: Range<Int>? = nil) {
        self.bytes = bytes
        self.end = range?.upperBound ?? bytes.count
        self.position = range?.lowerBound ?? 0
    }

    var atEnd: Bool { position >= end }

    private enum Header {
        case string(Range<Int>)
        case list(Range<Int>)
    }

    private func fail(_ reason: String, at offset: Int? = nil) -> RawTransaction.DecodeError {
        .malformed(offset: offset ?? position, reason: reason)
    }

    /// Reads one item's header and moves past the whole item.
    private mutating func next() throws(RawTransaction.DecodeError) -> Header {
        guard position < end else { throw fail("an item was expected, the input ended") }
        let start = position
        let prefix = bytes[position]
        switch prefix {
        case 0x00...0x7f:
            position += 1
            return .string(start..<start + 1)
        case 0x80...0xb7:
            let length = Int(prefix - 0x80)
            let payload = try take(length, after: start + 1)
            if length == 1, bytes[payload.lowerBound] < 0x80 {
                throw fail("a single byte below 0x80 must be its own encoding", at: start)
            }
            return .string(payload)
        case 0xb8...0xbf:
            let length = try longLength(count: Int(prefix - 0xb7), at: start)
            return .string(try take(length, after: start + 1 + Int(prefix - 0xb7)))
        case 0xc0...0xf7:
            return .list(try take(Int(prefix - 0xc0), after: start + 1))
        default:
            let length = try longLength(count: Int(prefix - 0xf7), at: start)
            return .list(try take(length, after: start + 1 + Int(prefix - 0xf7)))
        }
    }

    /// The big-endian length after a long-form prefix at `at`: canonical (no leading zero,
    /// at least 56) and no more than the bytes left, checked in UInt64 before it becomes an Int.
    private func longLength(count: Int, at: Int) throws(RawTransaction.DecodeError) -> Int {
        let first = at + 1
        guard end - first >= count else { throw fail("the length of the length runs past the input", at: at) }
        guard bytes[first] != 0 else { throw fail("the length has a leading zero byte", at: at) }
        var value: UInt64 = 0
        for i in first..<first + count { value = value << 8 | UInt64(bytes[i]) }
        guard value >= 56 else { throw fail("a length below 56 in the long form", at: at) }
        guard value <= UInt64(end - first - count) else {
            throw fail("a length of \(value) bytes runs past the input", at: at)
        }
        return Int(value)
    }

    private mutating func take(_ length: Int, after start: Int) throws(RawTransaction.DecodeError) -> Range<Int> {
        guard start <= end, length <= end - start else {
            throw fail("a length of \(length) bytes runs past the input", at: position)
        }
        position = start + length
        return start..<start + length
    }

    mutating func list() throws(RawTransaction.DecodeError) -> Range<Int> {
        let at = position
        guard case .list(let payload) = try next() else { throw fail("a list was expected", at: at) }
        return payload
    }

    mutating func string() throws(RawTransaction.DecodeError) -> Range<Int> {
        let at = position
        guard case .string(let payload) = try next() else { throw fail("a string was expected", at: at) }
        return payload
    }

    /// A canonical unsigned integer of at most `maxBytes` bytes (0: any width); its value when it
    /// fits 64 bits.
    mutating func integer(maxBytes: Int) throws(RawTransaction.DecodeError) -> UInt64 {
        let at = position
        let payload = try string()
        if maxBytes > 0, payload.count > maxBytes {
            throw fail("an integer of \(payload.count) bytes where at most \(maxBytes) fit", at: at)
        }
        if let first = payload.first, bytes[first] == 0 {
            throw fail("an integer with a leading zero byte", at: at)
        }
        return payload.reduce(UInt64(0)) { $0 << 8 | UInt64(bytes[$1]) }
    }

    mutating func fixed(_ size: Int, allowEmpty: Bool = false) throws(RawTransaction.DecodeError) {
        let at = position
        let payload = try string()
        guard payload.count == size || (allowEmpty && payload.isEmpty) else {
            throw fail("\(payload.count) bytes where \(size) were expected", at: at)
        }
    }

    /// Reads a list's items with `body` until its end.
    mutating func eachItem(_ body: (inout RLPReader) throws(RawTransaction.DecodeError) -> Void) throws(RawTransaction.DecodeError) {
        var inner = RLPReader(bytes, range: try list())
        while !inner.atEnd { try body(&inner) }
    }

    /// A list holding exactly `fields`, in order.
    mutating func exactList(_ fields: [RLPField]) throws(RawTransaction.DecodeError) {
        var inner = RLPReader(bytes, range: try list())
        _ = try inner.readSchema(fields)
        guard inner.atEnd else { throw fail("a list with more items than expected", at: inner.position) }
    }

    /// Reads `fields` in order; returns the `.gas` field's value (0 when there is none).
    mutating func readSchema(_ fields: [RLPField]) throws(RawTransaction.DecodeError) -> UInt64 {
        var gas: UInt64 = 0
        for field in fields {
            guard !atEnd else { throw fail("fewer fields than expected") }
            switch field {
            case .gas: gas = try integer(maxBytes: 8)
            case .uint64: _ = try integer(maxBytes: 8)
            case .uint8: _ = try integer(maxBytes: 1)
            case .uint256: _ = try integer(maxBytes: 32)
            case .bigInt: _ = try integer(maxBytes: 0)
            case .bytes: _ = try string()
            case .address: try fixed(20)
            case .optionalAddress: try fixed(20, allowEmpty: true)
            case .hashList: try eachItem { r throws(RawTransaction.DecodeError) in try r.fixed(32) }
            case .accessList:
                try eachItem { r throws(RawTransaction.DecodeError) in
                    var tuple = RLPReader(r.bytes, range: try r.list())
                    guard !tuple.atEnd else { throw r.fail("an access list entry without an address") }
                    try tuple.fixed(20)
                    guard !tuple.atEnd else { throw r.fail("an access list entry without storage keys") }
                    try tuple.eachItem { k throws(RawTransaction.DecodeError) in try k.fixed(32) }
                    guard tuple.atEnd else { throw tuple.fail("an access list entry with more than two items") }
                }
            case .authorizationList:
                try eachItem { r throws(RawTransaction.DecodeError) in
                    try r.exactList([.uint256, .address, .uint64, .uint8, .uint256, .uint256])
                }
            }
        }
        return gas
    }
}
