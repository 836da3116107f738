@testable import Node
import Execution
import Submission
@testable import Config
import Foundation
import ProcessKit
import Testing
import TestSupport

/// `pruning.*` (`BlockPruningService`): what may be pruned, and a real full node that syncs a
/// chain from a real local DA, prunes behind finality and says so on `/blocks/N`.
@Suite struct BlockPruningTests {
    @Test func keepRecentHeightsBelowTheFinalizedHeightStay() {
        #expect(BlockPruningService.target(finalized: 100, storeHeight: 120, keepRecent: 10) == 90)
        #expect(BlockPruningService.target(finalized: 100, storeHeight: 100, keepRecent: 100) == 0)
        #expect(BlockPruningService.target(finalized: 5, storeHeight: 500, keepRecent: 10) == 0,
                "blocks not DA-included are never pruned, however far the store is ahead")
    }

    @Test func aStoreFailureStopsTheNodeNamingPruning() async throws {
        let chain = try TestChain(chainID: "prune-fail")
        try chain.build(to: 20)
        try ChainExecution(store: chain.store, executor: chain.executor).finalize(through: 20)
        var config = PruningConfig()
        config.mode = .all
        config.keepRecent = 5
        let service = BlockPruningService(store: chain.store, config: config, logger: .init(label: "test"))
        chain.store.close()
        await #expect {
            try await service.pruneNow()
        } throws: { error in
            guard case .blockPruning(.closed)? = error as? NodeFailure else { return false }
            return "\(error)".hasPrefix("pruning old blocks:")
        }
    }

    @Test func aFullNodePrunesBehindFinalityAndSaysSoOnBlocks() async throws {
        try await withLocalDA(arguments: ["--block-time", "200ms"]) { da, client, dir in
            let chain = try TestChain(chainID: "prune-node", path: dir.sub("source"))
            defer { chain.close() }
            try chain.build(to: 60)
            let home = dir.sub("node")
            let rpcPort = try freeLoopbackPort()
            let p2pPort = try freeLoopbackPort(avoiding: [rpcPort])
            func flag(_ value: String) -> RawSetting { RawSetting(value: value, source: "test") }
            var config = try ConfigLoader.resolve(home: home, file: [:], flags: [
                "da.address": flag(da.url), "da.block_time": flag("200ms"),
                "rpc.address": flag("127.0.0.1:\(rpcPort)"), "p2p.listen_address": flag("127.0.0.1:\(p2pPort)"),
            ])
            config.pruning.mode = .all
            config.pruning.keepRecent = 10
            config.pruning.interval = .milliseconds(200)
            let submitter = DASubmitter(client: client, store: chain.store, executor: chain.executor, signer: chain.signer,
                                        options: SubmitterOptions(config: config.da, chainID: chain.chainID))
            _ = try await submitter.submitPending()

            let setup = NodeSetup(layout: HomeLayout(home: home), config: config, genesis: chain.genesis,
                                  signer: nil, signerPath: nil, nodeKey: .generate(), notices: [])
            let node = try await NodeAssembly.node(setup: setup)
            let run = Task { try await node.run() }
            defer { run.cancel() }
            try await waitUntil("synced and finalized from DA") { node.store.finalizedHeight == 60 }
            try await waitUntil("pruned through 50") { try node.store.prunedHeights().blocks == 50 }

            let pruned = try await HTTP.get("http://127.0.0.1:\(rpcPort)/blocks/50")
            #expect(pruned.status == 404)
            #expect(pruned.text.contains("block 50 was pruned"), "\(pruned.text)")
            let kept = try await HTTP.get("http://127.0.0.1:\(rpcPort)/blocks/51")
            #expect(kept.status == 200)
            let absent = try await HTTP.get("http://127.0.0.1:\(rpcPort)/blocks/61")
            #expect(absent.status == 404 && absent.text.contains("no block at height 61"))
            // Nothing that recovery may read is gone: the finalized block and everything after it.
            #expect(try (UInt64(51)...60).allSatisfy { try node.store.block(at: $0) != nil })
            run.cancel()
            _ = try? await run.value
        }
    }
}
