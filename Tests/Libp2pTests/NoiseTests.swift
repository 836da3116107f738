import Config
import Crypto
import NIOCore
@testable import Libp2p
import Testing

/// The Noise XX handshake and transport of `Noise`, the real code between two parties in memory:
/// each one's writes are the other's reads (no sockets). Interop with py-libp2p is in
/// IntegrationTests/Libp2pInteropTests.
@Suite struct NoiseTests {
    /// Both ends of a handshake, run at once; `tamper` may rewrite a frame the responder sends
    /// (its index among them, its bytes with the 2-byte length).
    static func handshake(initiator: Curve25519.Signing.PrivateKey, responder: Curve25519.Signing.PrivateKey,
                          expected: PeerID? = nil,
                          tamper: @escaping @Sendable (Int, inout [UInt8]) -> Void = { _, _ in })
        async -> (Result<Noise.Result, any Error>, Result<Noise.Result, any Error>) {
        let (toResponder, toResponderIn) = AsyncStream.makeStream(of: ByteBuffer.self)
        let (toInitiator, toInitiatorIn) = AsyncStream.makeStream(of: ByteBuffer.self)
        async let i = run(initiator: true, identity: initiator, expected: expected, reading: toInitiator,
                          writing: toResponderIn) { _, _ in }
        async let r = run(initiator: false, identity: responder, expected: nil, reading: toResponder,
                          writing: toInitiatorIn, tamper: tamper)
        return await (i, r)
    }

    /// One party: reads what the other writes, writes what the other reads; its end closes
    /// when it stops, as a socket's would (the other side then reads EOF).
    static func run(initiator: Bool, identity: Curve25519.Signing.PrivateKey, expected: PeerID?,
                    reading: AsyncStream<ByteBuffer>, writing: AsyncStream<ByteBuffer>.Continuation,
                    tamper: @escaping @Sendable (Int, inout [UInt8]) -> Void) async -> Result<Noise.Result, any Error> {
        defer { writing.finish() }
        var reader = ByteReader(PipeSource(reading))
        var sent = 0
        do {
            return .success(try await Noise.handshake(initiator: initiator, identity: identity, expected: expected,
                                                      reader: &reader) { frame in
                var bytes = Array(frame.readableBytesView)
                tamper(sent, &bytes)
                sent += 1
                writing.yield(ByteBuffer(bytes: bytes))
            })
        } catch {
            return .failure(error)
        }
    }

    @Test func handshakeProvesBothIdentitiesAndAgreesOnKeys() async throws {
        let a = Curve25519.Signing.PrivateKey(), b = Curve25519.Signing.PrivateKey()
        let (ri, rr) = await Self.handshake(initiator: a, responder: b, expected: PeerID(publicKey: Array(b.publicKey.rawRepresentation)))
        var i = try ri.get(), r = try rr.get()
        #expect(i.remote == PeerID(publicKey: Array(b.publicKey.rawRepresentation)))
        #expect(r.remote == PeerID(publicKey: Array(a.publicKey.rawRepresentation)))
        #expect(i.handshakeHash == r.handshakeHash && i.handshakeHash.count == 32)
        // Transport both ways, nonces from 0 in step.
        for n in 0..<3 {
            let m = Array("message \(n)".utf8)
            let sealed = try i.send.encrypt(m, ad: [])
            #expect(sealed.count == m.count + Noise.tagSize && sealed != m)
            #expect(try r.receive.decrypt(sealed, ad: []) == m)
            #expect(try i.receive.decrypt(try r.send.encrypt(m, ad: []), ad: []) == m)
        }
        #expect(i.send.nonce == 3 && r.receive.nonce == 3 && r.send.nonce == 3 && i.receive.nonce == 3)
    }

    @Test func twoHandshakesOfTheSamePairDiffer() async throws {
        let a = Curve25519.Signing.PrivateKey(), b = Curve25519.Signing.PrivateKey()
        let first = try await Self.handshake(initiator: a, responder: b).0.get()
        let second = try await Self.handshake(initiator: a, responder: b).0.get()
        #expect(first.handshakeHash != second.handshakeHash, "ephemeral keys make every session its own")
    }

    @Test func aDialerThatExpectsAnotherPeerRefuses() async {
        let a = Curve25519.Signing.PrivateKey(), b = Curve25519.Signing.PrivateKey()
        let meant = PeerID(key: .generate())
        let (i, r) = await Self.handshake(initiator: a, responder: b, expected: meant)
        #expect(Self.message(i)?.contains("not the expected \(meant)") == true, "\(i)")
        #expect(Self.isFailure(r), "the responder gets no third message")
    }

    /// The responder's message carries its static key and payload encrypted: any flipped byte
    /// past the ephemeral key fails authentication; a flipped ephemeral key fails it too
    /// (the keys derived from it differ).
    @Test(arguments: [0, 40, 90, -1])
    func aTamperedHandshakeMessageIsRefused(offset: Int) async {
        let a = Curve25519.Signing.PrivateKey(), b = Curve25519.Signing.PrivateKey()
        let (i, _) = await Self.handshake(initiator: a, responder: b) { index, bytes in
            guard index == 0 else { return }
            let at = offset < 0 ? bytes.count - 1 : 2 + offset
            bytes[at] ^= 0x01
        }
        guard case .failure(let error) = i, let link = error as? LinkError, case .handshake = link else {
            Issue.record("the initiator accepted a tampered message: \(i)")
            return
        }
    }

