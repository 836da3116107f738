import Foundation
import ProcessKit
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// Divergence recovery and `evnode rollback` with real `evnode` processes on loopback.
@Suite(.serialized) struct DivergenceTests {
    let evnode = BuiltProducts.evnode

    /// Two aggregators wrongly share one key. A (slow blocks, posting to DA every 30 s) gossips to
    /// the full node F; B (fast blocks, posting to DA at once) starts later, so DA's first header
    /// at every height from 2 on is B's (block 1, with the genesis time and no txs, is the same on
    /// both). F, which applied A's blocks from P2P, must roll back to the common ancestor, replay
    /// B's chain from DA, report the double signs — and stay on B's chain when A's headers reach
    /// DA later.
    @Test(.timeLimit(.minutes(6)))
    func aFullNodeConvergesToTheDAFirstChainOfTwoAggregatorsSharingAKey() async throws {
        try await Testnet.run(chainID: "div-chain") { net in
            try await net.startDA(blockTime: "500ms")
            let a = try net.makeNode(name: "a", aggregator: true, blockTime: "2s", extra: ["--da.block-time", "30s"])
            // The operator's mistake: B gets A's genesis and A's signer key.
            let b = try net.makeNode(name: "b", aggregator: true, blockTime: "100ms", genesisFrom: a, signerFrom: a,
                                     extra: ["--da.block-time", "200ms"])
            let f = try net.makeNode(name: "f", peers: [a], genesisFrom: a, extra: ["--da.block-time", "200ms"])
            try await a.start()
            try await f.start()

            // F follows A over P2P, including a state change only A's branch has.
            try await f.waitForHeight(3, timeout: .seconds(120))
            #expect(try await a.send(tx: "k=a") == 202)
            try await waitUntil("F holds A's state", timeout: .seconds(120)) { try await f.value(forKey: "k") == "a" }
            let softHeight = try await f.status().heights.store
            let aBlock1 = try await a.block(1)?.hash
            let aBlock2 = try await a.block(2)?.hash
            #expect(try await f.block(2)?.hash == aBlock2)

            try await b.start()
            // The tx goes in after block 1, which must stay the same on both branches.
            try await b.waitForHeight(2, timeout: .seconds(120))
            #expect(try await b.send(tx: "k=b") == 202)
            try await waitUntil("B's tx in a block", timeout: .seconds(120)) { try await b.value(forKey: "k") == "b" }
            let bTop = try await b.status().heights.store

            // F ends on B's chain: same hashes where both have blocks, B's state, evidence reported.
            try await waitUntil("F converges to B's (DA-first) chain", timeout: .seconds(180)) {
                let s = try await f.status()
                guard s.heights.store >= max(bTop, softHeight + 2), s.phase == "syncing" else { return false }
                let (fHash, bHash) = (try await f.block(s.heights.store)?.hash, try await b.block(s.heights.store)?.hash)
                let value = try await f.value(forKey: "k")
                return fHash == bHash && value == "b"
            }
            let bBlock2 = try await b.block(2)?.hash
            #expect(bBlock2 != aBlock2, "A and B really signed two branches")
            #expect(try await f.block(2)?.hash == bBlock2)
            #expect(try await f.block(softHeight)?.hash == b.block(softHeight)?.hash)
            #expect(try await f.block(1)?.hash == aBlock1, "block 1 (genesis time, no txs) is the same on both")

            // The evidence gauge is sampled by the node's metrics loop: wait for its next round.
            try await waitUntil("F's metrics to count the double signs", timeout: .seconds(30), every: .milliseconds(100)) {
                metricValue(try await f.metrics(), "evnode_double_sign_evidence").map { $0 >= 1 } == true
            }
            let metrics = try await f.metrics()
            #expect(metricValue(metrics, "evnode_rollbacks_total").map { $0 >= 1 } == true, "F rolled back: \(metrics)")
            let status = try await f.status()
            #expect(status.evidence >= 1)
            let evidence = try await HTTP.get(f.rpc + "/evidence")
            #expect(evidence.status == 200)
            let document = try JSONSerialization.jsonObject(with: evidence.body) as? [String: Any]
            let items = document?["evidence"] as? [[String: Any]] ?? []
            #expect(!items.isEmpty && (document?["count"] as? Int ?? 0) == status.evidence)
            let atTwo = items.first { ($0["height"] as? Int) == 2 }
            let hashes = [atTwo?["first"], atTwo?["second"]].compactMap { ($0 as? [String: Any])?["hash"] as? String }
            #expect(Set(hashes) == Set([aBlock2, bBlock2].compactMap { $0 }),
                    "the pair at height 2 is A's and B's block: \(evidence.text)")
            #expect(f.output.contains("rolled back to the common ancestor"))

            // A sees the second signer itself (issue 27): F, following B's chain, proves heights
            // above A's store in its head answers, so A stops producing and exits with status 3.
            let aStatus = try await a.waitForExit("A to stop for the second signer", timeout: .seconds(120))
            #expect(aStatus == 3, "\(a.output.suffix(3000))")
            #expect(a.output.contains("second live signer"), "\(a.output.suffix(3000))")

            // A's own blocks reach DA later than B's: DA order keeps B's authoritative. F records
            // A's headers as DA double signs and keeps following B, halting nothing. A pair is
            // recorded once, wherever it was first seen; so that F meets some of A's blocks only on
            // DA, A restarts on other ports (F no longer reaches it) and posts every second.
            let aTop = try storeHeight(a.home)
            let a2 = try net.movedToNewPorts(a, name: "a2", flags: [
                "--aggregator", "--block-time", "1s", "--da.address", net.da!.url, "--da.block-time", "1s"])
            try await a2.start()
            try await a2.waitForStatus("A posts a block F never got over P2P", timeout: .seconds(120)) {
                $0.heights.finalized > aTop
            }
            try await waitUntil("A's later DA header at \(aTop + 1) recorded as evidence", timeout: .seconds(120)) {
                let list = try JSONSerialization.jsonObject(with: try await HTTP.get(f.rpc + "/evidence").body) as? [String: Any]
                return (list?["evidence"] as? [[String: Any]] ?? []).contains { item in
                    let seen = [item["first"], item["second"]].compactMap { ($0 as? [String: Any])?["seen"] as? String }
                    return (item["height"] as? Int) == Int(aTop + 1) && seen.count == 2 && seen.allSatisfy { $0.contains("DA height") }
                }
            }
            let after = try await f.status()
            #expect(after.phase == "syncing")
            #expect(try await f.block(after.heights.store)?.hash == b.block(after.heights.store)?.hash)
            #expect(try await f.block(2)?.hash == bBlock2)
        }
    }

    /// `evnode rollback`: refused while the node runs and below the finalized height (exit 2,
    /// nothing changed); above it the store goes back and the node restarts from there.
    @Test(.timeLimit(.minutes(6)))
    func rollbackCommandRefusesBelowFinalizedAndTheNodeRestartsFromTheNewHeight() async throws {
        try await Testnet.run(chainID: "div-chain") { net in
            let da = try await net.startDA(blockTime: "500ms")
            let a = try net.makeNode(name: "a", aggregator: true, blockTime: "100ms")
            let f = try net.makeNode(name: "f", peers: [a], genesisFrom: a, extra: ["--da.block-time", "200ms"])
            try await a.start()
            try await f.start()
            try await f.waitForStatus("F finalizes from DA", timeout: .seconds(120)) { $0.heights.finalized >= 5 }

            // A restarted lazy, with a DA block time of an hour, posts what A1 left unposted (its
            // store is at A1's head) once at start and then nothing: F's finalized height settles at
            // A1's head while its store keeps growing from P2P with A2's transaction blocks.
            #expect(await a.stop() == 0)
            let finalized = try storeHeight(a.home)
            try await a.start(flags: ["--aggregator", "--block-time", "100ms", "--lazy", "--lazy-interval", "1h",
                                      "--da.address", da.url, "--da.block-time", "1h"])
            try await f.waitForStatus("F finalized A1's whole chain", timeout: .seconds(120)) {
                $0.heights.finalized == finalized
            }
            try await produceBlocks(8, on: a, seenBy: f)
            #expect(try await f.status().heights.finalized == finalized, "A2's blocks are never posted")

            let running = try runCommand(evnode, ["rollback", "--home", f.home, "--height", "\(finalized)"])
            #expect(running.status == 2)
            #expect(running.stderr.contains("stop the node first"), "\(running.stderr)")

            #expect(await f.stop() == 0)
            let head = try storeHeight(f.home)
            #expect(head >= finalized + 8)
            let below = try runCommand(evnode, ["rollback", "--home", f.home, "--height", "\(finalized - 1)"])
            #expect(below.status == 2)
            #expect(below.stderr.contains("below the finalized height \(finalized)"), "\(below.stderr)")
            #expect(try storeHeight(f.home) == head, "a refused rollback changes nothing")

            let target = finalized + 2
            let done = try runCommand(evnode, ["rollback", "--home", f.home, "--height", "\(target)"])
            #expect(done.status == 0, "\(done.stderr)")
            #expect(done.stdout.contains("from height \(head)") && done.stdout.contains("to \(target)"), "\(done.stdout)")
            #expect(try storeHeight(f.home) == target)

            try await f.start()
            _ = try await f.child!.waitForLine("F restarted from \(target)") {
                $0.contains("store opened") && $0.contains("height=\(target) ") ? true : nil
            }
            try await f.waitForHeight(head, timeout: .seconds(60))
            try await produceBlocks(2, on: a, seenBy: f)
            try await waitUntil("F syncs again past its old head", timeout: .seconds(120)) {
                guard let s = try? await f.status(), s.heights.store > head else { return false }
                let (fHead, aHead) = (try await f.block(head)?.hash, try await a.block(head)?.hash)
                let (fNext, aNext) = (try await f.block(target + 1)?.hash, try await a.block(target + 1)?.hash)
                return fHead == aHead && fNext == aNext
            }
            #expect(try await f.status().heights.finalized == finalized)
        }
    }

    /// Makes `count` blocks on lazy aggregator `a`, one transaction each, and waits for `f` to
    /// hold each of them.
    func produceBlocks(_ count: Int, on a: NodeProcess, seenBy f: NodeProcess) async throws {
        for i in 0..<count {
            let before = try await a.status().heights.store
            let sent = try await a.send(tx: "rb\(before)-\(i)=v")
            #expect(sent == 202)
            try await f.waitForHeight(before + 1, timeout: .seconds(60))
        }
    }

    /// The stopped node's store height, as the rollback command reports it (rolling back to a
    /// height far above it is refused with the store height in the message).
    func storeHeight(_ home: String) throws -> UInt64 {
        let r = try runCommand(evnode, ["rollback", "--home", home, "--height", "\(UInt64.max)"])
        guard r.status == 2, let range = r.stderr.range(of: "above the store height ") else {
            throw TestFailure("store height of \(home): \(r.stderr)")
        }
        let digits = r.stderr[range.upperBound...].prefix { $0.isNumber }
        guard let height = UInt64(digits) else { throw TestFailure("store height in \(r.stderr)") }
        return height
    }
}
