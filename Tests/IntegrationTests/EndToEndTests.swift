import Primitives
import DAClient
import Foundation
import ProcessKit
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The chain end to end with real processes (issue 6 acceptance): a local DA, an aggregator and
/// full nodes talking over real TCP, observed only through their HTTP API.
/// Serialized: each test runs three or four processes on a two-core machine.
@Suite(.serialized) struct EndToEndTests {

    /// Txs sent to the aggregator are readable on a full node that follows it by P2P and DA; both
    /// hold the same hash at every height and both advance their finalized height.
    @Test func aggregatorAndFullNodeAgreeOverP2PAndDA() async throws {
        try await Testnet.run { net in
            _ = try await net.startDA()
            let aggregator = try net.makeNode(name: "aggregator", aggregator: true)
            try await aggregator.start()
            let full = try net.makeNode(name: "full", aggregator: false, peers: [aggregator], genesisFrom: aggregator)
            try await full.start()

            try await aggregator.waitForStatus("the first blocks") { $0.heights.store >= 3 }
            let txs = (0..<20).map { "e2e-key-\($0)=value-\($0)" }
            for tx in txs {
                #expect(try await aggregator.send(tx: tx) == 202)
            }
            // Only the producer takes transactions.
            #expect(try await full.send(tx: "refused=yes") == 503)

            try await waitUntil("the full node to read every value", timeout: .seconds(90), every: .milliseconds(200)) {
                for i in 0..<txs.count where try await full.value(forKey: "e2e-key-\(i)") != "value-\(i)" {
                    return false
                }
                return true
            }
            for i in 0..<txs.count {
                #expect(try await aggregator.value(forKey: "e2e-key-\(i)") == "value-\(i)")
            }
            #expect(try await full.value(forKey: "no-such-key") == nil)

            // Finality (DA inclusion) advances on both, past the blocks that carry the txs.
            let carried = try await full.status().heights.store
            let a = try await aggregator.waitForStatus("finalized ≥ \(carried)") { $0.heights.finalized >= carried }
            let f = try await full.waitForStatus("finalized ≥ \(carried)") { $0.heights.finalized >= carried }

            let top = min(a.heights.store, f.heights.store)
            try await expectSameChain(aggregator, full, through: top)

            // Every transaction is in exactly one block.
            var seen: [String: Int] = [:]
            for h in 1...top {
                for tx in try await full.block(h)?.txTexts ?? [] { seen[tx, default: 0] += 1 }
            }
            for tx in txs {
                #expect(seen[tx] == 1, "\(tx) is in \(seen[tx] ?? 0) blocks")
            }

            #expect(a.mode == "aggregator" && a.phase == "aggregating")
            #expect(f.mode == "full" && f.phase == "syncing")
            #expect(f.peers >= 1 && a.peers >= 1)
            #expect(f.proposer == a.proposer && f.evidence == 0)
            #expect(a.heights.da_head > 0, "the aggregator reports the DA height it last posted at")
            #expect(f.heights.da_head > 0)
            try await waitUntil("the full node to be ready", timeout: .seconds(60)) {
                try await HTTP.get(full.rpc + "/health/ready").status == 200
            }
            #expect(try await HTTP.get(aggregator.rpc + "/health/ready").status == 200)
            // Prometheus text; the gauges are refreshed once a second.
            try await waitUntil("the full node's metrics to count applied blocks", timeout: .seconds(30)) {
                let metrics = try await HTTP.get(full.rpc + "/metrics")
                guard metrics.status == 200 else { return false }
                return metrics.text.contains("evnode_phase{phase=\"syncing\"} 1")
                    && (metricValue(metrics.text, "evnode_store_height") ?? 0) >= Double(top)
                    && (metricValue(metrics.text, "evnode_blocks_applied_total") ?? 0) >= Double(top)
            }
            #expect(try await full.block(1_000_000) == nil)
        }
    }

