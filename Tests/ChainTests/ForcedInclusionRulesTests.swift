import Chain
import Testing
import TestSupport

/// ev-node's forced-inclusion arithmetic: epochs, grace, block times, the KV filter.
@Suite struct ForcedInclusionRulesTests {
    @Test func epochsFromDAStartHeight10Epoch2() {
        let e = ForcedInclusionEpochs(startHeight: 10, size: 2)
        #expect(e.epoch(of: 9) == 0)
        #expect(e.epoch(of: 10) == 1 && e.epoch(of: 11) == 1 && e.epoch(of: 12) == 2)
        #expect(e.bounds(containing: 10) == 10...11 && e.bounds(containing: 11) == 10...11)
        #expect(e.bounds(containing: 13) == 12...13)
        #expect(!e.isEpochEnd(10) && e.isEpochEnd(11) && !e.isEpochEnd(9) && e.isEpochEnd(13))
        let one = ForcedInclusionEpochs(startHeight: 0, size: 1)
        #expect(one.isEpochEnd(0) && one.bounds(containing: 5) == 5...5)
    }

    @Test func graceFromFullnessCappedAtFour() {
        let t = ForcedInclusionRules.graceFullness
        #expect(ForcedInclusionRules.graceEpochs(blockTxBytes: 0, epochSize: 2) == 1)
        #expect(ForcedInclusionRules.graceEpochs(blockTxBytes: 2 * t, epochSize: 2) == 1)       // avg = T
        #expect(ForcedInclusionRules.graceEpochs(blockTxBytes: 4 * t, epochSize: 2) == 2)       // avg = 2T
        #expect(ForcedInclusionRules.graceEpochs(blockTxBytes: 100 * t, epochSize: 2) == 4)     // capped
    }

    @Test func blockTimeFormulaAndCheckpointEncoding() {
        #expect(ForcedInclusionRules.blockTime(epochEndTime: 10_000_000, epochTxCount: 3, consumed: 1) == 8_000_000)
        #expect(ForcedInclusionRules.blockTime(epochEndTime: 10_000_000, epochTxCount: 3, consumed: 3) == 10_000_000)
        #expect(ForcedInclusionRules.blockTime(epochEndTime: 1, epochTxCount: 3, consumed: 0) == 0, "saturates")
        let c = ForcedInclusionCheckpoint(daHeight: 0x0102_0304_0506_0708, txIndex: 9)
        #expect(ForcedInclusionCheckpoint(encoded: c.encoded) == c && c.encoded.count == 16)
        #expect(ForcedInclusionCheckpoint(encoded: [1, 2, 3]) == nil)
    }

    @Test func kvFilterIsEvNodesTestappRule() throws {
        let chain = try TestChain()
        let txs = ["k=v", "garbage", "=v", "  =v", "", "a=" + String(repeating: "x", count: 20), "b=2"].map { Array($0.utf8) }
        #expect(chain.executor.filterTxs(txs, maxBytes: 10, maxGas: 0, hasForced: true)
                == [.include, .remove, .remove, .remove, .remove, .remove, .include])
        // Without forced txs the format is not checked; the size bound postpones from the first overflow.
        #expect(chain.executor.filterTxs(txs.map { $0 }, maxBytes: 8, maxGas: 0, hasForced: false)
                == [.include, .postpone, .postpone, .postpone, .remove, .remove, .postpone])
    }
}
