import Config
import Crypto
import NIOCore

/// A block as it travels between peers: the encoded `SignedHeader` and the encoded `Data`
/// (SPEC §3; metadata and txs, bound to the signed header by its `data_hash`), plus the two facts
/// the transport needs without decoding them, the height and the header hash.
///
/// P2P treats the encodings as opaque; a `GossipValidator` decides whether they are acceptable
/// (and must check that `height` and `headerHash` agree with the encoded header).
public struct P2PBlock: Sendable, Hashable {
    public var height: UInt64
    /// SHA-256 of the encoded `Header`; exactly 32 bytes on the wire.
    public var headerHash: [UInt8]
    public var encodedSignedHeader: [UInt8]
    /// Encoded `Data` (may be empty: a block without txs or metadata).
    public var encodedData: [UInt8]

    public init(height: UInt64, headerHash: [UInt8], encodedSignedHeader: [UInt8], encodedData: [UInt8]) {
        self.height = height
        self.headerHash = headerHash
        self.encodedSignedHeader = encodedSignedHeader
        self.encodedData = encodedData
    }

    /// Bytes this block takes inside a frame (see `P2PMessage`).
    public var wireSize: Int { 8 + 32 + 4 + encodedSignedHeader.count + 4 + encodedData.count }

    /// The block as it stands inside a frame, on its own (e.g. stored elsewhere than on the wire).
    public func encoded() -> [UInt8] {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(wireSize)
        P2PMessage.write(self, into: &buffer)
        return buffer.readBytes(length: buffer.readableBytes) ?? []
    }

    /// Decodes `encoded()`'s output strictly: every byte must belong to the block.
    public init(decoding bytes: [UInt8]) throws(WireDecodeError) {
        var reader = PayloadReader(buffer: ByteBuffer(bytes: bytes), message: "block")
        self = try reader.block()
        try reader.finish()
    }
}

/// A block that arrived by gossip, validated, with the peer that sent it (so the node can
/// `penalize` that peer if a later, fuller check fails).
public struct ReceivedBlock: Sendable, Equatable {
    public var block: P2PBlock
    public var from: PeerID

    public init(block: P2PBlock, from: PeerID) {
        self.block = block
        self.from = from
    }
}

/// A node's identity on the P2P network: SHA-256 of its raw Ed25519 node public key.
public struct PeerID: Hashable, Sendable, Comparable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init(publicKey: [UInt8]) {
        self.bytes = Array(SHA256.hash(data: publicKey))
    }

    public init(key: KeyFile) {
        self.init(publicKey: key.publicKey)
    }

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    /// Lowercase hex of the 32 bytes.
    public var description: String { Hex.encode(bytes) }

    /// The first 12 hex digits, for log lines.
    public var short: String { String(description.prefix(12)) }

    public static func < (lhs: PeerID, rhs: PeerID) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }
}

/// 32 bytes packed into four words: a cheap key for the seen-set.
struct HashKey: Hashable, Sendable {
    let a: UInt64, b: UInt64, c: UInt64, d: UInt64

    /// `bytes` must hold exactly 32 bytes (the wire codec guarantees it for header hashes).
    init?(_ bytes: [UInt8]) {
        guard bytes.count == 32 else { return nil }
        func word(_ i: Int) -> UInt64 {
            var w: UInt64 = 0
            for j in 0..<8 { w = w << 8 | UInt64(bytes[i * 8 + j]) }
            return w
        }
        a = word(0); b = word(1); c = word(2); d = word(3)
    }
}
