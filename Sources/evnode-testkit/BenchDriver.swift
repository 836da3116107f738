// `evnode-testkit bench-all`: the benchmark behind `make bench` (SPEC §11). Measures what the
// node exists for — catch-up from DA, catchup-then-aggregate recovery, block production, the
// block store — with its baselines taken in the same run, and writes JSON plus a table.

import Primitives
import Config
import Foundation
import ProcessKit
#if canImport(Glibc)
import Glibc
#endif

/// What one run measures and how much of it.
struct BenchPlan: Codable {
    var mode: String
    var blocks: Int
    var txsPerBlock: Int
    var blockTimeMilliseconds: Int
    var productionSeconds: Double
    var txRate: Int
    var loadClients: Int
    var verifySeconds: Double
    var rawKeys: Int
    var storeBlocks: Int
    var catchupTimeout: String

    static func full() -> BenchPlan {
        BenchPlan(mode: "full", blocks: 100_000, txsPerBlock: 10, blockTimeMilliseconds: 10, productionSeconds: 60,
                  txRate: 2_000, loadClients: 4, verifySeconds: 2, rawKeys: 1_000_000, storeBlocks: 20_000,
                  catchupTimeout: "2s")
    }

    static func quick() -> BenchPlan {
        BenchPlan(mode: "quick", blocks: 10_000, txsPerBlock: 10, blockTimeMilliseconds: 10, productionSeconds: 10,
                  txRate: 2_000, loadClients: 4, verifySeconds: 1, rawKeys: 300_000, storeBlocks: 5_000,
                  catchupTimeout: "2s")
    }
}

/// The `/status` fields the benchmark reads.
struct StatusView: Decodable {
    struct Heights: Decodable {
        var store: UInt64
        var finalized: UInt64
    }
    var phase: String
    var heights: Heights
}

/// The `/blocks/{h}` fields the benchmark reads.
struct BlockView: Decodable {
    var height: UInt64
    var time_ns: UInt64
    var txs: [String]
}

final class BenchDriver {
    let plan: BenchPlan
    let work: String
    let evnode: String
    let testkit: String
    let chainID = "bench-chain"
    var results = BenchResults()

    var localDA: ChildProcess?
    private var daPort = 0

    init(plan: BenchPlan, work: String, evnode: String, testkit: String) {
        self.plan = plan
        self.work = work
        self.evnode = evnode
        self.testkit = testkit
        results.plan = plan
    }

    func run() -> BenchResults {
        results.machine = MachineInfo.current()
        results.started = RFC3339.format(unixNanoseconds: wallNanoseconds())
        let began = now()
        defer { localDA?.terminate() }
        measureBaselines(first: true)
        let aggregatorHome = makeChain()
        catchUp()
        catchUpBehindFaultyDA()
        p2pCatchUp()
        recover(home: aggregatorHome)
        results.production = produce(home: aggregatorHome, blockTimeMilliseconds: plan.blockTimeMilliseconds)
        produceFast(home: aggregatorHome)
        produceThroughRemoteSigner(home: aggregatorHome)
        localDA?.terminate()
        localDA = nil
        measureDALatency()
        results.slowDACatchup = SlowDACatchupBench(evnode: evnode, testkit: testkit, work: work,
                                                   blocks: plan.mode == "quick" ? 800 : 1_600).run()
        detail("catch-up over a 100 ms DA: \(results.slowDACatchup.summary)")
        measureCatchUpFromBase()
        measureHAFailover()
        measureStore()
        measureBaselines(first: false)
        results.totalSeconds = now() - began
        return results
    }

    // MARK: Baselines

    private func measureBaselines(first: Bool) {
        step(first ? "baselines (before)" : "baselines (after)")
        let verify = Baselines.ed25519VerifyRate(seconds: plan.verifySeconds)
        results.baselines.ed25519VerifyRuns.append(verify)
        let path = "\(work)/raw-\(first ? 1 : 2)"
        let raw = Baselines.rawRocksDBWriteRate(path: path, keys: plan.rawKeys)
        try? FileManager.default.removeItem(atPath: path)
        results.baselines.rocksdbRawKeysRuns.append(raw.keysPerSecond)
        results.baselines.rocksdbRawMegabytesRuns.append(raw.megabytesPerSecond)
        detail("Ed25519 verify \(Int(verify))/s on one core; raw RocksDB \(Int(raw.keysPerSecond)) keys/s (\(fixed(raw.megabytesPerSecond, 1)) MB/s)")
    }

