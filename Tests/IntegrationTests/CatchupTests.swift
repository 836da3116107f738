import Config
import Foundation
import ProcessKit
import Testing
import TestSupport

/// Catchup-then-aggregate failover (SPEC §6, issue 7) with real processes: `evnode local-da`,
/// aggregators and full nodes talking over loopback HTTP and TCP. A sequencer loses its disk
/// (store deleted, `config/` kept) and is restarted with `--catchup-timeout`; the tests compare
/// block hashes across nodes, the store and the DA layer, not only heights.
///
/// Serialized: each test starts several processes, and the machine has two cores.
@Suite(.serialized, .timeLimit(.minutes(3)))
struct CatchupTests {
    // MARK: flags

    /// An aggregator that makes a block only when a transaction waits (so a test controls the
    /// height exactly) and posts to DA every `daBlockTime`.
    static func lazyAggregator(_ da: LocalDAProcess, daBlockTime: String = "200ms") -> [String] {
        ["--aggregator", "--block-time", "100ms", "--lazy", "--lazy-interval", "10m",
         "--da.address", da.url, "--da.block-time", daBlockTime]
    }

    /// The restarted sequencer: catches up first, then produces a block every 200 ms.
    static func recovering(_ daURL: String, timeout: String = "2s", _ extra: [String] = []) -> [String] {
        ["--aggregator", "--catchup-timeout", timeout, "--block-time", "200ms",
         "--da.address", daURL, "--da.block-time", "200ms"] + extra
    }

    /// Runs the first aggregator until it made `count` blocks with transactions and all of them
    /// are DA-included, then kills it (-9) and deletes its store. Returns the chain's hashes.
    static func makeHistoryThenLoseTheDisk(_ chain: CatchupChain, da: LocalDAProcess, count: Int,
                                           daBlockTime: String = "200ms") async throws -> [String] {
        let aggregator = try await chain.sequencer.started(lazyAggregator(da, daBlockTime: daBlockTime))
        try await aggregator.produceBlocksWithTxs(count, tag: "tx")
        let n = try await aggregator.status().heights.store
        try await waitUntil("aggregator to have \(n) blocks DA-included") {
            try await aggregator.status().heights.finalized == n
        }
        let hashes = try await aggregator.hashes(through: n)
        #expect(hashes.count == count)
        #expect(try chain.signerMark() == n)
        await aggregator.stop(signal: SIGKILL)
        try chain.wipeAggregatorStore()
        return hashes
    }

    /// The catchup lines of a node's log, for the test output (measured figures).
    static func report(_ node: NodeProcess, _ label: String) {
        for line in node.log where line.message.hasPrefix("catchup:") || line.message == "DA head reached" {
            let keys = ["height", "target", "blocks_per_s", "eta_s", "elapsed_s", "da_height", "waiting_for"]
            let meta = keys.compactMap { k in line[k].map { "\(k)=\($0)" } }.joined(separator: " ")
            print("[\(label)] \(line["time"] ?? "") \(line.message) \(meta)")
        }
    }

    static func noForkSeen(_ node: NodeProcess) -> Bool {
        !node.log.contains {
            $0.message.contains("differs from the stored one") || $0.message.contains("double sign")
        }
    }

    static func productionStart(_ node: NodeProcess) -> String? {
        node.log.first { $0.message == "producing blocks" }?["next_height"]
    }

    // MARK: 1. from DA

