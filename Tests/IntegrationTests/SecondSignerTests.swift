import Primitives
import Foundation
import P2PSync
import ProcessKit
import Testing
import TestSupport

/// Issue 27: a second live signer. While an aggregator (outside HA) produces, a header validly
/// signed by the chain's proposer key at or above the height it signs next, from anywhere else,
/// stops production and the process exits with status 3 naming height, hash and peer. The other
/// signer here is a real P2P node (the project's `P2PService` over libp2p) holding blocks made
/// with the aggregator's own key; the aggregator is lazy, so its height stays put.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct SecondSignerTests {
    /// The other signer's head answer proves a height above the aggregator's store.
    @Test func aPeerProvingAHeightAboveTheStoreStopsTheAggregator() async throws {
        try await Testnet.run(chainID: "second-signer-head") { net in
            let da = try await net.startDA(blockTime: "500ms")
            let aggregator = try net.makeNode(name: "aggregator", aggregator: true, jsonLogs: true)
            try await aggregator.start(flags: CatchupTests.lazyAggregator(da))
            try await aggregator.produceBlocksWithTxs(3, tag: "tx")
            let n = try await aggregator.status().heights.store
            let hashes = try await aggregator.hashes(through: n)

            let rival = try catchupSignedBlocks(aggregator: aggregator, heights: (n + 5)...(n + 5))[0]
            let (peer, _) = try await catchupStartUnservablePeer(aggregator: aggregator, announcing: n + 5, head: rival,
                                                                 dialling: [aggregator.p2pAddress])
            let status = try await aggregator.waitForExit("the aggregator to stop for the second signer")
            let output = aggregator.output
            #expect(status == 3, "\(output.suffix(3000))")
            #expect(output.contains("second live signer"), "\(output.suffix(3000))")
            #expect(output.contains("at height \(n + 5) (hash \(Hex.encode(rival.headerHash)))"), "\(output.suffix(3000))")
            #expect(output.contains("peer \(peer.localID) (its head answer)"), "\(output.suffix(3000))")
            #expect(output.contains("was to sign height \(n + 1)"))
            #expect(try aggregator.storedHashes() == hashes, "nothing signed after the sighting")
            #expect(try aggregator.signerMark() == n)
            await peer.shutdown()
            await da.stop()
        }
    }

    /// The other signer gossips a block at the aggregator's next height (its head answer says
    /// "empty chain", so only the gossip tells): the aggregator stops the same way.
    @Test func aGossipedBlockAtTheNextHeightStopsTheAggregator() async throws {
        try await Testnet.run(chainID: "second-signer-gossip") { net in
            let da = try await net.startDA(blockTime: "500ms")
            let aggregator = try net.makeNode(name: "aggregator", aggregator: true, jsonLogs: true)
            try await aggregator.start(flags: CatchupTests.lazyAggregator(da))
            try await aggregator.produceBlocksWithTxs(2, tag: "tx")
            let n = try await aggregator.status().heights.store

            let rival = try catchupSignedBlocks(aggregator: aggregator, heights: (n + 1)...(n + 1))[0]
            let (peer, _) = try await catchupStartUnservablePeer(aggregator: aggregator, announcing: 0, head: nil,
                                                                 dialling: [aggregator.p2pAddress])
            // Published until it lands (the aggregator must have seen the peer's subscription).
            try await waitUntil("the aggregator to exit", timeout: .seconds(60), every: .milliseconds(200)) {
                if aggregator.isRunning { peer.broadcast(block: rival) }
                return !aggregator.isRunning
            }
            let status = try await aggregator.waitForExit("the aggregator's exit status")
            let output = aggregator.output
            #expect(status == 3, "\(output.suffix(3000))")
            #expect(output.contains("second live signer"), "\(output.suffix(3000))")
            #expect(output.contains("at height \(n + 1) (hash \(Hex.encode(rival.headerHash)))"), "\(output.suffix(3000))")
            #expect(output.contains("peer \(peer.localID) (a gossiped block)"), "\(output.suffix(3000))")
            #expect(try aggregator.signerMark() == n)
            await peer.shutdown()
            await da.stop()
        }
    }
}
