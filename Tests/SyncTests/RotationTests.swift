import Chain
import Store
import Sync
import Production
import Config
import Logging
import Testing
import TestSupport

/// ev-node v1.2 proposer rotation (reference/ev-node-chain-rules.md §1): the executor names the
/// next proposer, the state records it with the block, validation expects it. The chain rotates
/// from key A to key B while executing block 5: blocks 1–5 by A, 6–10 by B.
@Suite struct RotationTests {
    let logger = Logger(label: "test.rotation")
    let a = BlockSigner(keyFile: KeyFile.generate())
    let b = BlockSigner(keyFile: KeyFile.generate())

    /// The rotating source chain with 10 blocks, and a fresh follower on the same genesis and
    /// schedule.
    func makeChains() throws -> (source: TestChain, follower: TestChain, blocks: [BlockCommit]) {
        let source = try TestChain(signer: a, rotations: [5: b])
        var blocks: [BlockCommit] = []
        for h in 1...10 { blocks.append(try source.produce(["k\(h)=v\(h)"])) }
        return (source, try TestChain(signer: a, rotations: [5: b]), blocks)
    }

    func candidates(_ blocks: some Sequence<BlockCommit>, _ origin: BlockOrigin) -> [CandidateBlock] {
        blocks.map { CandidateBlock(signedHeader: $0.signedHeader, data: $0.data, origin: origin) }
    }

    /// Block `height` built on the source's state before it, signed by `signer` whatever the
    /// state expects (a forger's or a rotated-away proposer's block).
    func forged(_ source: TestChain, at height: UInt64, by signer: BlockSigner) throws -> BlockCommit {
        let replay = try TestChain(signer: a, rotations: [5: b])
        for h in 1..<height {
            let block = try #require(try source.store.block(at: h))
            try replay.applier.apply(block.signedHeader, block.data, now: .max)
        }
        var state = try #require(replay.store.state)
        state.nextProposerAddress = signer.address
        return try BlockBuilder(signer: signer, executor: replay.chainExecutor)
            .build(on: state, txs: [Array("k\(height)=forged".utf8)],
                   time: replay.genesis.startTimeNanoseconds + height * 1_000_000_000)
    }

    @Test func theSourceChainRotatesAtFive() throws {
        let (source, _, blocks) = try makeChains()
        #expect(blocks[0...4].allSatisfy { $0.signedHeader.header.proposerAddress == a.address })
        #expect(blocks[5...9].allSatisfy { $0.signedHeader.header.proposerAddress == b.address })
        #expect(source.store.proposerRotations == [ProposerRotation(height: 5, nextProposer: b.address)])
        #expect(source.store.expectedNextProposer == b.address)
    }

    @Test func aFreshFollowerAppliesTheRotatedChain() async throws {
        let (source, follower, blocks) = try makeChains()
        let pipeline = SyncPipeline(applier: follower.applier, logger: logger)
        pipeline.start()
        try await pipeline.stop(after: {
            await pipeline.submit(candidates(blocks, .p2p(peer: "a")))
            try await pipeline.waitForStoreHeight(10)
            #expect(follower.store.state == source.store.state)
            #expect(follower.store.proposerRotations == [ProposerRotation(height: 5, nextProposer: b.address)])
            #expect(follower.store.expectedProposer(at: 5) == a.address)
            #expect(follower.store.expectedProposer(at: 6) == b.address)
            #expect(follower.store.expectedProposer(at: 12) == nil)
        })
    }

    /// The expectation is stored with block 5 and found again after a restart there.
    @Test func aRestartAtFiveStillExpectsB() throws {
        let (_, follower, blocks) = try makeChains()
        let result = try follower.applier.apply(blocks[0..<5].map { ($0.signedHeader, $0.data) }, now: .max)
        #expect(result.applied == 5 && result.failure == nil)
        try follower.reopen()
        #expect(follower.store.state?.nextProposerAddress == b.address)
        #expect(follower.store.expectedProposer(at: 6) == b.address)
        let rest = try follower.applier.apply(blocks[5...].map { ($0.signedHeader, $0.data) }, now: .max)
        #expect(rest.applied == 5 && rest.failure == nil)
    }

