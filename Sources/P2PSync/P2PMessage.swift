import NIOCore

/// Protocol constants shared by both ends of a connection.
public enum P2PProtocol {
    /// Bumped on any incompatible change of the messages below.
    public static let version: UInt16 = 1
    /// The most blocks one range request may ask for (SPEC §8).
    public static let maxBlocksPerRequest = 64
    /// Bytes before the payload: 4-byte big-endian length (of type + payload) and 1 type byte.
    public static let frameHeaderSize = 5
    public static let maxChainIDBytes = 64
    public static let maxGoodbyeDetailBytes = 256
    public static let nonceSize = 32
    public static let publicKeySize = 32
    public static let signatureSize = 64
    public static let hashSize = 32
}

public enum MessageType: UInt8, Sendable, CaseIterable {
    case hello = 1
    case helloAck = 2
    case status = 3
    case newBlock = 4
    case rangeRequest = 5
    case rangeResponse = 6
    case goodbye = 7
}

/// First message on a connection, sent by both sides at once.
public struct Hello: Sendable, Equatable {
    public var protocolVersion: UInt16
    public var chainID: String
    /// Raw 32-byte Ed25519 node public key; the peer id is its SHA-256.
    public var publicKey: [UInt8]
    /// Fresh random bytes the other side must sign in its `HelloAck`.
    public var nonce: [UInt8]
    /// Port the sender accepts connections on (0 if it does not listen).
    public var listenPort: UInt16
    /// Largest frame the sender accepts; the other side never sends it a larger one.
    public var maxFrameBytes: UInt32

    public init(protocolVersion: UInt16, chainID: String, publicKey: [UInt8], nonce: [UInt8],
                listenPort: UInt16, maxFrameBytes: UInt32) {
        self.protocolVersion = protocolVersion
        self.chainID = chainID
        self.publicKey = publicKey
        self.nonce = nonce
        self.listenPort = listenPort
        self.maxFrameBytes = maxFrameBytes
    }
}

/// Second message: the sender's signature over the handshake transcript (see `HandshakeTranscript`),
/// proving it holds the private key of the public key it claimed in its `Hello`.
public struct HelloAck: Sendable, Equatable {
    public var signature: [UInt8]

    public init(signature: [UInt8]) {
        self.signature = signature
    }
}

public struct RangeRequest: Sendable, Equatable {
    public var requestID: UInt64
    public var from: UInt64
    /// 1 ... `P2PProtocol.maxBlocksPerRequest`.
    public var count: UInt16

    public init(requestID: UInt64, from: UInt64, count: UInt16) {
        self.requestID = requestID
        self.from = from
        self.count = count
    }
}

public enum RangeStatus: UInt8, Sendable {
    /// `blocks` holds the first blocks of the range the server has, possibly fewer than asked
    /// (none held, or the frame size limit reached).
    case ok = 0
    /// The server is answering too many requests from this peer; try later or elsewhere.
    case busy = 1
    /// The server failed to read its store.
    case failed = 2
}

public struct RangeResponse: Sendable, Equatable {
    public var requestID: UInt64
    public var status: RangeStatus
    public var blocks: [P2PBlock]

    public init(requestID: UInt64, status: RangeStatus, blocks: [P2PBlock]) {
        self.requestID = requestID
        self.status = status
        self.blocks = blocks
    }
}

public enum GoodbyeReason: UInt8, Sendable, CustomStringConvertible {
    case shuttingDown = 0
    case duplicateConnection = 1
    case connectedToSelf = 2
    case wrongChain = 3
    case incompatibleVersion = 4
    case banned = 5
    case protocolViolation = 6
    case tooManyPeers = 7
    case slowReader = 8
    case handshakeTimeout = 9
    case other = 255

    public var description: String {
        switch self {
        case .shuttingDown: return "shutting down"
        case .duplicateConnection: return "duplicate connection"
        case .connectedToSelf: return "connected to self"
        case .wrongChain: return "wrong chain"
        case .incompatibleVersion: return "incompatible protocol version"
        case .banned: return "banned"
        case .protocolViolation: return "protocol violation"
        case .tooManyPeers: return "too many peers"
        case .slowReader: return "peer does not read"
        case .handshakeTimeout: return "handshake timeout"
        case .other: return "other"
        }
    }
}

public struct Goodbye: Sendable, Equatable {
    public var reason: GoodbyeReason
    public var detail: String

    public init(reason: GoodbyeReason, detail: String) {
        self.reason = reason
        self.detail = detail
    }
}

