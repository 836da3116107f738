@testable import Config
import NIOCore
@testable import P2PSync
import Testing

@Suite("P2P duplicate connections")
struct DuplicateConnectionRuleTests {
    static func nonce(_ first: UInt8) -> [UInt8] {
        [first] + [UInt8](repeating: 0x5a, count: P2PProtocol.nonceSize - 1)
    }

    /// What one end keeps after its handshakes complete in `order`: the registry's decision,
    /// one completed handshake at a time.
    static func kept(after order: [ConnectionOrigin]) -> ConnectionOrigin? {
        var kept: ConnectionOrigin?
        for candidate in order {
            if let existing = kept, !DuplicateConnectionRule.keeps(candidate, over: existing) { continue }
            kept = candidate
        }
        return kept
    }

    static func permutations<T>(_ items: [T]) -> [[T]] {
        guard items.count > 1 else { return [items] }
        return items.indices.flatMap { i -> [[T]] in
            var rest = items
            let head = rest.remove(at: i)
            return permutations(rest).map { [head] + $0 }
        }
    }

    @Test("the connection dialled by the smaller node id wins, whatever the nonces")
    func smallerDialerWins() {
        let (x, y) = (PeerID(key: .generate()), PeerID(key: .generate()))
        let (small, large) = x < y ? (x, y) : (y, x)
        for (n1, n2) in [(Self.nonce(0x00), Self.nonce(0xff)), (Self.nonce(0xff), Self.nonce(0x00))] {
            let bySmall = ConnectionOrigin(dialer: small, dialerNonce: n1)
            let byLarge = ConnectionOrigin(dialer: large, dialerNonce: n2)
            #expect(DuplicateConnectionRule.keeps(bySmall, over: byLarge))
            #expect(!DuplicateConnectionRule.keeps(byLarge, over: bySmall))
        }
    }

    @Test("between two connections dialled by the same node the smaller dialler nonce wins; a connection never replaces itself")
    func sameDialerByNonce() {
        let dialer = PeerID(key: .generate())
        let low = ConnectionOrigin(dialer: dialer, dialerNonce: Self.nonce(0x01))
        let high = ConnectionOrigin(dialer: dialer, dialerNonce: Self.nonce(0x02))
        #expect(DuplicateConnectionRule.keeps(low, over: high))
        #expect(!DuplicateConnectionRule.keeps(high, over: low))
        #expect(!DuplicateConnectionRule.keeps(low, over: low))
    }

    @Test("both ends keep the same connection whatever order their handshakes complete in")
    func orderIndependent() {
        // Two nodes dial each other, and one of them dials twice (two addresses of the same
        // peer): three connections between the same pair, completed in every possible order on
        // each end. Both ends see the same origins, so every order must give the same winner.
        for _ in 0..<20 {
            let (p, q) = (PeerID(key: .generate()), PeerID(key: .generate()))
            let connections = [
                ConnectionOrigin(dialer: p, dialerNonce: HandshakeTranscript.freshNonce()),
                ConnectionOrigin(dialer: p, dialerNonce: HandshakeTranscript.freshNonce()),
                ConnectionOrigin(dialer: q, dialerNonce: HandshakeTranscript.freshNonce()),
            ]
            let outcomes = Set(Self.permutations(connections).compactMap { Self.kept(after: $0)?.dialerNonce })
            #expect(outcomes.count == 1)
            #expect(Self.kept(after: connections)?.dialer == min(p, q))
        }
    }
}

@Suite("P2P duplicate connections are drained, not cut", .serialized)
struct DuplicateDrainTests {
    @Test("a connection that loses to another one to the same peer still delivers what the peer sends on it, then closes")
    func losingConnectionsAreDrained() async throws {
        let chain = try TestChain()
        // The test sends on drained connections: their drain must outlast a loaded machine's
        // pauses between the goodbye and the send (3 s did not, once, in a parallel run).
        var settings = P2PSettings.test
        settings.duplicateDrainTimeout = .seconds(10)
        let node = try await TestNode.start("N", chain: chain, settings: settings)
        let key = KeyFile.generate()
        let peer = PeerID(key: key)
        // The raw peer dials three times with chosen nonces; all three are dialled by it, so the
        // smallest nonce wins (DuplicateConnectionRule).
        let middle = try await RawPeer.connect(port: node.port, from: "127.0.0.31")
        _ = try await middle.handshake(chainID: chain.chainID, key: key, nonce: DuplicateConnectionRuleTests.nonce(0x80))
        try await waitUntil("first connection registered") { node.isConnected(to: peer) }

        // A worse one: refused with a goodbye, but not cut.
        let worse = try await RawPeer.connect(port: node.port, from: "127.0.0.32")
        _ = try await worse.handshake(chainID: chain.chainID, key: key, nonce: DuplicateConnectionRuleTests.nonce(0xff))
        try await waitUntil("goodbye on the losing connection") { worse.goodbye != nil }
        #expect(worse.goodbye?.reason == .duplicateConnection)
        #expect(worse.messages.contains(.status(height: 0, proof: [])), "the status follows every completed handshake")
        // The peer had not seen the goodbye yet when it sent this: it must still arrive.
        let block1 = try chain.block(height: 1)
        try await worse.send(.newBlock(block1))
        try await waitUntil("block sent on the losing connection received") { node.hasReceived(block1) }
        #expect(node.received.first { $0.block == block1 }?.from == peer)
        #expect(node.service.peers.map(\.remoteAddress.ipOnly) == ["127.0.0.31"])
        await worse.close()

        // A better one: it replaces the registered one, which is drained the same way.
        let better = try await RawPeer.connect(port: node.port, from: "127.0.0.33")
        _ = try await better.handshake(chainID: chain.chainID, key: key, nonce: DuplicateConnectionRuleTests.nonce(0x00))
        try await waitUntil("goodbye on the replaced connection") { middle.goodbye != nil }
        #expect(middle.goodbye?.reason == .duplicateConnection)
        #expect(node.service.peers.map(\.remoteAddress.ipOnly) == ["127.0.0.33"])
        let block2 = try chain.block(height: 2)
        try await middle.send(.status(height: 40, proof: try chain.block(height: 40).encodedSignedHeader))
        try await middle.send(.newBlock(block2))
        try await waitUntil("block sent on the replaced connection received") { node.hasReceived(block2) }
        // Its announcement is the peer's: the kept connection shows it.
        #expect(node.service.peers.first?.announcedHeight == 40)
        #expect(node.service.maxPeerHeight == 40)
        // The node's own traffic now goes over the kept connection only.
        let block3 = try chain.block(height: 3)
        node.service.broadcast(block: block3)
        try await waitUntil("broadcast arrives on the kept connection") { better.messages.contains(.newBlock(block3)) }
        #expect(!middle.messages.contains(.newBlock(block3)))

        // A drained connection the peer does not close is closed by the node after the drain
        // timeout; the kept one stays.
        try await waitUntil("drained connection closed by the node", timeout: .seconds(60)) { middle.isClosed }
        #expect(!better.isClosed)
        #expect(node.service.peers.count == 1)
        await better.close()
        await middle.close()
        await node.stop()
    }
}

extension TestNode {
    func isConnected(to peer: PeerID) -> Bool {
        service.peers.contains { $0.id == peer }
    }
}

extension String {
    /// "1.2.3.4" of "1.2.3.4:port".
    var ipOnly: String { String(split(separator: ":").first ?? "") }
}
