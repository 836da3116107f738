import DAClient
import Config
import Foundation
import ProcessKit
import Testing
import TestSupport

/// The forced-inclusion checkpoint of a node that did not produce the blocks it holds (issue 32,
/// open question 9): a sequencer promoted by catchup on a store it synced, and an HA follower
/// that takes over. Real processes on a local DA (and etcd); every forced transaction must be on
/// the chain exactly once, and a full node that checks forced inclusion follows without halting.
@Suite(.serialized, .timeLimit(.minutes(4))) struct ForcedInclusionPromotionTests {
    static let forcedNamespace = "promo-forced"
    static var fi: [String] { ["--evnode.da.forced_inclusion_namespace", forcedNamespace] }

    /// Epochs of 2 DA heights from DA height 1, written into every node's genesis.
    static func setEpochs(_ nodes: [NodeProcess]) throws {
        for node in nodes {
            var genesis = try Genesis.load(path: node.layout.genesisFile)
            genesis.daStartHeight = 1
            genesis.daEpochForcedInclusion = 2
            try genesis.jsonText().write(toFile: node.layout.genesisFile, atomically: true, encoding: .utf8)
        }
    }

    /// Posts `text` as one forced transaction and waits until its epoch has ended on DA.
    static func postForced(_ text: String, _ client: CelestiaDAClient) async throws {
        let at = try await client.submit([DABlob(namespace: DANamespace(name: forcedNamespace), data: Array(text.utf8))])
        try await waitUntil("DA height \(at + 2)", timeout: .seconds(30)) { try await client.networkHead().height >= at + 2 }
    }

    /// How often each forced transaction (text starting "forced") is in `node`'s blocks 1…head.
    static func forcedCounts(_ node: NodeProcess, through head: UInt64) async throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for h in 1...head {
            for text in try #require(try await node.block(h)).txTexts where text.hasPrefix("forced") {
                counts[text, default: 0] += 1
            }
        }
        return counts
    }

    static func expectNoViolation(_ node: NodeProcess) async throws {
        let malicious = try await node.metrics().split(separator: "\n")
            .first { $0.hasPrefix("evnode_sequencer_forced_inclusion_txs_malicious_total{") }
        #expect(malicious?.hasSuffix(" 0") == true, "\(node.name): \(malicious ?? "no series")")
    }

    /// A sequencer includes forced txs over three epochs, is killed (-9) and loses its store
    /// (config, genesis, key and mark kept); two more epochs of forced txs are posted while it is
    /// down. Restarted with `--catchup-timeout`, it syncs its old blocks back, derives the
    /// checkpoint from them, replays only the two it missed and produces on; a checking full
    /// node follows the whole way.
    @Test func promotedOnAFreshStoreNeitherRepeatsNorSkipsForcedTxs() async throws {
        try await Testnet.run(chainID: "promo-chain") { net in
            let da = try await net.startDA(blockTime: "300ms")
            let sequencer = try net.makeNode(name: "sequencer", aggregator: true,
                                             extra: Self.fi + ["--lazy", "--lazy-interval", "10m"])
            try Self.setEpochs([sequencer])
            let full = try net.makeNode(name: "full", peers: [sequencer], genesisFrom: sequencer, extra: Self.fi)
            try await sequencer.start()
            try await full.start()
            let client = try CelestiaDAClient(options: DAClientOptions(url: da.url + "/"))
            // Lazy: each forced tx goes in with the mempool tx that wakes the producer.
            for i in 1...3 {
                try await Self.postForced("forced\(i)=v\(i)", client)
                try await sequencer.produceBlocksWithTxs(1, tag: "with-forced\(i)")
                try await waitUntil("forced\(i) in the chain", timeout: .seconds(30)) {
                    try await sequencer.value(forKey: "forced\(i)") == "v\(i)"
                }
            }
            let lost = try await sequencer.status().heights.store
            try await waitUntil("blocks 1…\(lost) on DA", timeout: .seconds(60)) {
                try await sequencer.status().heights.finalized >= lost
            }
            #expect(try await Self.forcedCounts(sequencer, through: lost) == ["forced1=v1": 1, "forced2=v2": 1, "forced3=v3": 1])
            await sequencer.stop(signal: SIGKILL)
            try sequencer.wipeStore()

            for i in 4...5 { try await Self.postForced("forced\(i)=v\(i)", client) }
            await client.shutdown()

            try await sequencer.start(flags: ["--aggregator", "--block-time", "200ms", "--catchup-timeout", "5s",
                                              "--da.address", da.url, "--da.block-time", "300ms",
                                              "--p2p.peers", full.p2pAddress] + Self.fi)
            try await sequencer.waitForPhase("aggregating")
            try await waitUntil("forced5 in the sequencer's chain", timeout: .seconds(60)) {
                try await sequencer.value(forKey: "forced5") == "v5"
            }
            let head = try await sequencer.status().heights.store + 3
            try await sequencer.waitForHeight(head)
            #expect(sequencer.allLogs.contains("forced-inclusion checkpoint derived from the blocks stored after it"))

            let counts = try await Self.forcedCounts(sequencer, through: head)
            #expect(counts == (1...5).reduce(into: [:]) { $0["forced\($1)=v\($1)"] = 1 }, "every forced tx exactly once: \(counts)")

            let followed = try await full.waitForStatus("height \(head) from DA", timeout: .seconds(90)) {
                $0.heights.store >= head || $0.phase == "halted"
            }
            #expect(followed.phase == "syncing", "\(followed.summary) \(followed.reason ?? "")")
            try await expectSameChain(sequencer, full, through: head)
            try await Self.expectNoViolation(full)
        }
    }

    /// An HA group of two on etcd: the leader includes a forced tx, is killed (-9), and the
    /// follower, which only ever applied the leader's blocks, takes over; forced txs posted
    /// before and after the takeover are each on the chain once.
    @Test func haTakeoverNeitherRepeatsNorSkipsForcedTxs() async throws {
        try await Testnet.run(chainID: "promo-ha") { net in
            _ = try await net.startEtcd()
            let da = try await net.startDA(blockTime: "300ms")
            let group = try net.makeHAGroup(count: 2, blockTime: "200ms", leaseTTL: "2s", extra: Self.fi)
            try Self.setEpochs(group)
            for node in group { try await node.start() }
            let leader = try await net.waitForLeader(among: group)
            let survivor = group.first { $0 !== leader }!
            let client = try CelestiaDAClient(options: DAClientOptions(url: da.url + "/"))
            try await Self.postForced("forced1=v1", client)
            try await waitUntil("forced1 applied by the follower", timeout: .seconds(60)) {
                try await survivor.value(forKey: "forced1") == "v1"
            }
            await leader.stop(signal: SIGKILL)
            try await waitUntil("the survivor to lead", timeout: .seconds(30)) {
                try await survivor.status().ha?.role == "leader"
            }
            try await Self.postForced("forced2=v2", client)
            await client.shutdown()
            try await waitUntil("forced2 in the survivor's chain", timeout: .seconds(60)) {
                try await survivor.value(forKey: "forced2") == "v2"
            }
            let head = try await survivor.status().heights.store + 3
            try await survivor.waitForHeight(head)
            let counts = try await Self.forcedCounts(survivor, through: head)
            #expect(counts == ["forced1=v1": 1, "forced2=v2": 1], "every forced tx exactly once: \(counts)")
        }
    }
}
