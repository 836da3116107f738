// What `bench-all` measured: JSON for the record (bench-results/, git-ignored) and a short
// table with each figure next to its same-run baseline.

import Foundation

struct MachineInfo: Codable {
    var cpu: String
    var cores: Int
    var memoryGiB: Double
    var kernel: String
    /// The 1-minute load average when the run started: other work competes for the cores.
    var loadAverageAtStart: Double

    static func current() -> MachineInfo {
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) } ?? "unknown"
        let meminfo = (try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8)) ?? ""
        let memKB = meminfo.split(separator: "\n").first { $0.hasPrefix("MemTotal") }
            .flatMap { $0.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first }
            .flatMap { Double($0) } ?? 0
        let kernel = ((try? String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8)) ?? "unknown")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let load = ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "")
            .split(separator: " ").first.flatMap { Double($0) } ?? 0
        return MachineInfo(cpu: model, cores: ProcessInfo.processInfo.activeProcessorCount,
                           memoryGiB: (memKB / 1_048_576 * 10).rounded() / 10, kernel: kernel, loadAverageAtStart: load)
    }
}

struct BaselineResult: Codable {
    /// Single-core Ed25519 verifications per second: at the start, right before and right
    /// after the catch-up, at the end.
    var ed25519VerifyRuns: [Double] = []
    var rocksdbRawKeysRuns: [Double] = []
    var rocksdbRawMegabytesRuns: [Double] = []

    /// The baselines used for ratios: the mean of the runs.
    var ed25519VerifyPerSecond: Double { mean(ed25519VerifyRuns) }
    var rocksdbRawKeysPerSecond: Double { mean(rocksdbRawKeysRuns) }
}

struct ChainResult: Codable {
    var blocks = 0
    var txsPerBlock = 0
    var buildSeconds = 0.0
    var postSeconds = 0.0
    var submissions = 0
    var firstDAHeight: UInt64 = 0
    var lastDAHeight: UInt64 = 0
}

struct CatchupResult: Codable {
    var blocks = 0
    /// From process start to the store holding the whole chain.
    var seconds = 0.0
    var blocksPerSecond = 0.0
    var txsPerSecond = 0.0
    /// Between 10% and 100% of the chain (start-up excluded).
    var steadyBlocksPerSecond = 0.0
    var rssAt10 = 0
    var rssAt50 = 0
    var rssAt100 = 0
    var peakRSS = 0
}

/// The same chain's catch-up through `faulty-da` (issue 14): a share of `blob.GetAll` answered
/// with faults, against a clean catch-up through the same proxy in the same run.
struct FaultyCatchupResult: Codable {
    var faultRate = 0.0
    var faults = 0
    var seconds = 0.0
    var blocksPerSecond = 0.0
    var cleanSeconds = 0.0
    var cleanBlocksPerSecond = 0.0
}

struct RecoveryResult: Codable {
    var startToSyncedSeconds = 0.0
    var startToCaughtUpSeconds = 0.0
    var startToFirstBlockSeconds = 0.0
    var caughtUpToFirstBlockMilliseconds = 0.0
}

struct ProductionResult: Codable {
    var seconds = 0.0
    var blocks = 0
    var missedSlots = 0
    var missedSlotPercent = 0.0
    var intervalP50Milliseconds = 0.0
    var intervalP99Milliseconds = 0.0
    var intervalMaxMilliseconds = 0.0
    var txsIncluded = 0
    var txsPerSecond = 0.0
    var txsOffered = 0
    var txsAccepted = 0
    var txsRefused = 0
    var txsFailed = 0
    var rssStart = 0
    var rssEnd = 0
    var peakRSS = 0
}

struct StoreResult: Codable {
    var blocks = 0
    var bytes = 0
    var storeBlocksPerSecond = 0.0
    var storeMegabytesPerSecond = 0.0
    var rawBlocksPerSecond = 0.0
    var rawMegabytesPerSecond = 0.0
}

/// A fresh full node syncing the same chain from a Swift peer over libp2p (go-header exchange),
/// DA unreachable.
struct P2PCatchupResult: Codable {
    var blocks = 0
    var seconds = 0.0
    var blocksPerSecond = 0.0
}