    private func measureStore() {
        step("block store commits vs raw RocksDB batches of the same bytes (\(plan.storeBlocks) blocks)")
        let dir = "\(work)/store-bench"
        let c = Baselines.storeVersusRaw(directory: dir, blocks: plan.storeBlocks, txs: plan.txsPerBlock)
        try? FileManager.default.removeItem(atPath: dir)
        results.store = StoreResult(blocks: c.blocks, bytes: c.bytes, storeBlocksPerSecond: c.storeBlocksPerSecond,
                                    storeMegabytesPerSecond: c.storeMegabytesPerSecond,
                                    rawBlocksPerSecond: c.rawBlocksPerSecond, rawMegabytesPerSecond: c.rawMegabytesPerSecond)
        detail("store \(Int(c.storeBlocksPerSecond)) blocks/s (\(fixed(c.storeMegabytesPerSecond, 1)) MB/s); raw \(Int(c.rawBlocksPerSecond)) blocks/s (\(fixed(c.rawMegabytesPerSecond, 1)) MB/s)")
    }

    // MARK: The chain

    /// An aggregator home whose genesis lies far enough in the past, a local DA, and the chain
    /// posted to it by `make-chain`. Returns the aggregator home (its store is empty: a lost disk).
    func makeChain() -> String {
        step("make a chain of \(plan.blocks) blocks × \(plan.txsPerBlock) txs and post it to a local DA")
        let home = "\(work)/aggregator"
        let interval: UInt64 = 1_000_000
        let start = wallNanoseconds() - UInt64(plan.blocks) * interval - 60_000_000_000
        do {
            _ = try HomeInitializer.initialize(home: home, chainID: chainID, aggregator: true, startTimeNanoseconds: start)
        } catch {
            fail("init \(home): \(error)")
        }
        startLocalDA()
        let maker = launchChild(name: "make-chain", executable: testkit,
                                 arguments: ["make-chain", "--home", home, "--blocks", "\(plan.blocks)",
                                             "--txs", "\(plan.txsPerBlock)", "--da", daURL,
                                             "--interval-us", "\(interval / 1000)", "--store", "\(work)/make-chain-store"],
                                 logDirectory: work)
        guard maker.waitForExitBlocking(timeout: .seconds(max(300, Double(plan.blocks) / 500))), maker.terminationStatus == 0 else {
            maker.terminate()
            fail("make-chain failed:\n\(maker.output)")
        }
        try? FileManager.default.removeItem(atPath: "\(work)/make-chain-store")
        guard let summary = maker.output.split(separator: "\n").last(where: { $0.hasPrefix("chain ") }) else {
            fail("make-chain printed no summary:\n\(maker.output)")
        }
        var fields: [String: String] = [:]
        for part in summary.split(separator: " ").dropFirst() {
            let kv = part.split(separator: "=", maxSplits: 1)
            if kv.count == 2 { fields[String(kv[0])] = String(kv[1]) }
        }
        results.chain = ChainResult(blocks: plan.blocks, txsPerBlock: plan.txsPerBlock,
                                    buildSeconds: Double(fields["build_s"] ?? "") ?? 0,
                                    postSeconds: Double(fields["post_s"] ?? "") ?? 0,
                                    submissions: Int(fields["submissions"] ?? "") ?? 0,
                                    firstDAHeight: UInt64(fields["da_first"] ?? "") ?? 0,
                                    lastDAHeight: UInt64(fields["da_last"] ?? "") ?? 0)
        detail(maker.output.split(separator: "\n").filter { !$0.hasPrefix("chain ") }.joined(separator: "; "))
        return home
    }

    /// A fresh local DA with 1 s blocks, at `daURL`.
    func startLocalDA() {
        daPort = loopbackPort()
        let da = launchChild(name: "local-da", executable: evnode,
                              arguments: ["local-da", "--home", "\(work)/local-da", "--listen", "127.0.0.1:\(daPort)",
                                          "--block-time", "1s"],
                              logDirectory: work)
        localDA = da
        waitFor("local DA to listen", timeout: 30, process: da) { da.output.contains("listening on") }
    }

