// Issue 18's memory and fast-production figures.
//
// `evnode-testkit bench-memory` (`make bench-memory`, out of CI: it takes most of an hour):
// RSS over a 1,000,000-block catch-up (50% → 100%) and over 30 minutes of 10 ms production
// under load (minute 5 → minute 30). Each sample also scrapes the node's own memory metrics
// (glibc's heap in use and free, RocksDB's table readers, memtables, block cache), so a growth
// can be put where it is.
//
// `bench-all` gets the 5 ms production row from here (`produceFast`), next to the 10 ms one.

import Primitives
import Config
import Foundation
import ProcessKit
#if canImport(Glibc)
import Glibc
#endif

// MARK: 5 ms production (a row of `make bench`)

extension BenchDriver {
    static let fastBlockTimeMilliseconds = 5

    /// The same production run as the 10 ms one, at 5 ms blocks (issue 18: < 5% missed slots).
    func produceFast(home: String) {
        results.production5ms = produce(home: home, blockTimeMilliseconds: Self.fastBlockTimeMilliseconds)
    }
}

extension BenchResults {
    /// Table rows of the 5 ms run: figure, value, baseline, ratio.
    var fastProductionRows: [(String, String, String, Double?)] {
        let p = production5ms
        let slot = Double(BenchDriver.fastBlockTimeMilliseconds)
        return [
            ("production 5 ms: missed slots", "\(fixed(p.missedSlotPercent, 2))% (\(p.missedSlots) of \(p.blocks + p.missedSlots))",
             "target < 5%", nil),
            ("production 5 ms: block interval p50 / p99", "\(fixed(p.intervalP50Milliseconds, 2)) / \(fixed(p.intervalP99Milliseconds, 2)) ms",
             "block time 5 ms", p.intervalP50Milliseconds / slot),
            ("production 5 ms: txs included/s", "\(Int(p.txsPerSecond))", "\(p.txsOffered) offered (\(plan.txRate)/s)",
             Double(p.txsIncluded) / Double(max(1, p.txsOffered))),
        ]
    }

    var fastProductionRatios: [String: Double] {
        let slot = Double(BenchDriver.fastBlockTimeMilliseconds)
        return ["production_5ms_interval_p50_to_block_time": production5ms.intervalP50Milliseconds / slot,
                "production_5ms_interval_p99_to_block_time": production5ms.intervalP99Milliseconds / slot]
    }
}

// MARK: bench-memory

/// One look at the node: its RSS and the memory gauges of its `/metrics`.
struct MemorySample: Codable {
    var seconds: Double
    var height: UInt64
    var rss: Int
    /// `evnode_process_*`, `evnode_malloc_*`, `evnode_rocksdb_*` as scraped.
    var metrics: [String: Double]

    func metric(_ name: String) -> Double { metrics[name] ?? 0 }
}

struct CatchupMemoryResult: Codable {
    var blocks = 0
    var seconds = 0.0
    var blocksPerSecond = 0.0
    var rssAt50 = 0
    var rssAt100 = 0
    var peakRSS = 0
    var samples: [MemorySample] = []
}

struct ProductionMemoryResult: Codable {
    var seconds = 0.0
    var blockTimeMilliseconds = 0
    var txRate = 0
    var blocks: UInt64 = 0
    /// The reference point: minute 5 of a 30-minute run (a sixth of the run).
    var referenceSeconds = 0.0
    var rssAtReference = 0
    var rssEnd = 0
    var peakRSS = 0
    var samples: [MemorySample] = []

    /// Highest and lowest RSS sampled in `[from, to]` seconds.
    func rssRange(from: Double, to: Double) -> (low: Int, high: Int)? {
        let inside = samples.filter { $0.seconds >= from && $0.seconds <= to }.map(\.rss)
        guard let low = inside.min(), let high = inside.max() else { return nil }
        return (low, high)
    }

    /// RSS over the first window after the reference point (minutes 5–10 of a 30-minute run)
    /// and over the run's last window of the same length (minutes 25–30). RSS in production is
    /// a sawtooth that follows RocksDB's memtable (it fills to the write buffer's size, then is
    /// flushed, every few minutes): two single samples compare arbitrary phases of it, while
    /// the peaks (and troughs) of windows that each hold whole cycles compare like with like.
    var earlyWindow: (low: Int, high: Int)? { rssRange(from: referenceSeconds, to: 2 * referenceSeconds) }
    var lateWindow: (low: Int, high: Int)? { rssRange(from: seconds - referenceSeconds, to: seconds) }
}

