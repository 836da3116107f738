import DAClient
import Chain
import Config
import Foundation
import ProcessKit
import Testing
import TestSupport

/// The full node's forced-inclusion check (issue 32, step 3), with ev-node's numbers:
/// da_start_height 10, epoch 2 (epoch 1 = DA 10…11, grace boundary 13). The chains are written
/// by the independent Python writer (Tests/IntegrationTests/py/wire, Google's protobuf runtime
/// and `cryptography`), not by evnode's producer, and posted to a real local DA by the test;
/// the node is a real `evnode start` process.
@Suite(.serialized) struct ForcedInclusionCheckTests {
    static var python: URL { BuiltProducts.packageRoot.appendingPathComponent(".build/venv-libp2p/bin/python") }
    static var writer: String {
        BuiltProducts.packageRoot.appendingPathComponent("Tests/IntegrationTests/py/wire/make_vectors.py").path
    }
    static let chainNamespace = "fi-chain-blocks"
    static let forcedNamespace = "fi-forced"
    static let malicious = "evnode_sequencer_forced_inclusion_txs_malicious_total"

    /// A chain of one block per entry of `txs`, signed by the writer's key, with genesis
    /// da_start_height 10 and epoch 2.
    func writeChain(_ txs: [[String]], in dir: String) throws -> ChainVectors {
        guard FileManager.default.isExecutableFile(atPath: Self.python.path) else {
            throw TestFailure("\(Self.python.path) is missing: run `make deps` (it makes the venv-libp2p virtualenv)")
        }
        let json = String(decoding: try JSONSerialization.data(withJSONObject: txs), as: UTF8.self)
        let made = try runCommand(Self.python, [Self.writer, "--seed", String(repeating: "5a", count: 32),
                                                "--chain-id", "fi-chain", "--block-txs", json,
                                                "--da-start-height", "10", "--da-epoch", "2",
                                                "--namespace", Self.chainNamespace], timeout: .seconds(60))
        guard made.status == 0 else { throw TestFailure("the Python writer failed: \(made.stderr)") }
        let path = dir + "/chain.json"
        try made.stdout.write(toFile: path, atomically: true, encoding: .utf8)
        let vectors = try ChainVectors.load(path: path)
        #expect(vectors.genesis.daStartHeight == 10 && vectors.genesis.daEpochForcedInclusion == 2)
        return vectors
    }

    /// Posts, one DA height each: fillers up to DA 9; at DA 10 block 1 with the forced blobs
    /// (a good one, garbage for the KV app, and one over ev-node's 5 MiB blob size); then block
    /// k at DA 9 + k.
    func post(_ vectors: ChainVectors, to client: CelestiaDAClient) async throws {
        let blocks = DANamespace(name: Self.chainNamespace)
        let forced = DANamespace(name: Self.forcedNamespace)
        while try await client.networkHead().height < 9 {
            _ = try await client.submit([DABlob(namespace: DANamespace(name: "filler"), data: Array("filler".utf8))])
        }
        let oversize = Array("big=".utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: ForcedInclusionRules.maxTxBytes)
        for b in vectors.blocks {
            var blobs = [DABlob(namespace: blocks, data: b.envelopeBytes)]
            if !b.txs.isEmpty { blobs.append(DABlob(namespace: blocks, data: b.signedDataBytes)) }
            if b.height == 1 {
                blobs += [DABlob(namespace: forced, data: Array("fk=1".utf8)),
                          DABlob(namespace: forced, data: Array("garbage".utf8)),
                          DABlob(namespace: forced, data: oversize)]
            }
            let at = try await client.submit(blobs)
            #expect(at == 9 + b.height, "block \(b.height) at DA height \(9 + b.height)")
        }
    }

    func maliciousCount(_ node: NodeProcess) async throws -> Double? {
        let line = try await node.metrics().split(separator: "\n").first { $0.hasPrefix(Self.malicious + "{") }
        return line.flatMap { $0.split(separator: " ").last.flatMap { Double($0) } }
    }

    func fullNode(_ net: Testnet, _ vectors: ChainVectors) throws -> NodeProcess {
        try net.makeNode(name: "checker", genesis: vectors.genesis.jsonText(),
                         extra: ["--da.namespace", Self.chainNamespace, "--da.data-namespace", Self.chainNamespace,
                                 "--evnode.da.forced_inclusion_namespace", Self.forcedNamespace])
    }

    /// Block 3 (DA 12) carries the forced tx: no halt past the boundary; garbage and the
    /// oversized blob are no one's fault.
    @Test func includedInTimeGarbageAndOversizeFilteredNoViolation() async throws {
        try await Testnet.run(chainID: "fi-chain") { net in
            let vectors = try writeChain([["a=1"], ["b=2"], ["fk=1", "c=3"], [], ["d=4"], ["e=5"]], in: net.dir.path)
            let da = try await net.startDA(blockTime: "1h", extra: ["--max-blob-size", "\(16 << 20)"])
            let client = try CelestiaDAClient(options: DAClientOptions(url: da.url + "/"))
            try await post(vectors, to: client)
            await client.shutdown()
            let node = try fullNode(net, vectors)
            try await node.start()
            let status = try await node.waitForStatus("height 6") { $0.heights.store >= 6 }
            #expect(status.phase == "syncing", "\(status.summary)")
            #expect(try await node.value(forKey: "fk") == "1")
            #expect(try await maliciousCount(node) == 0)
        }
    }