    var daURL: String { "http://127.0.0.1:\(daPort)" }

    // MARK: Catch-up

    private func catchUp() {
        step("catch-up: a fresh full node syncs \(plan.blocks) blocks from DA alone")
        let home = "\(work)/fullnode"
        do {
            try FileIO.makeDirectories(home + "/config", mode: 0o700)
            let genesis = try FileIO.readString("\(work)/aggregator/config/genesis.json")
            try FileIO.writeAtomically(home + "/config/genesis.json", genesis)
        } catch {
            fail("full node home: \(error)")
        }
        // The verify baseline again right before and after: the ratio's denominator should see
        // the machine as the catch-up saw it.
        results.baselines.ed25519VerifyRuns.append(Baselines.ed25519VerifyRate(seconds: plan.verifySeconds))
        defer { results.baselines.ed25519VerifyRuns.append(Baselines.ed25519VerifyRate(seconds: plan.verifySeconds)) }
        let rpc = loopbackPort()
        let startedMono = now()
        let node = launchChild(name: "fullnode", executable: evnode,
                                arguments: ["start", "--home", home] + nodeFlags(rpc: rpc), logDirectory: work)
        defer { node.terminate() }
        let target = UInt64(plan.blocks)
        let tenth = max(1, target / 10)
        var atTenth: (seconds: Double, height: UInt64, rss: Int)?
        var atHalf: Int?
        var result = CatchupResult()
        let http = LoopbackHTTPConnection(port: rpc)
        let deadline = now() + max(300, Double(plan.blocks) / 200)
        while true {
            guard node.isRunning else { fail("the full node exited (status \(node.terminationStatus)):\n\(tail(node.output))") }
            guard now() < deadline else { fail("the full node did not reach height \(target) in time:\n\(tail(node.output))") }
            if let s = try? status(http), let memory = node.memory {
                let elapsed = now() - startedMono
                if atTenth == nil, s.heights.store >= tenth {
                    atTenth = (elapsed, s.heights.store, memory.rss)
                }
                if atHalf == nil, s.heights.store >= target / 2 { atHalf = memory.rss }
                if s.heights.store >= target {
                    result.seconds = elapsed
                    result.rssAt100 = memory.rss
                    result.peakRSS = memory.peak
                    break
                }
            }
            usleep(20_000)
        }
        guard let tenthSample = atTenth else { fail("no sample at 10% of the chain") }
        result.blocks = plan.blocks
        result.blocksPerSecond = Double(plan.blocks) / result.seconds
        result.txsPerSecond = result.blocksPerSecond * Double(plan.txsPerBlock)
        result.steadyBlocksPerSecond = Double(target - tenthSample.height) / max(result.seconds - tenthSample.seconds, 1e-9)
        result.rssAt10 = tenthSample.rss
        result.rssAt50 = atHalf ?? 0
        results.catchup = result
        detail("\(plan.blocks) blocks in \(fixed(result.seconds, 2)) s = \(Int(result.blocksPerSecond)) blocks/s; RSS \(mb(result.rssAt10)) at 10%, \(mb(result.rssAt50)) at 50%, \(mb(result.rssAt100)) at 100%, peak \(mb(result.peakRSS))")
    }

    // MARK: Catch-up behind a faulty DA

