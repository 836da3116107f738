@testable import P2PSync
import Execution
import ProcessKit
import Testing
import TestSupport

/// A node that pruned old blocks (`pruning.pruning_mode: all`) answers go-header range requests
/// for them with NOT_FOUND, keeps serving the rest, and stays up.
@Suite struct PrunedRangeTests {
    @Test func prunedHeightsAreNotFoundAndTheRestIsServed() async throws {
        let chain = try TestChain(chainID: "p2p-test")
        try chain.build(to: 50)
        try ChainExecution(store: chain.store, executor: chain.executor).finalize(through: 45)
        try chain.store.prune(.blocks, through: 30, maxHeights: 100)
        let server = try await TestNode.start("server", chain: chain, source: StoreBlockSource(store: chain.store))
        let client = try await TestNode.start("client", chain: chain, peers: [server.multiaddr])
        try await waitUntil("the client proves the server's head") { client.service.maxPeerHeight == 50 }
        await #expect(throws: P2PError.self, "pruned: NOT_FOUND") {
            try await client.service.requestRange(from: 1, to: 10)
        }
        await #expect(throws: P2PError.self, "a range that starts in the pruned part") {
            try await client.service.requestRange(from: 25, to: 35)
        }
        let kept = try await client.service.requestRange(from: 31, to: 50)
        #expect(kept.map(\.block) == (try chain.blocks(31...50)))
        #expect(client.isConnected(to: server), "nobody was blamed or dropped")
        await client.stop()
        await server.stop()
    }
}