    /// A rollback restores the expectation of its target height, in the same batch.
    @Test func rollbackRestoresTheProposerAtTheTarget() async throws {
        let (_, follower, blocks) = try makeChains()
        _ = try follower.applier.apply(blocks.map { ($0.signedHeader, $0.data) }, now: .max)
        var state = try await follower.applier.rollback(to: 7)
        #expect(state.nextProposerAddress == b.address)
        state = try await follower.applier.rollback(to: 4)
        #expect(state.nextProposerAddress == a.address)
        #expect(follower.store.proposerRotations.isEmpty)
        try follower.reopen()
        #expect(follower.store.state?.nextProposerAddress == a.address)
        #expect(follower.store.proposerRotations.isEmpty)
        let again = try follower.applier.apply(blocks[4...].map { ($0.signedHeader, $0.data) }, now: .max)
        #expect(again.applied == 6 && again.failure == nil)
        #expect(follower.store.proposerRotations == [ProposerRotation(height: 5, nextProposer: b.address)])
    }

    /// Reference §1 scenario (2): each wrong block is dropped without halting, blamed on its
    /// source, and the right block is taken after it.
    @Test func wrongSignersAreDroppedAndTheRightBlockIsTaken() async throws {
        let (source, follower, blocks) = try makeChains()
        let sixByA = try forged(source, at: 6, by: a)
        let fiveByB = try forged(source, at: 5, by: b)
        var selfNamed = blocks[5].signedHeader
        selfNamed.signer.address = a.address
        var wrongProposerField = blocks[5].signedHeader.header
        wrongProposerField.proposerAddress = b.address
        let signedByAForB = try a.sign(header: wrongProposerField)
        #expect(signedByAForB.header.proposerAddress != signedByAForB.signer.address)

        let pipeline = SyncPipeline(applier: follower.applier, logger: logger)
        pipeline.start()
        try await pipeline.stop(after: {
            var events = pipeline.events.makeAsyncIterator()
            func expectDropped(_ candidate: CandidateBlock, rule: String) async {
                await pipeline.submit([candidate])
                guard case .rejected(let h, _, .invalid(let v))? = await events.next() else {
                    Issue.record("expected \(rule) at \(candidate.height) to be rejected")
                    return
                }
                #expect(h == candidate.height && v.rule == rule && v.blamesSource && !v.isDivergence)
            }
            await pipeline.submit(candidates(blocks[0..<4], .p2p(peer: "honest")))
            try await pipeline.waitForStoreHeight(4)
            await expectDropped(candidates([fiveByB], .p2p(peer: "mallory"))[0], rule: "unexpected_proposer")
            await pipeline.submit(candidates(blocks[4...4], .p2p(peer: "honest")))
            try await pipeline.waitForStoreHeight(5)
            await expectDropped(candidates([sixByA], .p2p(peer: "old-proposer"))[0], rule: "unexpected_proposer")
            await expectDropped(CandidateBlock(signedHeader: selfNamed, data: blocks[5].data, origin: .p2p(peer: "m")),
                                rule: "signer_address")
            await expectDropped(CandidateBlock(signedHeader: signedByAForB, data: blocks[5].data, origin: .p2p(peer: "m")),
                                rule: "proposer_address")
            await pipeline.submit(candidates(blocks[5...], .p2p(peer: "honest")))
            try await pipeline.waitForStoreHeight(10)
            #expect(follower.store.state == source.store.state)
        })
    }