    /// The same chain twice more, each time from a fresh store through `faulty-da`: first with
    /// no faults, then answering 10 % of the `blob.GetAll` calls with faults (500, truncated,
    /// malformed, deep nesting, wrong types, 3 s stalls, resets, 429). Both go through the same
    /// proxy and both read a DA the first catch-up already warmed, so the ratio compares faults
    /// alone.
    private func catchUpBehindFaultyDA() {
        let rate = 0.1
        step("catch-up through faulty-da: clean, then \(Int(rate * 100))% of blob.GetAll answered with faults")
        let clean = catchUpThroughProxy(name: "proxied-clean", rate: 0)
        let faulty = catchUpThroughProxy(name: "proxied-faulty", rate: rate)
        var result = FaultyCatchupResult(faultRate: rate)
        result.seconds = faulty.seconds
        result.blocksPerSecond = Double(plan.blocks) / faulty.seconds
        result.faults = faulty.faults
        result.cleanSeconds = clean.seconds
        result.cleanBlocksPerSecond = Double(plan.blocks) / clean.seconds
        results.faultyCatchup = result
        detail("through the proxy: clean \(Int(result.cleanBlocksPerSecond)) blocks/s (\(fixed(clean.seconds, 2)) s); with \(result.faults) faults \(Int(result.blocksPerSecond)) blocks/s (\(fixed(faulty.seconds, 2)) s) = \(fixed(result.blocksPerSecond / max(result.cleanBlocksPerSecond, 1e-9), 2))×")
    }

    private func catchUpThroughProxy(name: String, rate: Double) -> (seconds: Double, faults: Int) {
        let home = "\(work)/\(name)"
        do {
            try FileIO.makeDirectories(home + "/config", mode: 0o700)
            try FileIO.writeAtomically(home + "/config/genesis.json", try FileIO.readString("\(work)/aggregator/config/genesis.json"))
        } catch {
            fail("full node home: \(error)")
        }
        let proxy = launchChild(name: "faulty-da-\(name)", executable: testkit,
                                 arguments: ["faulty-da", "--upstream", daURL, "--fault-rate", "\(rate)", "--seed", "14"],
                                 logDirectory: work)
        defer { proxy.terminate() }
        var proxyURL = ""
        waitFor("faulty-da to listen", timeout: 30, process: proxy) {
            guard let line = proxy.output.split(separator: "\n").first(where: { $0.hasPrefix("listening on ") }) else { return false }
            proxyURL = "http://" + line.dropFirst("listening on ".count)
            return true
        }
        let rpc = loopbackPort()
        let started = now()
        let node = launchChild(name: name, executable: evnode,
                                arguments: ["start", "--home", home] + nodeFlags(rpc: rpc, da: proxyURL), logDirectory: work)
        defer { node.terminate() }
        let target = UInt64(plan.blocks)
        let http = LoopbackHTTPConnection(port: rpc)
        let deadline = now() + max(600, Double(plan.blocks) / 100)
        while true {
            guard node.isRunning else { fail("the full node behind faulty-da exited (status \(node.terminationStatus)):\n\(tail(node.output))") }
            guard now() < deadline else { fail("the full node behind faulty-da did not reach height \(target) in time:\n\(tail(node.output))") }
            if let s = try? status(http), s.heights.store >= target { break }
            usleep(20_000)
        }
        let seconds = now() - started
        return (seconds, proxy.output.split(separator: "\n").filter { $0.hasPrefix("fault ") }.count)
    }

    // MARK: P2P catch-up

    /// The full node that caught up from DA serves the chain over libp2p; a fresh full node with
    /// DA unreachable syncs it from that peer alone (go-header range requests over Noise+yamux).
    private func p2pCatchUp() {
        step("P2P catch-up: a fresh full node syncs \(plan.blocks) blocks from a Swift peer over libp2p, DA off")
        let serverHome = "\(work)/fullnode"
        let home = "\(work)/p2pnode"
        do {
            try FileIO.makeDirectories(home + "/config", mode: 0o700)
            let genesis = try FileIO.readString("\(work)/aggregator/config/genesis.json")
            try FileIO.writeAtomically(home + "/config/genesis.json", genesis)
        } catch {
            fail("P2P node home: \(error)")
        }
        let deadDA = "http://127.0.0.1:\(loopbackPort())"
        let serverP2P = loopbackPort()
        let serverRPC = loopbackPort()
        let server = launchChild(name: "p2p-server", executable: evnode,
                                  arguments: ["start", "--home", serverHome, "--da.address", deadDA,
                                              "--rpc.address", "127.0.0.1:\(serverRPC)",
                                              "--p2p.listen", "127.0.0.1:\(serverP2P)"], logDirectory: work)
        defer { server.terminate() }
        waitFor("the serving node's P2P", timeout: 60, process: server) { server.output.contains("P2P listening") }
        let rpc = loopbackPort()
        let startedMono = now()
        let node = launchChild(name: "p2pnode", executable: evnode,
                                arguments: ["start", "--home", home, "--da.address", deadDA,
                                            "--rpc.address", "127.0.0.1:\(rpc)",
                                            "--p2p.listen", "127.0.0.1:\(loopbackPort())",
                                            "--p2p.peers", "127.0.0.1:\(serverP2P)"], logDirectory: work)
        defer { node.terminate() }
        let http = LoopbackHTTPConnection(port: rpc)
        let target = UInt64(plan.blocks)
        let deadline = now() + max(300, Double(plan.blocks) / 100)
        var result = P2PCatchupResult()
        while true {
            guard node.isRunning else { fail("the P2P node exited (status \(node.terminationStatus)):\n\(tail(node.output))") }
            guard now() < deadline else { fail("the P2P node did not reach height \(target) in time:\n\(tail(node.output))") }
            if let s = try? status(http), s.heights.store >= target {
                result.seconds = now() - startedMono
                break
            }
            usleep(20_000)
        }
        result.blocks = plan.blocks
        result.blocksPerSecond = Double(plan.blocks) / result.seconds
        results.p2pCatchup = result
        detail("\(plan.blocks) blocks in \(fixed(result.seconds, 2)) s = \(Int(result.blocksPerSecond)) blocks/s over libp2p (DA catch-up \(Int(results.catchup.blocksPerSecond)) blocks/s)")
    }

