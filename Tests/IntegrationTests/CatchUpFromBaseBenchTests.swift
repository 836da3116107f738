import Foundation
import ProcessKit
import Testing
import TestSupport

/// `make bench`'s catch-up-from-base row (issue 32), run small: real processes (local DA, the
/// sequencer's two lives, `post-forced`, a plain full node). The bench itself fails unless every
/// posted forced tx is in exactly one replayed block; here its JSON must also count what was
/// posted, one block per epoch, and a baseline over the whole chain.
@Suite struct CatchUpFromBaseBenchTests {
    struct Figures: Decodable {
        var epochs: Int
        var txsPerEpoch: Int
        var blocks: Int
        var forcedTxs: Int
        var daHeights: UInt64
        var seconds: Double
        var forcedTxsPerSecond: Double
        var fullNodeBlocks: Int
        var fullNodeBlocksPerSecond: Double
        var fullNodeDAHeights: UInt64
    }

    @Test func aSmallRunReplaysEveryForcedTxAndMeasuresThePlainCatchUpOfTheSameChain() async throws {
        let dir = TempDirectory("evnode-cfb-bench")
        let bench = try ChildProcess(name: "bench-catchup-from-base", executable: BuiltProducts.testkit,
                                     arguments: ["bench-catchup-from-base", "--epochs", "4", "--txs-per-epoch", "3",
                                                 "--evnode", BuiltProducts.evnode.path],
                                     logDirectory: dir.path, separateStderr: true)
        let status = try await bench.waitForExit("the bench to finish", timeout: .seconds(180))
        let output = try String(contentsOfFile: bench.logPath, encoding: .utf8)
        let errors = (try? String(contentsOfFile: dir.sub("bench-catchup-from-base.stderr.log"), encoding: .utf8)) ?? ""
        try #require(status == 0, "\(output)\n\(errors)")
        // The JSON object, then one summary line.
        let json = try #require(output.range(of: "\n}", options: .backwards).map { String(output[..<$0.upperBound]) })
        let f = try JSONDecoder().decode(Figures.self, from: Data(json.utf8))
        #expect(f.epochs == 4 && f.txsPerEpoch == 3)
        #expect(f.forcedTxs == 12)
        #expect(f.blocks == 4, "one block per epoch: 3 small txs fit one block")
        #expect(f.daHeights == 8, "4 epochs of 2 DA heights")
        #expect(f.seconds > 0 && f.forcedTxsPerSecond > 0)
        #expect(f.fullNodeBlocks > f.blocks, "the baseline syncs the blocks before the stop too")
        #expect(f.fullNodeBlocksPerSecond > 0)
        #expect(f.fullNodeDAHeights >= f.daHeights)
        #expect(output.contains("catch-up from base: 12 forced txs"))
    }
}