    /// ≥ 30 blocks with txs, all on DA; kill -9; store deleted, key and mark kept; restart with
    /// no peers: heights 1…N come back with identical hashes, N+1… are made by the same key,
    /// a full node that followed all along sees one chain, and DA holds every header once
    /// (history was not posted again).
    @Test func recoversFromDAAlone() async throws {
        try await Testnet.run(chainID: "catchup-da") { net in
            let chain = try CatchupChain(net)
            let da = try await net.startDA(blockTime: "500ms")
            let full = try await chain.full.started(["--da.address", da.url])
            let original = try await Self.makeHistoryThenLoseTheDisk(chain, da: da, count: 30)
            let n = UInt64(original.count)
            try await full.waitForHeight(n)
            #expect(try await full.hashes(through: n) == original)

            let restored = try await chain.sequencer.started(Self.recovering(da.url))
            try await restored.waitForPhase("aggregating")
            let top = n + 3
            try await restored.waitForHeight(top)
            Self.report(restored, "from-DA")

            #expect(try await restored.hashes(through: n) == original)
            #expect(Self.productionStart(restored) == "\(n + 1)")
            let proposer = try chain.proposerHex
            for h in n + 1...top {
                #expect(try await restored.block(h)?.proposer == proposer)
            }
            #expect(try chain.signerMark().map { $0 >= top } == true)

            // The full node follows the restored sequencer from DA: one chain, no conflict.
            try await full.waitForHeight(top)
            #expect(try await full.hashes(through: top) == restored.hashes(through: top))
            #expect(Self.noForkSeen(full))

            // DA: each height once, with one hash; 1…N were not posted a second time.
            try await waitUntil("restored aggregator to post through \(top)") {
                try await restored.status().heights.finalized >= top
            }
            let onDA = try await chain.headersOnDA(da)
            for h in 1...top {
                #expect(onDA[h]?.count == 1, "height \(h) on DA: \(onDA[h] ?? [])")
            }
            #expect(onDA[n]?.first == original.last)

            #expect(await restored.stop() == 0)
            #expect(await full.stop() == 0)
            await da.stop()

            // The full node pruned its KV state behind finality while it ran: no undo record is
            // left at or below the pruning mark, and the mark is final.
            let kv = try chain.full.kvPruning()
            #expect(kv.prunedThrough > 0 && kv.prunedThrough <= kv.finalized, "\(kv)")
            #expect(kv.lowestUndoRecord.map { $0 > kv.prunedThrough } ?? true, "\(kv)")
        }
    }

    // MARK: 2. from P2P

    /// A slow DA (posting every 10 s) leaves the newest blocks only on a full node. The
    /// restarted sequencer takes 1…k from DA and k+1…N from the full node before producing
    /// N+1; every height has one hash on every node and on DA.
    @Test func takesPeerOnlyBlocksBeforeProducing() async throws {
        try await Testnet.run(chainID: "catchup-p2p") { net in
            let chain = try CatchupChain(net)
            let da = try await net.startDA(blockTime: "500ms")
            let aggregator = try await chain.sequencer.started(Self.lazyAggregator(da, daBlockTime: "10s"))
            let full = try await chain.full.started(["--da.address", da.url, "--p2p.peers", aggregator.p2pAddress])
            try await waitUntil("full node connected") { try await aggregator.status().peers == 1 }

            try await aggregator.produceBlocksWithTxs(5, tag: "early")
            try await waitUntil("the first DA submission (every 10 s)") {
                try await aggregator.status().heights.finalized >= 5
            }
            let k = try await aggregator.status().heights.finalized
            try await aggregator.produceBlocksWithTxs(8, tag: "late")
            let n = try await aggregator.status().heights.store
            try await full.waitForHeight(n)
            let original = try await aggregator.hashes(through: n)
            #expect(try await full.hashes(through: n) == original)
            await aggregator.stop(signal: SIGKILL)

            // The newest blocks exist only on the full node (and nowhere else, once the disk is gone).
            let before = try await chain.headersOnDA(da)
            let daTop = before.keys.max() ?? 0
            #expect(daTop >= k && daTop < n, "DA holds headers up to \(daTop); the test needs some of \(k + 1)…\(n) to be P2P-only")
            try chain.wipeAggregatorStore()

            let restored = try await chain.sequencer.started(Self.recovering(da.url, ["--da.block-time", "10s", "--p2p.peers", full.p2pAddress]))
            try await restored.waitForPhase("aggregating")
            let top = n + 3
            try await restored.waitForHeight(top)
            Self.report(restored, "from-P2P")

            #expect(try await restored.hashes(through: n) == original)
            #expect(Self.productionStart(restored) == "\(n + 1)")
            // The restored sequencer gossips its new blocks to the full node: one chain there too.
            try await full.waitForHeight(top)
            #expect(try await full.hashes(through: top) == restored.hashes(through: top))
            #expect(Self.noForkSeen(full))

            // Once posted, DA holds one header per height: the P2P-only blocks k+1…N were posted
            // by the restored node, the others not again.
            try await waitUntil("restored aggregator to post through \(top)") {
                try await restored.status().heights.finalized >= top
            }
            let onDA = try await chain.headersOnDA(da)
            let chainHashes = try await restored.hashes(through: top)
            for h in 1...top {
                #expect(onDA[h] == [chainHashes[Int(h) - 1]], "height \(h) on DA: \(onDA[h] ?? [])")
            }

            #expect(await restored.stop() == 0)
            #expect(await full.stop() == 0)
            await da.stop()
        }
    }

