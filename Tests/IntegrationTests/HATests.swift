import Primitives
import Foundation
import ProcessKit
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// The HA aggregator group on a real etcd (issue 10 acceptance): aggregators sharing one signer
/// key, a real `etcd` from Debian's etcd-server, a local DA, all as processes on loopback,
/// observed through their HTTP APIs and etcd's JSON gateway.
@Suite(.serialized) struct HATests {
    static let blockTime: Duration = .milliseconds(200)
    static let leaseTTL: Duration = .seconds(2)

    /// kill -9 the leader: another node takes the leader key over once the leader's heartbeat is
    /// silent (well before the lease expires) and produces the next height; afterwards every
    /// node, and a node that syncs from DA alone, holds the same hash at every height, with no
    /// evidence of a height signed twice.
    @Test func killedLeaderIsReplacedWithoutForkOrGap() async throws {
        try await HANet.run(nodes: 3) { ha in
            let leader = try await ha.waitForLeader()
            try await leader.waitForStatus("ten blocks") { $0.heights.store >= 10 }
            // Only the leader takes transactions; a follower says who leads.
            let follower = ha.nodes.first { $0 !== leader }!
            let refused = try await HTTP.post(follower.rpc + "/tx", body: Data("k=v".utf8))
            #expect(refused.status == 503 && refused.text.contains("the leader is \(leader.name)"), "\(refused.text)")
            for i in 0..<5 {
                #expect(try await leader.send(tx: "ha-key-\(i)=before-failover") == 202)
            }
            try await waitUntil("the followers to apply the leader's transactions", timeout: .seconds(60),
                                every: .milliseconds(100)) {
                for node in ha.nodes where node !== leader {
                    if try await node.value(forKey: "ha-key-4") != "before-failover" { return false }
                }
                return true
            }

            await leader.stop(signal: SIGKILL)
            let killedAt = ContinuousClock.now
            // What the dead leader last committed: the next block is the first above it.
            let lastFenced = try await ha.etcd.replicatedHeight(chainID: ha.net.chainID)
            let survivors = ha.nodes.filter { $0 !== leader }
            var next: NodeProcess?
            try await waitUntil("a survivor to produce above \(lastFenced)", timeout: .seconds(30), every: .milliseconds(20)) {
                for node in survivors {
                    if let s = try? await node.status(), s.heights.store > lastFenced, s.ha?.role == "leader" {
                        next = node
                        return true
                    }
                }
                return false
            }
            let failover = ContinuousClock.now - killedAt
            print("HA failover: kill -9 of the leader → next block in \(failover) (heartbeat timeout 500ms, lease TTL \(Self.leaseTTL), block time \(Self.blockTime))")
            // The heartbeat path, not the lease's expiry, replaced the leader (timings are
            // `make bench`'s business).
            let successor = try #require(next)
            #expect(successor.allLogs.contains("HA: took over the leadership: the leader's heartbeat was silent"),
                    "\(successor.name) did not take over from the silent leader")

            // The killed node comes back as a follower of the new leader.
            try await leader.start()
            let newLeader = successor
            let target = try await newLeader.status().heights.store + 10
            for node in ha.nodes {
                try await node.waitForStatus("height ≥ \(target)") { $0.heights.store >= target }
            }
            let restarted = try await leader.waitForStatus("the restarted node follows") {
                $0.ha?.role == "follower" && $0.ha?.leader == newLeader.name
            }
            #expect(restarted.ha?.last_replicated_height ?? 0 >= target)
            for node in ha.nodes where node !== newLeader {
                try await expectSameChain(newLeader, node, through: target)
            }
            #expect(try await newLeader.send(tx: "ha-key-after=failover") == 202)
            for node in ha.nodes {
                try await waitUntil("\(node.name) to hold the transactions from both terms", timeout: .seconds(60),
                                    every: .milliseconds(100)) {
                    try await node.value(forKey: "ha-key-after") == "failover"
                }
                for i in 0..<5 {
                    #expect(try await node.value(forKey: "ha-key-\(i)") == "before-failover")
                }
            }

            try await ha.expectOneChain(through: target, reference: newLeader)
        }
    }

    /// SIGSTOP the leader, then SIGCONT: another node takes over meanwhile, the paused one
    /// publishes nothing after it resumes (its heartbeat and its fence are refused, its gossip and
    /// DA gates shut), steps down, follows and holds off; the leadership then stays put (no
    /// flapping) and the chain never forks.
    @Test func pausedLeaderPublishesNothingAfterResuming() async throws {
        try await HANet.run(nodes: 2) { ha in
            let paused = try await ha.waitForLeader()
            let other = ha.nodes.first { $0 !== paused }!
            try await paused.waitForStatus("five blocks") { $0.heights.store >= 5 }
            let producedBefore = try await ha.producedCount(paused)
            let pid = try #require(paused.child?.pid)
            kill(pid, SIGSTOP)
            let resumed: Bool
            do {
                let taken = try await other.waitForStatus("the other node to lead and produce", timeout: .seconds(30)) {
                    $0.ha?.role == "leader" && $0.heights.store >= 3
                }
                try await other.waitForStatus("blocks beyond the takeover") {
                    $0.heights.store >= taken.heights.store + 5
                }
                kill(pid, SIGCONT)
                resumed = true
            } catch {
                kill(pid, SIGCONT)
                throw error
            }
            #expect(resumed)
            try await paused.waitForStatus("the resumed node to follow") {
                $0.ha?.role == "follower" && $0.ha?.leader == other.name
            }
            // A block may have been fenced and stored between the count and the SIGSTOP; none after.
            let producedAfter = try await ha.producedCount(paused)
            #expect(producedAfter - producedBefore <= 1,
                    "the paused leader produced \(producedAfter - producedBefore) blocks around its pause")
            #expect(paused.allLogs.contains("HA: stepped down"), "the resumed node did not say it stepped down")
            #expect(paused.allLogs.contains("HA: deposed by a take-over"), "the resumed node did not hold off")

            // Bounded: the term that took over stays for 15 block times.
            let term = try #require(try await other.status().ha?.term)
            let steadyUntil = ContinuousClock.now + Self.blockTime * 15
            while ContinuousClock.now < steadyUntil {
                let s = try await other.status()
                #expect(s.ha?.role == "leader" && s.ha?.term == term, "the leadership changed again: \(String(describing: s.ha))")
                try await Task.sleep(for: .milliseconds(100))
            }
            let target = try await other.status().heights.store + 5
            try await ha.expectOneChain(through: target, reference: other)
        }
    }

    /// SIGSTOP a follower for three heartbeat timeouts, then SIGCONT: when it resumes, its own
    /// clock says the leader has been silent, but the leader beat all along: its take-over
    /// transaction (conditional on the last heartbeat it saw) is refused and the term stays.
    @Test func pausedFollowerDoesNotDeposeTheLeader() async throws {
        try await HANet.run(nodes: 2) { ha in
            let leader = try await ha.waitForLeader()
            let follower = ha.nodes.first { $0 !== leader }!
            try await follower.waitForStatus("the follower to follow") { $0.ha?.role == "follower" && $0.heights.store >= 3 }
            let term = try #require(try await leader.status().ha?.term)
            let pid = try #require(follower.child?.pid)
            for _ in 0..<3 {
                kill(pid, SIGSTOP)
                try? await Task.sleep(for: .milliseconds(1500))
                kill(pid, SIGCONT)
                let height = try await leader.status().heights.store
                try await follower.waitForStatus("the resumed follower to follow again") {
                    $0.ha?.role == "follower" && $0.heights.store >= height
                }
            }
            let s = try await leader.status()
            #expect(s.ha?.role == "leader" && s.ha?.term == term, "the paused follower deposed the leader: \(String(describing: s.ha))")
            #expect(!follower.allLogs.contains("HA: took over"), "the paused follower took over")
            let target = s.heights.store + 3
            try await ha.expectOneChain(through: target, reference: leader, fromDA: false)
        }
    }

    /// A stalled etcd (SIGSTOP for longer than the heartbeat timeout, shorter than the lease):
    /// every node sees silence, but etcd takes at most one of their take-overs per term; over
    /// three stalls the leadership changes at most once per stall, production resumes after
    /// each, and no height is ever signed twice.
    @Test func stalledEtcdChangesTheLeaderAtMostOncePerStall() async throws {
        try await HANet.run(nodes: 3) { ha in
            _ = try await ha.waitForLeader()
            let pid = try #require(ha.etcd.child?.pid)
            let stalls = 3
            for i in 0..<stalls {
                let before = try await ha.highestHeight()
                kill(pid, SIGSTOP)
                try? await Task.sleep(for: .milliseconds(1200))
                kill(pid, SIGCONT)
                let leader = try await ha.waitForLeader(timeout: .seconds(30))
                try await leader.waitForStatus("production to resume after stall \(i + 1)") { $0.heights.store >= before + 5 }
            }
            let terms = ha.nodes.map { ha.termsBegun($0) }.reduce(0, +)
            print("HA: \(terms) terms over \(stalls) etcd stalls (the first is the initial election)")
            #expect(terms - 1 <= stalls, "the leadership changed \(terms - 1) times over \(stalls) etcd stalls")
            let leader = try await ha.waitForLeader()
            let target = try await leader.status().heights.store + 3
            try await ha.expectOneChain(through: target, reference: leader)
        }
    }

    /// etcd down: the leader steps down within its lease and no node produces; when etcd returns
    /// (same data) a leader is elected and the chain continues where it stopped.
    @Test func noProductionWhileEtcdIsDown() async throws {
        try await HANet.run(nodes: 2) { ha in
            _ = try await ha.waitForLeader()
            for node in ha.nodes {
                try await node.waitForStatus("five blocks") { $0.heights.store >= 5 }
            }
            await ha.etcd.stop(signal: SIGKILL)
            for node in ha.nodes {
                try await node.waitForStatus("to stop leading without etcd", timeout: .seconds(15)) {
                    $0.ha?.role != "leader" && $0.phase != "aggregating"
                }
            }
            var heights: [UInt64] = []
            for node in ha.nodes { heights.append(try await node.status().heights.store) }
            // Absence needs a span of time: three lease TTLs without a block anywhere.
            let quietUntil = ContinuousClock.now + Self.leaseTTL * 3
            while ContinuousClock.now < quietUntil {
                for (node, height) in zip(ha.nodes, heights) {
                    let s = try await node.status()
                    #expect(s.heights.store <= (heights.max() ?? height),
                            "\(node.name) advanced to \(s.heights.store) while etcd was down")
                    #expect(s.ha?.role != "leader")
                }
                try await Task.sleep(for: .milliseconds(200))
            }

            try await ha.etcd.start()
            let leader = try await ha.waitForLeader(timeout: .seconds(30))
            let resumedFrom = heights.max() ?? 0
            try await leader.waitForStatus("production to resume") { $0.heights.store >= resumedFrom + 5 }
            let other = ha.nodes.first { $0 !== leader }!
            try await other.waitForStatus("the follower to keep up") { $0.heights.store >= resumedFrom + 5 }
            try await expectSameChain(leader, other, through: resumedFrom + 5)
        }
    }
}