/// Every message of the protocol. A frame is `length (u32 BE) ‖ type (u8) ‖ payload`, where
/// `length` counts the type byte and the payload. Payload layouts (all integers big-endian):
///
/// - hello: `version u16 ‖ chain-id-len u8 ‖ chain-id ‖ public-key[32] ‖ nonce[32] ‖ listen-port u16 ‖ max-frame u32`
/// - helloAck: `signature[64]`
/// - status: `height u64 ‖ proof-length u32 ‖ encoded SignedHeader at that height` (empty for 0)
/// - newBlock: block
/// - rangeRequest: `request-id u64 ‖ from u64 ‖ count u16`
/// - rangeResponse: `request-id u64 ‖ status u8 ‖ n u16 ‖ n × block`
/// - goodbye: `reason u8 ‖ detail-len u16 ‖ detail (UTF-8)`
/// - block: `height u64 ‖ header-hash[32] ‖ header-len u32 ‖ signed-header ‖ data-len u32 ‖ data`
///
/// Decoding never traps: every length is checked against what is left, and extra bytes are an error.
public enum P2PMessage: Sendable, Equatable {
    case hello(Hello)
    case helloAck(HelloAck)
    /// `proof`: the encoded `SignedHeader` at `height` (empty for height 0, an empty chain).
    case status(height: UInt64, proof: [UInt8])
    case newBlock(P2PBlock)
    case rangeRequest(RangeRequest)
    case rangeResponse(RangeResponse)
    case goodbye(Goodbye)

    public var type: MessageType {
        switch self {
        case .hello: return .hello
        case .helloAck: return .helloAck
        case .status: return .status
        case .newBlock: return .newBlock
        case .rangeRequest: return .rangeRequest
        case .rangeResponse: return .rangeResponse
        case .goodbye: return .goodbye
        }
    }

    // MARK: Encoding

    /// Appends the whole frame (header and payload) to `buffer`.
    public func writeFrame(into buffer: inout ByteBuffer) {
        let start = buffer.writerIndex
        buffer.writeInteger(UInt32(0))
        buffer.writeInteger(type.rawValue)
        writePayload(into: &buffer)
        buffer.setInteger(UInt32(buffer.writerIndex - start - 4), at: start)
    }