    /// No block carries the forced tx: DA 13 (the boundary) still applies, the block at DA 14
    /// does not; the node halts, stays up, and says why in /status, readiness and metrics.
    @Test func omittedForcedTxHaltsAtTheFirstDABlockPastTheGraceBoundary() async throws {
        try await Testnet.run(chainID: "fi-chain") { net in
            let vectors = try writeChain([["a=1"], ["b=2"], ["c=3"], [], ["d=4"], ["e=5"]], in: net.dir.path)
            let da = try await net.startDA(blockTime: "1h", extra: ["--max-blob-size", "\(16 << 20)"])
            let client = try CelestiaDAClient(options: DAClientOptions(url: da.url + "/"))
            try await post(vectors, to: client)
            await client.shutdown()
            let node = try fullNode(net, vectors)
            try await node.start()
            let halted = try await node.waitForStatus("phase halted") { $0.phase == "halted" }
            let reason = halted.reason ?? ""
            #expect(reason.contains("SEQUENCER IS MALICIOUS"), "\(reason)")
            #expect(reason.contains("1 forced transaction(s)") && reason.contains("'\(Self.forcedNamespace)'")
                    && reason.contains("DA heights 10…11") && reason.contains("DA height 13")
                    && reason.contains("based_sequencer") && reason.contains("keep the chain halted"), "\(reason)")
            // The garbage and oversized forced blobs are not counted: exactly one omission.
            #expect(try await maliciousCount(node) == 1)
            #expect(halted.heights.store == 4, "blocks at DA 10…13 applied, the one at DA 14 not")
            let ready = try await node.readiness()
            #expect(ready.status != 200 && ready.text.contains("halted"), "\(ready)")
            #expect(try await node.metrics().split(separator: "\n").contains { $0.hasPrefix("evnode_phase{phase=\"halted\"} 1") })
            // Still up a moment later, still halted, nothing more applied.
            try await Task.sleep(for: .seconds(2))
            let later = try await node.status()
            #expect(later.phase == "halted" && later.heights.store == 4)
            #expect(await node.stop() == 3, "an operator decision: exit status 3")
        }
    }
}

/// Based sequencing as `evnode start --evnode.node.aggregator --evnode.node.based_sequencer`
/// (issue 32, step 4): two processes with no signer on one local DA build the same chain;
/// genesis da_start_height 0 is refused at startup.
@Suite(.serialized) struct BasedNodeTests {
    static let forcedNamespace = "based-forced"

    func genesis(daStartHeight: UInt64) -> String {
        Genesis(chainID: "based-chain", startTimeNanoseconds: 1_700_000_000_000_000_000,
                proposerAddress: [UInt8](repeating: 7, count: 32), daStartHeight: daStartHeight,
                daEpochForcedInclusion: 2).jsonText()
    }

    func basedNode(_ net: Testnet, _ name: String, daStartHeight: UInt64 = 10) throws -> NodeProcess {
        try net.makeNode(name: name, genesis: genesis(daStartHeight: daStartHeight),
                         extra: ["--evnode.node.aggregator", "--evnode.node.based_sequencer",
                                 "--evnode.da.forced_inclusion_namespace", Self.forcedNamespace])
    }

    @Test func twoBasedProcessesBuildTheSameChainWithoutASigner() async throws {
        try await Testnet.run(chainID: "based-chain") { net in
            let da = try await net.startDA(blockTime: "1h")
            let client = try CelestiaDAClient(options: DAClientOptions(url: da.url + "/"))
            let forced = DANamespace(name: Self.forcedNamespace)
            func advance(to height: UInt64) async throws {
                while try await client.networkHead().height < height {
                    _ = try await client.submit([DABlob(namespace: DANamespace(name: "filler"), data: Array("x".utf8))])
                }
            }
            try await advance(to: 9)
            #expect(try await client.submit([DABlob(namespace: forced, data: Array("a=1".utf8)),
                                             DABlob(namespace: forced, data: Array("no-equals".utf8))]) == 10)
            try await advance(to: 13)    // epoch 2 (12…13) is empty: no block for it
            #expect(try await client.submit([DABlob(namespace: forced, data: Array("b=2".utf8))]) == 14)
            let first = try basedNode(net, "based-1")
            let second = try basedNode(net, "based-2")
            // No signer: a based node signs nothing.
            for node in [first, second] { try FileManager.default.removeItem(atPath: node.layout.signerJSONFile) }
            try await first.start()
            try await second.start()
            // Epoch 3 ends at DA 15, posted while they run.
            try await first.waitForStatus("block 1 from epoch 1") { $0.heights.store >= 1 }
            try await advance(to: 15)
            await client.shutdown()
            for node in [first, second] {
                let s = try await node.waitForStatus("blocks of epochs 1 and 3") { $0.heights.store >= 2 && $0.heights.finalized >= 2 }
                #expect(s.phase == "aggregating" && s.mode == "based", "\(s.summary)")
                #expect(try await node.value(forKey: "b") == "2")
            }
            try await Task.sleep(for: .seconds(1))
            #expect(try await first.status().heights.store == 2, "no block for an empty epoch, none without forced txs")
            try await expectSameChain(first, second, through: 2)
        }
    }

    @Test func daStartHeightZeroIsRefused() async throws {
        try await Testnet.run(chainID: "based-chain") { net in
            _ = try await net.startDA(blockTime: "1h")
            let node = try basedNode(net, "based-zero", daStartHeight: 0)
            _ = try node.launch()
            let status = try await node.waitForExit("refusal of da_start_height 0", timeout: .seconds(30))
            #expect(status != 0)
            #expect(node.output.contains("da_start_height above 0"), "\(node.output.suffix(2000))")
        }
    }
}