    // MARK: 3. fail closed

    /// A peer proves heights it cannot serve (the proposer's signed header at N+20) and then
    /// vanishes: the proven height stays counted, so after the timeout the recovering sequencer
    /// exits with status 3 naming the heights, having produced nothing (SPEC §6 condition 2).
    @Test func failsClosedWhenAProvenHeightCannotBeFetchedEvenAfterThePeerLeft() async throws {
        try await Testnet.run(chainID: "catchup-closed") { net in
            let chain = try CatchupChain(net)
            let da = try await net.startDA(blockTime: "500ms")
            let original = try await Self.makeHistoryThenLoseTheDisk(chain, da: da, count: 5)
            let n = UInt64(original.count)
            let head = try catchupSignedBlocks(aggregator: chain.sequencer, heights: (n + 20)...(n + 20))[0]
            let (peer, peerAddress) = try await catchupStartUnservablePeer(aggregator: chain.sequencer, announcing: n + 20, head: head)

            let recovering = try await chain.sequencer.started(Self.recovering(da.url, timeout: "3s", ["--p2p.peers", peerAddress]))
            try await waitUntil("the recovering node to count the proven height") {
                try await recovering.status().heights.p2p_max == n + 20
            }
            // The peer goes away for good; what it proved was signed all the same.
            await peer.shutdown()
            let status = try await recovering.waitForExit("the recovering node to give up", timeout: .seconds(60))
            let output = recovering.output
            #expect(status == 3, "\(output.suffix(3000))")
            #expect(output.contains("error: catchup failed closed: peers proved height \(n + 20)"), "\(output.suffix(3000))")
            #expect(output.contains("heights \(n + 1)…\(n + 20) could not be fetched"))
            #expect(!output.contains("producing blocks"))

            // Nothing produced: the store holds exactly the recovered chain, the mark did not move,
            // and DA has nothing above N.
            #expect(try chain.sequencer.storedHashes() == original)
            #expect(try chain.signerMark() == n)
            #expect(try await chain.headersOnDA(da).keys.max() == n)
            await da.stop()
        }
    }

