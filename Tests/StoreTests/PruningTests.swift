@testable import Store
import Execution
import Testing
import TestSupport

/// `BlockStore.prune`: batched deletes of old blocks behind finality, on a real RocksDB store.
@Suite struct PruningTests {
    /// 50 blocks, each with its DA inclusion recorded, finalized through 40.
    func chain() throws -> TestChain {
        let chain = try TestChain(chainID: "prune-test")
        try chain.build(to: 50)
        try chain.store.recordDAInclusions((1...50).map { ($0, DAInclusion(headerDAHeight: 100 + $0, dataDAHeight: 200 + $0)) })
        try ChainExecution(store: chain.store, executor: chain.executor).finalize(through: 40)
        return chain
    }

    @Test func blocksGoInBatchesUpToTheTargetAndNothingElse() throws {
        let chain = try chain()
        var hashes: [[UInt8]] = []
        for h in UInt64(1)...50 { hashes.append(try #require(try chain.store.headerHash(at: h))) }
        var floors: [UInt64] = []
        while true {
            let pruned = try chain.store.prune(.blocks, through: 30, maxHeights: 8)
            if floors.last == pruned.blocks { break }
            floors.append(pruned.blocks)
        }
        #expect(floors == [8, 16, 24, 30], "batches of at most 8 heights, up to the target")
        #expect(try chain.store.prunedHeights() == PrunedHeights(blocks: 30, metadata: 30))
        for h in UInt64(1)...30 {
            #expect(try chain.store.block(at: h) == nil, "block \(h)")
            #expect(try chain.store.height(forHash: hashes[Int(h) - 1]) == nil, "hash index of \(h)")
            #expect(try chain.store.daInclusion(at: h) == DAInclusion(), "DA records of \(h)")
        }
        for h in UInt64(31)...50 {
            #expect(try chain.store.block(at: h) != nil, "block \(h)")
            #expect(try chain.store.height(forHash: hashes[Int(h) - 1]) == h)
            #expect(try chain.store.daInclusion(at: h) == DAInclusion(headerDAHeight: 100 + h, dataDAHeight: 200 + h))
        }
        // Serving a range that starts in the pruned part yields nothing (header-ex: NOT_FOUND).
        #expect(try chain.store.encodedBlocks(in: 25...35).isEmpty)
        #expect(try chain.store.encodedBlocks(in: 31...35).count == 5)
        // Rollback down to the finalized height still has what it reads.
        try ChainExecution(store: chain.store, executor: chain.executor).rollback(to: 40)
        #expect(chain.store.height == 40)
    }

    @Test func nothingAboveTheFinalizedHeightIsEverPruned() throws {
        let chain = try chain()
        #expect(throws: StoreError.pruneAboveFinalized(requested: 41, finalized: 40)) {
            try chain.store.prune(.blocks, through: 41, maxHeights: 100)
        }
        #expect(try chain.store.prunedHeights() == PrunedHeights())
        #expect(try chain.store.block(at: 1) != nil, "a refused prune changes nothing")
    }

    @Test func metadataModeKeepsTheBlocks() throws {
        let chain = try chain()
        #expect(try chain.store.prune(.metadata, through: 20, maxHeights: 100) == PrunedHeights(blocks: 0, metadata: 20))
        for h in UInt64(1)...20 {
            #expect(try chain.store.block(at: h) != nil)
            #expect(try chain.store.daInclusion(at: h) == DAInclusion())
        }
        #expect(try chain.store.daInclusion(at: 21) == DAInclusion(headerDAHeight: 121, dataDAHeight: 221))
        // Switching to `all` later deletes the blocks below too.
        #expect(try chain.store.prune(.blocks, through: 25, maxHeights: 100) == PrunedHeights(blocks: 25, metadata: 25))
        #expect(try chain.store.block(at: 10) == nil)
        #expect(try chain.store.daInclusion(at: 23) == DAInclusion())
    }

    @Test func theFloorSurvivesAReopen() throws {
        let chain = try chain()
        try chain.store.prune(.blocks, through: 12, maxHeights: 100)
        let path = chain.path
        chain.store.close()
        let reopened = try BlockStore.open(path: path)
        defer { reopened.close() }
        #expect(try reopened.prunedHeights() == PrunedHeights(blocks: 12, metadata: 12))
        #expect(try reopened.prune(.blocks, through: 12, maxHeights: 100) == PrunedHeights(blocks: 12, metadata: 12),
                "nothing new to prune")
    }
}
