import Crypto
import NIOCore
import Libp2p

/// A block as it travels between peers: the encoded `SignedHeader` and the encoded `Data`
/// (SPEC §3; metadata and txs, bound to the signed header by its `data_hash`), plus the two facts
/// the transport needs without decoding them, the height and the header hash.
///
/// P2P treats the encodings as opaque; a `GossipValidator` decides whether they are acceptable
/// (and must check that `height` and `headerHash` agree with the encoded header).
package struct P2PBlock: Sendable, Hashable {
    package var height: UInt64
    /// SHA-256 of the encoded `Header`; exactly 32 bytes on the wire.
    package var headerHash: [UInt8]
    package var encodedSignedHeader: [UInt8]
    /// Encoded `Data` (may be empty: a block without txs or metadata).
    package var encodedData: [UInt8]

    package init(height: UInt64, headerHash: [UInt8], encodedSignedHeader: [UInt8], encodedData: [UInt8]) {
        self.height = height
        self.headerHash = headerHash
        self.encodedSignedHeader = encodedSignedHeader
        self.encodedData = encodedData
    }

    /// Bytes of `encoded()`.
    package var wireSize: Int { 8 + 32 + 4 + encodedSignedHeader.count + 4 + encodedData.count }

    /// The block in one self-delimiting record (the HA group's replicated block uses it):
    /// height, header hash, u32-length-prefixed signed header, u32-length-prefixed data.
    package func encoded() -> [UInt8] {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(wireSize)
        buffer.writeInteger(height)
        buffer.writeBytes(headerHash)
        buffer.writeInteger(UInt32(truncatingIfNeeded: encodedSignedHeader.count))
        buffer.writeBytes(encodedSignedHeader)
        buffer.writeInteger(UInt32(truncatingIfNeeded: encodedData.count))
        buffer.writeBytes(encodedData)
        return buffer.readBytes(length: buffer.readableBytes) ?? []
    }

    /// Decodes `encoded()`'s output strictly: every byte must belong to the block.
    package init(decoding bytes: [UInt8]) throws(WireDecodeError) {
        var reader = PayloadReader(buffer: ByteBuffer(bytes: bytes), message: "block")
        self = try reader.block()
        try reader.finish()
    }
}

/// A block from a peer, with the peer that sent it: for gossip the peer that sent its header, for
/// a range the peer whose answer carried it. It names where a block came from (logs, double-sign
/// evidence); it is not whom to blame for it: every half a peer can be blamed for was checked
/// before the block was handed out (`P2PService` gossip in, `requestRange`).
package struct ReceivedBlock: Sendable, Equatable {
    package var block: P2PBlock
    package var from: PeerID
    /// The DA heights the sender's envelopes name for the header and the data (`da_height_hint`,
    /// 0 when absent): the sender's unverified claim, advisory only (`DAFollower.hint`).
    package var headerDAHeightHint: UInt64
    package var dataDAHeightHint: UInt64

    package init(block: P2PBlock, from: PeerID, headerDAHeightHint: UInt64 = 0, dataDAHeightHint: UInt64 = 0) {
        self.block = block
        self.from = from
        self.headerDAHeightHint = headerDAHeightHint
        self.dataDAHeightHint = dataDAHeightHint
    }
}

/// Strict reader of `P2PBlock.encoded()`.
struct PayloadReader {
    var buffer: ByteBuffer
    let message: String

    mutating func integer<T: FixedWidthInteger>(_: T.Type, _ field: String) throws(WireDecodeError) -> T {
        guard let v = buffer.readInteger(as: T.self) else { throw .truncated(message: message, field: field) }
        return v
    }

    mutating func bytes(_ count: Int, _ field: String) throws(WireDecodeError) -> [UInt8] {
        guard count <= buffer.readableBytes, let b = buffer.readBytes(length: count) else {
            throw .truncated(message: message, field: field)
        }
        return b
    }

    mutating func utf8(count: Int, _ field: String) throws(WireDecodeError) -> String {
        let raw = try bytes(count, field)
        let text = String(decoding: raw, as: UTF8.self)
        // Decoding repairs invalid sequences; a repaired string no longer matches the bytes.
        guard text.utf8.elementsEqual(raw) else {
            throw .invalidField(message: message, field: field, reason: "is not valid UTF-8")
        }
        return text
    }

    /// A u32 length followed by that many bytes; the length is checked before anything is copied.
    mutating func lengthPrefixed(_ field: String) throws(WireDecodeError) -> [UInt8] {
        let length = try integer(UInt32.self, "\(field) length")
        guard Int(length) <= buffer.readableBytes else {
            throw .truncated(message: message, field: field)
        }
        return try bytes(Int(length), field)
    }

    mutating func block() throws(WireDecodeError) -> P2PBlock {
        let height = try integer(UInt64.self, "block height")
        guard height >= 1 else {
            throw .outOfBounds(message: message, field: "block height", value: 0, allowed: "≥ 1")
        }
        let hash = try bytes(32, "header hash")
        let header = try lengthPrefixed("signed header")
        guard !header.isEmpty else {
            throw .invalidField(message: message, field: "signed header", reason: "is empty")
        }
        let data = try lengthPrefixed("data")
        return P2PBlock(height: height, headerHash: hash, encodedSignedHeader: header, encodedData: data)
    }

    func finish() throws(WireDecodeError) {
        if buffer.readableBytes > 0 { throw .trailingBytes(message: message, count: buffer.readableBytes) }
    }
}