    /// Full nodes without peers rebuild the chain from DA alone: one that runs from the start, and
    /// one started after 200 blocks exist, which catches up. Both end on the aggregator's hashes.
    @Test func fullNodesSyncFromDAAloneAndALateOneCatchesUp() async throws {
        try await Testnet.run { net in
            _ = try await net.startDA()
            let aggregator = try net.makeNode(name: "aggregator", aggregator: true, blockTime: "50ms")
            try await aggregator.start()
            let early = try net.makeNode(name: "da-only", aggregator: false, genesisFrom: aggregator)
            try await early.start()
            for i in 0..<5 {
                #expect(try await aggregator.send(tx: "da-\(i)=only-\(i)") == 202)
            }

            try await aggregator.waitForStatus("200 blocks", timeout: .seconds(120)) { $0.heights.store >= 200 }
            let late = try net.makeNode(name: "late", aggregator: false, genesisFrom: aggregator)
            try await late.start()
            let target = try await aggregator.status().heights.store

            let l = try await late.waitForStatus("catch up to \(target) from DA", timeout: .seconds(120)) {
                $0.heights.store >= target && $0.heights.finalized >= target
            }
            let e = try await early.waitForStatus("reach \(target) from DA", timeout: .seconds(60)) {
                $0.heights.store >= target && $0.heights.finalized >= target
            }
            #expect(l.peers == 0 && e.peers == 0, "these nodes have no peers: DA is their only source")
            try await expectSameChain(aggregator, early, through: target)
            try await expectSameChain(aggregator, late, through: target)
            for i in 0..<5 {
                #expect(try await late.value(forKey: "da-\(i)") == "only-\(i)")
            }
            try await waitUntil("the late node to be ready", timeout: .seconds(60)) {
                try await HTTP.get(late.rpc + "/health/ready").status == 200
            }
        }
    }

    /// The independent encoder's 24-block chain, posted to a local DA by the test itself, is
    /// accepted by a full node with the vector's genesis and ends at the vector's state root.
    @Test func vectorChainPostedToDAIsAcceptedByAFullNode() async throws {
        let vectors = try ChainVectors.load(path: ChainVectors.path)
        try await Testnet.run(chainID: vectors.chainID) { net in
            let da = try await net.startDA()
            let namespaceName = try #require(vectors.namespaceName)
            let namespace = DANamespace(name: namespaceName)
            #expect(namespace.bytes == vectors.namespaceBytes)
            let client = try CelestiaDAClient(options: DAClientOptions(url: da.url + "/"))
            do {
                func headerBlob(_ b: ChainVectors.Block) -> DABlob {
                    DABlob(namespace: namespace, data: b.envelopeBytes)
                }
                func dataBlobs(_ b: ChainVectors.Block) -> [DABlob] {
                    b.txs.isEmpty ? [] : [DABlob(namespace: namespace, data: b.signedDataBytes)]
                }
                // Blocks 1…12 before the node starts, one submission per block.
                for b in vectors.blocks[0..<12] {
                    _ = try await client.submit([headerBlob(b)] + dataBlobs(b))
                }
                let full = try net.makeNode(name: "vector-node", aggregator: false, genesis: vectors.genesis.jsonText(),
                                            extra: ["--da.namespace", namespaceName, "--da.data-namespace", namespaceName])
                try await full.start()
                // Blocks 13…18 in one submission while it runs; 19…24 with each block's data at a DA
                // height before its header.
                _ = try await client.submit(vectors.blocks[12..<18].flatMap { [headerBlob($0)] + dataBlobs($0) })
                for b in vectors.blocks[18...] {
                    if !b.txs.isEmpty { _ = try await client.submit(dataBlobs(b)) }
                    _ = try await client.submit([headerBlob(b)])
                }
                await client.shutdown()

                let last = vectors.blocks.last!
                let status = try await full.waitForStatus("height \(last.height), finalized") {
                    $0.heights.store >= last.height && $0.heights.finalized >= last.height
                }
                #expect(status.heights.store == last.height)
                #expect(status.app_hash == Hex.encode(last.appHashAfter))
                #expect(status.proposer == Hex.encode(vectors.genesis.proposerAddress))
                for b in vectors.blocks {
                    let doc = try await full.block(b.height)
                    #expect(doc?.hash == Hex.encode(b.headerHash), "hash at height \(b.height)")
                    #expect(doc?.app_hash == Hex.encode(b.appHashBefore), "app hash at height \(b.height)")
                    #expect(doc?.txTexts == b.txs.map { String(decoding: $0, as: UTF8.self) }, "txs at height \(b.height)")
                }
                #expect(try await full.block(last.height + 1) == nil)
                #expect(try await full.value(forKey: "key1-0") == "value1-0")
            } catch {
                await client.shutdown()
                throw error
            }
        }
    }

