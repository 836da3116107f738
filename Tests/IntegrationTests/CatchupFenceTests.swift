import Block
@testable import Config
import Foundation
import P2PSync
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
            for block in try catchupSignedBlocks(aggregator: chain.sequencer, heights: (n + 2)...(n + 4)) {
                peer.broadcast(block: block)
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

    // MARK: mark before commit

    /// kill -9 right after the mark for height 3 is durable (store at 2) and right after block 3
    /// is committed (nothing published): in both cases the mark is ≥ every height in the store
    /// and every height that left the process; the restart commits the very block the mark
    /// keeps (no second block at 3, none skipped) and goes on.
    @Test(arguments: ["after-mark", "after-commit"])
    func theMarkIsDurableBeforeTheBlockIsVisible(step: String) async throws {
        let dir = TempDirectory("evnode-crash-producer")
        let home = dir.path + "/home"
        let made = try runCommand(BuiltProducts.evnode, ["init", "--home", home, "--chain-id", "crash-\(step)", "--aggregator"])
        try #require(made.status == 0, "\(made.stderr)")
        let published = dir.path + "/published"
        let layout = HomeLayout(home: home)

        let crashed = try runCommand(BuiltProducts.testkit, ["crash-producer", "--home", home, "--published", published,
                                                              "--blocks", "6", "--crash", step, "--at", "3"])
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
                                                              "--blocks", "6"])
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