    /// A liar claims a height a million blocks ahead with a header the proposer did not sign: the
    /// claim never counts (p2p_max stays 0), the liar is banned, and the recovering sequencer
    /// promotes on what DA holds and continues at N+1.
    @Test func liarWithAHugeUnprovenHeightIsIgnored() async throws {
        try await Testnet.run(chainID: "catchup-liar") { net in
            let chain = try CatchupChain(net)
            let da = try await net.startDA(blockTime: "500ms")
            let original = try await Self.makeHistoryThenLoseTheDisk(chain, da: da, count: 5)
            let n = UInt64(original.count)
            let (liar, liarAddress) = try await catchupStartLiar(aggregator: chain.sequencer, claiming: n + 1_000_000)
            let node = try await chain.sequencer.started(Self.recovering(da.url, ["--p2p.peers", liarAddress]))
            try await node.waitForPhase("aggregating", timeout: .seconds(60))
            try await node.waitForHeight(n + 1)
            let s = try await node.status()
            #expect(s.heights.p2p_max == 0, "an unproven claim never counts")
            #expect(try await node.hashes(through: n) == original)
            #expect(node.log.contains { $0.message == "banning peer" && ($0["reason"] ?? "").contains("head answer") })
            #expect(await node.stop() == 0)
            await liar.shutdown()
            await da.stop()
        }
    }

    // MARK: 4. the equivocation fence, and `evnode signer reset`

    /// The signer's mark says N+5 was signed but DA only has N: catchup fails closed naming
    /// N+1…N+5; a plain aggregator refuses too. `evnode signer reset --height N` (explicit,
    /// printed) accepts the risk, and production then continues at N+1.
    @Test func highWaterMarkAboveTheStoreStopsProduction() async throws {
        try await Testnet.run(chainID: "catchup-fence") { net in
            let chain = try CatchupChain(net)
            let da = try await net.startDA(blockTime: "500ms")
            let original = try await Self.makeHistoryThenLoseTheDisk(chain, da: da, count: 5)
            let n = UInt64(original.count)
            try SignerHighWaterMark(path: chain.signerStateFile).record(n + 5)

            let catchup = try chain.sequencer.launch(flags: Self.recovering(da.url))
            #expect(try await catchup.waitForExit("catchup to fail closed") == 3, "\(catchup.output.suffix(3000))")
            #expect(catchup.output.contains("the signer's high-water mark is \(n + 5)"))
            #expect(catchup.output.contains("heights \(n + 1)…\(n + 5) were signed and cannot be recovered"))
            #expect(catchup.output.contains("evnode signer reset"))
            #expect(try chain.sequencer.storedHashes() == original)

            // Without catchup the producer's own fence refuses to sign those heights again.
            let plain = try chain.sequencer.launch(flags: ["--aggregator", "--da.address", da.url])
            #expect(try await plain.waitForExit("the plain aggregator to refuse") == 1, "\(plain.output.suffix(3000))")
            #expect(plain.output.contains("refusing to sign them again"))
            #expect(try chain.sequencer.storedHashes() == original)
            #expect(try chain.signerMark() == n + 5)
            #expect(try await chain.headersOnDA(da).keys.max() == n)

            // The operator accepts the risk explicitly.
            let reset = try runCommand(BuiltProducts.evnode, ["signer", "reset", "--home", chain.sequencer.home,
                                                              "--height", "\(n)"])
            #expect(reset.status == 0, "\(reset.stderr)")
            #expect(reset.stdout.contains("\(n + 5)") && reset.stdout.contains("→ \(n)"), "\(reset.stdout)")
            #expect(try chain.signerMark() == n)

            let resumed = try await chain.sequencer.started(Self.recovering(da.url))
            try await resumed.waitForPhase("aggregating")
            try await resumed.waitForHeight(n + 2)
            #expect(try await resumed.hashes(through: n) == original)
            #expect(Self.productionStart(resumed) == "\(n + 1)")
            #expect(await resumed.stop() == 0)
            await da.stop()
        }
    }

