import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Divergence recovery and `evnode rollback` with real `evnode` processes on loopback.
@Suite(.serialized) struct DivergenceTests {
    let evnode = BuiltProducts.evnode

    /// Two aggregators wrongly share one key. A (slow blocks, posting to DA every 30 s) gossips to
    /// the full node F; B (fast blocks, posting to DA at once) starts later, so DA's first header
    /// at every height from 2 on is B's (block 1, with the genesis time and no txs, is the same on
    /// both). F, which applied A's blocks from P2P, must roll back to the common ancestor, replay
    /// B's chain from DA, report the double signs — and stay on B's chain when A's headers reach
    /// DA later.
    @Test(.timeLimit(.minutes(6)))
    func aFullNodeConvergesToTheDAFirstChainOfTwoAggregatorsSharingAKey() async throws {
        let dir = TempDirectory("evnode-div")
        let cluster = Cluster(evnode: evnode, dir: dir.path)
        defer { cluster.killAll() }
        let da = try await cluster.startLocalDA()

        let homeA = dir.path + "/a", homeB = dir.path + "/b", homeF = dir.path + "/f"
        try cluster.initHome(homeA, aggregator: true)
        try cluster.initHome(homeB, aggregator: true)
        try cluster.initHome(homeF, aggregator: false)
        // The operator's mistake: B gets A's genesis and A's signer key.
        try cluster.copyConfig("genesis.json", from: homeA, to: homeB)
        try cluster.copyConfig("signer.key", from: homeA, to: homeB)
        try cluster.copyConfig("genesis.json", from: homeA, to: homeF)

        let a = try cluster.startNode("a", home: homeA, da: da, extra: [
            "--aggregator", "--block-time", "2s", "--da.block-time", "30s"])
        let f = try cluster.startNode("f", home: homeF, da: da, extra: [
            "--da.block-time", "200ms", "--p2p.peers", "127.0.0.1:\(a.p2pPort)"])

        // F follows A over P2P, including a state change only A's branch has.
        try await waitUntil("F applies A's blocks from P2P", timeout: .seconds(120)) {
            (try? f.status().store) ?? 0 >= 3
        }
        #expect(try a.post("/tx", body: "k=a").status == 202)
        try await waitUntil("F holds A's state", timeout: .seconds(120)) { try f.get("/kv?key=k").body == "a" }
        let softHeight = try f.status().store
        let aBlock2 = try a.blockHash(2)
        #expect(try f.blockHash(2) == aBlock2)

        let b = try cluster.startNode("b", home: homeB, da: da, extra: [
            "--aggregator", "--block-time", "100ms", "--da.block-time", "200ms"])
        // The tx goes in after block 1, which must stay the same on both branches.
        try await waitUntil("B produces", timeout: .seconds(120)) { (try? b.status().store) ?? 0 >= 2 }
        #expect(try b.post("/tx", body: "k=b").status == 202)
        try await waitUntil("B's tx in a block", timeout: .seconds(120)) { try b.get("/kv?key=k").body == "b" }
        let bTop = try b.status().store

        // F ends on B's chain: same hashes where both have blocks, B's state, evidence reported.
        try await waitUntil("F converges to B's (DA-first) chain", timeout: .seconds(180)) {
            let s = try f.status()
            guard s.store >= max(bTop, softHeight + 2), s.phase == "syncing" else { return false }
            return try f.blockHash(s.store) == b.blockHash(s.store) && f.get("/kv?key=k").body == "b"
        }
        let bBlock2 = try b.blockHash(2)
        #expect(bBlock2 != aBlock2, "A and B really signed two branches")
        #expect(try f.blockHash(2) == bBlock2)
        #expect(try f.blockHash(softHeight) == b.blockHash(softHeight))
        #expect(try f.blockHash(1) == a.blockHash(1), "block 1 (genesis time, no txs) is the same on both")

        let metrics = try f.get("/metrics").body
        #expect(metricValue(metrics, "evnode_rollbacks_total").map { $0 >= 1 } == true, "F rolled back: \(metrics)")
        #expect(metricValue(metrics, "evnode_double_sign_evidence").map { $0 >= 1 } == true)
        let status = try f.status()
        #expect(status.evidence >= 1)
        let evidence = try f.get("/evidence")
        #expect(evidence.status == 200)
        let document = try JSONSerialization.jsonObject(with: Data(evidence.body.utf8)) as? [String: Any]
        let items = document?["evidence"] as? [[String: Any]] ?? []
        #expect(!items.isEmpty && (document?["count"] as? Int ?? 0) == status.evidence)
        let atTwo = items.first { ($0["height"] as? Int) == 2 }
        let hashes = [atTwo?["first"], atTwo?["second"]].compactMap { ($0 as? [String: Any])?["hash"] as? String }
        #expect(Set(hashes) == [aBlock2, bBlock2], "the pair at height 2 is A's and B's block: \(evidence.body)")
        #expect(f.output.contains("rolled back to the common ancestor"))

        // A's own blocks reach DA later than B's: DA order keeps B's authoritative. F records
        // A's headers as DA double signs and keeps following B, halting nothing. A pair is
        // recorded once, wherever it was first seen; so that F meets some of A's blocks only on
        // DA, A restarts on other ports (F no longer reaches it) and posts every second.
        #expect(await a.process.stop() == 0)
        let aTop = try storeHeight(homeA)
        let a2 = try cluster.startNode("a2", home: homeA, da: da, extra: [
            "--aggregator", "--block-time", "1s", "--da.block-time", "1s"])
        try await waitUntil("A posts a block F never got over P2P", timeout: .seconds(120)) {
            (try? a2.status().finalized) ?? 0 > aTop
        }
        try await waitUntil("A's later DA header at \(aTop + 1) recorded as evidence", timeout: .seconds(120)) {
            let list = try JSONSerialization.jsonObject(with: Data(f.get("/evidence").body.utf8)) as? [String: Any]
            return (list?["evidence"] as? [[String: Any]] ?? []).contains { item in
                let seen = [item["first"], item["second"]].compactMap { ($0 as? [String: Any])?["seen"] as? String }
                return (item["height"] as? Int) == Int(aTop + 1) && seen.count == 2 && seen.allSatisfy { $0.contains("DA height") }
            }
        }
        let after = try f.status()
        #expect(after.phase == "syncing")
        #expect(try f.blockHash(after.store) == b.blockHash(after.store))
        #expect(try f.blockHash(2) == bBlock2)

        for node in [f, b, a2] { #expect(await node.process.stop() == 0) }
        _ = await da.stop()
    }

    /// `evnode rollback`: refused while the node runs and below the finalized height (exit 2,
    /// nothing changed); above it the store goes back and the node restarts from there.
    @Test(.timeLimit(.minutes(6)))
    func rollbackCommandRefusesBelowFinalizedAndTheNodeRestartsFromTheNewHeight() async throws {
        let dir = TempDirectory("evnode-rb")
        let cluster = Cluster(evnode: evnode, dir: dir.path)
        defer { cluster.killAll() }
        let da = try await cluster.startLocalDA()
        let homeA = dir.path + "/a", homeF = dir.path + "/f"
        try cluster.initHome(homeA, aggregator: true)
        try cluster.initHome(homeF, aggregator: false)
        try cluster.copyConfig("genesis.json", from: homeA, to: homeF)

        var a = try cluster.startNode("a1", home: homeA, da: da, extra: [
            "--aggregator", "--block-time", "100ms", "--da.block-time", "300ms"])
        var f = try cluster.startNode("f1", home: homeF, da: da, extra: [
            "--da.block-time", "200ms", "--p2p.peers", "127.0.0.1:\(a.p2pPort)"])
        try await waitUntil("F finalizes from DA", timeout: .seconds(120)) { (try? f.status().finalized) ?? 0 >= 5 }

        // A restarted lazy, with a DA block time of an hour, posts what A1 left unposted (its
        // store is at A1's head) once at start and then nothing: F's finalized height settles at
        // A1's head while its store keeps growing from P2P with A2's transaction blocks.
        #expect(await a.process.stop() == 0)
        let finalized = try storeHeight(homeA)
        a = try cluster.startNode("a2", home: homeA, da: da, ports: a, extra: [
            "--aggregator", "--block-time", "100ms", "--lazy", "--lazy-interval", "1h", "--da.block-time", "1h"])
        try await waitUntil("F finalized A1's whole chain", timeout: .seconds(120)) {
            (try? f.status().finalized) == finalized
        }
        try await produceBlocks(8, on: a, seenBy: f)
        #expect(try f.status().finalized == finalized, "A2's blocks are never posted")

        let running = try runCommand(evnode, ["rollback", "--home", homeF, "--height", "\(finalized)"])
        #expect(running.status == 2)
        #expect(running.stderr.contains("stop the node first"), "\(running.stderr)")

        #expect(await f.process.stop() == 0)
        let head = try storeHeight(homeF)
        #expect(head >= finalized + 8)
        let below = try runCommand(evnode, ["rollback", "--home", homeF, "--height", "\(finalized - 1)"])
        #expect(below.status == 2)
        #expect(below.stderr.contains("below the finalized height \(finalized)"), "\(below.stderr)")
        #expect(try storeHeight(homeF) == head, "a refused rollback changes nothing")

        let target = finalized + 2
        let done = try runCommand(evnode, ["rollback", "--home", homeF, "--height", "\(target)"])
        #expect(done.status == 0, "\(done.stderr)")
        #expect(done.stdout.contains("from height \(head)") && done.stdout.contains("to \(target)"), "\(done.stdout)")
        #expect(try storeHeight(homeF) == target)

        f = try cluster.startNode("f2", home: homeF, da: da, extra: [
            "--da.block-time", "200ms", "--p2p.peers", "127.0.0.1:\(a.p2pPort)"])
        try await waitUntil("F restarted from \(target)", timeout: .seconds(60)) {
            f.output.split(separator: "\n").contains { $0.contains("store opened") && $0.contains("height=\(target) ") }
        }
        try await waitUntil("F back in the network", timeout: .seconds(60)) {
            (try? f.status().store) ?? 0 >= head
        }
        try await produceBlocks(2, on: a, seenBy: f)
        try await waitUntil("F syncs again past its old head", timeout: .seconds(120)) {
            guard let s = try? f.status(), s.store > head else { return false }
            return try f.blockHash(head) == a.blockHash(head) && f.blockHash(target + 1) == a.blockHash(target + 1)
        }
        #expect(try f.status().finalized == finalized)

        for node in [f, a] { #expect(await node.process.stop() == 0) }
        _ = await da.stop()
    }

    /// Makes `count` blocks on lazy aggregator `a`, one transaction each, and waits for `f` to
    /// hold each of them.
    fileprivate func produceBlocks(_ count: Int, on a: RunningNode, seenBy f: RunningNode) async throws {
        for i in 0..<count {
            var before: UInt64 = 0
            try await waitUntil("\(a.process.name) serving /status", timeout: .seconds(60)) {
                guard let s = try? a.status() else { return false }
                before = s.store
                return true
            }
            let sent = try a.post("/tx", body: "rb\(before)-\(i)=v")
            #expect(sent.status == 202, "\(sent.body)")
            try await waitUntil("block \(before + 1) on F", timeout: .seconds(60)) {
                (try? f.status().store) ?? 0 > before
            }
        }
    }

    /// The stopped node's store height, as the rollback command reports it (rolling back to a
    /// height far above it is refused with the store height in the message).
    func storeHeight(_ home: String) throws -> UInt64 {
        let r = try runCommand(evnode, ["rollback", "--home", home, "--height", "\(UInt64.max)"])
        guard r.status == 2, let range = r.stderr.range(of: "above the store height ") else {
            throw ProcessFailure.conditionNotMet("store height of \(home): \(r.stderr)")
        }
        let digits = r.stderr[range.upperBound...].prefix { $0.isNumber }
        guard let height = UInt64(digits) else { throw ProcessFailure.conditionNotMet("store height in \(r.stderr)") }
        return height
    }
}

// MARK: - a small cluster of evnode processes

/// A loopback TCP port that was free a moment ago (nodes need theirs known before they start).
fileprivate func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw ProcessFailure.conditionNotMet("socket") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
    }
    guard bound else { throw ProcessFailure.conditionNotMet("bind") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// One HTTP exchange through curl (an operator's tool, independent of evnode's own client).
fileprivate struct HTTPResult {
    let status: Int
    let body: String
}

fileprivate func curl(_ arguments: [String]) throws -> HTTPResult {
    let r = try runCommand(URL(fileURLWithPath: "/usr/bin/curl"),
                           ["-sS", "--max-time", "10", "-w", "\n%{http_code}"] + arguments, timeout: .seconds(20))
    guard r.status == 0, let cut = r.stdout.lastIndex(of: "\n"), let code = Int(r.stdout[r.stdout.index(after: cut)...]) else {
        throw ProcessFailure.conditionNotMet("curl \(arguments.joined(separator: " ")): \(r.stderr)")
    }
    return HTTPResult(status: code, body: String(r.stdout[..<cut]))
}

fileprivate struct NodeStatusView: Decodable {
    struct Heights: Decodable {
        let store: UInt64
        let finalized: UInt64
    }

    let phase: String
    let heights: Heights
    let evidence: Int
    var store: UInt64 { heights.store }
    var finalized: UInt64 { heights.finalized }
}

fileprivate final class RunningNode {
    let process: ChildProcess
    let rpcPort: Int
    let p2pPort: Int

    init(process: ChildProcess, rpcPort: Int, p2pPort: Int) {
        self.process = process
        self.rpcPort = rpcPort
        self.p2pPort = p2pPort
    }

    var output: String { process.output }

    func get(_ path: String) throws -> HTTPResult {
        try curl(["http://127.0.0.1:\(rpcPort)\(path)"])
    }

    func post(_ path: String, body: String) throws -> HTTPResult {
        try curl(["-X", "POST", "--data-binary", body, "http://127.0.0.1:\(rpcPort)\(path)"])
    }

    func status() throws -> NodeStatusView {
        let r = try get("/status")
        guard r.status == 200 else { throw ProcessFailure.conditionNotMet("status \(r.status)") }
        return try JSONDecoder().decode(NodeStatusView.self, from: Data(r.body.utf8))
    }

    func blockHash(_ height: UInt64) throws -> String? {
        let r = try get("/blocks/\(height)")
        guard r.status == 200 else { return nil }
        let json = try JSONSerialization.jsonObject(with: Data(r.body.utf8)) as? [String: Any]
        return json?["hash"] as? String
    }
}

fileprivate final class LocalDA {
    let process: ChildProcess
    let url: String

    init(process: ChildProcess, url: String) {
        self.process = process
        self.url = url
    }

    func stop() async -> Int32 { await process.stop() }
}

fileprivate final class Cluster {
    let evnode: URL
    let dir: String
    private var started: [ChildProcess] = []

    init(evnode: URL, dir: String) {
        self.evnode = evnode
        self.dir = dir
    }

    func startLocalDA() async throws -> LocalDA {
        let process = try ChildProcess(name: "local-da", executable: evnode, arguments: [
            "local-da", "--home", dir + "/da", "--listen", "127.0.0.1:0", "--block-time", "500ms"], logDirectory: dir)
        started.append(process)
        var address = ""
        try await waitUntil("local DA listening", timeout: .seconds(60)) {
            guard let line = process.output.split(separator: "\n").first(where: { $0.hasPrefix("listening on ") }) else {
                return false
            }
            address = String(line.dropFirst("listening on ".count))
            return true
        }
        return LocalDA(process: process, url: "http://\(address)")
    }

    func initHome(_ home: String, aggregator: Bool) throws {
        let r = try runCommand(evnode, ["init", "--home", home, "--chain-id", "div-chain"] + (aggregator ? ["--aggregator"] : []))
        guard r.status == 0 else { throw ProcessFailure.conditionNotMet("init \(home): \(r.stderr)") }
    }

    func copyConfig(_ file: String, from: String, to: String) throws {
        let target = "\(to)/config/\(file)"
        try FileManager.default.removeItem(atPath: target)
        try FileManager.default.copyItem(atPath: "\(from)/config/\(file)", toPath: target)
    }

    /// Starts `evnode start` on fresh loopback ports (or those of `ports`, for a restart).
    func startNode(_ name: String, home: String, da: LocalDA, ports: RunningNode? = nil, extra: [String]) throws -> RunningNode {
        let rpc = try ports?.rpcPort ?? freePort()
        let p2p = try ports?.p2pPort ?? freePort()
        let process = try ChildProcess(name: name, executable: evnode, arguments: [
            "start", "--home", home, "--da.address", da.url, "--rpc.address", "127.0.0.1:\(rpc)",
            "--p2p.listen", "127.0.0.1:\(p2p)"] + extra, logDirectory: dir)
        started.append(process)
        return RunningNode(process: process, rpcPort: rpc, p2pPort: p2p)
    }

    func killAll() {
        for process in started where process.isRunning {
            kill(process.pid, SIGKILL)
            process.process.waitUntilExit()
        }
    }
}
