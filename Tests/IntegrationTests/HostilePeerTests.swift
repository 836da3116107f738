import Foundation
import ProcessKit
import Synchronization
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

// Issue 27 §4: a node on the open internet, attacked. An aggregator makes 100 ms blocks and a
// full node follows it over P2P; a stranger that completed a real Noise handshake
// (Tests/IntegrationTests/py/hostile_peer.py on libp2p_wire.py, written from the libp2p specs,
// not from this node) sends it what the security review found unbounded. After each attack the
// aggregator must be alive and have kept producing, its memory within a bound of what it was
// before, and the full node following it over P2P, never having banned it.

/// What the test holds the nodes to, and why.
enum HostileBounds {
    /// Peak RSS over what the node held before the attack (and, over the whole test, over its
    /// baseline). The fixes bound what a peer can make a node hold: P2P buffers per connection
    /// and node-wide, header-ex answers streamed block by block with requests per peer capped,
    /// unpaired gossiped data under a byte budget (README "Under attack" states each bound).
    /// Their sum with slack for the allocator (memory glibc keeps after a burst) stays under
    /// 256 MiB; without the fixes each memory attack passes it within seconds (+0.6 to +1.4 GiB
    /// measured on main, where the attacker's guard stops it).
    static let rssMiB = 256.0
    /// Blocks produced during an attack, as a share of the baseline rate. The attacker shares
    /// the two cores (it encrypts hundreds of MB), so some slowdown is the machine's; on main
    /// the replay attack stops production for tens of seconds.
    static let duringRate = 0.5
    /// …and in the seconds after it.
    static let afterRate = 0.7
    /// "Following": connected to the aggregator and at most this many heights behind it (half a
    /// second of blocks; a full node following from DA alone lags by more).
    static let maxLag: UInt64 = 5
    /// How long the full node may take to be connected and caught up again after an attack.
    static let recovery: Duration = .seconds(15)
    /// How long a restarted full node may take to be connected to the aggregator again while
    /// idle sockets keep every unreserved slot taken: the aggregator redials its configured peer
    /// (backoff from 0.5 s, doubling) into a slot reserved for configured peers.
    static let reconnect: Duration = .seconds(20)
    /// The attacker stops once a node's RSS is this far over what it held before the attack:
    /// far enough to show a missing bound, not so far as to hurt the shared machine.
    static let guardMiB = 1024.0
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// VmRSS (or another `Vm…` field) of a process in MiB; nil once it is gone.
func residentMiB(_ pid: Int32, field: String = "VmRSS") -> Double? {
    guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix(field + ":") {
        return line.split(separator: " ").dropFirst().first.flatMap { Double($0) }.map { $0 / 1024 }
    }
    return nil
}

/// Resets the kernel's peak-RSS mark (VmHWM) of `pid` (`clear_refs` 5), so that VmHWM after an
/// attack is that attack's peak, even between two samples. False where the kernel refuses.
func resetPeakRSS(_ pid: Int32) -> Bool {
    (try? "5".write(toFile: "/proc/\(pid)/clear_refs", atomically: false, encoding: .utf8)) != nil
}

/// One observation of both nodes.
struct HostileSample {
    let at: ContinuousClock.Instant
    let aggregatorRSS: Double?
    let aggregatorHeight: UInt64?
    let fullRSS: Double?
    let fullHeight: UInt64?
    let fullPeers: Int?
}

/// Samples both nodes every 250 ms in the background: RSS from /proc, heights and peers from
/// `/status` (a sample whose `/status` did not answer has no height).
final class HostileWatch: Sendable {
    private final class Samples: Sendable {
        let list = Mutex<[HostileSample]>([])
    }