    // MARK: Recovery

    private func recover(home: String) {
        step("recovery: the aggregator restarts with an empty store and --catchup-timeout \(plan.catchupTimeout)")
        let rpc = loopbackPort()
        let node = launchChild(name: "recovery", executable: evnode,
                                arguments: ["start", "--home", home, "--aggregator", "--catchup-timeout", plan.catchupTimeout,
                                            "--block-time", "\(plan.blockTimeMilliseconds)ms"] + nodeFlags(rpc: rpc),
                                logDirectory: work)
        defer { node.terminate() }
        let target = UInt64(plan.blocks)
        let http = LoopbackHTTPConnection(port: rpc)
        let deadline = now() + max(300, Double(plan.blocks) / 200)
        var syncedAt: UInt64?
        while true {
            guard node.isRunning else { fail("the recovering aggregator exited (status \(node.terminationStatus)):\n\(tail(node.output))") }
            guard now() < deadline else { fail("the recovering aggregator produced no new block in time:\n\(tail(node.output))") }
            if let s = try? status(http) {
                if syncedAt == nil, s.heights.store >= target { syncedAt = wallNanoseconds() }
                if s.heights.store > target { break }
            }
            usleep(10_000)
        }
        guard let reply = try? http.get("/blocks/\(target + 1)"), reply.status == 200,
              let block = try? JSONDecoder().decode(BlockView.self, from: Data(reply.body)) else {
            fail("cannot read block \(target + 1) from the recovered aggregator")
        }
        guard let caughtUpLine = node.output.split(separator: "\n").first(where: { $0.contains("catchup: caught up") }),
              let stamp = caughtUpLine.split(separator: " ").first,
              let caughtUp = try? RFC3339.unixNanoseconds(String(stamp)) else {
            fail("the recovering aggregator logged no \"caught up\" line:\n\(tail(node.output))")
        }
        var r = RecoveryResult()
        r.startToSyncedSeconds = Double((syncedAt ?? caughtUp) - node.startedAt) / 1e9
        r.startToCaughtUpSeconds = Double(caughtUp - node.startedAt) / 1e9
        r.startToFirstBlockSeconds = Double(block.time_ns - node.startedAt) / 1e9
        r.caughtUpToFirstBlockMilliseconds = Double(Int64(block.time_ns) - Int64(caughtUp)) / 1e6
        results.recovery = r
        detail("start → caught up \(fixed(r.startToCaughtUpSeconds, 2)) s; start → block \(target + 1) \(fixed(r.startToFirstBlockSeconds, 2)) s; caught up → block \(target + 1) \(fixed(r.caughtUpToFirstBlockMilliseconds, 1)) ms")
    }

    // MARK: DA inclusion → applied

