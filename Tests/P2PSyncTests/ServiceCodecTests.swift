@testable import Config
@testable import Libp2p
@testable import P2PSync
import Primitives
import Testing
import TestSupport

/// The byte-level pieces of the P2P service on top of libp2p (libp2p's own are in
/// Libp2pTests/CodecTests): peer addresses in the configuration, ev-node's envelopes, go-header's
/// messages, the node key file. Expected values come from the specs, ev-node or py-libp2p 0.8.1.
@Suite struct ServiceCodecTests {
    /// py-libp2p 0.8.1: Ed25519 key from a seed of 32 zero bytes.
    static let zeroSeedPeerID = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"

    @Test func configTakesMultiaddrsAndHostPort() throws {
        let id = Self.zeroSeedPeerID
        let m = try P2PPeerAddress(parsing: "/ip4/127.0.0.1/tcp/7676/p2p/\(id)")
        #expect(m.host == "127.0.0.1" && m.port == 7676 && m.peerID == id)
        #expect(m.description == "/ip4/127.0.0.1/tcp/7676/p2p/\(id)")
        let plain = try P2PPeerAddress(parsing: "node-b:7676")
        #expect(plain.peerID == nil && plain.host == "node-b")
        #expect(throws: P2PPeerAddress.Failure.self) { try P2PPeerAddress(parsing: "/ip4/127.0.0.1/tcp/7676/p2p/QmNotEd25519") }
        #expect(throws: P2PPeerAddress.Failure.self) { try P2PPeerAddress(parsing: "/ip4/127.0.0.1/udp/7676") }
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