    /// An aggregator stopped with SIGTERM, then killed with SIGKILL, continues its chain each time
    /// at the next height: no gap, earlier blocks unchanged, and a full node that followed it the
    /// whole time (P2P and DA) holds the very same block at every height — so no height was
    /// produced twice.
    @Test func aggregatorRestartsAfterSIGTERMAndSIGKILLContinueTheChain() async throws {
        try await Testnet.run { net in
            _ = try await net.startDA()
            let aggregator = try net.makeNode(name: "aggregator", aggregator: true)
            try await aggregator.start()
            let full = try net.makeNode(name: "full", aggregator: false, peers: [aggregator], genesisFrom: aggregator)
            try await full.start()

            var sent: [String] = []
            for (round, signal) in [SIGTERM, SIGKILL].enumerated() {
                for i in 0..<3 {
                    let key = "restart-\(round)-\(i)"
                    #expect(try await aggregator.send(tx: "\(key)=\(round)") == 202)
                    sent.append(key)
                }
                let floor = try await aggregator.status().heights.store
                try await aggregator.waitForStatus("10 more blocks") { $0.heights.store >= floor + 10 }
                let before = try await aggregator.hashes(through: floor + 10)

                let exit = await aggregator.stop(signal: signal)
                if signal == SIGTERM {
                    #expect(exit == 0 && !aggregator.lastRunDiedOfSignal, "SIGTERM must stop the aggregator cleanly (status \(exit))")
                } else {
                    #expect(aggregator.lastRunDiedOfSignal && exit == SIGKILL)
                }
                try await aggregator.start()
                try await aggregator.waitForStatus("blocks after the restart") {
                    $0.phase == "aggregating" && $0.heights.store >= UInt64(before.count) + 5
                }
                let after = try await aggregator.hashes(through: UInt64(before.count))
                #expect(after == before, "blocks produced before the restart (\(signal == SIGTERM ? "SIGTERM" : "SIGKILL")) changed")
            }

            for key in sent {
                #expect(try await aggregator.value(forKey: key) != nil, "\(key) was lost")
            }
            // The follower gets past the last restart and DA includes it all.
            let top = try await aggregator.status().heights.store
            let f = try await full.waitForStatus("follow the aggregator to \(top), finalized") {
                $0.heights.store >= top && $0.heights.finalized >= top
            }
            try await aggregator.waitForStatus("finalized ≥ \(top)") { $0.heights.finalized >= top }
            #expect(f.evidence == 0)
            for key in sent {
                #expect(try await full.value(forKey: key) != nil, "\(key) missing on the full node")
            }
            // Contiguous heights with non-decreasing times on the aggregator …
            var lastTime: UInt64 = 0
            for h in 1...top {
                let block = try await aggregator.block(h)
                #expect(block != nil, "gap at height \(h)")
                if let block {
                    #expect(block.time_ns >= lastTime, "time goes backwards at height \(h)")
                    lastTime = block.time_ns
                }
            }
            // … and the same block at every height on the follower, which saw every block twice
            // (P2P and DA) and would have reported a second one at any height.
            try await expectSameChain(aggregator, full, through: top)
            let followerLog = full.allLogs
            #expect(!followerLog.contains("differs from the stored one"), "the follower saw two blocks at one height")
            #expect(!followerLog.contains("double sign"), "DA holds two headers at one height")
        }
    }
}

extension EndToEndTests {
    /// `--lazy`: an aggregator with nothing to do produces only every `--lazy-interval`; a
    /// transaction makes a block at the next block time, and a full node applies it.
    @Test func lazyAggregatorProducesForTransactionsAndOnTheInterval() async throws {
        try await Testnet.run { net in
            _ = try await net.startDA()
            let aggregator = try net.makeNode(name: "lazy", aggregator: true, blockTime: "100ms",
                                              extra: ["--lazy", "--lazy-interval", "3s"])
            try await aggregator.start()
            let full = try net.makeNode(name: "full", aggregator: false, peers: [aggregator], genesisFrom: aggregator)
            try await full.start()

            // Idle: one block per lazy interval at most (30 block times pass per interval).
            let first = try await aggregator.waitForStatus("the first idle block") { $0.heights.store >= 1 }
            let idleStart = ContinuousClock.now
            let second = try await aggregator.waitForStatus("the next idle block", timeout: .seconds(30)) {
                $0.heights.store > first.heights.store
            }
            let idleGap = ContinuousClock.now - idleStart
            #expect(second.heights.store == first.heights.store + 1, "idle blocks came faster than the lazy interval")
            #expect(idleGap > .seconds(1), "an idle block came \(idleGap) after the previous one, not after the 3 s interval")
            let idleBlock = try #require(try await aggregator.block(second.heights.store))
            #expect(idleBlock.txs.isEmpty)

            // A transaction is included at the next block time, long before the interval.
            let before = try await aggregator.status().heights.store
            let sent = ContinuousClock.now
            #expect(try await aggregator.send(tx: "lazy-key=lazy-value") == 202)
            try await waitUntil("the transaction to be applied on the full node", timeout: .seconds(60),
                                every: .milliseconds(50)) {
                try await full.value(forKey: "lazy-key") == "lazy-value"
            }
            let carried = try await aggregator.status().heights.store
            #expect(carried > before)
            var found = false
            for h in (before + 1)...carried {
                if try await aggregator.block(h)?.txTexts.contains("lazy-key=lazy-value") == true { found = true }
            }
            #expect(found, "no block in \(before + 1)…\(carried) carries the transaction")
            print("lazy mode: idle gap \(idleGap), transaction to full node in \(ContinuousClock.now - sent)")
        }
    }
}