struct BenchResults: Codable {
    var started = ""
    var totalSeconds = 0.0
    var plan = BenchPlan.full()
    var machine = MachineInfo(cpu: "", cores: 0, memoryGiB: 0, kernel: "", loadAverageAtStart: 0)
    var baselines = BaselineResult()
    var chain = ChainResult()
    var catchup = CatchupResult()
    var faultyCatchup = FaultyCatchupResult()
    var p2pCatchup = P2PCatchupResult()
    var recovery = RecoveryResult()
    var production = ProductionResult()
    var production5ms = ProductionResult()
    var productionRemoteSigner = ProductionResult()
    var store = StoreResult()
    var daLatency = DALatencyResult()
    var slowDACatchup = SlowDACatchupResult()
    var catchupFromBase = CatchUpFromBaseResult()
    var haFailover = HAFailoverResult()

    /// The headline ratios (also in the JSON, so tools need not recompute them).
    var ratios: [String: Double] {
        let verify = baselines.ed25519VerifyPerSecond
        return [
            "catchup_blocks_per_s_to_verify_per_s": catchup.blocksPerSecond / verify,
            "catchup_steady_blocks_per_s_to_verify_per_s": catchup.steadyBlocksPerSecond / verify,
            "catchup_txs_per_s_to_raw_rocksdb_keys_per_s": catchup.txsPerSecond / baselines.rocksdbRawKeysPerSecond,
            "catchup_faulty_da_to_clean_blocks_per_s": faultyCatchup.blocksPerSecond / faultyCatchup.cleanBlocksPerSecond,
            "p2p_catchup_blocks_per_s_to_da_catchup_blocks_per_s": p2pCatchup.blocksPerSecond / catchup.blocksPerSecond,
            "catchup_rss_100_to_rss_10": Double(catchup.rssAt100) / Double(max(1, catchup.rssAt10)),
            "catchup_rss_100_to_rss_50": Double(catchup.rssAt100) / Double(max(1, catchup.rssAt50)),
            "recovery_start_to_first_block_to_catchup_seconds": recovery.startToFirstBlockSeconds / catchup.seconds,
            "production_interval_p50_to_block_time": production.intervalP50Milliseconds / Double(plan.blockTimeMilliseconds),
            "production_interval_p99_to_block_time": production.intervalP99Milliseconds / Double(plan.blockTimeMilliseconds),
            "production_txs_included_to_offered": Double(production.txsIncluded) / Double(max(1, production.txsOffered)),
            "production_rss_end_to_start": Double(production.rssEnd) / Double(max(1, production.rssStart)),
            "store_bytes_per_s_to_raw_rocksdb": store.storeMegabytesPerSecond / store.rawMegabytesPerSecond,
            "da_latency_p50_subscription_to_polling": daLatency.subscription.p50Milliseconds / max(1e-9, daLatency.polling.p50Milliseconds),
            "da_latency_p99_subscription_to_polling": daLatency.subscription.p99Milliseconds / max(1e-9, daLatency.polling.p99Milliseconds),
            "slow_da_catchup_heights_per_s_to_one_over_rtt": slowDACatchup.adaptive.timesOneOverRTT,
            "catchup_from_base_blocks_per_s_to_da_catchup_blocks_per_s": catchupFromBase.blocksPerSecond
                / max(1e-9, catchupFromBase.fullNodeBlocksPerSecond),
            "ha_failover_p50_heartbeat_to_lease_only": haFailover.heartbeat.p50Milliseconds / max(1e-9, haFailover.leaseOnly.p50Milliseconds),
        ].merging(fastProductionRatios) { a, _ in a }.merging(remoteSignerRatios) { a, _ in a }
    }