struct MemoryBenchResults: Codable {
    var started = ""
    var machine = MachineInfo(cpu: "", cores: 0, memoryGiB: 0, kernel: "", loadAverageAtStart: 0)
    /// The 1-minute load average at the end: the machine is shared.
    var loadAverageAtEnd = 0.0
    var catchup: CatchupMemoryResult?
    var production: ProductionMemoryResult?

    var ratios: [String: Double] {
        var r: [String: Double] = [:]
        if let c = catchup { r["catchup_rss_100_to_rss_50"] = Double(c.rssAt100) / Double(max(1, c.rssAt50)) }
        if let p = production {
            r["production_rss_end_to_reference"] = Double(p.rssEnd) / Double(max(1, p.rssAtReference))
            if let early = p.earlyWindow, let late = p.lateWindow {
                r["production_rss_late_peak_to_early_peak"] = Double(late.high) / Double(max(1, early.high))
                r["production_rss_late_trough_to_early_trough"] = Double(late.low) / Double(max(1, early.low))
            }
        }
        return r
    }

    func json() -> String {
        struct Document: Encodable {
            let results: MemoryBenchResults
            let ratios: [String: Double]
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try! encoder.encode(Document(results: self, ratios: ratios))
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    /// The headline rows, then each run's samples with where the memory sits.
    func table() -> String {
        var out = "machine: \(machine.cpu), \(machine.cores) cores, \(machine.memoryGiB) GiB, load \(machine.loadAverageAtStart) at start, \(loadAverageAtEnd) at end\n"
        if let c = catchup {
            out += "catch-up of \(c.blocks) blocks: \(Int(c.blocksPerSecond)) blocks/s; RSS at 50% → 100%: \(mb(c.rssAt50)) → \(mb(c.rssAt100)) = \(fixed(ratios["catchup_rss_100_to_rss_50"] ?? 0, 2))× (target ≤ 1.1×), peak \(mb(c.peakRSS))\n"
            out += Self.sampleTable(c.samples, first: "height")
        }
        if let p = production {
            out += "production at \(p.blockTimeMilliseconds) ms, \(p.txRate) tx/s, \(Int(p.seconds)) s (\(p.blocks) blocks): RSS at \(Int(p.referenceSeconds)) s → end: \(mb(p.rssAtReference)) → \(mb(p.rssEnd)) = \(fixed(ratios["production_rss_end_to_reference"] ?? 0, 2))×, peak \(mb(p.peakRSS))\n"
            if let early = p.earlyWindow, let late = p.lateWindow {
                let r = Int(p.referenceSeconds)
                out += "  RSS peak (trough) over \(r)–\(2 * r) s → over the last \(r) s: \(mb(early.high)) (\(mb(early.low))) → \(mb(late.high)) (\(mb(late.low))) = \(fixed(ratios["production_rss_late_peak_to_early_peak"] ?? 0, 2))× (\(fixed(ratios["production_rss_late_trough_to_early_trough"] ?? 0, 2))×) (target ≤ 1.1×)\n"
            }
            out += Self.sampleTable(p.samples, first: "height")
        }
        return out
    }

    private static func sampleTable(_ samples: [MemorySample], first: String) -> String {
        let columns: [(String, (MemorySample) -> String)] = [
            ("s", { "\(Int($0.seconds))" }),
            (first, { "\($0.height)" }),
            ("RSS", { mb($0.rss) }),
            ("malloc in use", { mb(Int($0.metric("evnode_malloc_in_use_bytes"))) }),
            ("malloc free", { mb(Int($0.metric("evnode_malloc_free_bytes"))) }),
            ("table readers", { mb(Int($0.metric("evnode_rocksdb_table_readers_bytes"))) }),
            ("memtables", { mb(Int($0.metric("evnode_rocksdb_memtables_all_bytes"))) }),
            ("block cache", { mb(Int($0.metric("evnode_rocksdb_block_cache_bytes"))) }),
            ("SST", { mb(Int($0.metric("evnode_rocksdb_sst_bytes"))) }),
        ]
        // At most ~60 rows in the table (the JSON keeps every sample), always with the last.
        let stride = max(1, samples.count / 60)
        let shown = samples.indices.filter { $0 % stride == 0 || $0 == samples.count - 1 }.map { samples[$0] }
        let rows = [columns.map(\.0)] + shown.map { s in columns.map { $0.1(s) } }
        let widths = columns.indices.map { i in rows.map { $0[i].count }.max() ?? 0 }
        var out = ""
        for row in rows {
            out += "  " + row.indices.map { i in
                String(repeating: " ", count: widths[i] - row[i].count) + row[i]
            }.joined(separator: "  ") + "\n"
        }
        return out
    }
}

/// The memory gauges of a node's `/metrics` (Prometheus text), by name.
func memoryMetrics(_ http: LoopbackHTTPConnection) -> [String: Double] {
    guard let reply = try? http.get("/metrics"), reply.status == 200 else { return [:] }
    var out: [String: Double] = [:]
    for line in String(decoding: reply.body, as: UTF8.self).split(separator: "\n") {
        guard line.hasPrefix("evnode_process_") || line.hasPrefix("evnode_malloc_") || line.hasPrefix("evnode_rocksdb_") else {
            continue
        }
        let parts = line.split(separator: " ")
        guard parts.count >= 2, let value = Double(parts[1]) else { continue }
        out[String(parts[0])] = value
    }
    return out
}

extension BenchDriver {
    /// A fresh full node catches up the chain `makeChain` posted; sampled every `plan.blocks / 40`
    /// blocks.
    func catchUpMemory() -> CatchupMemoryResult {
        step("catch-up memory: a fresh full node syncs \(plan.blocks) blocks from DA")
        let home = "\(work)/fullnode"
        do {
            try FileIO.makeDirectories(home + "/config", mode: 0o700)
            try FileIO.writeAtomically(home + "/config/genesis.json", try FileIO.readString("\(work)/aggregator/config/genesis.json"))
        } catch {
            fail("full node home: \(error)")
        }
        let rpc = loopbackPort()
        let started = now()
        let node = launchChild(name: "fullnode", executable: evnode,
                                arguments: ["start", "--home", home] + nodeFlags(rpc: rpc), logDirectory: work)
        defer { node.terminate() }
        let target = UInt64(plan.blocks)
        let every = max(1, target / 40)
        var nextSample = every
        var result = CatchupMemoryResult()
        let http = LoopbackHTTPConnection(port: rpc)
        let deadline = now() + max(300, Double(plan.blocks) / 200)
        while true {
            guard node.isRunning else { fail("the full node exited (status \(node.terminationStatus)):\n\(tail(node.output))") }
            guard now() < deadline else { fail("the full node did not reach height \(target) in time:\n\(tail(node.output))") }
            if let s = try? status(http), s.heights.store >= nextSample || s.heights.store >= target,
               let memory = node.memory {
                let sample = MemorySample(seconds: now() - started, height: s.heights.store, rss: memory.rss,
                                          metrics: memoryMetrics(http))
                result.samples.append(sample)
                if result.rssAt50 == 0, s.heights.store >= target / 2 { result.rssAt50 = memory.rss }
                nextSample = (s.heights.store / every + 1) * every
                if s.heights.store >= target {
                    result.seconds = sample.seconds
                    result.rssAt100 = memory.rss
                    result.peakRSS = memory.peak
                    break
                }
            }
            usleep(20_000)
        }
        result.blocks = plan.blocks
        result.blocksPerSecond = Double(plan.blocks) / result.seconds
        detail("\(plan.blocks) blocks in \(fixed(result.seconds, 1)) s; RSS \(mb(result.rssAt50)) at 50%, \(mb(result.rssAt100)) at 100%")
        return result
    }

    /// A fresh aggregator (genesis now) produces at `plan.blockTimeMilliseconds` for
    /// `plan.productionSeconds` under the HTTP tx load, sampled every `interval` seconds.
    func productionMemory(interval: Double) -> ProductionMemoryResult {
        let seconds = plan.productionSeconds
        step("production memory: \(plan.blockTimeMilliseconds) ms blocks for \(Int(seconds)) s under \(plan.txRate) tx/s")
        let home = "\(work)/producer-memory"
        do {
            _ = try HomeInitializer.initialize(home: home, chainID: chainID, aggregator: true,
                                               startTimeNanoseconds: wallNanoseconds() - 1_000_000_000)
        } catch {
            fail("init \(home): \(error)")
        }
        let rpc = loopbackPort()
        let node = launchChild(name: "producer-memory", executable: evnode,
                                arguments: ["start", "--home", home, "--aggregator", "--block-time", "\(plan.blockTimeMilliseconds)ms"]
                                    + nodeFlags(rpc: rpc),
                                logDirectory: work)
        defer { node.terminate() }
        let http = LoopbackHTTPConnection(port: rpc)
        waitFor("the aggregator to produce", timeout: 60, process: node) {
            guard let s = try? self.status(http), s.phase == "aggregating" else { return false }
            return s.heights.store > 10
        }
        var result = ProductionMemoryResult()
        result.seconds = seconds
        result.blockTimeMilliseconds = plan.blockTimeMilliseconds
        result.txRate = plan.txRate
        result.referenceSeconds = seconds / 6
        let load = TxLoad(port: rpc, clients: plan.loadClients, rate: plan.txRate)
        load.start()
        let began = now()
        var nextSample = 0.0
        while true {
            guard node.isRunning else { fail("the aggregator exited during production:\n\(tail(node.output))") }
            let elapsed = now() - began
            if elapsed >= nextSample || elapsed >= seconds, let memory = node.memory {
                let height = (try? status(http).heights.store) ?? 0
                result.samples.append(MemorySample(seconds: elapsed, height: height, rss: memory.rss, metrics: memoryMetrics(http)))
                if result.rssAtReference == 0, elapsed >= result.referenceSeconds { result.rssAtReference = memory.rss }
                if elapsed >= seconds {
                    result.rssEnd = memory.rss
                    result.peakRSS = memory.peak
                    result.blocks = height
                    break
                }
                nextSample += interval
            }
            usleep(100_000)
        }
        load.stop()
        let (accepted, refused, failed) = load.counts
        detail("\(result.blocks) blocks; txs \(accepted) accepted, \(refused) refused, \(failed) failed; RSS \(mb(result.rssAtReference)) at \(Int(result.referenceSeconds)) s, \(mb(result.rssEnd)) at the end")
        return result
    }
}

/// `evnode-testkit bench-memory [--blocks N] [--production-seconds S] [--tx-rate R] [--no-catchup]
/// [--no-production] [--out DIR] [--evnode PATH] [--keep]`
func benchMemory(_ args: [String]) {
    var plan = BenchPlan.full()
    plan.mode = "memory"
    plan.blocks = intOption("--blocks", in: args, default: 1_000_000)
    plan.txRate = intOption("--tx-rate", in: args, default: plan.txRate)
    plan.productionSeconds = Double(intOption("--production-seconds", in: args, default: 1800))
    guard plan.blocks >= 10 else { fail("--blocks must be at least 10") }
    guard plan.productionSeconds >= 6 else { fail("--production-seconds must be at least 6") }
    let out = option("--out", in: args) ?? "bench-results"
    let setup = BenchSetup(args, workName: "evnode-bench-memory")
    FileHandleOut.line("evnode memory benchmark; work directory \(setup.work)")
    let driver = BenchDriver(plan: plan, work: setup.work, evnode: setup.evnode, testkit: setup.testkit)
    var results = MemoryBenchResults()
    results.machine = MachineInfo.current()
    results.started = RFC3339.format(unixNanoseconds: wallNanoseconds())
    if !flag("--no-catchup", in: args) {
        _ = driver.makeChain()
        results.catchup = driver.catchUpMemory()
    } else {
        driver.startLocalDA()
    }
    if !flag("--no-production", in: args) {
        // Every 5 s of a 30-minute run: the memtable's cycle is a few minutes, its peaks must be seen.
        results.production = driver.productionMemory(interval: max(1, plan.productionSeconds / 360))
    }
    driver.localDA?.terminate()
    results.loadAverageAtEnd = MachineInfo.current().loadAverageAtStart
    setup.publish(json: results.json(), table: results.table(), started: results.started, mode: "memory", out: out)
    setup.finish()
}
