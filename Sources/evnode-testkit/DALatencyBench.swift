// `bench-all`'s "DA inclusion → applied on a DA-only full node": two full nodes that have no
// peers follow one aggregator's chain from a local DA with a 6 s block time, one with
// blob.Subscribe (the figure) and one polling (the same-run baseline). For every DA height that
// holds headers, the latency is the DA header time (when the local DA appended the submission)
// to the moment the node's store first reached the highest block in it, sampled from /status
// every 2 ms.

import Primitives
import DAClient
import Chain
import Config
import Foundation
import ProcessKit
#if canImport(Glibc)
import Glibc
#endif

struct DALatencyResult: Codable {
    struct Mode: Codable {
        var samples = 0
        var p50Milliseconds = 0.0
        var p99Milliseconds = 0.0
        var meanMilliseconds = 0.0
        var maxMilliseconds = 0.0
    }

    var daBlockSeconds = 6.0
    var windowSeconds = 0.0
    var subscription = Mode()
    var polling = Mode()
}

struct DALatencyBench {
    let evnode: String
    let work: String
    let windowSeconds: Double
    let chainID = "latency-chain"

    private struct StatusDA: Decodable {
        struct Heights: Decodable { var store: UInt64 }
        struct DA: Decodable { var subscription: String }
        var heights: Heights
        var da: DA?
    }

    func run() -> DALatencyResult {
        let daPort = loopbackPort()
        let da = launchChild(name: "latency-da", executable: evnode,
                              arguments: ["local-da", "--home", "\(work)/latency-da", "--listen", "127.0.0.1:\(daPort)",
                                          "--block-time", "6s"],
                              logDirectory: work)
        defer { da.terminate() }
        wait("the local DA to listen", timeout: 30, da) { da.output.contains("listening on") }
        let daURL = "http://127.0.0.1:\(daPort)"

        let aggHome = "\(work)/latency-agg"
        do {
            _ = try HomeInitializer.initialize(home: aggHome, chainID: chainID, aggregator: true,
                                               startTimeNanoseconds: wallNanoseconds())
        } catch {
            fail("init \(aggHome): \(error)")
        }
        let common = ["--da.address", daURL, "--da.block-time", "6s"]
        let agg = launchChild(name: "latency-agg", executable: evnode,
                               arguments: ["start", "--home", aggHome, "--aggregator", "--block-time", "1s"] + common
                                   + ports(),
                               logDirectory: work)
        defer { agg.terminate() }
        let subRPC = loopbackPort(), pollRPC = loopbackPort()
        let sub = fullNode("latency-sub", rpc: subRPC, flags: common)
        defer { sub.terminate() }
        let poll = fullNode("latency-poll", rpc: pollRPC, flags: common + ["--no-da.subscribe"])
        defer { poll.terminate() }
        let subHTTP = LoopbackHTTPConnection(port: subRPC), pollHTTP = LoopbackHTTPConnection(port: pollRPC)
        wait("both full nodes to sync the first blocks, the subscriber live", timeout: 90, sub) {
            guard let s = status(subHTTP), let p = status(pollHTTP) else { return false }
            return s.heights.store >= 2 && p.heights.store >= 2 && s.da?.subscription == "live"
        }

        // First moment each node's store reached each height.
        var reached: [[UInt64: UInt64]] = [[:], [:]]
        var last: [UInt64] = [0, 0]
        let began = wallNanoseconds()
        let end = now() + windowSeconds + 8  // the last DA heights of the window still get applied
        while now() < end {
            guard agg.isRunning, sub.isRunning, poll.isRunning else {
                fail("a latency-bench node exited:\n\(tail(agg.output))\n\(tail(sub.output))\n\(tail(poll.output))")
            }
            for (i, http) in [subHTTP, pollHTTP].enumerated() {
                guard let s = status(http) else { continue }
                let t = wallNanoseconds()
                if s.heights.store > last[i] {
                    for h in (last[i] + 1)...s.heights.store { reached[i][h] = t }
                    last[i] = s.heights.store
                }
            }
            usleep(2_000)
        }
        let windowEnd = began + UInt64(windowSeconds * 1e9)

        // Which DA height holds which blocks, and when it was appended.
        let rpc = LoopbackHTTPConnection(port: daPort)
        let namespace = DANamespace(name: chainID + "-headers")
        var latencies: [[Double]] = [[], []]
        guard let head = daHead(rpc) else { fail("no DA head from the latency DA") }
        for d in 1...head {
            guard let (time, heights) = daHeight(rpc, d, namespace), let top = heights.max() else { continue }
            guard time >= began, time <= windowEnd else { continue }
            for i in 0..<2 {
                if let t = reached[i][top], t >= time { latencies[i].append(Double(t - time) / 1e6) }
            }
        }
        var result = DALatencyResult()
        result.windowSeconds = windowSeconds
        result.subscription = summary(latencies[0])
        result.polling = summary(latencies[1])
        return result
    }

