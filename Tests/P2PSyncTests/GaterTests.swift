@testable import Config
import Foundation
@testable import P2PSync
import ProcessKit
import Testing
import TestSupport
@testable import Libp2p

/// `p2p.blocked_peers` / `p2p.allowed_peers` (ev-node's connection gater) on real TCP: refused
/// right after the Noise handshake proves the id, before any stream; never dialled.
@Suite struct GaterTests {
    let a = PeerID(key: .generate()), b = PeerID(key: .generate()), c = PeerID(key: .generate())

    @Test func theRules() {
        let open = PeerGate()
        #expect(open.isOpen && open.refusal(a, dialledConfiguredAddress: false) == nil)

        let blocking = PeerGate(blocked: [a])
        #expect(blocking.refusal(a, dialledConfiguredAddress: false) == "peer \(a) is in p2p.blocked_peers")
        #expect(blocking.refusal(a, dialledConfiguredAddress: true) != nil, "blocked even at a configured address")
        #expect(blocking.refusal(b, dialledConfiguredAddress: false) == nil, "an empty allowed list lets everyone else in")

        let allowing = PeerGate(blocked: [a], allowed: [a, b], configured: [c])
        #expect(allowing.refusal(a, dialledConfiguredAddress: false) == nil, "allowed wins over blocked, as in ev-node")
        #expect(allowing.refusal(b, dialledConfiguredAddress: false) == nil)
        #expect(allowing.refusal(c, dialledConfiguredAddress: false) == nil, "a configured peer named by id")
        let stranger = PeerID(key: .generate())
        #expect(allowing.refusal(stranger, dialledConfiguredAddress: false) == "peer \(stranger) is not in p2p.allowed_peers")
        #expect(allowing.refusal(stranger, dialledConfiguredAddress: true) == nil, "who answers at a configured address")
    }

    @Test func aPeerIDThatDoesNotParseFailsTheStartNamingTheSetting() async throws {
        let chain = try TestChain(chainID: "p2p-test")
        await #expect(throws: P2PError.invalidPeerID(setting: "p2p.allowed_peers", value: "12D3KooWnot-base58")) {
            _ = try await TestNode.start("a", chain: chain, allowed: ["12D3KooWnot-base58"])
        }
    }

    @Test func aBlockedPeerIsRefusedAfterItsHandshakeBeforeAnyStream() async throws {
        let chain = try TestChain(chainID: "p2p-test")
        try chain.build(to: 5)
        let blockedKey = KeyFile.generate()
        let node = try await TestNode.start("a", chain: chain, source: chain.source, blocked: [PeerID(key: blockedKey).description])
        // The blocked peer dials with a real P2PService and keeps redialling.
        let blocked = try await TestNode.start("blocked", chain: chain, peers: [node.multiaddr], key: blockedKey)
        let friend = try await TestNode.start("friend", chain: chain, peers: [node.multiaddr])
        try await waitUntil("the friend is connected and proves the head") { friend.service.maxPeerHeight == 5 }
        try await waitUntil("the blocked peer's dials are refused, twice") { node.service.host.connectionCounts.refused >= 2 }
        #expect(!node.isConnected(to: blocked) && !blocked.isConnected(to: node))
        #expect(blocked.service.maxPeerHeight == nil, "it never got an answer")

        // By hand: the handshake completes, then the node says GoAway and closes; a stream the
        // blocked peer opens is never answered.
        let answered = try await RawSession.with(port: node.port, key: blockedKey) { raw -> Bool in
            _ = try? await raw.open(HeaderExchange.protocolID(network: HeaderExchange.headerNetwork(chainID: chain.chainID)))
            let frame = try await raw.readUntil { $0.type == .data || $0.type == .goAway }
            return frame?.type == .data
        }
        #expect(!answered)
        for n in [friend, blocked, node] { await n.stop() }
    }

    @Test func aBlockedConfiguredPeerIsNeverDialled() async throws {
        let chain = try TestChain(chainID: "p2p-test")
        let target = try await TestNode.start("target", chain: chain)
        let node = try await TestNode.start("a", chain: chain, peers: [target.multiaddr], blocked: [target.id.description])
        try await waitUntil("the target is gated") {
            if case .gated? = node.service.dialTargets.first?.state { return true }
            return false
        }
        #expect(target.service.host.connectionCounts == .init(), "not one TCP connection reached the target")
        #expect(node.service.silentConfiguredPeers == [try P2PPeerAddress(parsing: target.multiaddr).description],
                "still configured: the catchup names it among the peers that never answered")
        await node.stop()
        await target.stop()
    }

    @Test func aConfiguredAddressWithoutIDIsDroppedOnceItsHandshakeProvesABlockedID() async throws {
        let chain = try TestChain(chainID: "p2p-test")
        let target = try await TestNode.start("target", chain: chain)
        let node = try await TestNode.start("a", chain: chain, peers: ["127.0.0.1:\(target.port)"],
                                            blocked: [target.id.description])
        try await waitUntil("the target is gated after one handshake") {
            if case .gated? = node.service.dialTargets.first?.state { return true }
            return false
        }
        #expect(!node.isConnected(to: target))
        #expect(node.service.silentConfiguredPeers.count == 1)
        await node.stop()
        await target.stop()
    }

    @Test func allowedPeersAdmitOnlyThemAndTheConfiguredPeers() async throws {
        let chain = try TestChain(chainID: "p2p-test")
        try chain.build(to: 3)
        let configured = try await TestNode.start("configured", chain: chain)
        let allowedKey = KeyFile.generate()
        let node = try await TestNode.start("a", chain: chain, peers: ["127.0.0.1:\(configured.port)"], source: chain.source,
                                            allowed: [PeerID(key: allowedKey).description])
        let allowed = try await TestNode.start("allowed", chain: chain, peers: [node.multiaddr], key: allowedKey)
        let stranger = try await TestNode.start("stranger", chain: chain, peers: [node.multiaddr])
        try await waitUntil("the allowed peer proves the head") { allowed.service.maxPeerHeight == 3 }
        try await waitUntil("the configured peer (not on the list) is connected") { node.isConnected(to: configured) }
        try await waitUntil("the stranger's dials are refused") { node.service.host.connectionCounts.refused >= 2 }
        #expect(!node.isConnected(to: stranger) && stranger.service.maxPeerHeight == nil)
        for n in [stranger, allowed, node, configured] { await n.stop() }
    }
}
