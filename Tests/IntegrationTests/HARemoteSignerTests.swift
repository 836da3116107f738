import Chain
import Primitives
import Config
import Foundation
import ProcessKit
import RemoteSigner
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// An HA group sharing one `evnode signer serve` (issue 29): real etcd, real node processes, a
/// real signer process. The signer's fence, not etcd's, is what keeps a height from being signed
/// twice; a new leader adopts the block the signer kept when the old one died after the signer's
/// answer and before etcd replicated its block.
@Suite(.serialized, .timeLimit(.minutes(8)))
struct HARemoteSignerTests {
    static let blockTime = "200ms"
    static let leaseTTL = "2s"

    /// Three HA aggregators on one signer. The leader is killed -9 three times: twice right
    /// after the signer made its mark for height H durable and before the leader heard the
    /// answer (the signer holds that answer until the leader is dead: H is signed, etcd and
    /// every store are at H-1), once plainly. Each time a survivor takes over, adopts exactly the
    /// block the signer kept at H (never a second signature: the signer refuses nothing), and the
    /// chain goes on; at the end every node and a DA-only node hold one hash per height.
    @Test func aGroupSharingOneSignerAdoptsTheBlockSignedBeforeTheLeaderDied() async throws {
        try await Testnet.run(chainID: "ha-remote") { net in
            let etcd = try await net.startEtcd()
            try await net.startDA()
            let nodes = try net.makeHAGroup(count: 3, blockTime: Self.blockTime, leaseTTL: Self.leaseTTL)
            let signer = try SignerProcess(net: net, keyFrom: nodes[0])
            for node in nodes.dropFirst() { try FileManager.default.removeItem(atPath: node.layout.signerJSONFile) }
            let trigger = net.dir.sub("hold-next-answer")
            try await signer.start(extra: ["--hold-after-mark-when", trigger])
            for node in nodes { try await node.start(flags: node.flags + signer.nodeFlags) }

            var lastHeld: UInt64 = 0
            var top: UInt64 = 0
            for round in 0..<3 {
                let leader = try await net.waitForLeader(among: nodes)
                try await leader.waitForStatus("blocks above \(top + 3)") { $0.heights.store >= top + 3 }
                let holding = round < 2
                var kept: (height: UInt64, hash: [UInt8])?
                if holding {
                    FileManager.default.createFile(atPath: trigger, contents: Data())
                    let held = try await signer.current!.waitForLine("the signer to hold an answer above \(lastHeld)") { line -> UInt64? in
                        guard line.hasPrefix("holding the answer for height "),
                              let h = UInt64(line.dropFirst("holding the answer for height ".count)), h > lastHeld else { return nil }
                        return h
                    }
                    lastHeld = held
                    // Only the leader signs: the held answer is its own.
                    #expect(try await leader.status().ha?.role == "leader")
                    #expect(await leader.stop(signal: SIGKILL) == SIGKILL)
                    // The signer signed `held`; neither etcd nor any store has it.
                    let record = try #require(try SignerHighWaterMark(path: signer.markFile).loadRecord())
                    #expect(record.height == held)
                    let block = try SignedBlockBytes.decode(try #require(record.block))
                    kept = (held, block.signedHeader.header.hash)
                    #expect(try await etcd.replicatedHeight(chainID: net.chainID) == held - 1)
                    for node in nodes where node !== leader {
                        #expect(try await node.status().heights.store < held, "\(node.name) holds the unreplicated block")
                    }
                    FileManager.default.createFile(atPath: trigger + ".release", contents: Data())
                } else {
                    #expect(await leader.stop(signal: SIGKILL) == SIGKILL)
                }
                let survivors = nodes.filter { $0 !== leader }
                let next = try await net.waitForLeader(among: survivors)
                let floor = max(kept?.height ?? 0, try await etcd.replicatedHeight(chainID: net.chainID))
                try await next.waitForStatus("the new leader to produce above \(floor + 2)") { $0.heights.store >= floor + 3 }
                if let kept {
                    let stored = try #require(try await next.block(kept.height))
                    #expect(stored.hash == Hex.encode(kept.hash), "height \(kept.height) is not the block the signer kept")
                    #expect(next.allLogs.contains("adopted, not signed again"), "\(next.output.suffix(3000))")
                }
                top = try await next.status().heights.store
                // The killed node comes back and follows.
                try await leader.start(flags: leader.flags + signer.nodeFlags)
            }

            let reference = try await net.waitForLeader(among: nodes)
            let target = try await reference.status().heights.store + 5
            for node in nodes {
                try await node.waitForStatus("height ≥ \(target)") { $0.heights.store >= target }
                if node !== reference { try await expectSameChain(reference, node, through: target) }
                #expect(try await node.status().evidence == 0, "\(node.name) recorded double-sign evidence")
            }
            let daOnly = try net.makeNode(name: "da-only", genesisFrom: nodes[0])
            try await daOnly.start()
            try await daOnly.waitForStatus("DA to deliver every height through \(target)", timeout: .seconds(120)) {
                $0.heights.store >= target
            }
            try await expectSameChain(reference, daOnly, through: target)
            let metrics = try await signer.metrics()
            #expect(metricValue(metrics, "evnode_signer_refusals_total") == 0, "\(signer.output.suffix(3000))")
            try expectOneSignaturePerHeight(signer.output)
        }
    }

    /// The etcd fence is wrong: a second "group" with an etcd of its own believes it leads the
    /// same chain and signs through the same signer, beside the real group. The signer refuses
    /// whichever asks second at each height, so no height anywhere has two hashes.
    @Test func theSignersFenceHoldsWhenASecondGroupBelievesItLeads() async throws {
        try await Testnet.run(chainID: "ha-remote-split") { net in
            _ = try await net.startEtcd()
            try await net.startDA()
            let nodes = try net.makeHAGroup(count: 2, blockTime: Self.blockTime, leaseTTL: Self.leaseTTL)
            let signer = try SignerProcess(net: net, keyFrom: nodes[0])
            try FileManager.default.removeItem(atPath: nodes[1].layout.signerJSONFile)
            try await signer.start()
            for node in nodes { try await node.start(flags: node.flags + signer.nodeFlags) }
            let leader = try await net.waitForLeader(among: nodes)
            try await leader.waitForHeight(5)

            let otherEtcd = try await net.startAnotherEtcd(name: "etcd-rogue")
            let rogue = try net.makeNode(name: "rogue", aggregator: true, blockTime: Self.blockTime, peers: nodes,
                                         genesisFrom: nodes[0],
                                         extra: ["--raft.enable", "--raft.endpoints", otherEtcd.url, "--raft.lease-ttl", Self.leaseTTL,
                                                 "--raft.node-id", "rogue"])
            try FileManager.default.removeItem(atPath: rogue.layout.signerJSONFile)
            try await rogue.start(flags: rogue.flags + signer.nodeFlags)
            try await waitUntil("the signer to refuse a second signature", timeout: .seconds(120), every: .milliseconds(200)) {
                (metricValue(try await signer.metrics(), "evnode_signer_refusals_total") ?? 0) >= 1
            }
            #expect(signer.output.contains("would be a second signature at or below this signer's high-water mark"),
                    "\(signer.output.suffix(3000))")
            // Some more blocks (or none, if the two groups wedge each other): then compare.
            let mark = try #require(try SignerHighWaterMark(path: signer.markFile).load())
            try? await waitUntil("the chain to move on", timeout: .seconds(10), every: .milliseconds(200)) {
                (try SignerHighWaterMark(path: signer.markFile).load() ?? 0) >= mark + 5
            }
            var byHeight: [Int: Set<String>] = [:]
            for node in nodes + [rogue] where node.isRunning {
                #expect(try await node.status().evidence == 0, "\(node.name) recorded double-sign evidence")
            }
            for node in nodes + [rogue] {
                if node.isRunning { _ = await node.stop() }
                for (i, hash) in try node.storedHashes().enumerated() { byHeight[i + 1, default: []].insert(hash) }
            }
            for (height, hashes) in byHeight.sorted(by: { $0.key < $1.key }) {
                #expect(hashes.count == 1, "height \(height) has \(hashes.count) hashes: \(hashes)")
            }
            try expectOneSignaturePerHeight(signer.output)
        }
    }

    /// Every header the signer signed, from its log (`signed … height=H hash=X`): one hash per
    /// height (a repeated signature names the same hash).
    private func expectOneSignaturePerHeight(_ log: String) throws {
        var signed: [UInt64: Set<String>] = [:]
        for line in log.split(separator: "\n") where line.contains("signed") && line.contains("what=header") {
            guard let height = Self.field("height", in: line).flatMap(UInt64.init), let hash = Self.field("hash", in: line) else { continue }
            signed[height, default: []].insert(hash)
        }
        #expect(!signed.isEmpty, "no signature in the signer's log")
        for (height, hashes) in signed where hashes.count != 1 {
            Issue.record("the signer signed \(hashes.count) headers at height \(height): \(hashes)")
        }
    }

    private static func field(_ name: String, in line: Substring) -> String? {
        guard let range = line.range(of: " \(name)=") else { return nil }
        return String(line[range.upperBound...].prefix { !$0.isWhitespace })
    }
}
