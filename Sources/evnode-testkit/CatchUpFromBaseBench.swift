// `bench-all`'s "catch-up from base" (issue 32): a sequencer is stopped, users post M forced
// transactions per epoch for N epochs of 2 DA heights to a fresh local DA, and the sequencer
// returns with `--catchup-timeout`: its checkpoint is N epochs behind the DA head, so it replays
// them (blocks of forced transactions only, back to back) before producing normally. The figure
// is forced txs/s and blocks/s between its two log lines "catch-up from base: …" and "catch-up
// from base complete" (written by the queue itself at the check and at the first epoch not yet
// ended on DA, so the interval is exactly the replay: no polling, no start-up, no catchup phase).
// The local DA runs without a block timer and nothing else posts meanwhile (the submitter waits
// for the catch-up), so the DA head cannot move during the replay.
// Baseline, same run: a fresh plain DA-only full node (no forced-inclusion namespace) syncs the
// same chain — the blocks before the stop and the replayed ones, once the sequencer has posted
// them — over the same DA heights; blocks/s from its first `/status` answer to its store holding
// the last replayed block, as the slow-DA row measures.

import Primitives
import Config
import Foundation
import ProcessKit
#if canImport(Glibc)
import Glibc
#endif

struct CatchUpFromBaseResult: Codable {
    var epochs = 0
    var epochSize: UInt64 = 2
    var txsPerEpoch = 0
    /// Blocks the returning sequencer made during the replay (one per epoch while M fits a block).
    var blocks = 0
    var forcedTxs = 0
    /// The DA heights the forced transactions were posted over.
    var daHeights: UInt64 = 0
    var seconds = 0.0
    var forcedTxsPerSecond = 0.0
    var blocksPerSecond = 0.0
    /// The plain full node: every block of the chain through the last replayed one.
    var fullNodeBlocks = 0
    var fullNodeSeconds = 0.0
    var fullNodeBlocksPerSecond = 0.0
    /// The DA head when the full node reached it (it walks every height from da_start_height).
    var fullNodeDAHeights: UInt64 = 0
}

struct CatchUpFromBaseBench {
    let evnode: String
    let testkit: String
    let work: String
    let epochs: Int
    let txsPerEpoch: Int
    let epochSize: UInt64 = 2
    let chainID = "cfb-chain"
    let namespace = "cfb-forced"

