import NIOCore
@testable import P2PSync
import Testing

@Suite("P2P wire codec")
struct WireCodecTests {
    static let block = P2PBlock(height: 42, headerHash: Array(repeating: 0xab, count: 32),
                                encodedSignedHeader: Array(1...200), encodedData: Array(repeating: 7, count: 33))

    static let samples: [P2PMessage] = [
        .hello(Hello(protocolVersion: 1, chainID: "test-chain", publicKey: Array(repeating: 1, count: 32),
                     nonce: Array(repeating: 2, count: 32), listenPort: 7676, maxFrameBytes: 8 << 20)),
        .helloAck(HelloAck(signature: Array(repeating: 9, count: 64))),
        .status(height: 0, proof: []),
        .status(height: .max, proof: Array(1...90)),
        .newBlock(block),
        .newBlock(P2PBlock(height: 1, headerHash: Array(repeating: 0, count: 32), encodedSignedHeader: [1],
                           encodedData: [])),
        .rangeRequest(RangeRequest(requestID: 7, from: 1, count: 64)),
        .rangeResponse(RangeResponse(requestID: 7, status: .ok, blocks: [block, block])),
        .rangeResponse(RangeResponse(requestID: 8, status: .busy, blocks: [])),
        .goodbye(Goodbye(reason: .wrongChain, detail: "chain id \"x\" ≠ \"y\"")),
    ]

    /// Encodes a message, cuts it out of the stream again and decodes it.
    static func roundTrip(_ message: P2PMessage, limit: Int = 1 << 20) throws -> P2PMessage? {
        var buffer = message.frame()
        guard let frame = try FrameParser(maxFrameBytes: limit).next(from: &buffer) else { return nil }
        #expect(buffer.readableBytes == 0)
        return try P2PMessage.decode(type: frame.type, payload: frame.payload)
    }

    @Test("every message survives encode → frame → decode unchanged")
    func roundTrips() throws {
        for message in Self.samples {
            #expect(try Self.roundTrip(message) == message)
        }
    }

    @Test("several frames in one buffer come out one by one; partial frames wait for more bytes")
    func streamCutting() throws {
        var stream = ByteBuffer()
        for message in Self.samples { message.writeFrame(into: &stream) }
        let all = stream
        let parser = FrameParser(maxFrameBytes: 1 << 20)
        // Feed the stream one byte at a time: every frame must appear exactly when complete.
        var pending = ByteBuffer()
        var decoded: [P2PMessage] = []
        for byte in all.readableBytesView {
            pending.writeInteger(byte)
            while let frame = try parser.next(from: &pending) {
                decoded.append(try P2PMessage.decode(type: frame.type, payload: frame.payload))
            }
        }
        #expect(decoded == Self.samples)
        #expect(pending.readableBytes == 0)
    }

    @Test("an oversized length is refused from the 4-byte header alone")
    func oversizedFrame() throws {
        var buffer = ByteBuffer()
        buffer.writeInteger(UInt32(1025))
        #expect(throws: WireDecodeError.frameTooLarge(length: 1025, limit: 1024)) {
            try FrameParser(maxFrameBytes: 1024).next(from: &buffer)
        }
        var exact = ByteBuffer()
        exact.writeInteger(UInt32(1024))
        #expect(try FrameParser(maxFrameBytes: 1024).next(from: &exact) == nil) // waits for the body
        var zero = ByteBuffer(bytes: [0, 0, 0, 0])
        #expect(throws: WireDecodeError.emptyFrame) { try FrameParser(maxFrameBytes: 1024).next(from: &zero) }
    }

    @Test("every truncation of every message is a typed error, never a crash or a wrong message")
    func truncations() throws {
        for message in Self.samples {
            var full = ByteBuffer()
            message.writePayload(into: &full)
            let bytes = Array(full.readableBytesView)
            for cut in 0..<bytes.count {
                let payload = ByteBuffer(bytes: bytes[0..<cut])
                #expect(throws: WireDecodeError.self) {
                    try P2PMessage.decode(type: message.type.rawValue, payload: payload)
                }
            }
        }
    }

    @Test("trailing bytes, unknown types and out-of-range fields are rejected by name")
    func bounds() throws {
        var status = ByteBuffer()
        P2PMessage.status(height: 5, proof: [1, 2]).writePayload(into: &status)
        status.writeInteger(UInt8(0))
        #expect(throws: WireDecodeError.trailingBytes(message: "status", count: 1)) {
            try P2PMessage.decode(type: MessageType.status.rawValue, payload: status)
        }
        #expect(throws: WireDecodeError.unknownMessageType(99)) {
            try P2PMessage.decode(type: 99, payload: ByteBuffer())
        }
        for count: UInt16 in [0, 65, .max] {
            var request = ByteBuffer()
            request.writeInteger(UInt64(1))
            request.writeInteger(UInt64(10))
            request.writeInteger(count)
            #expect(throws: WireDecodeError.outOfBounds(message: "rangeRequest", field: "count",
                                                        value: UInt64(count), allowed: "1...64")) {
                try P2PMessage.decode(type: MessageType.rangeRequest.rawValue, payload: request)
            }
        }
        // A response announcing 65 blocks is refused before any block is read.
        var response = ByteBuffer()
        response.writeInteger(UInt64(1))
        response.writeInteger(UInt8(0))
        response.writeInteger(UInt16(65))
        #expect(throws: WireDecodeError.outOfBounds(message: "rangeResponse", field: "block count", value: 65,
                                                    allowed: "≤ 64")) {
            try P2PMessage.decode(type: MessageType.rangeResponse.rawValue, payload: response)
        }
        // A block whose header length points past the end of the payload.
        var lying = ByteBuffer()
        lying.writeInteger(UInt64(3))
        lying.writeBytes(Array(repeating: UInt8(0), count: 32))
        lying.writeInteger(UInt32.max)
        lying.writeBytes([1, 2, 3])
        #expect(throws: WireDecodeError.truncated(message: "newBlock", field: "signed header")) {
            try P2PMessage.decode(type: MessageType.newBlock.rawValue, payload: lying)
        }
        // Chain ids longer than 64 bytes and invalid UTF-8.
        var longID = ByteBuffer()
        longID.writeInteger(UInt16(1))
        longID.writeInteger(UInt8(65))
        #expect(throws: WireDecodeError.outOfBounds(message: "hello", field: "chain id length", value: 65,
                                                    allowed: "≤ 64")) {
            try P2PMessage.decode(type: MessageType.hello.rawValue, payload: longID)
        }
        var badUTF8 = ByteBuffer()
        badUTF8.writeInteger(UInt8(GoodbyeReason.other.rawValue))
        badUTF8.writeInteger(UInt16(2))
        badUTF8.writeBytes([0xff, 0xfe])
        #expect(throws: WireDecodeError.invalidField(message: "goodbye", field: "detail", reason: "is not valid UTF-8")) {
            try P2PMessage.decode(type: MessageType.goodbye.rawValue, payload: badUTF8)
        }
    }

    @Test("random garbage never crashes the decoder")
    func garbage() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            let n = Int.random(in: 0..<300, using: &rng)
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let type = UInt8.random(in: 0...8, using: &rng)
            _ = try? P2PMessage.decode(type: type, payload: ByteBuffer(bytes: bytes))
            var stream = ByteBuffer(bytes: bytes)
            _ = try? FrameParser(maxFrameBytes: 4096).next(from: &stream)
        }
    }
}
