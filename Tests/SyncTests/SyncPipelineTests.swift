import Chain
import Store
import Sync
import Config
import Logging
import Testing
import TestSupport

/// The sync pipeline on a real store: out-of-order input, parallel signature checks ahead of the
/// in-order apply, DA over P2P precedence, rejection and conflict events, backpressure.
@Suite struct SyncPipelineTests {
    let logger = Logger(label: "test.sync")

    /// A proposer chain of `count` blocks and a fresh follower on the same genesis.
    func makeChains(count: Int) throws -> (source: TestChain, follower: TestChain, blocks: [BlockCommit]) {
        let signer = BlockSigner(keyFile: KeyFile.generate())
        let source = try TestChain(signer: signer)
        var blocks: [BlockCommit] = []
        for h in 1...count {
            blocks.append(try source.produce(h % 5 == 0 ? [] : ["k\(h)=v\(h)", "shared=\(h)"]))
        }
        return (source, try TestChain(signer: signer), blocks)
    }

    func candidates(_ blocks: some Sequence<BlockCommit>, _ source: BlockOrigin) -> [CandidateBlock] {
        blocks.map { CandidateBlock(signedHeader: $0.signedHeader, data: $0.data, origin: source) }
    }


    @Test func appliesShuffledInputInOrderToTheSameChain() async throws {
        let (source, follower, blocks) = try makeChains(count: 300)
        let pipeline = SyncPipeline(applier: follower.applier, batchSize: 64, logger: logger)
        pipeline.start()
        try await pipeline.stop(after: {
            var shuffled = candidates(blocks, .p2p(peer: "a"))
            var rng = SystemRandomNumberGenerator()
            shuffled.shuffle(using: &rng)
            for chunk in stride(from: 0, to: shuffled.count, by: 37) {
                await pipeline.submit(Array(shuffled[chunk..<min(chunk + 37, shuffled.count)]))
            }
            try await pipeline.waitForStoreHeight(300)
            #expect(follower.store.state == source.store.state)
            for h in [UInt64(1), 150, 300] {
                #expect(try follower.store.headerHash(at: h) == source.store.headerHash(at: h))
            }
            #expect(try follower.value("shared") == "299")
            let progress = pipeline.progress
            #expect(progress.waiting == 0 && progress.appliedTotal == 300 && progress.highestKnownHeader == 300)
        })
    }

    /// A supplier that verified a header (the DA follower) says so and the pipeline trusts it:
    /// shown with a forged signature that only an unmarked candidate gets rejected for.
    @Test func headersMarkedVerifiedAreNotVerifiedAgain() async throws {
        let (source, follower, blocks) = try makeChains(count: 6)
        let pipeline = SyncPipeline(applier: follower.applier, logger: logger)
        pipeline.start()
        try await pipeline.stop(after: {
            var unmarked = candidates(blocks[0...0], .p2p(peer: "a"))[0]
            unmarked.signedHeader.signature[0] ^= 0xff
            await pipeline.submit([unmarked])
            var iterator = pipeline.events.makeAsyncIterator()
            guard case .rejected(1, _, .invalid(let v))? = await iterator.next() else {
                Issue.record("expected the unmarked forged block to be rejected")
                return
            }
            #expect(v.rule == "signature")
            var marked = candidates(blocks, .da(daHeight: 3))
            marked[0].signedHeader.signature[0] ^= 0xff
            for i in marked.indices { marked[i].signatureVerified = true }
            await pipeline.submit(marked)
            try await pipeline.waitForStoreHeight(6)
            #expect(follower.store.state == source.store.state)
        })
    }