    @Test func aTruncatedHandshakeMessageIsRefused() async {
        let a = Curve25519.Signing.PrivateKey(), b = Curve25519.Signing.PrivateKey()
        let (i, _) = await Self.handshake(initiator: a, responder: b) { index, bytes in
            guard index == 0 else { return }
            // A frame that claims 40 bytes: an ephemeral key and too little else.
            bytes = [0, 40] + Array(bytes[2..<42])
        }
        #expect(Self.message(i)?.contains("second handshake message too short") == true, "\(i)")
    }

    /// The payload binds the identity to the Noise static key: a payload signed for another
    /// static key (a relayed or swapped key) is refused.
    @Test func aPayloadSignedForAnotherStaticKeyIsRefused() throws {
        let identity = Curve25519.Signing.PrivateKey()
        let staticKey = Array(Curve25519.KeyAgreement.PrivateKey().publicKey.rawRepresentation)
        let otherKey = Array(Curve25519.KeyAgreement.PrivateKey().publicKey.rawRepresentation)
        let payload = try Noise.payload(identity: identity, staticKey: staticKey)
        #expect(try Noise.verify(payload: payload, remoteStatic: staticKey) == PeerID(publicKey: Array(identity.publicKey.rawRepresentation)))
        #expect(throws: LinkError.self) { try Noise.verify(payload: payload, remoteStatic: otherKey) }
        #expect(throws: LinkError.self) { try Noise.verify(payload: [0xff, 0x01], remoteStatic: staticKey) }
    }

    /// Transport frames decrypt only in order: a reordered, replayed or altered frame fails
    /// authentication, and a frame shorter than its tag is refused before any decryption.
    @Test func transportFramesDecryptOnlyInOrder() throws {
        let key = SymmetricKey(size: .bits256)
        var send = Noise.CipherState(key: key)
        let first = try send.encrypt(Array("one".utf8), ad: [])
        let second = try send.encrypt(Array("two".utf8), ad: [])
        var outOfOrder = Noise.CipherState(key: key)
        #expect(throws: LinkError.self) { try outOfOrder.decrypt(second, ad: []) }
        #expect(outOfOrder.nonce == 0, "a failed frame does not move the nonce")
        var receive = Noise.CipherState(key: key)
        var altered = first
        altered[0] ^= 0x80
        #expect(throws: LinkError.self) { try receive.decrypt(altered, ad: []) }
        #expect(try receive.decrypt(first, ad: []) == Array("one".utf8))
        #expect(throws: LinkError.self) { try receive.decrypt(first, ad: []) }
        #expect(try receive.decrypt(second, ad: []) == Array("two".utf8))
        #expect(throws: LinkError.self) { try receive.decrypt([UInt8](repeating: 0, count: Noise.tagSize - 1), ad: []) }
    }

    /// What the host sends is split into frames of at most 65535 bytes (the 2-byte length), and
    /// the receiving side reads them back in order.
    @Test func largeWritesAreSplitIntoFramesThatFitTheLengthPrefix() async throws {
        let key = SymmetricKey(size: .bits256)
        var send = Noise.CipherState(key: key)
        let plain = (0..<(3 * Noise.maxPlaintext + 100)).map { UInt8(truncatingIfNeeded: $0) }
        let wire = try Libp2pHost.encrypt(ByteBuffer(bytes: plain), &send)
        var frames: [[UInt8]] = []
        var rest = wire
        while let length = rest.readInteger(as: UInt16.self) {
            #expect(Int(length) <= Noise.maxFrame)
            frames.append(rest.readBytes(length: Int(length))!)
        }
        #expect(frames.count == 4 && rest.readableBytes == 0)
        var source = ByteReader(NoiseSource(reader: ByteReader(MemoryChunks([Array(wire.readableBytesView)])),
                                            cipher: Noise.CipherState(key: key)))
        var got: [UInt8] = []
        while try await source.fill() { got += Array(source.buffer.readableBytesView); source.buffer.clear() }
        #expect(got == plain)
    }

    @Test func aFrameCutShortByTheEndOfTheConnectionIsAnError() async {
        var reader = ByteReader(MemoryChunks([[0xff, 0xff, 1, 2, 3]]))
        await #expect(throws: LinkError.self) { _ = try await Noise.readFrame(&reader) }
    }

    static func message(_ r: Result<Noise.Result, any Error>) -> String? {
        if case .failure(let e) = r { return "\(e)" }
        return nil
    }

    static func isFailure(_ r: Result<Noise.Result, any Error>) -> Bool { message(r) != nil }
}

/// One end of an in-memory pipe: what the other end yields, one chunk per read.
struct PipeSource: ChunkSource {
    var iterator: AsyncStream<ByteBuffer>.Iterator

    init(_ stream: AsyncStream<ByteBuffer>) { iterator = stream.makeAsyncIterator() }

    mutating func nextChunk(max: Int) async throws -> ByteBuffer? { await iterator.next() }
}