    private func measureDALatency() {
        let window: Double = plan.mode == "quick" ? 36 : 120
        step("DA inclusion → applied on a DA-only full node: blob.Subscribe vs polling, 6 s DA blocks, \(Int(window)) s")
        let r = DALatencyBench(evnode: evnode, work: work, windowSeconds: window).run()
        results.daLatency = r
        detail("subscription p50 \(fixed(r.subscription.p50Milliseconds, 1)) ms p99 \(fixed(r.subscription.p99Milliseconds, 1)) ms (\(r.subscription.samples) DA heights); polling p50 \(fixed(r.polling.p50Milliseconds, 1)) ms p99 \(fixed(r.polling.p99Milliseconds, 1)) ms (\(r.polling.samples))")
    }

    private func measureCatchUpFromBase() {
        let epochs = plan.mode == "quick" ? 300 : 1_000
        step("catch-up from base: a returning sequencer replays \(epochs) epochs × 10 forced txs; a plain full node syncs the same chain")
        results.catchupFromBase = CatchUpFromBaseBench(evnode: evnode, testkit: testkit, work: work,
                                                       epochs: epochs, txsPerEpoch: 10).run()
        detail(results.catchupFromBase.summary)
    }

    private func measureHAFailover() {
        let (kills, baseline) = plan.mode == "quick" ? (5, 2) : (20, 5)
        step("HA failover: kill -9 of the leader × \(kills) (heartbeats), × \(baseline) (lease only), 3 nodes on etcd")
        results.haFailover = HAFailoverBench(evnode: evnode, work: work, kills: kills, baselineKills: baseline).run()
        detail(results.haFailover.summaryLine)
    }

    // MARK: Production

    func produce(home: String, blockTimeMilliseconds blockTime: Int, extra: [String] = []) -> ProductionResult {
        step("production: \(blockTime) ms blocks for \(Int(plan.productionSeconds)) s under \(plan.txRate) tx/s of HTTP load")
        let rpc = loopbackPort()
        let node = launchChild(name: "producer", executable: evnode,
                                arguments: ["start", "--home", home, "--aggregator", "--block-time", "\(blockTime)ms"]
                                    + nodeFlags(rpc: rpc) + extra,
                                logDirectory: work)
        defer { node.terminate() }
        let http = LoopbackHTTPConnection(port: rpc)
        var first: UInt64 = 0
        waitFor("the aggregator to produce", timeout: 60, process: node) {
            guard let s = try? self.status(http), s.phase == "aggregating" else { return false }
            if first == 0 { first = s.heights.store }
            return s.heights.store > first + 10
        }
        var result = ProductionResult()
        result.rssStart = node.memory?.rss ?? 0
        guard let startHeight = try? status(http).heights.store else { fail("no /status from the aggregator") }
        let load = TxLoad(port: rpc, clients: plan.loadClients, rate: plan.txRate)
        load.start()
        let began = now()
        while now() - began < plan.productionSeconds {
            guard node.isRunning else { fail("the aggregator exited during production:\n\(tail(node.output))") }
            usleep(100_000)
        }
        load.stop()
        guard let endHeight = try? status(http).heights.store else { fail("no /status from the aggregator") }
        result.rssEnd = node.memory?.rss ?? 0
        result.peakRSS = node.memory?.peak ?? 0

        // Blocks of the window, read back through the RPC.
        var times: [UInt64] = []
        var txs = 0
        for h in (startHeight + 1)...endHeight {
            guard let reply = try? http.get("/blocks/\(h)"), reply.status == 200,
                  let block = try? JSONDecoder().decode(BlockView.self, from: Data(reply.body)) else {
                fail("cannot read block \(h) from the aggregator")
            }
            times.append(block.time_ns)
            txs += block.txs.count
        }
        let slot = Double(blockTime) * 1e6
        var intervals: [Double] = []
        var missed = 0
        for i in 1..<times.count {
            let interval = Double(times[i] - times[i - 1])
            intervals.append(interval / 1e6)
            if interval > 1.5 * slot { missed += Int((interval / slot).rounded()) - 1 }
        }
        intervals.sort()
        let span = Double(times.last! - times.first!) / 1e9
        let (accepted, refused, failed) = load.counts
        result.seconds = span
        result.blocks = times.count
        result.missedSlots = missed
        result.missedSlotPercent = 100 * Double(missed) / Double(max(1, intervals.count + missed))
        result.intervalP50Milliseconds = percentile(intervals, 0.50)
        result.intervalP99Milliseconds = percentile(intervals, 0.99)
        result.intervalMaxMilliseconds = intervals.last ?? 0
        result.txsIncluded = txs
        result.txsPerSecond = Double(txs) / max(span, 1e-9)
        result.txsOffered = accepted + refused + failed
        result.txsAccepted = accepted
        result.txsRefused = refused
        result.txsFailed = failed
        detail("\(times.count) blocks, missed \(missed) slots (\(fixed(result.missedSlotPercent, 2))%), interval p50 \(fixed(result.intervalP50Milliseconds, 2)) ms p99 \(fixed(result.intervalP99Milliseconds, 2)) ms; \(Int(result.txsPerSecond)) txs/s included (\(accepted) accepted, \(refused) refused, \(failed) failed); RSS \(mb(result.rssStart)) → \(mb(result.rssEnd))")
        return result
    }

