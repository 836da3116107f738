// `bench-all`'s "HA failover": three HA aggregators sharing one signer key on a real etcd
// (Debian's etcd-server) and a local DA, 200 ms blocks. The leader is killed with SIGKILL again
// and again; each failover is the wall-clock time from the kill to the header time (`time_ns`)
// of the first block above what the dead leader had fenced in etcd, i.e. the next leader's first
// block. The killed node is restarted and caught up before the next kill. The same-run baseline
// is the old path, selectable with `--raft.heartbeat-interval 0s`: the leader is replaced only
// when its lease expires (TTL plus etcd's expiry sweep). Afterwards every node must hold the
// same hash at every height and no node may have recorded double-sign evidence: the benchmark
// fails loudly otherwise.

import Primitives
import Config
import Foundation
import ProcessKit
#if canImport(Glibc)
import Glibc
#endif

struct HAFailoverResult: Codable {
    struct Mode: Codable {
        var kills = 0
        var p50Milliseconds = 0.0
        var p95Milliseconds = 0.0
        var maxMilliseconds = 0.0
        var meanMilliseconds = 0.0
        var samplesMilliseconds: [Double] = []
    }

    var nodes = 3
    var blockTimeMilliseconds = 200
    var leaseTTLSeconds = 2
    var heartbeatIntervalMilliseconds = 100
    var heartbeatTimeoutMilliseconds = 500
    /// The figure: heartbeats on (the defaults).
    var heartbeat = Mode()
    /// The same-run baseline: heartbeats off, replaced at lease expiry.
    var leaseOnly = Mode()
    /// Heights checked across the nodes after each mode (same hash everywhere, no evidence).
    var heightsChecked = 0
}

struct HAFailoverBench {
    let evnode: String
    let work: String
    let kills: Int
    let baselineKills: Int
    let chainID = "ha-bench"
    let blockTime = "200ms"

    private struct StatusHA: Decodable {
        struct Heights: Decodable { var store: UInt64 }
        struct HA: Decodable {
            var role: String
            var term: Int64?
        }
        var heights: Heights
        var evidence: Int
        var ha: HA?
    }

    private struct BlockTime: Decodable {
        var height: UInt64
        var hash: String
        var time_ns: UInt64
    }

    func run() -> HAFailoverResult {
        var result = HAFailoverResult()
        var checked = 0
        (result.heartbeat, checked) = measure(mode: "heartbeat", kills: kills, extra: [])
        result.heightsChecked += checked
        (result.leaseOnly, checked) = measure(mode: "lease", kills: baselineKills, extra: ["--raft.heartbeat-interval", "0s"])
        result.heightsChecked += checked
        return result
    }

    // MARK: One mode

    private final class Node {
        let name: String
        let home: String
        let rpc: Int
        let arguments: [String]
        let work: String
        let evnode: String
        var process: ChildProcess?
        var runs = 0
        let http: LoopbackHTTPConnection

        init(name: String, home: String, rpc: Int, arguments: [String], work: String, evnode: String) {
            self.name = name
            self.home = home
            self.rpc = rpc
            self.arguments = arguments
            self.work = work
            self.evnode = evnode
            http = LoopbackHTTPConnection(port: rpc)
        }

        func start() {
            runs += 1
            process = launchChild(name: "\(name)-run\(runs)", executable: evnode, arguments: arguments, logDirectory: work)
        }

        var isRunning: Bool { process?.isRunning ?? false }
    }