// MARK: Harness

/// A test network for the HA group: a local DA, an etcd and `count` aggregators that share the
/// first one's signer key and genesis (each keeps its own node key).
final class HANet {
    let net: Testnet
    let etcd: EtcdProcess
    let nodes: [NodeProcess]

    private init(net: Testnet, etcd: EtcdProcess, nodes: [NodeProcess]) {
        self.net = net
        self.etcd = etcd
        self.nodes = nodes
    }

    /// `Testnet.run` stops the nodes (which revoke their leases) before etcd.
    static func run(nodes count: Int, extra: [String] = [], _ body: (HANet) async throws -> Void) async throws {
        try await Testnet.run(chainID: "ha-chain") { net in
            let etcd = try await net.startEtcd()
            try await net.startDA()
            let nodes = try net.makeHAGroup(count: count, blockTime: DurationParser.format(HATests.blockTime),
                                            leaseTTL: DurationParser.format(HATests.leaseTTL), extra: extra)
            for node in nodes { try await node.start() }
            try await body(HANet(net: net, etcd: etcd, nodes: nodes))
        }
    }

    /// The node that reports itself leader (exactly one may).
    func waitForLeader(timeout: Duration = .seconds(60)) async throws -> NodeProcess {
        try await net.waitForLeader(among: nodes, timeout: timeout)
    }

