// `bench-all`'s "catch-up over a 100 ms DA": a chain spread over many small DA heights, served by
// `evnode local-da --response-delay 100ms`, synced by a fresh DA-only full node with the default
// adaptive fetch window (up to 64 DA heights in flight), then by another with
// `--da.fetch-parallelism 8` (at most 8, what the fixed window of earlier versions kept). The
// figure is DA heights/s ÷ (1/RTT), RTT being the mean of sequential `blob.GetAll` calls to the
// same DA in the same run: one height at a time gets 1×. The chain holds few blocks per DA height,
// so the walk is latency-bound, not verification-bound (the main catch-up row measures that).

import Primitives
import DAClient
import Config
import Foundation
import ProcessKit
#if canImport(Glibc)
import Glibc
#endif

struct SlowDACatchupResult: Codable {
    struct Run: Codable {
        var fetchParallelism = 0
        var seconds = 0.0
        var daHeightsPerSecond = 0.0
        /// DA heights/s ÷ (1/RTT).
        var timesOneOverRTT = 0.0
        var fetchWindowPeak = 0
    }

    var responseDelayMilliseconds = 100
    var blocks = 0
    var daHeights: UInt64 = 0
    var rttMilliseconds = 0.0
    var oneAtATimeHeightsPerSecond = 0.0
    var adaptive = Run()
    var capped8 = Run()
}

struct SlowDACatchupBench {
    let evnode: String
    let testkit: String
    let work: String
    let blocks: Int
    let delayMilliseconds = 100
    let chainID = "slow-da-chain"

    private struct StatusDA: Decodable {
        struct Heights: Decodable { var store: UInt64 }
        struct DA: Decodable { var fetch_window_peak: Int? }
        var heights: Heights
        var da: DA?
    }

    func run() -> SlowDACatchupResult {
        let dir = "\(work)/slow-da"
        let home = "\(dir)/aggregator"
        let interval: UInt64 = 1_000_000
        do {
            try FileIO.makeDirectories(dir)
            _ = try HomeInitializer.initialize(home: home, chainID: chainID, aggregator: true,
                                               startTimeNanoseconds: wallNanoseconds() - UInt64(blocks) * interval - 60_000_000_000)
        } catch {
            fail("init \(home): \(error)")
        }
        // The chain is posted to a DA without delay, then served by one with it (same database).
        var da = startDA(dir, delay: nil)
        // Small submissions: about one block of 10 txs per DA height (a header or a data batch).
        let maker = launchChild(name: "slow-da-make-chain", executable: testkit,
                                 arguments: ["make-chain", "--home", home, "--blocks", "\(blocks)", "--txs", "10",
                                             "--da", da.url, "--interval-us", "\(interval / 1000)",
                                             "--max-blob-size", "1500", "--store", "\(dir)/make-chain-store"],
                                 logDirectory: dir)
        guard maker.waitForExitBlocking(timeout: .seconds(300)), maker.terminationStatus == 0 else {
            maker.terminate()
            fail("make-chain (slow DA chain) failed:\n\(maker.output)")
        }
        try? FileManager.default.removeItem(atPath: "\(dir)/make-chain-store")
        da.process.terminate()
        da = startDA(dir, delay: delayMilliseconds)
        defer { da.process.terminate() }

        var result = SlowDACatchupResult()
        result.responseDelayMilliseconds = delayMilliseconds
        result.blocks = blocks
        let rpc = LoopbackHTTPConnection(port: da.port)
        guard let head = daHead(rpc) else { fail("no head from the slow DA") }
        result.daHeights = head
        let rtt = roundTrip(rpc, heights: head)
        result.rttMilliseconds = rtt * 1000
        result.oneAtATimeHeightsPerSecond = 1 / rtt
        result.adaptive = catchUp(dir, name: "slow-da-adaptive", da: da.url, head: head, rtt: rtt, flags: [])
        result.capped8 = catchUp(dir, name: "slow-da-capped-8", da: da.url, head: head, rtt: rtt,
                                 flags: ["--da.fetch-parallelism", "8"])
        result.capped8.fetchParallelism = 8
        return result
    }

    private func startDA(_ dir: String, delay: Int?) -> (process: ChildProcess, port: Int, url: String) {
        let port = loopbackPort()
        var arguments = ["local-da", "--home", "\(dir)/da", "--listen", "127.0.0.1:\(port)", "--block-time", "1h"]
        if let delay { arguments += ["--response-delay", "\(delay)ms"] }
        let da = launchChild(name: delay == nil ? "slow-da-fast" : "slow-da", executable: evnode, arguments: arguments,
                              logDirectory: dir)
        benchWait("the local DA to listen", timeout: 30, process: da) { da.output.contains("listening on") }
        return (da, port, "http://127.0.0.1:\(port)")
    }