    func run() -> CatchUpFromBaseResult {
        let dir = "\(work)/catchup-from-base"
        let home = "\(dir)/sequencer"
        do {
            try FileIO.makeDirectories(dir)
            _ = try HomeInitializer.initialize(home: home, chainID: chainID, aggregator: true,
                                               startTimeNanoseconds: wallNanoseconds() - 60_000_000_000, daStartHeight: 1)
            var genesis = try Genesis.load(path: HomeLayout(home: home).genesisFile)
            genesis.daEpochForcedInclusion = epochSize
            try FileIO.writeAtomically(HomeLayout(home: home).genesisFile, genesis.jsonText())
        } catch {
            fail("init \(home): \(error)")
        }
        let daPort = loopbackPort()
        let da = launchChild(name: "cfb-local-da", executable: evnode,
                              arguments: ["local-da", "--home", "\(dir)/da", "--listen", "127.0.0.1:\(daPort)", "--block-time", "1h"],
                              logDirectory: dir)
        defer { da.terminate() }
        benchWait("the local DA to listen", timeout: 30, process: da) { da.output.contains("listening on") }
        let daURL = "http://127.0.0.1:\(daPort)"
        let flags = ["--aggregator", "--block-time", "100ms", "--evnode.da.forced_inclusion_namespace", namespace,
                     "--da.address", daURL, "--da.block-time", "1s"]

        // The sequencer's first life: a few blocks, on DA, then a clean stop.
        do {
            let (node, http) = startNode(dir, name: "cfb-sequencer-1", home: home, flags: flags)
            benchWait("the sequencer's first blocks on DA", timeout: 60, process: node) {
                (status(http)?.heights.finalized ?? 0) >= 3
            }
            node.terminate()
            guard node.terminationStatus == 0 else { fail("the sequencer's first run exited with \(node.terminationStatus):\n\(tail(node.output))") }
        }

        // Users post while it is away.
        let poster = launchChild(name: "cfb-post-forced", executable: testkit,
                                  arguments: ["post-forced", "--da", daURL, "--namespace", namespace, "--epochs", "\(epochs)",
                                              "--txs-per-epoch", "\(txsPerEpoch)", "--epoch-size", "\(epochSize)"],
                                  logDirectory: dir)
        guard poster.waitForExitBlocking(timeout: .seconds(max(120, Double(epochs) / 20))), poster.terminationStatus == 0 else {
            poster.terminate()
            fail("post-forced failed:\n\(tail(poster.output))")
        }
        let posted = summaryFields(poster.output, prefix: "posted ")
        guard let first = posted["first"].flatMap(UInt64.init), let daHead = posted["head"].flatMap(UInt64.init) else {
            fail("post-forced printed no summary:\n\(poster.output)")
        }

        // Its return.
        let (node, http) = startNode(dir, name: "cfb-sequencer-2", home: home, flags: flags + ["--catchup-timeout", "1s"])
        defer { node.terminate() }
        let startText = "catch-up from base: the forced-inclusion checkpoint is at least one epoch behind"
        let endText = "catch-up from base complete"
        benchWait("the catch-up from base to complete", timeout: max(120, Double(epochs) / 10), process: node) {
            node.output.contains(endText)
        }
        let log = node.output
        let began = logTime(log, containing: startText, node: node)
        let ended = logTime(log, containing: endText, node: node)

        // What it replayed: after the blocks of its first life (no forced tx in them: none was
        // posted yet), blocks of forced txs only, each posted tx once, back to back; the first
        // block without one is normal production.
        let expected = epochs * txsPerEpoch
        var seen = Set<String>()
        var stoppedAt: UInt64?
        var replayedThrough: UInt64 = 0
        // The replay is over: its blocks are all in the store by now.
        guard let storedAtEnd = status(http)?.heights.store else { fail("no /status from the returning sequencer") }
        while seen.count < expected {
            let h = replayedThrough + 1
            guard h <= storedAtEnd else { break }
            var view: BlockView?
            benchWait("block \(h) from the returning sequencer", timeout: 30, process: node) {
                view = block(http, h)
                return view != nil
            }
            let txs = view!.txs.compactMap { Data(base64Encoded: $0).map { String(decoding: $0, as: UTF8.self) } }
            let forced = !txs.isEmpty && txs.allSatisfy { $0.hasPrefix("cfb") }
            if stoppedAt == nil {
                if forced { stoppedAt = replayedThrough } else if txs.contains(where: { $0.hasPrefix("cfb") }) {
                    fail("block \(h) mixes forced and other txs")
                }
            } else if !forced {
                break
            }
            for tx in txs where forced && !seen.insert(tx).inserted { fail("forced tx \(tx) included twice (height \(h))") }
            replayedThrough = h
        }
        guard let stoppedAt, seen.count == expected else {
            fail("the returning sequencer replayed \(seen.count) of \(expected) forced txs (through height \(replayedThrough))")
        }
        // The replayed blocks on DA, then the baseline over the same chain.
        benchWait("the replayed blocks on DA", timeout: 120, process: node) {
            (status(http)?.heights.finalized ?? 0) >= replayedThrough
        }
        let full = plainCatchUp(dir, daPort: daPort, target: replayedThrough)

        var r = CatchUpFromBaseResult()
        r.epochs = epochs
        r.epochSize = epochSize
        r.txsPerEpoch = txsPerEpoch
        r.blocks = Int(replayedThrough - stoppedAt)
        r.forcedTxs = expected
        r.daHeights = daHead - first + 1
        r.seconds = Double(ended - began) / 1e9
        r.forcedTxsPerSecond = Double(expected) / max(r.seconds, 1e-9)
        r.blocksPerSecond = Double(r.blocks) / max(r.seconds, 1e-9)
        r.fullNodeBlocks = Int(replayedThrough)
        r.fullNodeSeconds = full.seconds
        r.fullNodeBlocksPerSecond = Double(replayedThrough) / max(full.seconds, 1e-9)
        r.fullNodeDAHeights = full.daHead
        return r
    }

    private func startNode(_ dir: String, name: String, home: String, flags: [String]) -> (ChildProcess, LoopbackHTTPConnection) {
        let port = loopbackPort()
        let node = launchChild(name: name, executable: evnode,
                                arguments: ["start", "--home", home, "--rpc.address", "127.0.0.1:\(port)",
                                            "--p2p.listen", "127.0.0.1:\(loopbackPort())"] + flags,
                                logDirectory: dir)
        return (node, LoopbackHTTPConnection(port: port))
    }