    /// `evnode signer reset` refuses without `--height` and without a signer key, and prints
    /// the mark it overrides.
    @Test func signerResetIsExplicit() async throws {
        try await Testnet.run(chainID: "catchup-reset") { net in
            let chain = try CatchupChain(net)
            let evnode = BuiltProducts.evnode
            try SignerHighWaterMark(path: chain.signerStateFile).record(42)

            let missing = try runCommand(evnode, ["signer", "reset", "--home", chain.sequencer.home])
            #expect(missing.status == 2)
            #expect(missing.stderr.contains("--height"), "\(missing.stderr)")
            #expect(try chain.signerMark() == 42)

            let noKey = try runCommand(evnode, ["signer", "reset", "--home", net.dir.path + "/nowhere", "--height", "3"])
            #expect(noKey.status == 2)
            #expect(noKey.stderr.contains("signer.json: no signer key here"), "\(noKey.stderr)")

            let lower = try runCommand(evnode, ["signer", "reset", "--home", chain.sequencer.home, "--height", "40"])
            #expect(lower.status == 0, "\(lower.stderr)")
            #expect(lower.stdout.contains("42 → 40"), "\(lower.stdout)")
            #expect(lower.stdout.contains("41…42"), "names the heights whose fence is lifted: \(lower.stdout)")
            #expect(lower.stderr.contains("signer high-water mark reset"), "logged: \(lower.stderr)")
            #expect(try chain.signerMark() == 40)

            // A key restored without its mark: reset writes one.
            try FileManager.default.removeItem(atPath: chain.signerStateFile)
            let fresh = try runCommand(evnode, ["signer", "reset", "--home", chain.sequencer.home, "--height", "7"])
            #expect(fresh.status == 0, "\(fresh.stderr)")
            #expect(fresh.stdout.contains("none → 7"), "\(fresh.stdout)")
            #expect(try chain.signerMark() == 7)
        }
    }

    // MARK: 5. fresh chain

    /// Empty DA, no peers: promotion right after the DA head is reached; the first block is
    /// height 1, signed by the genesis proposer.
    @Test func freshChainStartsAtHeightOne() async throws {
        try await Testnet.run(chainID: "catchup-fresh") { net in
            let chain = try CatchupChain(net)
            let da = try await net.startDA(blockTime: "500ms")
            let node = try await chain.sequencer.started(Self.recovering(da.url))
            try await node.waitForPhase("aggregating")
            try await node.waitForHeight(2)
            Self.report(node, "fresh")

            #expect(try await node.block(1)?.proposer == chain.proposerHex)
            #expect(Self.productionStart(node) == "1")
            let log = node.log
            let headReached = log.firstIndex { $0.message == "DA head reached" }
            let promoted = log.firstIndex { $0.message.hasPrefix("catchup: caught up, promoting") }
            let producing = log.firstIndex { $0.message == "producing blocks" }
            #expect(headReached != nil && promoted != nil && producing != nil)
            if let headReached, let promoted, let producing {
                #expect(headReached < promoted && promoted < producing)
            }
            let phases = log.filter { $0.message == "phase change" }.map { "\($0["from"] ?? "")→\($0["to"] ?? "")" }
            #expect(phases == ["starting→syncing", "syncing→caughtUp", "caughtUp→aggregating"])
            let status = try await node.status()
            #expect(status.mode == "aggregator" && status.catchup.active == false)
            #expect(try await node.readiness().status == 200)
            #expect(try await node.metrics().contains("evnode_phase{phase=\"aggregating\"} 1"))
            #expect(await node.stop() == 0)
            await da.stop()
        }
    }