    /// Reference §1 scenario (3): at the next height, the expected proposer's block replaces one
    /// of another key held for the same height, whichever source brought it.
    @Test func theExpectedProposerReplacesAHeldBlockOfAnotherKey() async throws {
        let (source, follower, blocks) = try makeChains()
        let sixByA = try forged(source, at: 6, by: a)
        _ = try follower.applier.apply(blocks[0..<5].map { ($0.signedHeader, $0.data) }, now: .max)
        // Not started: blocks are held, nothing is applied yet.
        let pipeline = SyncPipeline(applier: follower.applier, logger: logger)
        await pipeline.submit(candidates([sixByA], .da(daHeight: 3)))
        await pipeline.submit(candidates(blocks[5...5], .da(daHeight: 4)))
        pipeline.start()
        try await pipeline.stop(after: {
            try await pipeline.waitForStoreHeight(6)
            #expect(try follower.store.headerHash(at: 6) == blocks[5].signedHeader.header.hash)
            await pipeline.submit(candidates(blocks[6...], .da(daHeight: 5)))
            try await pipeline.waitForStoreHeight(10)
            #expect(follower.store.state == source.store.state)
        })
    }

    /// Validation order and outcomes in the validator itself: the proposer the state expects.
    @Test func theValidatorExpectsTheStatesProposer() throws {
        let (source, follower, blocks) = try makeChains()
        _ = try follower.applier.apply(blocks[0..<5].map { ($0.signedHeader, $0.data) }, now: .max)
        let state = try #require(follower.store.state)
        let sixByA = try forged(source, at: 6, by: a)
        #expect(throws: ValidationError.unexpectedProposer(height: 6, address: a.address, expected: b.address)) {
            _ = try follower.validator.validate(sixByA.signedHeader, data: sixByA.data, state: state, now: .max)
        }
        _ = try follower.validator.validate(blocks[5].signedHeader, data: blocks[5].data, state: state, now: .max)
        // A header validly signed by its own key passes the state-free check either way.
        try follower.validator.verifySignature(sixByA.signedHeader)
        try follower.validator.verifySignature(blocks[5].signedHeader, expectedProposer: b.address)
        #expect(throws: ValidationError.unexpectedProposer(height: 6, address: a.address, expected: b.address)) {
            try follower.validator.verifySignature(sixByA.signedHeader, expectedProposer: b.address)
        }
    }

    /// Proven peer heights: a header the chain can place proves its height; one of a key the
    /// chain has not named yet proves nothing and blames nobody.
    @Test func provenHeightsPlaceTheSignerByTheChainState() throws {
        let (_, follower, blocks) = try makeChains()
        let heights = ProvenPeerHeights(validator: follower.validator, placement: follower.store)
        #expect(heights.record(peer: "p", claimed: 8, header: blocks[7].signedHeader, fromConfiguredPeer: true) == .unplaced(8))
        #expect(heights.highest == nil)
        _ = try follower.applier.apply(blocks[0..<5].map { ($0.signedHeader, $0.data) }, now: .max)
        #expect(heights.record(peer: "p", claimed: 8, header: blocks[7].signedHeader, fromConfiguredPeer: true) == .proven(8))
        #expect(heights.highest == 8)
        let stranger = BlockSigner(keyFile: KeyFile.generate())
        var foreign = blocks[8].signedHeader.header
        foreign.proposerAddress = stranger.address
        #expect(heights.record(peer: "q", claimed: 9, header: try stranger.sign(header: foreign),
                               fromConfiguredPeer: false) == .unplaced(9))
        #expect(heights.highest == 8)
    }

    /// Issue 31 §2: a claim the chain could not place when it came counts as soon as the chain
    /// names its key, without the peer having to answer again.
    @Test func anUnplacedClaimCountsOnceTheChainNamesItsKey() throws {
        let (_, follower, blocks) = try makeChains()
        let heights = ProvenPeerHeights(validator: follower.validator, placement: follower.store)
        #expect(heights.record(peer: "p", claimed: 8, header: blocks[7].signedHeader, fromConfiguredPeer: false) == .unplaced(8))
        #expect(heights.highest == nil)
        _ = try follower.applier.apply(blocks[0..<5].map { ($0.signedHeader, $0.data) }, now: .max)
        #expect(heights.highest == 8, "B is named by block 5: the held claim is placed")
        #expect(heights.highestProof?.proposer == b.address)
    }

    /// Issue 31 §2: a contiguous hash-linked run from a header the node can verify proves the
    /// top of the run, past a rotation the node has not applied. A run that does not link, or
    /// whose first header the chain cannot place, proves nothing and blames nobody; a bad
    /// signature in it is rejected. A forged run (a stranger's key linking onto block 5) holds
    /// promotion back only until the chain state decides its heights.
    @Test func aHashLinkedRunFromAVerifiableHeaderProvesTheHeightsAbove() throws {
        let (source, follower, blocks) = try makeChains()
        _ = try follower.applier.apply(blocks[0..<3].map { ($0.signedHeader, $0.data) }, now: .max)
        let honest = blocks[2...9].map(\.signedHeader)  // 3 (stored, by A) … 10 (6–10 by B)
        let heights = ProvenPeerHeights(validator: follower.validator, placement: follower.store)
        #expect(heights.record(peer: "p", claimed: 10, header: blocks[9].signedHeader, fromConfiguredPeer: true) == .unplaced(10))
        #expect(!heights.configuredPeerAnswered)
        #expect(heights.recordRun(peer: "p", run: honest, fromConfiguredPeer: true) == .proven(10))
        #expect(heights.highest == 10)
        #expect(heights.configuredPeerAnswered)

        let other = ProvenPeerHeights(validator: follower.validator, placement: follower.store)
        var gap = honest
        gap.remove(at: 3)
        #expect(other.recordRun(peer: "q", run: gap, fromConfiguredPeer: true) == .unplaced(10))
        #expect(other.recordRun(peer: "q", run: Array(honest[4...]), fromConfiguredPeer: true) == .unplaced(10),
                "its first header (7, by B) cannot be placed yet")
        var badSignature = honest
        badSignature[4].signature[0] ^= 0xff
        if case .rejected = other.recordRun(peer: "q", run: badSignature, fromConfiguredPeer: true) {} else {
            Issue.record("a run with a bad signature must be rejected")
        }
        let tooLong = Array(repeating: honest[0], count: ProvenPeerHeights.maxLinkedRun + 2)
        #expect(other.recordRun(peer: "q", run: tooLong, fromConfiguredPeer: true) == .unplaced(3))
        #expect(other.highest == nil)
        #expect(!other.configuredPeerAnswered)

        let stranger = BlockSigner(keyFile: KeyFile.generate())
        let forgedSix = try forged(source, at: 6, by: stranger)
        let forgedRun = blocks[2...4].map(\.signedHeader) + [forgedSix.signedHeader]
        let third = ProvenPeerHeights(validator: follower.validator, placement: follower.store)
        #expect(third.recordRun(peer: "m", run: forgedRun, fromConfiguredPeer: false) == .proven(6))
        #expect(third.highest == 6, "the node cannot tell yet: the fence holds")
        _ = try follower.applier.apply(blocks[3..<5].map { ($0.signedHeader, $0.data) }, now: .max)
        #expect(third.highest == 5, "the state now expects B at 6: the forged header proves nothing")
        #expect(heights.highest == 10, "the honest run still proves 10")
    }

    /// The producer signs only when its key is the one the state expects.
    @Test func theBuilderRefusesWhenTheStateNamesAnotherKey() throws {
        let (source, _, _) = try makeChains()
        let state = try #require(source.store.state)
        #expect(throws: BuildError.notProposer(height: 11, expected: b.address, signer: a.address)) {
            _ = try BlockBuilder(signer: a, executor: source.chainExecutor).build(on: state, txs: [], time: .max / 2)
        }
    }
}

