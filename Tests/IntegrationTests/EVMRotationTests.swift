import Foundation
import ProcessKit
import Testing
import TestSupport

/// Proposer rotation on the EVM path (issue 31; reference/ev-node-chain-rules.md §1 scenario 6),
/// real processes: three Swift nodes, each with its own py-evm test EL carrying ev-reth's proposer
/// control (the precompile at 0x…F101, `evolve_getNextProposer`).
@Suite(.serialized)
struct EVMRotationTests {
    /// Aggregator A, promotable B and a full node F. The admin's `setNextProposer(B)` lands in
    /// block h: A stops producing and follows, B produces h+1 within a block time or two, F
    /// follows, and no height anywhere has two hashes. Then B loses its disk (store and EL): it
    /// restarts promotable at height 0 and produces again only above what it signed before, once
    /// DA and its peers supplied those blocks (SPEC §6, the signer's mark), continuing the chain.
    @Test(.timeLimit(.minutes(10))) func aPromotableEVMNodeTakesOverWhenTheELNamesItsKey() async throws {
        try #require(EVMFiles.available, "the py-evm virtualenv is missing: run `make deps`")
        try await Testnet.run(chainID: "evm-rotation") { net in
            _ = try await net.startDA()
            let a = try net.makeNode(name: "agg-a", aggregator: true, blockTime: "300ms")
            let keyA = try a.signerKey().address
            // ev-reth's upgrade recipe: initialNextProposer is the proposer in office (A).
            let chainspec = try EVMFiles.proposerControlGenesis(in: net.dir.path, initialNextProposer: keyA)
            let elA = try net.makeEL(name: "el-a", genesis: chainspec)
            let elB = try net.makeEL(name: "el-b", genesis: chainspec)
            let elF = try net.makeEL(name: "el-f", genesis: chainspec)
            for el in [elA, elB, elF] { try await el.start() }
            a.flags += elA.nodeArguments()
            let b = try net.makeNode(name: "promotable-b", peers: [a], genesisFrom: a,
                                     extra: elB.nodeArguments() + ["--evnode.node.promotable", "--block-time", "300ms"])
            let keyB = try b.signerKey().address
            let f = try net.makeNode(name: "full", peers: [a, b], genesisFrom: a, extra: elF.nodeArguments())

            try await a.start()
            try await b.start()
            try await f.start()
            try await a.waitForStatus("A produces") { $0.heights.store >= 3 }
            #expect(try await b.status().phase != "aggregating", "B produced before the chain named it")

            // The admin names B (a transaction to the precompile through A's POST /tx).
            let rotate = try EVMFiles.setNextProposer(keyB, nonce: 0)
            let sent = try await HTTP.post(a.rpc + "/tx", body: Data(rotate))
            #expect(sent.status == 202, "POST /tx: HTTP \(sent.status) \(sent.text)")
            try await waitUntil("el-a to name B", timeout: .seconds(60), every: .milliseconds(100)) {
                try await elA.nextProposer() == keyB
            }
            let elHead = try await elA.height()
            var h = elHead
            while h > 1, try await elA.nextProposer(at: h - 1) == keyB { h -= 1 }
            #expect(try await elA.nextProposer(at: h - 1) == keyA)

            // B sees block h and produces h+1 itself, within a block time or two.
            try await b.waitForHeight(h, timeout: .seconds(60))
            let sawH = ContinuousClock.now
            try await waitUntil("B to produce \(h + 1)", timeout: .seconds(60), every: .milliseconds(50)) {
                try await b.block(h + 1) != nil
            }
            let takeover = ContinuousClock.now - sawH
            let next = try #require(try await b.block(h + 1))
            #expect(next.proposer == EVMFiles.hex(keyB), "block \(h + 1) is not B's")
            #expect(takeover < .seconds(5), "B took \(takeover) to produce \(h + 1) after it applied \(h)")
            print("EVM rotation: B produced \(h + 1) \(takeover) after it applied \(h)")

            try await f.waitForHeight(h + 4, timeout: .seconds(90))
            try await a.waitForHeight(h + 4, timeout: .seconds(90))
            let s = try await b.waitForStatus("B aggregating") { $0.phase == "aggregating" }
            #expect(s.heights.store >= h + 4)
            #expect(try await a.status().phase == "syncing", "A stopped producing and follows")
            #expect(a.allLogs.contains("proposer rotated"))
            #expect(b.allLogs.contains("the EL names the next proposer"))
            try await expectSameChain(a, b, f, through: h + 4)
            for height in UInt64(1)...(h + 4) {
                let block = try #require(try await f.block(height))
                #expect(block.proposer == EVMFiles.hex(height <= h ? keyA : keyB), "height \(height)")
            }
            try await expectAppHashesAreELRoots(f, elF, through: h + 4)

            // The same after a lost disk on B: its store and its EL go, its signer's mark stays.
            await b.stop()
            let mark = try #require(try b.signerMark())
            let top = try await f.waitForStatus("F has B's last block") { $0.heights.store >= mark }.heights.store
            let before = try await f.hashes(through: top)
            await elB.stop()
            try FileManager.default.removeItem(atPath: b.home + "/data")
            try await elB.start()
            try await b.start()
            try await waitUntil("B produces again above what it signed", timeout: .seconds(180), every: .milliseconds(200)) {
                let s = try await b.status()
                return s.phase == "aggregating" && s.heights.store >= mark + 3
            }
            #expect(b.output.contains("checking every catchup condition"), "B promoted without the catchup check")
            try await f.waitForHeight(mark + 3, timeout: .seconds(60))
            try await a.waitForHeight(mark + 3, timeout: .seconds(60))
            let after = try await f.hashes(through: top)
            #expect(after == before, "the chain up to B's mark changed after B's lost disk")
            try await expectSameChain(a, b, f, through: mark + 3)
            let rebuilt = try #require(try await b.block(mark + 1))
            #expect(rebuilt.proposer == EVMFiles.hex(keyB))
            try await expectAppHashesAreELRoots(b, elB, through: mark + 3)
        }
    }
}
