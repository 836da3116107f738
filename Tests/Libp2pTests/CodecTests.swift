import Crypto
@testable import Libp2p
import NIOCore
import Primitives
import Testing

/// The byte-level pieces of the libp2p stack. Expected values come from the specs or from
/// py-libp2p 0.8.1 (computed once with it, noted per test), not from this code.
@Suite struct CodecTests {
    @Test func varintsAreMinimalLEB128() {
        #expect(Varint.encode(0) == [0])
        #expect(Varint.encode(127) == [0x7f])
        #expect(Varint.encode(128) == [0x80, 0x01])
        #expect(Varint.encode(300) == [0xac, 0x02])
        #expect(Varint.parse([0x80, 0x00]) == .invalid) // not minimal
        #expect(Varint.parse([0x80]) == .incomplete)
        #expect(Varint.parse([UInt8](repeating: 0xff, count: 10)) == .invalid)
    }

    /// py-libp2p: `create_new_key_pair(bytes(32))` → `ID.from_pubkey(...).to_string()`.
    @Test func peerIDOfAKnownKey() throws {
        let key = try Curve25519.Signing.PrivateKey(rawRepresentation: [UInt8](repeating: 0, count: 32))
        let id = PeerID(publicKey: Array(key.publicKey.rawRepresentation))
        #expect(id.description == PeerIDVector.zeroSeed)
        #expect(id.description.hasPrefix("12D3KooW"))
        #expect(id.bytes.prefix(6) == [0x00, 0x24, 0x08, 0x01, 0x12, 0x20])
        #expect(PeerID(string: id.description) == id)
        #expect(PeerID(string: "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N") == nil) // RSA/sha256 ids are refused
        #expect(PeerID(string: "12D3KooW0OIl") == nil) // not base58
    }

    @Test func base58RoundTrips() {
        for bytes: [UInt8] in [[], [0], [0, 0, 1], Array(0...255), [0xff, 0xee]] {
            #expect(Base58.decode(Base58.encode(bytes)) == bytes)
        }
        #expect(Base58.encode(Array("hello world".utf8)) == "StV1DL6CwTryKyV")
    }

    /// Binary multiaddrs as py's `multiaddr` package writes them.
    @Test func multiaddrsInTextAndBinary() throws {
        let a = try Multiaddr(parsing: "/ip4/127.0.0.1/tcp/7676")
        #expect(a.bytes == [0x04, 127, 0, 0, 1, 0x06, 0x1d, 0xfc])
        #expect(Multiaddr(bytes: a.bytes) == a)
        let id = PeerID(string: PeerIDVector.zeroSeed)!
        let b = try Multiaddr(parsing: "/ip4/10.0.0.2/tcp/1/p2p/\(id)")
        #expect(b.peerID == id)
        #expect(Multiaddr(bytes: b.bytes) == b)
        #expect(b.description == "/ip4/10.0.0.2/tcp/1/p2p/\(id)")
        #expect(throws: MultiaddrError.self) { try Multiaddr(parsing: "/ip4/1.2.3.4/udp/1/quic-v1") }
        #expect(throws: MultiaddrError.self) { try Multiaddr(parsing: "/ip4/1.2.3/tcp/1") }
    }

    @Test func multistreamMessages() {
        let b = Multistream.messages(["/multistream/1.0.0", "na"])
        #expect(Array(b.readableBytesView) == [19] + Array("/multistream/1.0.0\n".utf8) + [0x03, 0x6e, 0x61, 0x0a])
    }
}

@Suite struct YamuxSessionTests {
    /// Streams opened concurrently may announce themselves out of id order (go-yamux accepts
    /// that); only an id that is open now is a duplicate.
    @Test func synsOutOfOrderAreStreamsAndAReopenedIDIsAViolation() throws {
        let listener = YamuxSession(isDialer: false)
        var frames = ByteBuffer()
        frames.writeImmutableBuffer(Yamux.header(.windowUpdate, .syn, stream: 3, length: 0))
        frames.writeImmutableBuffer(Yamux.header(.windowUpdate, .syn, stream: 1, length: 0))
        try listener.receive(&frames)
        #expect(listener.streamCount == 2)
        var again = Yamux.header(.windowUpdate, .syn, stream: 3, length: 0)
        #expect(throws: LinkError.self) { try listener.receive(&again) }
        var ours = Yamux.header(.windowUpdate, .syn, stream: 2, length: 0)
        #expect(throws: LinkError.self) { try listener.receive(&ours) }
        listener.close()
    }

    /// A peer that overruns a stream's 256 KiB window is a protocol violation.
    @Test func dataBeyondTheWindowIsAViolation() throws {
        let listener = YamuxSession(isDialer: false)
        var open = Yamux.header(.windowUpdate, .syn, stream: 1, length: 0)
        try listener.receive(&open)
        var flood = Yamux.header(.data, [], stream: 1, length: Yamux.initialWindow + 1)
        flood.writeBytes([UInt8](repeating: 0, count: Int(Yamux.initialWindow) + 1))
        #expect(throws: LinkError.self) { try listener.receive(&flood) }
        listener.close()
    }
}

enum PeerIDVector {
    /// py-libp2p 0.8.1: Ed25519 key from a seed of 32 zero bytes.
    static let zeroSeed = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
}