    @Test func badSignatureIsRejectedAndTheGoodBlockStillApplies() async throws {
        let (source, follower, blocks) = try makeChains(count: 10)
        let pipeline = SyncPipeline(applier: follower.applier, logger: logger)
        pipeline.start()
        try await pipeline.stop(after: {
            var forged = candidates(blocks[4...4], .p2p(peer: "mallory"))[0]
            forged.signedHeader.signature[0] ^= 0xff
            await pipeline.submit(candidates(blocks[0..<4], .p2p(peer: "a")) + [forged])
            await pipeline.submit(candidates(blocks[5...], .p2p(peer: "a")))
            try await pipeline.waitForStoreHeight(4)
            var iterator = pipeline.events.makeAsyncIterator()
            guard case .rejected(let height, let from, let error)? = await iterator.next() else {
                Issue.record("expected a rejection event")
                return
            }
            #expect(height == 5 && from == .p2p(peer: "mallory"))
            if case .invalid(let v) = error { #expect(v.rule == "signature" && v.blamesSource) }
            #expect(pipeline.progress.storeHeight == 4)   // 6…10 wait for a valid 5
            await pipeline.submit(candidates(blocks[4...4], .da(daHeight: 9)))
            try await pipeline.waitForStoreHeight(10)
            #expect(follower.store.state == source.store.state)
        })
    }

    @Test func daBlockReplacesADifferentPendingP2PBlock() async throws {
        let (source, follower, blocks) = try makeChains(count: 3)
        // Another block at height 3, validly signed by the same proposer (an equivocation).
        let other = try source.builder.build(on: blocks[1].state, txs: [Array("evil=1".utf8)],
                                             time: blocks[2].signedHeader.header.time)
        let pipeline = SyncPipeline(applier: follower.applier, logger: logger)
        // Hold everything first, then start: P2P's 3 is replaced by DA's 3 before any apply.
        await pipeline.submit(candidates([other], .p2p(peer: "b")))
        await pipeline.submit(candidates(blocks, .da(daHeight: 1)))
        pipeline.start()
        try await pipeline.stop(after: {
            try await pipeline.waitForStoreHeight(3)
            #expect(try follower.store.headerHash(at: 3) == blocks[2].signedHeader.header.hash)
            #expect(try follower.value("evil") == nil)
        })
    }

    @Test func aDifferentSignedBlockAtAStoredHeightIsAConflict() async throws {
        let (_, follower, blocks) = try makeChains(count: 4)
        let pipeline = SyncPipeline(applier: follower.applier, logger: logger)
        pipeline.start()
        try await pipeline.stop(after: {
            await pipeline.submit(candidates(blocks, .p2p(peer: "a")))
            try await pipeline.waitForStoreHeight(4)
            let fork = try follower.builder.build(on: blocks[1].state, txs: [Array("fork=1".utf8)],
                                                  time: blocks[2].signedHeader.header.time)
            await pipeline.submit(candidates([fork], .da(daHeight: 7)))
            var iterator = pipeline.events.makeAsyncIterator()
            guard case .conflict(let height, let stored, let candidate)? = await iterator.next() else {
                Issue.record("expected a conflict event")
                return
            }
            #expect(height == 3 && stored == blocks[2].signedHeader.header.hash)
            #expect(candidate.origin == .da(daHeight: 7))
            #expect(pipeline.progress.storeHeight == 4)   // nothing rolled back by the pipeline itself
        })
    }

    @Test func backpressureKeepsMemoryBoundedAndLosesNothing() async throws {
        let (source, follower, blocks) = try makeChains(count: 500)
        let pipeline = SyncPipeline(applier: follower.applier, capacity: 32, batchSize: 16, logger: logger)
        pipeline.start()
        try await pipeline.stop(after: {
            for chunk in stride(from: 0, to: blocks.count, by: 20) {
                await pipeline.submit(candidates(blocks[chunk..<min(chunk + 20, blocks.count)], .da(daHeight: UInt64(chunk))))
                #expect(pipeline.progress.waiting <= 32 + 20)
            }
            try await pipeline.waitForStoreHeight(500)
            #expect(follower.store.state == source.store.state)
        })
    }
}


extension SyncPipelineTests {
    /// Issue 27 (M5): every block held counts as a known header from the moment it is held, so
    /// that `stop()` — which drops what is held — cannot make the catchup gate's re-check forget
    /// that a header above the store exists. A header whose signature fails is held (the apply
    /// loop rejects it in turn) but never known.
    @Test func heldBlocksCountAsKnownHeadersAfterStopDropsThem() async throws {
        let (_, follower, blocks) = try makeChains(count: 3)
        let pipeline = SyncPipeline(applier: follower.applier, logger: logger)
        pipeline.start()
        // Heights 2 and 3 above the missing height 1: held, not applied. One was verified by
        // its supplier (gossip, DA), the other not.
        var verified = candidates(blocks[1...1], .p2p(peer: "a"))[0]
        verified.signatureVerified = true
        await pipeline.submit([verified])
        #expect(pipeline.progress.highestKnownHeader == 2)
        await pipeline.submit(candidates(blocks[2...2], .p2p(peer: "b")))
        #expect(pipeline.progress.highestKnownHeader == 3)
        #expect(pipeline.progress.waiting == 2)
        await pipeline.stop()
        #expect(pipeline.progress.waiting == 0, "stop() drops what is held")
        #expect(pipeline.progress.highestKnownHeader == 3, "but not the fact that those headers exist")
        #expect(follower.store.height == 0)

        let idle = SyncPipeline(applier: follower.applier, logger: logger)
        var forged = candidates(blocks[2...2], .p2p(peer: "c"))[0]
        forged.signedHeader.signature[0] ^= 0xff
        await idle.submit([forged])
        #expect(idle.progress.waiting == 1)
        #expect(idle.progress.highestKnownHeader == 0, "a forged header is never known")
    }
}
