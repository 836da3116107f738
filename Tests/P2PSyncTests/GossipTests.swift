@testable import Chain
import Foundation
@testable import P2PSync
import ProcessKit
import Testing
import TestSupport
@testable import Libp2p

/// The gossip-in path against a peer that sends what it likes (issue 27 §2; review C4, M1, M3):
/// real `P2PService`s on 127.0.0.1, the attacker one of them publishing its own messages.
@Suite struct GossipTests {
    /// Data for `height` of the test chain with txs of `size` bytes that no header commits to.
    static func junkData(_ chain: TestChain, height: UInt64, size: Int = 64, time: UInt64 = 1) -> [UInt8] {
        BlockData(metadata: Metadata(chainID: chain.chainID, height: height, time: time, lastDataHash: []),
                  txs: [[UInt8](repeating: UInt8(truncatingIfNeeded: height), count: size)]).encoded()
    }

    /// M1 (a): mallory sends data for height 1 that the proposer never signed, to an honest
    /// relay. The relay must not pass it on: if it did, the victim would pair it with the real
    /// header 1 and blame the relay. The victim gets the real block 1 and bans nobody.
    @Test func unpairedDataIsNotRelayedSoNoRelayerIsBlamed() async throws {
        let chain = try TestChain(chainID: "p2p-test")
        try chain.build(to: 3)
        let victim = try await TestNode.start("victim", chain: chain)
        let relay = try await TestNode.start("relay", chain: chain, peers: [victim.multiaddr])
        let mallory = try await TestNode.start("mallory", chain: chain, peers: [relay.multiaddr])
        let aggregator = try await TestNode.start("aggregator", chain: chain, peers: [victim.multiaddr])
        try await mallory.waitForSubscribers(1)
        try await relay.waitForSubscribers(2)
        try await aggregator.waitForSubscribers(1)
        try await victim.waitForSubscribers(2)

        let block1 = try chain.block(height: 1), block3 = try chain.block(height: 3)
        let header1 = try #require(try chain.store.signedHeader(at: 1))
        mallory.publish(data: Self.junkData(chain, height: 1, time: header1.header.time))
        // A marker behind it on the same path: FloodSub keeps each stream's order, so once the
        // victim has block 3 it has seen whatever the relay forwarded before.
        mallory.publish(header: block3.encodedSignedHeader)
        mallory.publish(data: block3.encodedData)
        try await waitUntil("the victim gets block 3 through the relay") { victim.hasReceived(block3) }
        #expect(relay.service.heldGossip.dataHeights == [1], "the relay holds mallory's data (in the window)")
        #expect(victim.service.heldGossip.dataMessages == 0, "and does not relay it")

        aggregator.service.broadcast(block: block1)
        try await waitUntil("the victim gets the real block 1", timeout: .seconds(20)) { victim.hasReceived(block1) }
        #expect(!victim.service.isBanned(peer: relay.id), "the honest relay is not blamed")
        #expect(victim.isConnected(to: relay))
        #expect(victim.received.map(\.block.height).sorted() == [1, 3])
        for n in [aggregator, mallory, relay, victim] { await n.stop() }
    }

    /// C4: data no header vouches for is held only within the window above the store and under
    /// the byte budget, the highest heights evicted first; beyond the window it is not held at
    /// all. None of it blames its sender, and none of it keeps the real block from pairing.
    @Test func dataWithoutItsHeaderIsBoundedAndDisplacesNothing() async throws {
        let chain = try TestChain(chainID: "p2p-test")
        try chain.build(to: 2)
        var settings = P2PSettings.test
        settings.pendingDataWindow = 16
        settings.pendingDataBudgetBytes = 1 << 20
        let victim = try await TestNode.start("victim", chain: chain, settings: settings)
        let mallory = try await TestNode.start("mallory", chain: chain, peers: [victim.multiaddr])
        let aggregator = try await TestNode.start("aggregator", chain: chain, peers: [victim.multiaddr])
        try await mallory.waitForSubscribers(1)
        try await aggregator.waitForSubscribers(1)
        try await victim.waitForSubscribers(2)

        // 200 kB each: five fit in 1 MiB. Sent highest first, so the lower ones evict them.
        let size = 200_000
        for height in [UInt64(1_000), 20, 19, 18, 17] + (2...16).reversed() {
            mallory.publish(data: Self.junkData(chain, height: height, size: size))
        }
        let block1 = try chain.block(height: 1), block2 = try chain.block(height: 2)
        mallory.publish(header: block1.encodedSignedHeader)
        mallory.publish(data: block1.encodedData)
        try await waitUntil("the victim gets block 1 behind mallory's data") { victim.hasReceived(block1) }
        let held = victim.service.heldGossip
        #expect(held.dataHeights == [2, 3, 4, 5, 6], "the lowest heights within the window: \(held.dataHeights)")
        #expect(held.dataBytes <= settings.pendingDataBudgetBytes)

        // The real block 2: its header drops mallory's data at 2, its data pairs.
        aggregator.service.broadcast(block: block2)
        try await waitUntil("the victim gets the real block 2", timeout: .seconds(20)) { victim.hasReceived(block2) }
        #expect(victim.service.heldGossip.dataHeights == [3, 4, 5, 6])
        #expect(!victim.service.isBanned(peer: mallory.id), "data that matches no header blames nobody")
        #expect(!victim.service.isBanned(peer: aggregator.id))
        for n in [aggregator, mallory, victim] { await n.stop() }
    }