    func highestHeight() async throws -> UInt64 {
        var top: UInt64 = 0
        for node in nodes where node.isRunning {
            if let s = try? await node.status() { top = max(top, s.heights.store) }
        }
        return top
    }

    /// How many terms `node` began (elected, or took over), over all its runs.
    func termsBegun(_ node: NodeProcess) -> Int {
        let logs = node.allLogs
        return logs.components(separatedBy: "HA: elected leader").count - 1
            + logs.components(separatedBy: "HA: took over the leadership").count - 1
    }

    /// No height signed twice: every running node holds `reference`'s hash at every height
    /// through `height`, a full node without peers that syncs from DA alone holds the same
    /// (DA holds every height once), and no node recorded double-sign evidence.
    func expectOneChain(through height: UInt64, reference: NodeProcess, fromDA: Bool = true) async throws {
        for node in nodes where node.isRunning {
            try await node.waitForStatus("height ≥ \(height)") { $0.heights.store >= height }
            if node !== reference { try await expectSameChain(reference, node, through: height) }
        }
        var checked = nodes.filter(\.isRunning)
        if fromDA {
            let daOnly = try net.makeNode(name: "da-only", aggregator: false, genesisFrom: reference)
            try await daOnly.start()
            try await daOnly.waitForStatus("DA to deliver every height through \(height)", timeout: .seconds(120)) {
                $0.heights.store >= height
            }
            try await expectSameChain(reference, daOnly, through: height)
            checked.append(daOnly)
        }
        for node in checked {
            #expect(try await node.status().evidence == 0, "\(node.name) recorded double-sign evidence")
        }
    }

    func producedCount(_ node: NodeProcess) async throws -> Double {
        metricValue(try await node.metrics(), "evnode_blocks_produced_total") ?? 0
    }
}