    private func measure(mode: String, kills: Int, extra: [String]) -> (HAFailoverResult.Mode, Int) {
        let dir = "\(work)/ha-\(mode)"
        let etcdPort = loopbackPort(), etcdPeer = loopbackPort(), daPort = loopbackPort()
        let etcdURL = "http://127.0.0.1:\(etcdPort)"
        let etcd = launchChild(name: "ha-\(mode)-etcd", executable: "/usr/bin/etcd", arguments: [
            "--logger=zap", "--name", "bench", "--data-dir", "\(dir)/etcd",
            "--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
            "--listen-peer-urls", "http://127.0.0.1:\(etcdPeer)",
            "--initial-advertise-peer-urls", "http://127.0.0.1:\(etcdPeer)",
            "--initial-cluster", "bench=http://127.0.0.1:\(etcdPeer)",
        ], logDirectory: work)
        defer { etcd.terminate() }
        let etcdHTTP = LoopbackHTTPConnection(port: etcdPort)
        benchWait("etcd to answer", timeout: 30, process: etcd) { (try? etcdHTTP.get("/version"))?.status == 200 }
        let da = launchChild(name: "ha-\(mode)-da", executable: evnode,
                              arguments: ["local-da", "--home", "\(dir)/da", "--listen", "127.0.0.1:\(daPort)",
                                          "--block-time", "300ms"],
                              logDirectory: work)
        defer { da.terminate() }
        benchWait("the local DA to listen", timeout: 30, process: da) { da.output.contains("listening on") }

        let nodes = makeNodes(dir: dir, mode: mode, etcdURL: etcdURL, daURL: "http://127.0.0.1:\(daPort)", extra: extra)
        defer {
            for node in nodes { node.process?.terminate() }
        }
        for node in nodes { node.start() }

        var samples: [Double] = []
        for k in 1...kills {
            let leader = waitForLeader(nodes, "a leader before kill \(k)")
            let survivors = nodes.filter { $0 !== leader }
            // Steady: everyone running follows close behind the leader.
            let leaderHeight = status(leader)?.heights.store ?? 0
            waitAll(nodes, "every node caught up before kill \(k)", timeout: 120) { node, s in
                s.heights.store + 3 >= leaderHeight && s.heights.store >= 5
                    && (node === leader ? s.ha?.role == "leader" : s.ha?.role == "follower")
            }
            guard let process = leader.process else { fail("no process for \(leader.name)") }
            let killedAt = wallNanoseconds()
            kill(process.pid, SIGKILL)
            _ = process.waitForExitBlocking(timeout: .seconds(10))
            // What the dead leader fenced last; a fence already on its way when the signal came
            // may still land, so the next leader's first block is the first one built after the kill.
            let fenced = replicatedHeight(etcdHTTP)
            var first: BlockTime?
            let deadline = now() + 60
            while first == nil {
                guard now() < deadline else { fail("no block after kill \(k) within 60 s (\(mode)):\n\(logs(survivors))") }
                for node in survivors {
                    guard let s = status(node), s.heights.store > fenced else { continue }
                    for h in (fenced + 1)...s.heights.store {
                        if let b = block(node, h), b.time_ns > killedAt {
                            first = b
                            break
                        }
                    }
                    if first != nil { break }
                }
                if first == nil { usleep(5_000) }
            }
            let ms = Double(first!.time_ns - killedAt) / 1e6
            samples.append(ms)
            FileHandleOut.line("   \(mode) kill \(k)/\(kills): \(leader.name) killed, block \(first!.height) after \(fixed(ms, 1)) ms")
            leader.start()
        }
        // Everyone back and caught up, then one chain everywhere.
        let top = nodes.compactMap { status($0)?.heights.store }.max() ?? 0
        waitAll(nodes, "every node at height \(top + 3)", timeout: 120) { _, s in s.heights.store >= top + 3 }
        let checked = expectOneChain(nodes, through: top + 3, mode: mode)
        return (summary(samples), checked)
    }

    private func makeNodes(dir: String, mode: String, etcdURL: String, daURL: String, extra: [String]) -> [Node] {
        var nodes: [Node] = []
        for i in 0..<3 {
            let name = "ha-\(mode)-\(i)"
            let home = "\(dir)/\(name)"
            do {
                _ = try HomeInitializer.initialize(home: home, chainID: chainID, aggregator: true,
                                                   startTimeNanoseconds: wallNanoseconds())
                if let first = nodes.first {
                    // One chain, one signer key; each node keeps its own node key.
                    for file in ["config/genesis.json", "config/signer.key"] {
                        try? FileManager.default.removeItem(atPath: "\(home)/\(file)")
                        try FileManager.default.copyItem(atPath: "\(first.home)/\(file)", toPath: "\(home)/\(file)")
                    }
                }
            } catch {
                fail("init \(home): \(error)")
            }
            let rpc = loopbackPort()
            let arguments = ["start", "--home", home, "--aggregator", "--block-time", blockTime,
                             "--da.address", daURL, "--da.block-time", "300ms",
                             "--raft.enable", "--raft.endpoints", etcdURL, "--raft.node-id", name,
                             "--raft.lease-ttl", "2s",
                             "--rpc.address", "127.0.0.1:\(rpc)", "--p2p.listen", "127.0.0.1:\(loopbackPort())"] + extra
            nodes.append(Node(name: name, home: home, rpc: rpc, arguments: arguments, work: work, evnode: evnode))
        }
        return nodes
    }

    /// Every node holds the same hash at every height through `height`; nobody saw evidence of
    /// a height signed twice. Returns the number of heights compared.
    private func expectOneChain(_ nodes: [Node], through height: UInt64, mode: String) -> Int {
        for h in 1...height {
            let hashes = nodes.map { block($0, h)?.hash }
            guard let first = hashes[0], hashes.allSatisfy({ $0 == first }) else {
                fail("HA bench (\(mode)): the nodes disagree at height \(h): \(hashes)")
            }
        }
        for node in nodes {
            guard let s = status(node) else { fail("\(node.name) does not answer") }
            if s.evidence != 0 { fail("HA bench (\(mode)): \(node.name) recorded \(s.evidence) double-sign evidence") }
        }
        return Int(height)
    }

    // MARK: Helpers