    /// A configured peer that never answers (nothing listens at its address) holds promotion
    /// back only until the catchup timeout, and readiness says so meanwhile — when the signer's
    /// mark is there to say what this key signed (here: nothing yet).
    @Test func silentPeerIsIgnoredAfterTheTimeoutWithAMark() async throws {
        try await Testnet.run(chainID: "catchup-silent") { net in
            let chain = try CatchupChain(net)
            try SignerHighWaterMark(path: chain.signerStateFile).record(0)
            let da = try await net.startDA(blockTime: "500ms")
            let deadPeer = try await Self.addressWhereNothingListens(chain)

            let node = try await chain.sequencer.started(Self.recovering(da.url, timeout: "3s", ["--p2p.peers", deadPeer]))
            var sawWaiting = false
            try await waitUntil("promotion after the timeout") {
                let s = try await node.status()
                if s.phase == "syncing", s.catchup.blocked_by?.contains("waiting up to 3s for peers") == true {
                    let ready = try await node.readiness()
                    sawWaiting = sawWaiting || (ready.status == 503 && ready.text.contains("peers"))
                }
                return s.phase == "aggregating"
            }
            #expect(sawWaiting, "readiness should name the silent peers while waiting")
            let promoted = node.log.first { $0.message.hasPrefix("catchup: caught up, promoting") }
            #expect(Double(promoted?["elapsed_s"] ?? "") ?? 0 >= 3.0, "promoted before the timeout: \(promoted?.fields ?? [:])")
            try await node.waitForHeight(1)
            #expect(Self.productionStart(node) == "1")
            #expect(await node.stop() == 0)
            await da.stop()
        }
    }