    private let samples = Samples()
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(aggregator: NodeProcess, full: NodeProcess) {
        let samples = self.samples
        let t = Task {
            while !Task.isCancelled {
                async let agg = try? aggregator.status()
                async let fol = try? full.status()
                let (a, f) = await (agg, fol)
                let s = HostileSample(at: .now, aggregatorRSS: aggregator.child.flatMap { residentMiB($0.pid) },
                                      aggregatorHeight: a?.heights.store,
                                      fullRSS: full.child.flatMap { residentMiB($0.pid) },
                                      fullHeight: f?.heights.store, fullPeers: f?.peers)
                samples.list.withLock { $0.append(s) }
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
        task.withLock { $0 = t }
    }

    func stop() { task.withLock { $0?.cancel() } }

    func window(_ from: ContinuousClock.Instant, _ to: ContinuousClock.Instant) -> [HostileSample] {
        samples.list.withLock { all in all.filter { $0.at >= from && $0.at <= to } }
    }
}

/// Blocks per second `node` produced between two wall-clock times, from the blocks' own
/// timestamps: a node too busy to answer `/status` during an attack can still be measured
/// afterwards, and one that answers but stopped producing cannot hide it.
func productionRate(_ node: NodeProcess, from: Date, to: Date) async throws -> Double {
    let top = try await node.status().heights.store
    /// The highest height whose block time is at or before `date` (0 if none).
    func height(at date: Date) async throws -> UInt64 {
        let limit = UInt64(date.timeIntervalSince1970 * 1e9)
        var lo: UInt64 = 0, hi = top            // time(lo) <= limit (height 0: before genesis)
        while lo < hi {
            let mid = lo + (hi - lo + 1) / 2
            guard let b = try await node.block(mid) else { throw TestFailure("\(node.name) lacks block \(mid)") }
            if b.time_ns <= limit { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }
    let a = try await height(at: from), b = try await height(at: to)
    return Double(b - a) / to.timeIntervalSince(from)
}

/// The figures of one attack, printed for README's "Under attack" table.
struct AttackFigures: Encodable {
    var attack: String
    var aggregatorAlive = true
    var rssBeforeMiB = 0.0
    var rssPeakMiB = 0.0
    var rssAfterMiB = 0.0
    var fullRSSBeforeMiB = 0.0
    var fullRSSPeakMiB = 0.0
    var blocksPerSecondBaseline = 0.0
    var blocksPerSecondDuring: Double?
    var blocksPerSecondAfter: Double?
    var attackSeconds = 0.0
    var fullFollowing = false
    /// The largest lag sampled while the attack ran (a figure; the bound is checked after it).
    var fullMaxLagDuring: Int64?
    var fullLagAfter: Int64?
    var reconnectSeconds: Double?
    var attacker = ""
}

@Suite(.serialized, .enabled(if: PyLibp2p.available, "py-libp2p virtualenv missing: run `make deps`"))
struct HostilePeerTests {
    static var script: String { PyLibp2p.repoRoot.appendingPathComponent("Tests/IntegrationTests/py/hostile_peer.py").path }

    /// The attacks run one after another against one aggregator; after each, every bound is
    /// checked and its figures printed (`hostile-peer figures: {…}`). Every broken bound is
    /// listed at the end, with its numbers. The near-future data goes last: without the fixes it
    /// gets the aggregator banned by the full node for 10 minutes, which would hide what the
    /// attacks after it do to the full node.
    @Test(.timeLimit(.minutes(5))) func aggregatorAndFullNodeWithstandAHostilePeer() async throws {
        try await Testnet.run(chainID: "hostile") { net in
            _ = try await net.startDA()
            let agg = try net.makeNode(name: "aggregator", aggregator: true, blockTime: "100ms")
            let full = try net.makeNode(name: "full", genesisFrom: agg)
            // Each lists the other by multiaddr (its id proven by Noise): the aggregator's dial to
            // the full node is a configured peer's, which gets a reserved slot.
            agg.flags += ["--p2p.peers", try full.multiaddr]
            full.flags += ["--p2p.peers", try agg.multiaddr]
            try await agg.start()
            try await full.start()
            let aggID = try agg.peerID.description
            let fullID = try full.peerID.description
            let aggPID = try #require(agg.child?.pid)

            // Big blocks for the header-ex attack: a 64-block data answer must exceed a stream's
            // 256 KiB window, or every answer fits and withholding window holds nothing.
            try await agg.waitForHeight(10)
            let origin = try await agg.status().heights.store + 1
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<4 {
                    group.addTask { try await agg.submit(tx: "big\(i)=" + String(repeating: "x", count: 900 * 1024)) }
                }
                try await group.waitForAll()
            }
            try await waitUntil("the big transactions in blocks", timeout: .seconds(30)) {
                for i in 0..<4 where try await agg.value(forKey: "big\(i)") == nil { return false }
                return true
            }
            let committedBy = try await agg.status().heights.store
            try #require(committedBy < origin + 64, "the big blocks landed above \(origin)…\(origin + 63)")

            let watch = HostileWatch(aggregator: agg, full: full)
            defer { watch.stop() }
            try await waitForFollowing(full, agg, within: .seconds(30))
            let baselineFrom = Date()
            try await Task.sleep(for: .seconds(5))
            let baselineRate = try await productionRate(agg, from: baselineFrom, to: Date())
            let baselineRSS = try #require(residentMiB(aggPID))
            let fullBaselineRSS = try #require(full.child.flatMap { residentMiB($0.pid) })
            print("hostile-peer baseline: aggregator \(Int(baselineRSS)) MiB, \(String(format: "%.1f", baselineRate)) blocks/s; full node \(Int(fullBaselineRSS)) MiB")

            var problems: [String] = []
            var figures: [AttackFigures] = []
            func attack(_ mode: String, _ args: [String], seconds: Int,
                        during: ((ChildProcess) async throws -> Double?)? = nil) async throws {
                guard agg.isRunning else { return }
                var f = AttackFigures(attack: mode, blocksPerSecondBaseline: baselineRate)
                f.rssBeforeMiB = residentMiB(aggPID) ?? 0
                f.fullRSSBeforeMiB = full.child.flatMap { residentMiB($0.pid) } ?? 0
                let peakReset = resetPeakRSS(aggPID)
                // Over what each node holds now (a node without the fixes keeps what an earlier
                // attack left: the next must still run); the full node's process changes when the
                // idle attack restarts it.
                let guards = ["--guard", "\(aggPID):\(Int(f.rssBeforeMiB + HostileBounds.guardMiB))"]
                    + (full.child.map { ["--guard", "\($0.pid):\(Int(f.fullRSSBeforeMiB + HostileBounds.guardMiB))"] } ?? [])
                let start = ContinuousClock.now, startDate = Date()
                let child = try net.startProcess(
                    name: "hostile-\(mode)", executable: PyLibp2p.python,
                    arguments: [Self.script, mode, "--target", try agg.multiaddr, "--chain-id", net.chainID,
                                "--duration", "\(seconds)"] + guards + args)
                if let during { f.reconnectSeconds = try await during(child) }
                _ = try await child.waitForExit("the \(mode) attack to end", timeout: .seconds(seconds + 60))
                let endDate = Date()
                f.attackSeconds = endDate.timeIntervalSince(startDate)
                let result = Self.result(of: child)
                f.attacker = result.text
                if let error = result.error { problems.append("\(mode): the attacker failed: \(error)") }
                // The attack counts only if it reached the node: a handshake, or the idle sockets.
                if mode == "idle-connections" {
                    if (result.object["peak_open"] as? Int ?? 0) < 64 {
                        problems.append("\(mode): fewer than 64 sockets were open at once: \(result.text)")
                    }
                } else if (result.object["handshakes"] as? Int ?? 0) < 1 {
                    problems.append("\(mode): no Noise handshake completed, so nothing was tested: \(result.text)")
                }

                // Recovery: connected and caught up again, then a few seconds of production.
                f.fullFollowing = (try? await waitForFollowing(full, agg, within: HostileBounds.recovery)) != nil
                let afterDate = Date()
                try await Task.sleep(for: .seconds(3))
                f.aggregatorAlive = agg.isRunning
                if f.aggregatorAlive {
                    f.blocksPerSecondDuring = try? await productionRate(agg, from: startDate, to: endDate)
                    f.blocksPerSecondAfter = try? await productionRate(agg, from: afterDate, to: Date())
                }
                let samples = watch.window(start, .now)
                let hwm = peakReset ? (residentMiB(aggPID, field: "VmHWM") ?? 0) : 0
                f.rssPeakMiB = max(samples.compactMap(\.aggregatorRSS).max() ?? 0, hwm)
                f.rssAfterMiB = residentMiB(aggPID) ?? 0
                f.fullRSSPeakMiB = samples.compactMap(\.fullRSS).max() ?? 0
                func lag(_ s: HostileSample) -> Int64? {
                    guard let a = s.aggregatorHeight, let b = s.fullHeight else { return nil }
                    return Int64(a) - Int64(b)
                }
                f.fullMaxLagDuring = watch.window(start, start + .seconds(f.attackSeconds)).compactMap(lag).max()
                f.fullLagAfter = samples.reversed().lazy.compactMap(lag).first
                figures.append(f)
                print("hostile-peer figures: \(String(decoding: try JSONEncoder().encode(f), as: UTF8.self))")

                func rate(_ r: Double?) -> String { r.map { String(format: "%.2f", $0) } ?? "none measured" }
                if !f.aggregatorAlive {
                    problems.append("\(mode): the aggregator died: \(agg.child?.exitDescription ?? "")")
                    return
                }
                if f.rssPeakMiB - f.rssBeforeMiB > HostileBounds.rssMiB {
                    problems.append("\(mode): aggregator RSS peaked at \(Int(f.rssPeakMiB)) MiB, +\(Int(f.rssPeakMiB - f.rssBeforeMiB)) MiB over the \(Int(f.rssBeforeMiB)) MiB before the attack (bound +\(Int(HostileBounds.rssMiB)))")
                }
                if f.fullRSSPeakMiB - f.fullRSSBeforeMiB > HostileBounds.rssMiB {
                    problems.append("\(mode): full node RSS peaked at \(Int(f.fullRSSPeakMiB)) MiB, +\(Int(f.fullRSSPeakMiB - f.fullRSSBeforeMiB)) MiB over the \(Int(f.fullRSSBeforeMiB)) MiB before the attack (bound +\(Int(HostileBounds.rssMiB)))")
                }
                if (f.blocksPerSecondDuring ?? 0) < HostileBounds.duringRate * baselineRate {
                    problems.append("\(mode): \(rate(f.blocksPerSecondDuring)) blocks/s produced during the attack, baseline \(rate(baselineRate)) (bound \(HostileBounds.duringRate)×)")
                }
                if (f.blocksPerSecondAfter ?? 0) < HostileBounds.afterRate * baselineRate {
                    problems.append("\(mode): \(rate(f.blocksPerSecondAfter)) blocks/s produced after the attack, baseline \(rate(baselineRate)) (bound \(HostileBounds.afterRate)×)")
                }
                if !f.fullFollowing {
                    problems.append("\(mode): the full node was not following the aggregator over P2P \(HostileBounds.recovery) after the attack (lag \(f.fullLagAfter.map(String.init) ?? "?"), peers \(samples.last?.fullPeers.map(String.init) ?? "?"))")
                }
                let bans = Self.bans(of: aggID, in: full.allLogs) + Self.bans(of: fullID, in: agg.allLogs)
                if !bans.isEmpty, !problems.contains(where: { $0.hasPrefix("an honest node was banned") }) {
                    problems.append("an honest node was banned (seen after \(mode)):\n" + bans.prefix(3).joined(separator: "\n"))
                }
            }

            // Each attack comes from addresses of its own (127.0.N.x): a ban one earns cannot
            // shield the node from the next, and none falls on the honest nodes' 127.0.0.1.
            try await attack("oversized-frame", ["--sources", "127.0.1.1-127.0.1.8", "--bytes", "\(400 << 20)"], seconds: 25)
            try await attack("header-ex-no-window", ["--sources", "127.0.2.1-127.0.2.8", "--origin", "\(origin)",
                                                     "--connections", "4", "--streams", "200"], seconds: 10)
            try await attack("data-far-future", ["--sources", "127.0.3.1-127.0.3.8", "--count", "142"], seconds: 25)
            try await attack("replay", ["--sources", "127.0.4.1-127.0.4.16", "--copies", "20000", "--parallel", "2"],
                             seconds: 10)
            // Idle sockets, 16 of them from the full node's own address: once they hold every
            // slot, the full node restarts and must be connected to the aggregator again while
            // they stay.
            try await attack("idle-connections", ["--sources", "127.0.0.1*16,127.0.6.1-127.0.6.56", "--connections", "128"],
                             seconds: 45) { flood in
                _ = try await flood.waitForLine("the idle sockets open", timeout: .seconds(30)) {
                    $0.contains("\"flooding\"") ? true : nil
                }
                await full.stop()
                try await full.start()
                let restarted = ContinuousClock.now
                let connected = (try? await waitUntil("the restarted full node connected to the aggregator",
                                                      timeout: HostileBounds.reconnect, every: .milliseconds(200)) {
                    (try? await full.status().peers) ?? 0 >= 1
                }) != nil
                let seconds = (ContinuousClock.now - restarted).seconds
                flood.signal(SIGTERM)
                if !connected {
                    problems.append("idle-connections: the restarted full node was not connected to the aggregator within \(HostileBounds.reconnect) while the idle sockets stayed")
                }
                return connected ? seconds : nil
            }
            try await attack("data-near-future", ["--sources", "127.0.5.1-127.0.5.8"], seconds: 8)
            watch.stop()

            if figures.count < 6 { problems.append("the aggregator died before every attack ran (\(figures.count) of 6)") }
            let overall = figures.map(\.rssPeakMiB).max() ?? 0
            if overall - baselineRSS > HostileBounds.rssMiB {
                problems.append("over all the attacks the aggregator's RSS peaked at \(Int(overall)) MiB, +\(Int(overall - baselineRSS)) MiB over its baseline \(Int(baselineRSS)) MiB (bound +\(Int(HostileBounds.rssMiB)))")
            }
            // Whatever happened, both hold the same chain at the heights the full node has last.
            if agg.isRunning, full.isRunning {
                let top = try await full.status().heights.store
                for h in (top > 10 ? top - 10 : 1)...max(top, 1) {
                    let a = try await agg.block(h)?.hash, b = try await full.block(h)?.hash
                    if a != b { problems.append("height \(h): aggregator \(a ?? "none"), full node \(b ?? "none")") }
                }
            }
            if !problems.isEmpty {
                throw TestFailure("\(problems.count) bounds broken:\n- " + problems.joined(separator: "\n- "))
            }
        }
    }

    /// Waits until the full node is connected and within `HostileBounds.maxLag` of the aggregator.
    private func waitForFollowing(_ full: NodeProcess, _ agg: NodeProcess, within: Duration) async throws {
        try await waitUntil("the full node following the aggregator over P2P", timeout: within, every: .milliseconds(200)) {
            guard let a = try? await agg.status(), let f = try? await full.status(), f.peers >= 1 else { return false }
            return a.heights.store <= f.heights.store + HostileBounds.maxLag
        }
    }

    /// The attacker's last JSON line: its result object and text, or its error.
    static func result(of child: ChildProcess) -> (object: [String: Any], text: String, error: String?) {
        for line in child.lines.reversed() where line.hasPrefix("{") {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { continue }
            switch o["event"] as? String {
            case "result": return (o, line, nil)
            case "error": return (o, line, "\(o["error"] ?? "")\n\(o["trace"] ?? "")")
            default: continue
            }
        }
        return ([:], "", "no result line; it \(child.exitDescription): \(child.output.suffix(2000))")
    }

    /// The log lines that name `peer` and a ban (banning it, or refusing it as banned).
    static func bans(of peer: String, in logs: String) -> [String] {
        logs.split(separator: "\n").filter { $0.contains(peer) && $0.lowercased().contains("ban") }.map(String.init)
    }
}