    private func fullNode(_ name: String, rpc: Int, flags: [String]) -> ChildProcess {
        let home = "\(work)/\(name)"
        do {
            try FileIO.makeDirectories(home + "/config", mode: 0o700)
            let genesis = try FileIO.readString("\(work)/latency-agg/config/genesis.json")
            try FileIO.writeAtomically(home + "/config/genesis.json", genesis)
        } catch {
            fail("\(name) home: \(error)")
        }
        return launchChild(name: name, executable: evnode,
                            arguments: ["start", "--home", home] + flags
                                + ["--rpc.address", "127.0.0.1:\(rpc)", "--p2p.listen", "127.0.0.1:\(loopbackPort())"],
                            logDirectory: work)
    }

    private func ports() -> [String] {
        ["--rpc.address", "127.0.0.1:\(loopbackPort())", "--p2p.listen", "127.0.0.1:\(loopbackPort())"]
    }

    private func status(_ http: LoopbackHTTPConnection) -> StatusDA? {
        guard let reply = try? http.get("/status"), reply.status == 200 else { return nil }
        return try? JSONDecoder().decode(StatusDA.self, from: Data(reply.body))
    }

    private func call(_ rpc: LoopbackHTTPConnection, _ method: String, _ params: String) -> Any? {
        let body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\(method)\",\"params\":\(params)}"
        guard let reply = try? rpc.post("/", body: Array(body.utf8)), reply.status == 200,
              let object = try? JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any] else { return nil }
        return object["result"]
    }

    private func daHead(_ rpc: LoopbackHTTPConnection) -> UInt64? {
        guard let header = call(rpc, DAMethod.networkHead, "[]") as? [String: Any],
              let height = header["height"] as? String else { return nil }
        return UInt64(height)
    }

    /// The DA header time (unix ns) and the block heights whose headers it holds.
    private func daHeight(_ rpc: LoopbackHTTPConnection, _ d: UInt64, _ namespace: DANamespace) -> (UInt64, [UInt64])? {
        guard let blobs = call(rpc, DAMethod.getAll, "[\(d),[\"\(namespace.base64)\"]]") as? [[String: Any]] else { return nil }
        var heights: [UInt64] = []
        for blob in blobs {
            guard let text = blob["data"] as? String, let data = Data(base64Encoded: text),
                  let envelope = try? DAHeaderEnvelope(decoding: Array(data)) else { continue }
            heights.append(envelope.signedHeader.height)
        }
        guard !heights.isEmpty,
              let header = call(rpc, DAMethod.getByHeight, "[\(d)]") as? [String: Any],
              let inner = header["header"] as? [String: Any], let time = inner["time"] as? String,
              let ns = try? RFC3339.unixNanoseconds(time) else { return nil }
        return (ns, heights)
    }

    private func summary(_ values: [Double]) -> DALatencyResult.Mode {
        let sorted = values.sorted()
        var m = DALatencyResult.Mode()
        m.samples = sorted.count
        m.p50Milliseconds = percentile(sorted, 0.50)
        m.p99Milliseconds = percentile(sorted, 0.99)
        m.meanMilliseconds = sorted.isEmpty ? 0 : sorted.reduce(0, +) / Double(sorted.count)
        m.maxMilliseconds = sorted.last ?? 0
        return m
    }

    private func wait(_ what: String, timeout: Double, _ process: ChildProcess, _ condition: () -> Bool) {
        let deadline = now() + timeout
        while now() < deadline {
            guard process.isRunning else { fail("\(process.name) exited while waiting for \(what):\n\(tail(process.output))") }
            if condition() { return }
            usleep(20_000)
        }
        fail("timed out waiting for \(what):\n\(tail(process.output))")
    }
}

/// `evnode-testkit bench-da-latency [--seconds S] [--evnode PATH]`: only the DA latency figure of
/// `bench-all` (same measurement), for a quick look after a change to the DA path.
func benchDALatency(_ args: [String]) {
    let seconds = Double(intOption("--seconds", in: args, default: 60))
    let setup = BenchSetup(args, workName: "evnode-da-latency")
    let r = DALatencyBench(evnode: setup.evnode, work: setup.work, windowSeconds: seconds).run()
    FileHandleOut.line(prettyJSON(r))
    FileHandleOut.line("DA inclusion → applied (6 s DA blocks, \(Int(seconds)) s): blob.Subscribe p50 \(fixed(r.subscription.p50Milliseconds, 1)) ms p99 \(fixed(r.subscription.p99Milliseconds, 1)) ms (\(r.subscription.samples) DA heights); polling p50 \(fixed(r.polling.p50Milliseconds, 1)) ms p99 \(fixed(r.polling.p99Milliseconds, 1)) ms (\(r.polling.samples))")
    setup.finish()
}
