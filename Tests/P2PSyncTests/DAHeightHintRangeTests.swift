@testable import Store
@testable import P2PSync
import ProcessKit
import Testing
import TestSupport

/// A node serves the DA heights that include its blocks as the envelopes' `da_height_hint`
/// (ev-node's store does), and a range answer hands them to the node with each block.
@Suite struct DAHeightHintRangeTests {
    @Test func rangeAnswersCarryTheServersDAInclusionAsHints() async throws {
        let chain = try TestChain(chainID: "p2p-test")
        try chain.build(to: 10)
        try chain.store.recordDAInclusions((UInt64(1)...5).map {
            (height: $0, inclusion: DAInclusion(headerDAHeight: 100 + $0, dataDAHeight: 200 + $0))
        })
        let server = try await TestNode.start("server", chain: chain, source: StoreBlockSource(store: chain.store))
        let client = try await TestNode.start("client", chain: chain, peers: [server.multiaddr])
        try await waitUntil("the client proves the server's head") { client.service.maxPeerHeight == 10 }
        let got = try await client.service.requestRange(from: 1, to: 10)
        #expect(got.map(\.block) == (try chain.blocks(1...10)), "the hint is not part of the block")
        #expect(got.map(\.headerDAHeightHint) == [101, 102, 103, 104, 105, 0, 0, 0, 0, 0])
        #expect(got.map(\.dataDAHeightHint) == [201, 202, 203, 204, 205, 0, 0, 0, 0, 0])
        await client.stop()
        await server.stop()
    }
}