    /// C4: held headers are bounded too, the highest evicted first (they are the proposer's, but
    /// a node far behind would otherwise keep every live header until it catches up).
    @Test func headersWaitingForDataAreBoundedHighestEvictedFirst() async throws {
        let chain = try TestChain(chainID: "p2p-test")
        try chain.build(to: 12)
        var settings = P2PSettings.test
        settings.pendingHeaderCapacity = 4
        let victim = try await TestNode.start("victim", chain: chain, settings: settings)
        let peer = try await TestNode.start("peer", chain: chain, peers: [victim.multiaddr])
        try await peer.waitForSubscribers(1)
        for height in UInt64(5)...12 {
            peer.publish(header: try chain.block(height: height).encodedSignedHeader)
        }
        for height in (UInt64(1)...4).reversed() {
            peer.publish(header: try chain.block(height: height).encodedSignedHeader)
        }
        let block1 = try chain.block(height: 1)
        peer.publish(data: block1.encodedData)
        try await waitUntil("block 1 pairs") { victim.hasReceived(block1) }
        let held = victim.service.heldGossip
        #expect(held.waitingHeaderHeights == [2, 3, 4], "\(held)")
        #expect(held.headerRecords == 4, "three waiting and block 1's delivered hash")
        for n in [peer, victim] { await n.stop() }
    }

    /// M3: a header at or below the store height is dropped before its signature is checked,
    /// and so is a header the node holds already (a replay with a fresh seqno).
    @Test func cheapChecksComeBeforeTheSignatureCheck() async throws {
        let chain = try TestChain(chainID: "p2p-test")
        try chain.build(to: 11)
        let served = MemoryBlockSource(try chain.blocks(1...10))
        let recorder = RecordingValidator(chain.signedBlockValidator)
        let victim = try await TestNode.start("victim", chain: chain, source: served, validator: recorder)
        let peer = try await TestNode.start("peer", chain: chain, peers: [victim.multiaddr])
        try await peer.waitForSubscribers(1)
        for height in UInt64(1)...10 {
            peer.publish(header: try chain.block(height: height).encodedSignedHeader)
        }
        let block11 = try chain.block(height: 11)
        for _ in 0..<3 { peer.publish(header: block11.encodedSignedHeader) }
        peer.publish(data: block11.encodedData)
        try await waitUntil("block 11 pairs") { victim.hasReceived(block11) }
        #expect(recorder.headerChecks == 1, "only the first copy of header 11 is verified")
        #expect(victim.received.count == 1)
        for n in [peer, victim] { await n.stop() }
    }

    /// go-header's clock rule (reference §5): a validly signed header more than 10 s ahead of
    /// the local clock is dropped — not held, not delivered, its sender not banned — while one
    /// 5 s ahead is taken.
    @Test func headersMoreThanTenSecondsAheadAreDroppedWithoutBlame() async throws {
        let chain = try TestChain(chainID: "p2p-test")
        try chain.build(to: 3)
        let victim = try await TestNode.start("victim", chain: chain)
        let peer = try await TestNode.start("peer", chain: chain, peers: [victim.multiaddr])
        try await peer.waitForSubscribers(1)
        let genuine = try #require(try chain.store.block(at: 1))
        func block(at height: UInt64, aheadBy ahead: UInt64) throws -> P2PBlock {
            var header = genuine.signedHeader.header
            header.height = height
            header.time = BlockValidator.currentTime() + ahead
            let signed = try chain.signer.sign(header: header)
            let data = BlockData(metadata: Metadata(chainID: chain.chainID, height: height, time: header.time, lastDataHash: []),
                                 txs: genuine.data.txs)
            return P2PBlock(signedHeader: signed, data: data)
        }
        let far = try block(at: 5, aheadBy: 30_000_000_000)
        let near = try block(at: 6, aheadBy: 5_000_000_000)
        for b in [far, near] {
            peer.publish(header: b.encodedSignedHeader)
            peer.publish(data: b.encodedData)
        }
        try await waitUntil("the header 5 s ahead pairs") { victim.hasReceived(near) }
        #expect(!victim.hasReceived(far), "30 s ahead is beyond go-header's 10 s")
        #expect(!victim.service.heldGossip.waitingHeaderHeights.contains(5))
        #expect(!victim.service.isBanned(peer: peer.id), "clocks drift: nobody is blamed")
        #expect(victim.isConnected(to: peer))
        for n in [peer, victim] { await n.stop() }
    }
}