    /// The frame as a fresh buffer.
    public func frame(allocator: ByteBufferAllocator = ByteBufferAllocator()) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: P2PProtocol.frameHeaderSize + payloadSizeHint)
        writeFrame(into: &buffer)
        return buffer
    }

    private var payloadSizeHint: Int {
        switch self {
        case .newBlock(let block): return block.wireSize
        case .status(_, let proof): return 12 + proof.count
        case .rangeResponse(let r): return 11 + r.blocks.reduce(0) { $0 + $1.wireSize }
        default: return 128
        }
    }

    public func writePayload(into buffer: inout ByteBuffer) {
        switch self {
        case .hello(let h):
            buffer.writeInteger(h.protocolVersion)
            let id = Array(h.chainID.utf8)
            buffer.writeInteger(UInt8(truncatingIfNeeded: id.count))
            buffer.writeBytes(id)
            buffer.writeBytes(h.publicKey)
            buffer.writeBytes(h.nonce)
            buffer.writeInteger(h.listenPort)
            buffer.writeInteger(h.maxFrameBytes)
        case .helloAck(let a):
            buffer.writeBytes(a.signature)
        case .status(let height, let proof):
            buffer.writeInteger(height)
            buffer.writeInteger(UInt32(proof.count))
            buffer.writeBytes(proof)
        case .newBlock(let block):
            Self.write(block, into: &buffer)
        case .rangeRequest(let r):
            buffer.writeInteger(r.requestID)
            buffer.writeInteger(r.from)
            buffer.writeInteger(r.count)
        case .rangeResponse(let r):
            buffer.writeInteger(r.requestID)
            buffer.writeInteger(r.status.rawValue)
            buffer.writeInteger(UInt16(truncatingIfNeeded: r.blocks.count))
            for block in r.blocks { Self.write(block, into: &buffer) }
        case .goodbye(let g):
            buffer.writeInteger(g.reason.rawValue)
            let detail = Array(g.detail.utf8.prefix(P2PProtocol.maxGoodbyeDetailBytes))
            buffer.writeInteger(UInt16(detail.count))
            buffer.writeBytes(detail)
        }
    }

    static func write(_ block: P2PBlock, into buffer: inout ByteBuffer) {
        buffer.writeInteger(block.height)
        buffer.writeBytes(block.headerHash)
        buffer.writeInteger(UInt32(truncatingIfNeeded: block.encodedSignedHeader.count))
        buffer.writeBytes(block.encodedSignedHeader)
        buffer.writeInteger(UInt32(truncatingIfNeeded: block.encodedData.count))
        buffer.writeBytes(block.encodedData)
    }

    // MARK: Decoding

    /// Decodes the payload of a frame of type `type`. The whole payload must be consumed.
    public static func decode(type rawType: UInt8, payload: ByteBuffer) throws(WireDecodeError) -> P2PMessage {
        guard let type = MessageType(rawValue: rawType) else { throw .unknownMessageType(rawType) }
        var r = PayloadReader(buffer: payload, message: "\(type)")
        let message: P2PMessage
        switch type {
        case .hello:
            let version = try r.integer(UInt16.self, "protocol version")
            let idLength = Int(try r.integer(UInt8.self, "chain id length"))
            guard idLength <= P2PProtocol.maxChainIDBytes else {
                throw .outOfBounds(message: "hello", field: "chain id length", value: UInt64(idLength),
                                   allowed: "≤ \(P2PProtocol.maxChainIDBytes)")
            }
            let chainID = try r.utf8(count: idLength, "chain id")
            let key = try r.bytes(P2PProtocol.publicKeySize, "public key")
            let nonce = try r.bytes(P2PProtocol.nonceSize, "nonce")
            let port = try r.integer(UInt16.self, "listen port")
            let maxFrame = try r.integer(UInt32.self, "max frame bytes")
            message = .hello(Hello(protocolVersion: version, chainID: chainID, publicKey: key, nonce: nonce,
                                   listenPort: port, maxFrameBytes: maxFrame))
        case .helloAck:
            message = .helloAck(HelloAck(signature: try r.bytes(P2PProtocol.signatureSize, "signature")))
        case .status:
            let height = try r.integer(UInt64.self, "height")
            message = .status(height: height, proof: try r.lengthPrefixed("proof"))
        case .newBlock:
            message = .newBlock(try r.block())
        case .rangeRequest:
            let id = try r.integer(UInt64.self, "request id")
            let from = try r.integer(UInt64.self, "from")
            let count = try r.integer(UInt16.self, "count")
            guard count >= 1, Int(count) <= P2PProtocol.maxBlocksPerRequest else {
                throw .outOfBounds(message: "rangeRequest", field: "count", value: UInt64(count),
                                   allowed: "1...\(P2PProtocol.maxBlocksPerRequest)")
            }
            guard from >= 1, from <= UInt64.max - UInt64(count) else {
                throw .outOfBounds(message: "rangeRequest", field: "from", value: from,
                                   allowed: "1...\(UInt64.max - UInt64(count))")
            }
            message = .rangeRequest(RangeRequest(requestID: id, from: from, count: count))
        case .rangeResponse:
            let id = try r.integer(UInt64.self, "request id")
            let rawStatus = try r.integer(UInt8.self, "status")
            guard let status = RangeStatus(rawValue: rawStatus) else {
                throw .outOfBounds(message: "rangeResponse", field: "status", value: UInt64(rawStatus), allowed: "0...2")
            }
            let n = Int(try r.integer(UInt16.self, "block count"))
            guard n <= P2PProtocol.maxBlocksPerRequest else {
                throw .outOfBounds(message: "rangeResponse", field: "block count", value: UInt64(n),
                                   allowed: "≤ \(P2PProtocol.maxBlocksPerRequest)")
            }
            var blocks: [P2PBlock] = []
            blocks.reserveCapacity(n)
            for _ in 0..<n { blocks.append(try r.block()) }
            message = .rangeResponse(RangeResponse(requestID: id, status: status, blocks: blocks))
        case .goodbye:
            let rawReason = try r.integer(UInt8.self, "reason")
            let length = Int(try r.integer(UInt16.self, "detail length"))
            guard length <= P2PProtocol.maxGoodbyeDetailBytes else {
                throw .outOfBounds(message: "goodbye", field: "detail length", value: UInt64(length),
                                   allowed: "≤ \(P2PProtocol.maxGoodbyeDetailBytes)")
            }
            let detail = try r.utf8(count: length, "detail")
            message = .goodbye(Goodbye(reason: GoodbyeReason(rawValue: rawReason) ?? .other, detail: detail))
        }
        try r.finish()
        return message
    }
}

/// Bounds-checked reads from a payload; every failure names the message and field.
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
        let hash = try bytes(P2PProtocol.hashSize, "header hash")
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