    func json() -> String {
        struct Document: Encodable {
            let results: BenchResults
            let ratios: [String: Double]
            let baseline_ed25519_verify_per_s: Double
            let baseline_rocksdb_raw_keys_per_s: Double
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try! encoder.encode(Document(results: self, ratios: ratios,
                                                baseline_ed25519_verify_per_s: baselines.ed25519VerifyPerSecond,
                                                baseline_rocksdb_raw_keys_per_s: baselines.rocksdbRawKeysPerSecond))
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    func table() -> String {
        let verify = baselines.ed25519VerifyPerSecond
        let raw = baselines.rocksdbRawKeysPerSecond
        let r = ratios
        var rows: [(String, String, String, String)] = [("figure", "value", "baseline (same run)", "ratio")]
        func add(_ figure: String, _ value: String, _ baseline: String = "", _ ratio: Double? = nil) {
            rows.append((figure, value, baseline, ratio.map { fixed($0, 2) + "×" } ?? ""))
        }
        let verifyText = "\(Int(verify)) Ed25519 verify/s, 1 core"
        add("catch-up blocks/s (\(catchup.blocks) blocks, from start)", "\(Int(catchup.blocksPerSecond))", verifyText,
            r["catchup_blocks_per_s_to_verify_per_s"])
        add("catch-up blocks/s, 10%→100%", "\(Int(catchup.steadyBlocksPerSecond))", verifyText,
            r["catchup_steady_blocks_per_s_to_verify_per_s"])
        add("P2P catch-up blocks/s (\(p2pCatchup.blocks) blocks over libp2p, DA off)", "\(Int(p2pCatchup.blocksPerSecond))",
            "DA catch-up \(Int(catchup.blocksPerSecond)) blocks/s", r["p2p_catchup_blocks_per_s_to_da_catchup_blocks_per_s"])
        add("catch-up txs/s", "\(Int(catchup.txsPerSecond))", "\(Int(raw)) raw RocksDB keys/s",
            r["catchup_txs_per_s_to_raw_rocksdb_keys_per_s"])
        add("catch-up RSS at 10% → 100% (peak)", "\(mb(catchup.rssAt10)) → \(mb(catchup.rssAt100)) (\(mb(catchup.peakRSS)))",
            "RSS at 10%", r["catchup_rss_100_to_rss_10"])
        add("catch-up RSS at 50% → 100%", "\(mb(catchup.rssAt50)) → \(mb(catchup.rssAt100))",
            "RSS at 50%", r["catchup_rss_100_to_rss_50"])
        add("catch-up blocks/s behind a DA with \(Int(faultyCatchup.faultRate * 100))% faulty answers (\(faultyCatchup.faults) faults)",
            "\(Int(faultyCatchup.blocksPerSecond))", "clean, same proxy: \(Int(faultyCatchup.cleanBlocksPerSecond)) blocks/s (goal ≥ 0.5×)",
            r["catchup_faulty_da_to_clean_blocks_per_s"])
        add("recovery: start → first new block", "\(fixed(recovery.startToFirstBlockSeconds, 2)) s",
            "full-node catch-up \(fixed(catchup.seconds, 2)) s", r["recovery_start_to_first_block_to_catchup_seconds"])
        add("recovery: start → caught up", "\(fixed(recovery.startToCaughtUpSeconds, 2)) s")
        add("recovery: caught up → first new block", "\(fixed(recovery.caughtUpToFirstBlockMilliseconds, 1)) ms",
            "block time \(plan.blockTimeMilliseconds) ms",
            recovery.caughtUpToFirstBlockMilliseconds / Double(plan.blockTimeMilliseconds))
        add("production: missed slots", "\(fixed(production.missedSlotPercent, 2))% (\(production.missedSlots) of \(production.blocks + production.missedSlots))",
            "target < 5%")
        add("production: block interval p50", "\(fixed(production.intervalP50Milliseconds, 2)) ms",
            "block time \(plan.blockTimeMilliseconds) ms", r["production_interval_p50_to_block_time"])
        add("production: block interval p99", "\(fixed(production.intervalP99Milliseconds, 2)) ms",
            "block time \(plan.blockTimeMilliseconds) ms", r["production_interval_p99_to_block_time"])
        add("production: txs included/s", "\(Int(production.txsPerSecond))",
            "\(production.txsOffered) offered (\(plan.txRate)/s)", r["production_txs_included_to_offered"])
        for row in fastProductionRows { add(row.0, row.1, row.2, row.3) }
        for row in remoteSignerRows { add(row.0, row.1, row.2, row.3) }
        add("production: RSS start → end", "\(mb(production.rssStart)) → \(mb(production.rssEnd))", "RSS at start",
            r["production_rss_end_to_start"])
        add("store: commit MB/s (\(store.blocks) blocks, \(Int(store.storeBlocksPerSecond)) blocks/s)",
            fixed(store.storeMegabytesPerSecond, 1),
            "raw batches, same bytes in block order: \(fixed(store.rawMegabytesPerSecond, 1)) MB/s",
            r["store_bytes_per_s_to_raw_rocksdb"])
        let sub = daLatency.subscription, poll = daLatency.polling
        add("DA inclusion → applied, DA-only full node, blob.Subscribe p50 (\(sub.samples) DA heights, 6 s DA blocks)",
            "\(fixed(sub.p50Milliseconds, 1)) ms", "polling p50 \(fixed(poll.p50Milliseconds, 1)) ms (\(poll.samples))",
            r["da_latency_p50_subscription_to_polling"])
        add("DA inclusion → applied, DA-only full node, blob.Subscribe p99", "\(fixed(sub.p99Milliseconds, 1)) ms",
            "polling p99 \(fixed(poll.p99Milliseconds, 1)) ms", r["da_latency_p99_subscription_to_polling"])
        let slow = slowDACatchup
        add("catch-up over a \(slow.responseDelayMilliseconds) ms DA, DA heights/s (\(slow.daHeights) heights, window peak \(slow.adaptive.fetchWindowPeak))",
            fixed(slow.adaptive.daHeightsPerSecond, 1),
            "1/RTT \(fixed(slow.oneAtATimeHeightsPerSecond, 1))/s; ≤ 8 in flight \(fixed(slow.capped8.daHeightsPerSecond, 1))/s = \(fixed(slow.capped8.timesOneOverRTT, 1))× (goal ≥ 20×)",
            slow.adaptive.timesOneOverRTT)
        let cfb = catchupFromBase
        add("catch-up from base: forced txs/s (\(cfb.epochs) epochs × \(cfb.txsPerEpoch) txs, \(cfb.daHeights) DA heights, \(cfb.blocks) blocks)",
            "\(Int(cfb.forcedTxsPerSecond)) (\(fixed(cfb.blocksPerSecond, 1)) blocks/s, \(fixed(cfb.seconds, 2)) s)",
            "plain DA catch-up, same \(cfb.fullNodeBlocks) blocks: \(fixed(cfb.fullNodeBlocksPerSecond, 1)) blocks/s",
            r["catchup_from_base_blocks_per_s_to_da_catchup_blocks_per_s"])
        let ha = haFailover
        add("HA failover, \(ha.heartbeat.kills) kills (kill -9 → next leader's first block) p50 / p95 / max",
            "\(fixed(ha.heartbeat.p50Milliseconds, 0)) / \(fixed(ha.heartbeat.p95Milliseconds, 0)) / \(fixed(ha.heartbeat.maxMilliseconds, 0)) ms",
            "lease only (\(ha.leaseOnly.kills) kills) \(fixed(ha.leaseOnly.p50Milliseconds, 0)) / \(fixed(ha.leaseOnly.p95Milliseconds, 0)) / \(fixed(ha.leaseOnly.maxMilliseconds, 0)) ms; block time \(ha.blockTimeMilliseconds) ms",
            r["ha_failover_p50_heartbeat_to_lease_only"])
        add("baseline: Ed25519 verify/s (runs)", baselines.ed25519VerifyRuns.map { "\(Int($0))" }.joined(separator: ", "))
        add("baseline: raw RocksDB keys/s (runs)", baselines.rocksdbRawKeysRuns.map { "\(Int($0))" }.joined(separator: ", "))

        let widths = [0, 1, 2, 3].map { i in rows.map { [$0.0, $0.1, $0.2, $0.3][i].count }.max()! }
        func pad(_ s: String, _ w: Int) -> String { s + String(repeating: " ", count: max(0, w - s.count)) }
        var out = "machine: \(machine.cpu), \(machine.cores) cores, \(machine.memoryGiB) GiB, load \(machine.loadAverageAtStart) at start; \(plan.mode) run took \(Int(totalSeconds)) s\n"
        for (i, row) in rows.enumerated() {
            out += "\(pad(row.0, widths[0]))  \(pad(row.1, widths[1]))  \(pad(row.2, widths[2]))  \(row.3)\n"
            if i == 0 { out += String(repeating: "-", count: widths.reduce(6, +)) + "\n" }
        }
        return out
    }
}

func mean(_ xs: [Double]) -> Double { xs.isEmpty ? 0 : xs.reduce(0, +) / Double(xs.count) }