    /// The same silent peer without a mark (a key restored without `signer.state`, as every
    /// operator coming from ev-node has): nothing can tell what the key signed beyond DA, so
    /// after the timeout the node fails closed (status 3), producing nothing.
    @Test func silentPeersWithoutAMarkFailClosed() async throws {
        try await Testnet.run(chainID: "catchup-nomark") { net in
            let chain = try CatchupChain(net)
            let da = try await net.startDA(blockTime: "500ms")
            let original = try await Self.makeHistoryThenLoseTheDisk(chain, da: da, count: 3)
            try FileManager.default.removeItem(atPath: chain.signerStateFile)
            let deadPeer = try await Self.addressWhereNothingListens(chain)

            let node = try chain.sequencer.launch(flags: Self.recovering(da.url, timeout: "2s", ["--p2p.peers", deadPeer]))
            let status = try await node.waitForExit("the node without a mark to fail closed")
            #expect(status == 3, "\(node.output.suffix(3000))")
            #expect(node.output.contains("none of the configured peers answered within 2s and the signer has no high-water mark"),
                    "\(node.output.suffix(3000))")
            #expect(!node.output.contains("producing blocks"))
            #expect(try chain.sequencer.storedHashes() == original)
            #expect(try chain.signerMark() == nil)
            await da.stop()
        }
    }

    /// A local DA's address after it stopped: a loopback port where nothing answers.
    static func addressWhereNothingListens(_ chain: CatchupChain) async throws -> String {
        let gone = try await LocalDAProcess.start(home: chain.net.dir.sub("gone-da"), logDirectory: chain.net.logDirectory,
                                                  name: "gone-da")
        let address = "127.0.0.1:\(gone.port)"
        await gone.stop()
        return address
    }

    // MARK: 6. DA down at start

    /// DA is down when the sequencer restarts: it stays in `syncing` past the timeout and says
    /// why (status, readiness, metrics, logs), produces nothing, then catches up and promotes
    /// once DA is back.
    @Test func waitsForDAThenCatchesUp() async throws {
        try await Testnet.run(chainID: "catchup-dadown") { net in
            let chain = try CatchupChain(net)
            let da = try await net.startDA(blockTime: "500ms")
            let original = try await Self.makeHistoryThenLoseTheDisk(chain, da: da, count: 5)
            let n = UInt64(original.count)
            await net.stopDA()

            let node = try await chain.sequencer.started(Self.recovering(da.url))
            // Past the 2 s timeout and past one progress-log interval (5 s): still syncing, and saying why.
            try await waitUntil("the node to report DA down for 5.5 s") {
                let s = try await node.status()
                return s.phase == "syncing" && s.catchup.elapsed_seconds >= 5.5
            }
            let status = try await node.status()
            #expect(status.heights.store == 0)
            #expect(status.catchup.active && !status.catchup.da_head_reached)
            #expect(status.catchup.blocked_by?.contains("DA") == true, "\(status.catchup.blocked_by ?? "nil")")
            #expect(status.catchup.blocked_by?.contains("unavailable") == true, "\(status.catchup.blocked_by ?? "nil")")
            let ready = try await node.readiness()
            #expect(ready.status == 503)
            #expect(ready.text.hasPrefix("UNREADY: catching up (height 0 of 0): "), "\(ready.text)")
            #expect(ready.text.contains("DA"), "\(ready.text)")
            // Live: the store reads, whatever DA does.
            let live = try await HTTP.get(node.rpc + "/health/live")
            #expect(live.status == 200 && live.text == "OK\n", "\(live.status) \(live.text)")
            let metrics = try await node.metrics()
            #expect(metrics.contains("evnode_phase{phase=\"syncing\"} 1"))
            #expect(metrics.contains("evnode_phase{phase=\"aggregating\"} 0"))
            // One WARNING when DA starts failing, not one per retry (issue 14).
            #expect(node.log.filter { $0.message.hasPrefix("DA is failing") }.count == 1)
            #expect(node.log.contains { $0.message == "catchup: syncing" && $0["waiting_for"]?.contains("DA") == true })
            #expect(Self.productionStart(node) == nil)

            try await net.restartDA(blockTime: "500ms")
            try await node.waitForPhase("aggregating")
            try await node.waitForHeight(n + 2)
            Self.report(node, "DA-down")
            #expect(try await node.hashes(through: n) == original)
            #expect(Self.productionStart(node) == "\(n + 1)")
            #expect(await node.stop() == 0)
        }
    }

    // MARK: 7. SIGTERM during catchup

    /// SIGTERM while catching up from a slow DA: a clean exit (status 0) without producing,
    /// a store that opens and holds a prefix of the chain, and a restart that resumes from it.
    @Test func sigtermDuringCatchupIsCleanAndResumable() async throws {
        try await Testnet.run(chainID: "catchup-sigterm") { net in
            let chain = try CatchupChain(net)
            let da = try await net.startDA(blockTime: "500ms")
            let original = try await Self.makeHistoryThenLoseTheDisk(chain, da: da, count: 30, daBlockTime: "100ms")
            let n = UInt64(original.count)

            // Every DA answer takes 300 ms and the node reads one DA height at a time: a slow catchup.
            try await net.restartDA(blockTime: "500ms", extra: ["--response-delay", "300ms"])
            let node = try await chain.sequencer.started(Self.recovering(da.url, ["--da.fetch-parallelism", "1"]))
            try await waitUntil("catchup under way") {
                let s = try await node.status()
                return s.phase == "syncing" && s.heights.store >= 3
            }
            let exitStatus = await node.stop(signal: SIGTERM)
            #expect(!node.lastRunDiedOfSignal && exitStatus == 0, "\(node.output.suffix(3000))")
            #expect(node.log.contains { $0.message == "stopped" })
            #expect(Self.productionStart(node) == nil)
            #expect(!node.log.contains { $0.message == "phase change" && $0["to"] == "aggregating" })

            // The store opens and holds a prefix of the chain.
            let kept = try chain.sequencer.storedHashes()
            print("[SIGTERM] interrupted at height \(kept.count) of \(n)")
            #expect(kept.count >= 3)
            #expect(kept == Array(original.prefix(kept.count)))
            #expect(try chain.signerMark() == n)

            try await net.restartDA(blockTime: "500ms")
            let resumed = try await chain.sequencer.started(Self.recovering(da.url))
            #expect(resumed.log.first { $0.message == "store opened" }?["height"] == "\(kept.count)")
            try await resumed.waitForPhase("aggregating")
            try await resumed.waitForHeight(n + 2)
            Self.report(resumed, "after-SIGTERM")
            #expect(try await resumed.hashes(through: n) == original)
            #expect(Self.productionStart(resumed) == "\(n + 1)")
            #expect(await resumed.stop() == 0)
        }
    }
}