    /// The mean time of sequential `blob.GetAll` calls over the chain's heights (after one to
    /// open the connection): what a one-at-a-time walk pays per DA height.
    private func roundTrip(_ rpc: LoopbackHTTPConnection, heights: UInt64) -> Double {
        let namespace = DANamespace(name: chainID + "-headers")
        func getAll(_ h: UInt64) {
            let body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\(DAMethod.getAll)\",\"params\":[\(h),[\"\(namespace.base64)\"]]}"
            guard let reply = try? rpc.post("/", body: Array(body.utf8)), reply.status == 200 else {
                fail("blob.GetAll at \(h) failed on the slow DA")
            }
        }
        getAll(1)
        let samples = 20
        let began = now()
        for i in 0..<samples { getAll(1 + UInt64(i) * max(1, heights / UInt64(samples))) }
        return (now() - began) / Double(samples)
    }

    private func catchUp(_ dir: String, name: String, da: String, head: UInt64, rtt: Double, flags: [String])
        -> SlowDACatchupResult.Run {
        let home = "\(dir)/\(name)"
        do {
            try FileIO.makeDirectories(home + "/config", mode: 0o700)
            try FileIO.writeAtomically(home + "/config/genesis.json", try FileIO.readString("\(dir)/aggregator/config/genesis.json"))
        } catch {
            fail("\(name) home: \(error)")
        }
        let port = loopbackPort()
        let node = launchChild(name: name, executable: evnode,
                                arguments: ["start", "--home", home, "--da.address", da, "--rpc.address", "127.0.0.1:\(port)",
                                            "--p2p.listen", "127.0.0.1:\(loopbackPort())"] + flags,
                                logDirectory: dir)
        defer { node.terminate() }
        let http = LoopbackHTTPConnection(port: port)
        // From the first answer of /status (the follower starts with the node's RPC) to the last block.
        var began: Double?
        let deadline = now() + 300
        var last: StatusDA?
        while true {
            guard node.isRunning else { fail("\(name) exited:\n\(tail(node.output))") }
            guard now() < deadline else { fail("\(name) did not reach height \(blocks) in time:\n\(tail(node.output))") }
            if let s = status(http) {
                if began == nil { began = now() }
                last = s
                if s.heights.store >= UInt64(blocks) { break }
            }
            usleep(5_000)
        }
        var run = SlowDACatchupResult.Run()
        run.fetchParallelism = 64
        run.seconds = now() - began!
        run.daHeightsPerSecond = Double(head) / run.seconds
        run.timesOneOverRTT = run.daHeightsPerSecond * rtt
        run.fetchWindowPeak = last?.da?.fetch_window_peak ?? 0
        return run
    }

    private func status(_ http: LoopbackHTTPConnection) -> StatusDA? {
        guard let reply = try? http.get("/status"), reply.status == 200 else { return nil }
        return try? JSONDecoder().decode(StatusDA.self, from: Data(reply.body))
    }

    private func daHead(_ rpc: LoopbackHTTPConnection) -> UInt64? { daNetworkHead(rpc) }

}

extension SlowDACatchupResult {
    var summary: String {
        "\(daHeights) DA heights (\(blocks) blocks), RTT \(fixed(rttMilliseconds, 1)) ms (1/RTT = \(fixed(oneAtATimeHeightsPerSecond, 1))/s): adaptive \(fixed(adaptive.daHeightsPerSecond, 1)) heights/s = \(fixed(adaptive.timesOneOverRTT, 1))× (window peak \(adaptive.fetchWindowPeak), \(fixed(adaptive.seconds, 2)) s); at most 8 in flight \(fixed(capped8.daHeightsPerSecond, 1))/s = \(fixed(capped8.timesOneOverRTT, 1))× (\(fixed(capped8.seconds, 2)) s)"
    }
}

/// `evnode-testkit bench-slow-da [--blocks N] [--evnode PATH] [--keep]`: only the "catch-up over a
/// 100 ms DA" figure of `bench-all` (same measurement).
func benchSlowDA(_ args: [String]) {
    let setup = BenchSetup(args, workName: "evnode-slow-da")
    let r = SlowDACatchupBench(evnode: setup.evnode, testkit: setup.testkit, work: setup.work,
                               blocks: intOption("--blocks", in: args, default: 1_600)).run()
    FileHandleOut.line(prettyJSON(r))
    FileHandleOut.line("catch-up over a \(r.responseDelayMilliseconds) ms DA: \(r.summary)")
    setup.finish()
}

/// The DA node's head height (`header.NetworkHead`), nil when it does not answer.
func daNetworkHead(_ rpc: LoopbackHTTPConnection) -> UInt64? {
    let body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\(DAMethod.networkHead)\",\"params\":[]}"
    guard let reply = try? rpc.post("/", body: Array(body.utf8)), reply.status == 200,
          let object = try? JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any],
          let header = object["result"] as? [String: Any], let height = header["height"] as? String else { return nil }
    return UInt64(height)
}