    // MARK: Helpers

    func nodeFlags(rpc: Int, da: String? = nil) -> [String] {
        ["--da.address", da ?? daURL, "--da.block-time", "1s", "--rpc.address", "127.0.0.1:\(rpc)",
         "--p2p.listen", "127.0.0.1:\(loopbackPort())"]
    }

    func status(_ http: LoopbackHTTPConnection) throws -> StatusView {
        let reply = try http.get("/status")
        guard reply.status == 200 else { throw HTTPFailure(description: "/status answered \(reply.status)") }
        return try JSONDecoder().decode(StatusView.self, from: Data(reply.body))
    }

    func waitFor(_ what: String, timeout: Double, process: ChildProcess, _ condition: () -> Bool) {
        benchWait(what, timeout: timeout, process: process, condition)
    }

    func step(_ text: String) {
        FileHandleOut.line("== \(text)")
    }

    func detail(_ text: String) {
        FileHandleOut.line("   \(text)")
    }
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    guard !sorted.isEmpty else { return 0 }
    let index = min(sorted.count - 1, Int((Double(sorted.count - 1) * p).rounded()))
    return sorted[index]
}

func mb(_ bytes: Int) -> String { "\(fixed(Double(bytes) / 1_048_576, 1)) MiB" }

func tail(_ text: String, lines: Int = 30) -> String {
    text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
}

/// `evnode-testkit bench-all [--quick] [--out DIR] [--blocks N] [--production-seconds S] [--keep]`
func benchAll(_ args: [String]) {
    var plan = flag("--quick", in: args) ? BenchPlan.quick() : BenchPlan.full()
    plan.blocks = intOption("--blocks", in: args, default: plan.blocks)
    plan.txsPerBlock = intOption("--txs", in: args, default: plan.txsPerBlock)
    plan.txRate = intOption("--tx-rate", in: args, default: plan.txRate)
    plan.productionSeconds = Double(intOption("--production-seconds", in: args, default: Int(plan.productionSeconds)))
    guard plan.blocks >= 10 else { fail("--blocks must be at least 10") }
    let out = option("--out", in: args) ?? "bench-results"

    let setup = BenchSetup(args, workName: "evnode-bench")
    FileHandleOut.line("evnode benchmark (\(plan.mode)); work directory \(setup.work)")
    let driver = BenchDriver(plan: plan, work: setup.work, evnode: setup.evnode, testkit: setup.testkit)
    let results = driver.run()
    setup.publish(json: results.json(), table: results.table(), started: results.started, mode: plan.mode, out: out)
    setup.finish()
}

/// Polls `condition` every 20 ms until it holds; fails the bench (with the log's tail) when
/// `process` exits first or `timeout` seconds pass.
func benchWait(_ what: String, timeout: Double, process: ChildProcess, _ condition: () -> Bool) {
    let deadline = now() + timeout
    while now() < deadline {
        guard process.isRunning else { fail("\(process.name) exited while waiting for \(what):\n\(tail(process.output))") }
        if condition() { return }
        usleep(20_000)
    }
    fail("timed out waiting for \(what):\n\(tail(process.output))")
}