    /// A fresh DA-only full node without the forced-inclusion namespace: seconds from its first
    /// `/status` answer to its store at `target`, and the DA head it had walked to.
    private func plainCatchUp(_ dir: String, daPort: Int, target: UInt64) -> (seconds: Double, daHead: UInt64) {
        let home = "\(dir)/full-node"
        do {
            try FileIO.makeDirectories(home + "/config", mode: 0o700)
            try FileIO.writeAtomically(home + "/config/genesis.json", try FileIO.readString("\(dir)/sequencer/config/genesis.json"))
        } catch {
            fail("full node home: \(error)")
        }
        let (node, http) = startNode(dir, name: "cfb-full-node", home: home, flags: ["--da.address", "http://127.0.0.1:\(daPort)", "--da.block-time", "1s"])
        defer { node.terminate() }
        var began: Double?
        let deadline = now() + max(120, Double(target) / 50)
        while true {
            guard node.isRunning else { fail("the plain full node exited:\n\(tail(node.output))") }
            guard now() < deadline else { fail("the plain full node did not reach height \(target) in time:\n\(tail(node.output))") }
            if let s = status(http) {
                if began == nil { began = now() }
                if s.heights.store >= target { break }
            }
            usleep(5_000)
        }
        let seconds = now() - began!
        return (seconds, daNetworkHead(LoopbackHTTPConnection(port: daPort)) ?? 0)
    }

    private struct StatusCFB: Decodable {
        struct Heights: Decodable {
            var store: UInt64
            var finalized: UInt64
        }
        var heights: Heights
    }

    private func status(_ http: LoopbackHTTPConnection) -> StatusCFB? {
        guard let reply = try? http.get("/status"), reply.status == 200 else { return nil }
        return try? JSONDecoder().decode(StatusCFB.self, from: Data(reply.body))
    }

    private func block(_ http: LoopbackHTTPConnection, _ height: UInt64) -> BlockView? {
        guard let reply = try? http.get("/blocks/\(height)"), reply.status == 200 else { return nil }
        return try? JSONDecoder().decode(BlockView.self, from: Data(reply.body))
    }

    /// The RFC 3339 time that starts the first log line holding `text` (text log format).
    private func logTime(_ log: String, containing text: String, node: ChildProcess) -> UInt64 {
        guard let line = log.split(separator: "\n").first(where: { $0.contains(text) }),
              let stamp = line.split(separator: " ").first,
              let time = try? RFC3339.unixNanoseconds(String(stamp)) else {
            fail("\(node.name) logged no \"\(text)\" line:\n\(tail(log))")
        }
        return time
    }
}

/// `key=value` fields of the last line of `text` starting with `prefix`.
func summaryFields(_ text: String, prefix: String) -> [String: String] {
    guard let line = text.split(separator: "\n").last(where: { $0.hasPrefix(prefix) }) else { return [:] }
    var fields: [String: String] = [:]
    for part in line.dropFirst(prefix.count).split(separator: " ") {
        let kv = part.split(separator: "=", maxSplits: 1)
        if kv.count == 2 { fields[String(kv[0])] = String(kv[1]) }
    }
    return fields
}

extension CatchUpFromBaseResult {
    var summary: String {
        "\(forcedTxs) forced txs (\(epochs) epochs × \(txsPerEpoch), \(daHeights) DA heights) replayed in \(blocks) blocks in \(fixed(seconds, 3)) s = \(Int(forcedTxsPerSecond)) forced txs/s, \(fixed(blocksPerSecond, 1)) blocks/s; plain DA catch-up of the same \(fullNodeBlocks) blocks \(fixed(fullNodeBlocksPerSecond, 1)) blocks/s (\(fixed(fullNodeSeconds, 3)) s) = \(fixed(blocksPerSecond / max(fullNodeBlocksPerSecond, 1e-9), 2))×"
    }
}

/// `evnode-testkit bench-catchup-from-base [--epochs N] [--txs-per-epoch M] [--evnode PATH] [--keep]`:
/// only the "catch-up from base" figure of `bench-all` (same measurement).
func benchCatchUpFromBase(_ args: [String]) {
    let setup = BenchSetup(args, workName: "evnode-catchup-from-base")
    let r = CatchUpFromBaseBench(evnode: setup.evnode, testkit: setup.testkit, work: setup.work,
                                 epochs: max(1, intOption("--epochs", in: args, default: 1_000)),
                                 txsPerEpoch: max(1, intOption("--txs-per-epoch", in: args, default: 10))).run()
    FileHandleOut.line(prettyJSON(r))
    FileHandleOut.line("catch-up from base: \(r.summary)")
    setup.finish()
}
