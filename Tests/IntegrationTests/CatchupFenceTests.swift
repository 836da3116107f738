import Chain
import Primitives
@testable import Config
import Foundation
import P2PSync
import ProcessKit
import Testing
import TestSupport

/// The holes issue 14 closed in the catchup fence (SPEC §6), each with real processes: blocks
/// held above a gap nobody fills, and kill -9 at the producer's crash points.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct CatchupFenceTests {
    // Unproven heights: CatchupTests.liarWithAHugeUnprovenHeightIsIgnored (a liar over libp2p).

    // MARK: condition 3's deadline

    /// The key signed up to N+4 (its mark says so); a peer gossips the proposer's blocks
    /// N+2…N+4 but nobody ever supplies N+1: after the timeout the node fails closed (status 3)
    /// naming the gap, instead of syncing forever.
    @Test func blocksHeldAboveAGapNobodyFillsFailClosedNamingTheGap() async throws {
        try await Testnet.run(chainID: "catchup-gap") { net in
            let chain = try CatchupChain(net)
            let da = try await net.startDA(blockTime: "500ms")
            let original = try await CatchupTests.makeHistoryThenLoseTheDisk(chain, da: da, count: 3)
            let n = UInt64(original.count)
            try SignerHighWaterMark(path: chain.signerStateFile).record(n + 4)
            // Claims an empty chain (an answer) and serves nothing; only gossips.
            let (peer, peerAddress) = try await catchupStartUnservablePeer(aggregator: chain.sequencer, announcing: 0, head: nil)

            let node = try await chain.sequencer.started(CatchupTests.recovering(da.url, timeout: "3s", ["--p2p.peers", peerAddress]))
            try await waitUntil("the node to connect to the peer") { peer.peers.count == 1 }
            try await waitUntil("the node to have DA's blocks") { try await node.status().heights.store == n }
            let live = try await HTTP.get(node.rpc + "/health/live")
            #expect(live.status == 200 && live.text == "OK\n", "\(live.status) \(live.text)")
            for block in try catchupSignedBlocks(aggregator: chain.sequencer, heights: (n + 2)...(n + 4)) {
                peer.broadcast(block: block)
            }
            // /health/ready to the end: UNREADY at every answer, never READY. The node halts and
            // exits within milliseconds (status 3), so a probe sees "catching up" until then and
            // `halted: <the gap>` only if it lands in between.
            var answers: [String] = []
            try await waitUntil("the node to give up on the gap", timeout: .seconds(60), every: .milliseconds(50)) {
                if let r = try? await node.readiness() { answers.append("\(r.status) \(r.text)") }
                return !node.isRunning
            }
            print("[gap] /health/ready answers: \(Set(answers).sorted())")
            #expect(answers.contains { $0.hasPrefix("503 UNREADY: catching up (height \(n) of ") }, "\(Set(answers))")
            for answer in Set(answers) {
                #expect(answer.hasPrefix("503 UNREADY: catching up (height \(n) of ")
                        || answer.hasPrefix("503 UNREADY: halted: ") && answer.contains("height \(n + 1) not supplied"), "\(answer)")
            }
            let status = try await node.waitForExit("the node to give up on the gap")
            let output = node.output
            #expect(status == 3, "\(output.suffix(3000))")
            #expect(output.contains("3 fetched blocks (from \(n + 2)) wait above a gap: height \(n + 1) not supplied"),
                    "\(output.suffix(3000))")
            #expect(!output.contains("producing blocks"))
            #expect(try chain.sequencer.storedHashes() == original)
            await peer.shutdown()
            await da.stop()
        }
    }

    // MARK: only configured peers count (issue 27, C1)

    /// The measured case of issue 27: a sequencer key restored without `signer.state`, its one
    /// configured peer dead, DA complete. An unconfigured full node with an empty store dials
    /// in and answers every head request with "empty chain". That answer never counts (SPEC §6
    /// condition 2): after the timeout the node fails closed (status 3), naming the silent
    /// configured peer and the missing mark, having produced nothing. (On main it promoted
    /// within a second of the stranger's dial.)
    @Test func anUnconfiguredStrangerCannotReleaseANodeWithoutAMark() async throws {
        try await Testnet.run(chainID: "catchup-stranger") { net in
            let chain = try CatchupChain(net)
            let da = try await net.startDA(blockTime: "500ms")
            let original = try await CatchupTests.makeHistoryThenLoseTheDisk(chain, da: da, count: 3)
            try FileManager.default.removeItem(atPath: chain.signerStateFile)
            let deadPeer = try await CatchupTests.addressWhereNothingListens(chain)
            // A fresh full node of the chain whose DA is unreachable: its store stays empty.
            let stranger = try net.makeNode(name: "stranger", peers: [chain.sequencer], genesisFrom: chain.sequencer,
                                            daURL: "http://\(deadPeer)", jsonLogs: true)

            let node = try chain.sequencer.launch(flags: CatchupTests.recovering(da.url, timeout: "6s", ["--p2p.peers", deadPeer]))
            try await waitUntil("the recovering node to hold DA's blocks") {
                (try? await chain.sequencer.status())?.heights.store == UInt64(original.count)
            }
            try await stranger.start()
            try await waitUntil("the stranger to be connected to the recovering node") {
                (try? await stranger.status())?.peers == 1
            }
            #expect(try await stranger.status().heights.store == 0)
            let status = try await node.waitForExit("the node without a mark to fail closed")
            let output = node.output
            #expect(status == 3, "\(output.suffix(3000))")
            #expect(output.contains("none of the configured peers answered within 6s and the signer has no high-water mark"),
                    "\(output.suffix(3000))")
            #expect(output.contains("never answered: \(deadPeer)"), "\(output.suffix(3000))")
            #expect(!output.contains("producing blocks"))
            #expect(chain.sequencer.log.contains { $0.message == "peer connected" && $0["direction"] == "inbound" },
                    "the stranger was there, and asked")
            #expect(try chain.sequencer.storedHashes() == original)
            #expect(try chain.signerMark() == nil)
            #expect(await stranger.stop() == 0)
            await da.stop()
        }
    }

    // MARK: `evnode signer reset` (issue 27)

    /// `evnode signer reset` refuses while a node runs on the home (the store lock `evnode
    /// rollback` uses; status 2, the mark unchanged), and a crafted mark near 2^64 is reset
    /// without a trap, naming the heights whose fence it lifts.
    @Test func signerResetRefusesWhileTheNodeRunsAndTakesAnyMark() async throws {
        try await Testnet.run(chainID: "reset-lock") { net in
            let chain = try CatchupChain(net)
            let da = try await net.startDA(blockTime: "500ms")
            let node = try await chain.sequencer.started(CatchupTests.lazyAggregator(da))
            try await node.produceBlocksWithTxs(2, tag: "tx")
            let mark = try chain.signerMark()
            #expect(mark == 2)

            let refused = try runCommand(BuiltProducts.evnode, ["signer", "reset", "--home", chain.sequencer.home, "--height", "0"])
            #expect(refused.status == 2, "\(refused.stdout)\(refused.stderr)")
            #expect(refused.stderr.contains("while a node runs") && refused.stderr.contains("stop the node first"), "\(refused.stderr)")
            #expect(try chain.signerMark() == mark, "a refused reset changes nothing")
            #expect(try await node.status().phase == "aggregating")
            #expect(await node.stop() == 0)

            try FileIO.writeAtomically(chain.signerStateFile, "{\"last_signed_height\": 18446744073709551615}\n")
            let reset = try runCommand(BuiltProducts.evnode, ["signer", "reset", "--home", chain.sequencer.home, "--height", "0"])
            #expect(reset.status == 0, "\(reset.stdout)\(reset.stderr)")
            #expect(reset.stdout.contains("heights 1…18446744073709551615"), "\(reset.stdout)")
            #expect(try chain.signerMark() == 0)
            await da.stop()
        }
    }

    // MARK: mark before commit

    /// kill -9 right after the mark for height 3 is durable (store at 2) and right after block 3
    /// is committed (nothing published): in both cases the mark is ≥ every height in the store
    /// and every height that left the process; the restart commits the very block the mark
    /// keeps (no second block at 3, none skipped) and goes on.
    @Test(arguments: ["after-mark", "after-commit"])
    func theMarkIsDurableBeforeTheBlockIsVisible(step: String) async throws {
        let dir = TempDirectory("evnode-crash-producer")
        let home = dir.path + "/home"
        let passphrase = dir.path + "/passphrase"
        try Data("crash\n".utf8).write(to: URL(fileURLWithPath: passphrase))
        let made = try runCommand(BuiltProducts.evnode, ["init", "--home", home, "--chain-id", "crash-\(step)", "--aggregator",
                                                         "--evnode.signer.passphrase_file", passphrase])
        try #require(made.status == 0, "\(made.stderr)")
        let published = dir.path + "/published"
        let layout = HomeLayout(home: home)

        let crashed = try runCommand(BuiltProducts.testkit, ["crash-producer", "--home", home, "--published", published,
                                                              "--blocks", "6", "--crash", step, "--at", "3",
                                                              "--passphrase-file", passphrase])
        #expect(crashed.status == SIGKILL, "exit \(crashed.status): \(crashed.stdout)\(crashed.stderr)")
        #expect(crashed.stdout.contains("crashing \(step) 3"))

        let record = try #require(try SignerHighWaterMark(path: layout.signerStateFile).loadRecord())
        let storeHeight = try storedHashes(home: home).count
        let publishedHeights = try Self.published(published).map(\.height)
        #expect(record.height == 3)
        #expect(storeHeight == (step == "after-mark" ? 2 : 3))
        #expect(publishedHeights == [1, 2])
        #expect(record.height >= UInt64(storeHeight) && record.height >= publishedHeights.max() ?? 0)
        let kept = try SignedBlockBytes.decode(try #require(record.block))
        #expect(kept.signedHeader.height == 3)

        let resumed = try runCommand(BuiltProducts.testkit, ["crash-producer", "--home", home, "--published", published,
                                                              "--blocks", "6", "--passphrase-file", passphrase])
        #expect(resumed.status == 0, "\(resumed.stdout)\(resumed.stderr)")
        let hashes = try storedHashes(home: home)
        #expect(hashes.count >= 6)
        // The block at 3 is the one signed before the crash: one block per height, ever.
        #expect(hashes[2] == Hex.encode(kept.signedHeader.header.hash))
        var seen: [UInt64: String] = [:]
        for entry in try Self.published(published) {
            #expect(seen[entry.height].map { $0 == entry.hash } ?? true, "two blocks published at \(entry.height)")
            seen[entry.height] = entry.hash
            #expect(hashes[Int(entry.height) - 1] == entry.hash)
        }
        #expect(try SignerHighWaterMark(path: layout.signerStateFile).load() == UInt64(hashes.count))
    }

    static func published(_ path: String) throws -> [(height: UInt64, hash: String)] {
        let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map { line in
            let parts = line.split(separator: " ")
            return (UInt64(parts[0]) ?? 0, String(parts[1]))
        }
    }
}