    private func waitForLeader(_ nodes: [Node], _ what: String) -> Node {
        let deadline = now() + 120
        while now() < deadline {
            let leading = nodes.filter { $0.isRunning && status($0)?.ha?.role == "leader" }
            if leading.count > 1 { fail("two nodes lead at once: \(leading.map(\.name))") }
            if let leader = leading.first { return leader }
            usleep(20_000)
        }
        fail("timed out waiting for \(what):\n\(logs(nodes))")
    }

    private func waitAll(_ nodes: [Node], _ what: String, timeout: Double, _ condition: (Node, StatusHA) -> Bool) {
        let deadline = now() + timeout
        while now() < deadline {
            if nodes.allSatisfy({ node in status(node).map { condition(node, $0) } ?? false }) { return }
            for node in nodes where !node.isRunning && node.process != nil {
                fail("\(node.name) exited while waiting for \(what):\n\(tail(node.process!.output))")
            }
            usleep(20_000)
        }
        fail("timed out waiting for \(what):\n\(logs(nodes))")
    }


    private func logs(_ nodes: [Node]) -> String {
        nodes.map { "--- \($0.name)\n" + tail($0.process?.output ?? "", lines: 15) }.joined(separator: "\n")
    }

    private func status(_ node: Node) -> StatusHA? {
        guard node.isRunning, let reply = try? node.http.get("/status"), reply.status == 200 else {
            node.http.disconnect()
            return nil
        }
        return try? JSONDecoder().decode(StatusHA.self, from: Data(reply.body))
    }

    private func block(_ node: Node, _ height: UInt64) -> BlockTime? {
        guard let reply = try? node.http.get("/blocks/\(height)"), reply.status == 200 else { return nil }
        return try? JSONDecoder().decode(BlockTime.self, from: Data(reply.body))
    }

    /// The chain's last replicated height in etcd, read through its JSON gateway.
    private func replicatedHeight(_ etcd: LoopbackHTTPConnection) -> UInt64 {
        struct Range: Decodable {
            struct KV: Decodable { let value: String? }
            let kvs: [KV]?
        }
        let key = Data("/evnode/\(chainID)/ha/height".utf8).base64EncodedString()
        guard let reply = try? etcd.post("/v3/kv/range", body: Array("{\"key\":\"\(key)\"}".utf8)), reply.status == 200,
              let range = try? JSONDecoder().decode(Range.self, from: Data(reply.body)),
              let text = range.kvs?.first?.value, let bytes = Data(base64Encoded: text) else { return 0 }
        return UInt64(String(decoding: bytes, as: UTF8.self)) ?? 0
    }

    private func summary(_ values: [Double]) -> HAFailoverResult.Mode {
        let sorted = values.sorted()
        var m = HAFailoverResult.Mode()
        m.kills = sorted.count
        m.p50Milliseconds = percentile(sorted, 0.50)
        m.p95Milliseconds = percentile(sorted, 0.95)
        m.maxMilliseconds = sorted.last ?? 0
        m.meanMilliseconds = sorted.isEmpty ? 0 : sorted.reduce(0, +) / Double(sorted.count)
        m.samplesMilliseconds = values
        return m
    }
}

extension HAFailoverResult {
    /// One line for logs and the stand-alone subcommand.
    var summaryLine: String {
        "HA failover (kill -9 → next leader's first block, \(nodes) nodes, \(blockTimeMilliseconds) ms blocks): heartbeat p50 \(fixed(heartbeat.p50Milliseconds, 0)) ms p95 \(fixed(heartbeat.p95Milliseconds, 0)) ms max \(fixed(heartbeat.maxMilliseconds, 0)) ms (\(heartbeat.kills) kills); lease only p50 \(fixed(leaseOnly.p50Milliseconds, 0)) ms p95 \(fixed(leaseOnly.p95Milliseconds, 0)) ms max \(fixed(leaseOnly.maxMilliseconds, 0)) ms (\(leaseOnly.kills) kills)"
    }
}

/// `evnode-testkit bench-ha [--kills N] [--baseline-kills M] [--evnode PATH] [--out DIR] [--keep]`:
/// only bench-all's HA failover figure (same measurement).
func benchHA(_ args: [String]) {
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/etcd") else {
        fail("/usr/bin/etcd is missing: install etcd-server (`make deps`)")
    }
    let setup = BenchSetup(args, workName: "evnode-bench-ha")
    let load = MachineInfo.current().loadAverageAtStart
    let r = HAFailoverBench(evnode: setup.evnode, work: setup.work, kills: intOption("--kills", in: args, default: 20),
                            baselineKills: intOption("--baseline-kills", in: args, default: 5)).run()
    let json = prettyJSON(r)
    if let out = option("--out", in: args) {
        try? FileIO.makeDirectories(out)
        try? FileIO.writeAtomically("\(out)/bench-ha.json", json + "\n")
    }
    FileHandleOut.line(json)
    FileHandleOut.line(r.summaryLine + "; load \(load) at start, \(MachineInfo.current().loadAverageAtStart) at end")
    setup.finish()
}
