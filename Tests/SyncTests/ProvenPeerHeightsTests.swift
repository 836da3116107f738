import Sync
import Synchronization
import Testing
import TestSupport

/// SPEC §6 condition 2 above the transport (issue 27): proven heights count from anyone and only
/// hold promotion back; only a configured peer's answer counts as "a configured peer answered".
@Suite struct ProvenPeerHeightsTests {
    @Test func onlyAConfiguredPeersAnswerCountsWhileAnyonesProofHoldsBack() throws {
        let chain = try TestChain()
        let blocks = try (1...3).map { _ in try chain.produce([]) }
        let heights = ProvenPeerHeights(validator: chain.validator)

        // A stranger's empty chain: an answer, but not one that may release a node without a mark.
        #expect(heights.record(peer: "stranger", claimed: 0, header: nil, fromConfiguredPeer: false) == .empty)
        #expect(!heights.configuredPeerAnswered)
        #expect(heights.highest == nil, "an empty chain proves nothing")

        // A stranger's proof counts against promotion, and still releases nothing.
        #expect(heights.record(peer: "stranger", claimed: 2, header: blocks[1].signedHeader,
                               fromConfiguredPeer: false) == .proven(2))
        #expect(heights.highest == 2)
        #expect(!heights.configuredPeerAnswered)

        #expect(heights.record(peer: "configured", claimed: 0, header: nil, fromConfiguredPeer: true) == .empty)
        #expect(heights.configuredPeerAnswered)
        #expect(heights.highest == 2, "an empty answer lowers nothing")
    }

    /// The highest proof stays whoever gave it and whatever comes later (lower claims, rejected
    /// ones); the observer hears every proof with its peer and hash.
    @Test func theHighestProofStaysAndIsReported() throws {
        let chain = try TestChain()
        let blocks = try (1...4).map { _ in try chain.produce([]) }
        let heights = ProvenPeerHeights(validator: chain.validator)
        let heard = Mutex<[ProvenPeerHeights.Proof]>([])
        heights.observeProofs { proof in heard.withLock { $0.append(proof) } }

        #expect(heights.record(peer: "a", claimed: 3, header: blocks[2].signedHeader, fromConfiguredPeer: true) == .proven(3))
        #expect(heights.record(peer: "b", claimed: 1, header: blocks[0].signedHeader, fromConfiguredPeer: false) == .proven(1))
        // A claim whose proof is another height's header, and a forged one: rejected, not counted.
        guard case .rejected = heights.record(peer: "c", claimed: 4, header: blocks[1].signedHeader, fromConfiguredPeer: false) else {
            Issue.record("a proof for another height must be rejected")
            return
        }
        var forged = blocks[3].signedHeader
        forged.signature[0] ^= 0xff
        guard case .rejected = heights.record(peer: "c", claimed: 4, header: forged, fromConfiguredPeer: false) else {
            Issue.record("a forged proof must be rejected")
            return
        }
        #expect(heights.highest == 3)
        #expect(heights.highestProof == .init(height: 3, hash: blocks[2].signedHeader.header.hash, peer: "a",
                                              proposer: blocks[2].signedHeader.header.proposerAddress))
        #expect(heard.withLock { $0.map(\.height) } == [3, 1], "only proofs reach the observer")
    }
}
