import Primitives
@testable import Config
import Crypto
import NIOCore
@testable import P2PSync
import Testing
import TestSupport
@testable import Libp2p

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

    @Test func configTakesMultiaddrsAndHostPort() throws {
        let id = PeerIDVector.zeroSeed
        let m = try P2PPeerAddress(parsing: "/ip4/127.0.0.1/tcp/7676/p2p/\(id)")
        #expect(m.host == "127.0.0.1" && m.port == 7676 && m.peerID == id)
        #expect(m.description == "/ip4/127.0.0.1/tcp/7676/p2p/\(id)")
        let plain = try P2PPeerAddress(parsing: "node-b:7676")
        #expect(plain.peerID == nil && plain.host == "node-b")
        #expect(throws: P2PPeerAddress.Failure.self) { try P2PPeerAddress(parsing: "/ip4/127.0.0.1/tcp/7676/p2p/QmNotEd25519") }
        #expect(throws: P2PPeerAddress.Failure.self) { try P2PPeerAddress(parsing: "/ip4/127.0.0.1/udp/7676") }
    }

    @Test func multistreamMessages() {
        let b = Multistream.messages(["/multistream/1.0.0", "na"])
        #expect(Array(b.readableBytesView) == [19] + Array("/multistream/1.0.0\n".utf8) + [0x03, 0x6e, 0x61, 0x0a])
    }

    /// ev-node's envelopes: the hint is appended (always, even 0) and stripped before decoding.
    @Test func envelopesAppendAndStripTheHint() throws {
        let body: [UInt8] = [0x0a, 0x00, 0x12, 0x01, 0x41]
        let env = P2PEnvelope.header(encodedSignedHeader: body, daHeightHint: 0)
        #expect(env == body + [0x20, 0x00])
        let (stripped, hint) = try P2PEnvelope.strip(env, hintField: P2PEnvelope.headerHintField)
        #expect(stripped == body && hint == 0)
        let data = P2PEnvelope.data(encodedData: body, daHeightHint: 300)
        #expect(data == body + [0x18, 0xac, 0x02])
        #expect(try P2PEnvelope.strip(data, hintField: P2PEnvelope.dataHintField).hint == 300)
        #expect(throws: EnvelopeError.self) { try P2PEnvelope.strip([0x12, 0x05, 0x01], hintField: 4) }
    }

    /// go-header's requests: origin 0 is still written (oneof), OK is explicit.
    @Test func headerExchangeMessages() throws {
        let head = HeaderExchange.frame(HeaderExchange.headRequest())
        #expect(Array(head.readableBytesView) == [0x04, 0x08, 0x00, 0x18, 0x01])
        let ok = HeaderExchange.frame(HeaderExchange.ok([0xaa]))
        #expect(Array(ok.readableBytesView) == [0x05, 0x0a, 0x01, 0xaa, 0x10, 0x01])
        let nf = HeaderExchange.frame(HeaderExchange.notFound)
        #expect(Array(nf.readableBytesView) == [0x02, 0x10, 0x02])
    }

    /// ev-node's node_key.json: 64 bytes seed ‖ public key, standard base64.
    @Test func nodeKeyFileRoundTripsInEvNodeFormat() throws {
        let dir = TempDirectory("evnode-nodekey")
        let key = KeyFile.generate()
        let path = dir.sub("node_key.json")
        try NodeKeyFile.save(key, path: path)
        #expect(try NodeKeyFile.load(path: path).publicKey == key.publicKey)
        #expect(FileIO.mode(path) == 0o600)
        let text = try FileIO.readString(path, limit: 4096)
        #expect(text.contains("\"priv_key\"") && text.contains("\"pub_key\""))
        let bad = dir.sub("bad.json")
        try FileIO.writeAtomically(bad, "{\"priv_key\":\"AAAA\",\"pub_key\":\"\"}", mode: 0o600, exclusive: true)
        #expect(throws: ConfigError.self) { try NodeKeyFile.load(path: bad) }
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