/// The returning sequencer (issue 32, step 5) as real processes: an aggregator stopped for three
/// epochs while forced transactions are posted comes back with `--catchup-timeout`, replays them
/// in blocks of their own, then produces normally; a full node that checks forced inclusion
/// follows from DA the whole way without halting, and no height has two hashes.
@Suite(.serialized) struct ReturningSequencerTests {
    static let forcedNamespace = "return-forced"

    @Test func stoppedForThreeEpochsReplaysForcedTxsThenProducesAndAFullNodeFollows() async throws {
        try await Testnet.run(chainID: "return-chain") { net in
            let da = try await net.startDA(blockTime: "300ms")
            let fi = ["--evnode.da.forced_inclusion_namespace", Self.forcedNamespace]
            let sequencer = try net.makeNode(name: "sequencer", aggregator: true, extra: fi)
            // Epochs of 2 DA heights from DA height 1.
            var genesis = try Genesis.load(path: sequencer.layout.genesisFile)
            genesis.daStartHeight = 1
            genesis.daEpochForcedInclusion = 2
            try genesis.jsonText().write(toFile: sequencer.layout.genesisFile, atomically: true, encoding: .utf8)
            let full = try net.makeNode(name: "full", genesisFrom: sequencer, extra: fi)
            try await sequencer.start()
            try await full.start()
            try await sequencer.produceBlocksWithTxs(3, tag: "before")
            let stoppedAt = try await sequencer.status().heights.store
            #expect(await sequencer.stop() == 0)

            let client = try CelestiaDAClient(options: DAClientOptions(url: da.url + "/"))
            let forced = DANamespace(name: Self.forcedNamespace)
            func waitForDA(_ height: UInt64) async throws {
                try await waitUntil("DA height \(height)", timeout: .seconds(30)) { try await client.networkHead().height >= height }
            }
            // One forced tx per epoch for three epochs, then two more epochs of silence.
            var last: UInt64 = 0
            for i in 1...3 {
                last = try await client.submit([DABlob(namespace: forced, data: Array("forced\(i)=v\(i)".utf8))])
                try await waitForDA(last + 2)
            }
            try await waitForDA(last + 4)
            await client.shutdown()

            try await sequencer.start(flags: sequencer.flags + ["--catchup-timeout", "5s"])
            try await waitUntil("forced3 in the sequencer's chain", timeout: .seconds(60)) {
                try await sequencer.value(forKey: "forced3") == "v3"
            }
            let replayedThrough = try await sequencer.status().heights.store
            try await sequencer.produceBlocksWithTxs(2, tag: "after")
            let head = try await sequencer.status().heights.store

            // The replayed blocks hold forced txs only, in order, each once, before any new mempool tx.
            var forcedHeights: [UInt64] = []
            for h in (stoppedAt + 1)...head {
                let texts = try #require(try await sequencer.block(h)).txTexts
                if texts.contains(where: { $0.hasPrefix("forced") }) {
                    #expect(texts.allSatisfy { $0.hasPrefix("forced") }, "height \(h) mixes forced and mempool txs: \(texts)")
                    forcedHeights.append(h)
                }
            }
            #expect(forcedHeights.count == 3 && forcedHeights.allSatisfy { $0 <= replayedThrough }, "\(forcedHeights)")
            #expect(try await sequencer.value(forKey: "forced1") == "v1")
            #expect(try await sequencer.value(forKey: "forced2") == "v2")

            let followed = try await full.waitForStatus("height \(head) from DA", timeout: .seconds(90)) {
                $0.heights.store >= head || $0.phase == "halted"
            }
            #expect(followed.phase == "syncing", "\(followed.summary) \(followed.reason ?? "")")
            try await expectSameChain(sequencer, full, through: head)
            let malicious = try await full.metrics().split(separator: "\n")
                .first { $0.hasPrefix("evnode_sequencer_forced_inclusion_txs_malicious_total{") }
            #expect(malicious?.hasSuffix(" 0") == true, "\(malicious ?? "no series")")
        }
    }
}
