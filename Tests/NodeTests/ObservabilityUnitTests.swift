@testable import Node
import DAClient
import Submission
import Foundation
import Logging
import Telemetry
import Testing

/// The parts of issue 30 that are pure: the exposition writer, the lock-free cells and their
/// bounds, the event-stream parser, the dashboard feed's bounds, ev-node's failure reasons.
@Suite struct ObservabilityUnitTests {
    @Test func histogramIsCumulativeWithInfAndSum() {
        let h = HistogramCell(upperBounds: [1, 5, 10])
        for v in [0.5, 1, 3, 7, 100] { h.observe(v) }
        #expect(h.cumulativeCounts == [2, 3, 4, 5])
        #expect(h.count == 5)
        #expect(h.sum == 111.5)
        var text = PrometheusText()
        text.family("x", .histogram, help: "a \"help\"\nline")
        text.histogram("x", [("chain_id", "c\"1")], h)
        #expect(text.output == """
            # HELP x a "help"\\nline
            # TYPE x histogram
            x_bucket{chain_id="c\\"1",le="1"} 2
            x_bucket{chain_id="c\\"1",le="5"} 3
            x_bucket{chain_id="c\\"1",le="10"} 4
            x_bucket{chain_id="c\\"1",le="+Inf"} 5
            x_sum{chain_id="c\\"1"} 111.5
            x_count{chain_id="c\\"1"} 5

            """)
    }

    @Test func histogramSumHoldsUnderConcurrentObservers() async {
        let h = HistogramCell(upperBounds: [0.5])
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 {
                group.addTask { for _ in 0..<10_000 { h.observe(1) } }
            }
        }
        #expect(h.count == 80_000)
        #expect(h.sum == 80_000)
        #expect(h.cumulativeCounts == [0, 80_000])
    }

    /// Peer ids are chosen by strangers: the per-peer series stop growing at the capacity.
    @Test func labeledCellsAreBounded() {
        let cells = LabeledCells<CounterCell>(labelNames: ["peer_id"], capacity: 3) { CounterCell() }
        for i in 0..<100 { cells.cell(["peer-\(i)"]).add(1) }
        let all = cells.all
        #expect(all.count == 4)
        #expect(all.first { $0.values == ["other"] }?.cell.value == 97)
        #expect(cells.cell(["peer-1"]).value == 1)
        cells.remove(["peer-1"])
        #expect(cells.all.count == 3)
    }

    @Test func everyEvNodeSeriesCarriesChainID() {
        let m = EvNodeMetrics(namespace: "rollup", chainID: "chain-7")
        m.chain.produced(height: 9, txs: 3, txBytes: 120, took: .milliseconds(20))
        m.submitter.failed(.insufficientFee, unixTime: 1_700_000_000)
        m.p2p.connection(peer: "12D3KooWpeer").received.add(42)
        var text = PrometheusText()
        m.render(into: &text)
        let samples = text.output.split(separator: "\n").filter { !$0.hasPrefix("#") }
        #expect(!samples.isEmpty)
        for line in samples {
            #expect(line.hasPrefix("rollup_sequencer_") || line.hasPrefix("rollup_p2p_"), "\(line)")
            #expect(line.contains("chain_id=\"chain-7\""), "\(line)")
        }
        #expect(text.output.contains("rollup_sequencer_latest_block_height{chain_id=\"chain-7\"} 9\n"))
        #expect(text.output.contains("rollup_sequencer_total_txs{chain_id=\"chain-7\"} 3\n"))
        #expect(text.output.contains("rollup_sequencer_da_submitter_failures_total{chain_id=\"chain-7\",reason=\"insufficient_fee\"} 1\n"))
        #expect(text.output.contains("rollup_sequencer_da_submitter_last_failure_timestamp{chain_id=\"chain-7\",reason=\"insufficient_fee\"} 1700000000\n"))
        #expect(text.output.contains("rollup_p2p_peer_receive_bytes_total{chain_id=\"chain-7\",peer_id=\"12D3KooWpeer\",chID=\"tcp\"} 42\n"))
    }

    @Test func submitFailuresMapToEvNodesReasons() {
        func reason(_ e: DAError) -> DASubmitterFailureReason { SubmitFailure.classify(e).evNodeReason(of: e) }
        #expect(reason(.rpc(method: "blob.Submit", code: 1, message: "insufficient fees; got: 1utia required: 2utia")) == .insufficientFee)
        #expect(reason(.rpc(method: "blob.Submit", code: 1, message: "state: estimated gas price exceeds max gas price in tx config")) == .insufficientFee)
        #expect(reason(.blobTooLarge(message: "too big")) == .tooBig)
        #expect(reason(.rpc(method: "blob.Submit", code: 1, message: "tx too large")) == .tooBig)
        #expect(reason(.rpc(method: "blob.Submit", code: 1, message: "tx already in mempool")) == .alreadyInMempool)
        #expect(reason(.rpc(method: "blob.Submit", code: 1, message: "timed out waiting for tx to be included in a block")) == .notIncludedInBlock)
        #expect(reason(.transport(code: 28, message: "timeout", url: "http://da")) == .timeout)
        #expect(reason(.cancelled) == .contextCanceled)
        #expect(reason(.rpc(method: "blob.Submit", code: 1, message: "mempool is full")) == .unknown)
        #expect(reason(.transport(code: 7, message: "refused", url: "http://da")) == .unknown)
    }

    @Test func eventStreamParserSplitsEventsAndBoundsThem() throws {
        var parser = EventStreamParser(maxEventBytes: 64)
        var events = try parser.feed(Array("retry: 1\nevent: history\ndata: [1,".utf8))
        #expect(events.isEmpty)
        events = try parser.feed(Array("2]\n\n: comment\nevent: snapshot\r\ndata: {}\r\n\r\ndata: x\n\n".utf8))
        #expect(events == [.init(name: "history", data: "[1,2]"), .init(name: "snapshot", data: "{}"),
                           .init(name: "message", data: "x")])
        #expect(throws: EventStreamParser.TooLong.self) {
            _ = try parser.feed([UInt8](repeating: UInt8(ascii: "a"), count: 65))
        }
    }

    @Test func dashboardFeedBoundsHistoryAndStreams() throws {
        let feed = DashboardFeed(maxSubscribers: 2)
        for i in 0..<(DashboardFeed.historyCapacity + 50) {
            feed.sample(Self.snapshot(time: Double(i), store: UInt64(i) * 3))
        }
        #expect(feed.history.count == DashboardFeed.historyCapacity)
        #expect(feed.history.first?.store == 150)
        // 3 blocks a second over the last ten samples.
        #expect(feed.latestSnapshot?.blocks_per_second == 3)
        let first = try #require(feed.latest(after: 0))
        #expect(feed.latest(after: first.sequence) == nil)
        let a = feed.subscribe(), b = feed.subscribe()
        #expect(a != nil && b != nil)
        #expect(feed.subscribe() == nil)
        a?.close()
        a?.close()
        #expect(feed.subscriberCount == 1)
        #expect(feed.subscribe() != nil)
    }

    @Test func blobIDsRoundTripAsEvNodeLaysThemOut() {
        let id = DASubmissionRecord.blobID(daHeight: 0x0102, commitment: [9, 9])
        #expect(id == [0x02, 0x01, 0, 0, 0, 0, 0, 0, 9, 9])
        let split = DASubmissionRecord.splitBlobID(id)
        #expect(split?.daHeight == 0x0102 && split?.commitment == [9, 9])
        #expect(DASubmissionRecord.splitBlobID([1, 2, 3]) == nil)
    }

    static func snapshot(time: Double, store: UInt64) -> DashboardSnapshot {
        DashboardSnapshot(
            time: time,
            status: NodeStatus(mode: "full", phase: .syncing, chain_id: "c", heights: .init(store: store),
                               catchup: .init(), peers: 0, evidence: 0, proposer: "", app_hash: ""),
            blocks_per_second: 0, peers: [], submissions: nil, signer_mark: nil, da_visualization: false)
    }
}

/// ev-node's DA visualizer verdicts and shapes over a submission log (the routes' JSON is checked
/// against a running aggregator in `ObservabilityTests`).
@Suite struct DAVisualizerTests {
    struct Log: DashboardBackend {
        let feed = DashboardFeed()
        let daVisualizationEnabled = true
        var submitsToDA: Bool
        var submissions: [DASubmissionRecord]
        var daConnected = true

        func blob(daHeight: UInt64, namespace: DANamespace, commitment: [UInt8]) async throws(DAError) -> DABlob {
            throw .cancelled
        }
    }

    static func record(_ status: DASubmissionRecord.Status, secondsAgo: Double, now: Date) -> DASubmissionRecord {
        DASubmissionRecord(daHeight: status == .success ? 7 : 0,
                           blobs: [DABlob(namespace: DANamespace(name: "ns"), data: [1, 2, 3])],
                           gasPrice: nil, status: status, message: status == .success ? nil : "refused",
                           at: now.addingTimeInterval(-secondsAgo))
    }

    @Test func aNodeThatDoesNotSubmitSaysSoAsEvNode() {
        let log = Log(submitsToDA: false, submissions: [])
        let submissions = DAVisualizer.submissions(log)
        #expect(submissions["is_aggregator"] as? Bool == false)
        #expect(submissions["total"] as? Int == 0)
        #expect((submissions["submissions"] as? [Any])?.isEmpty == true)
        #expect(DAVisualizer.stats(log)["total_submissions"] as? Int == 0)
        let health = DAVisualizer.health(log, now: Date())
        #expect(health["status"] as? String == "n/a" && health["connection_status"] as? String == "n/a")
    }

    @Test func healthFollowsEvNodesThresholds() {
        let now = Date()
        // 3 errors in the last 10: 30 % > 20 %: degraded.
        var records = (0..<7).map { Self.record(.success, secondsAgo: Double(20 - $0), now: now) }
        records += (0..<3).map { Self.record(.error, secondsAgo: Double(3 - $0), now: now) }
        var health = DAVisualizer.health(Log(submitsToDA: true, submissions: records), now: now)
        #expect(health["status"] as? String == "degraded")
        #expect(health["is_healthy"] as? Bool == false)
        #expect((health["metrics"] as? [String: Any])?["recent_error_rate"] as? String == "30.0%")
        // Only successes, the last 10 minutes ago: unhealthy (5 min), then warning (2 min) wins.
        health = DAVisualizer.health(Log(submitsToDA: true, submissions: [Self.record(.success, secondsAgo: 600, now: now)]), now: now)
        #expect(health["status"] as? String == "warning" && health["is_healthy"] as? Bool == false)
        #expect((health["issues"] as? [String])?.count == 2)
        health = DAVisualizer.health(Log(submitsToDA: true, submissions: []), now: now)
        #expect(health["status"] as? String == "unknown")
        let stats = DAVisualizer.stats(Log(submitsToDA: true, submissions: records))
        #expect(stats["success_rate"] as? String == "70.00%")
        #expect(stats["error_count"] as? Int == 3 && stats["total_blob_size"] as? Int == 30)
        let newest = (DAVisualizer.submissions(Log(submitsToDA: true, submissions: records))["submissions"] as? [[String: Any]])?.first
        #expect(newest?["status_code"] as? String == "Error" && newest?["message"] as? String == "refused")
        #expect(newest?["blob_ids"] == nil)
    }
}

@Suite struct RateMeterTests {
    /// A rollback during catch-up lowers the height. The rate then measures from the rollback on,
    /// instead of wrapping the height difference to ~10¹⁸ blocks/s and the ETA to ~0.
    @Test func aRollbackRestartsTheWindowInsteadOfWrapping() throws {
        let start = ContinuousClock.now
        var meter = RateMeter(startHeight: 1000, at: start)
        meter.record(height: 2000, at: start + .seconds(1))
        #expect(meter.blocksPerSecond == 1000)
        meter.record(height: 900, at: start + .seconds(2))
        #expect(meter.blocksPerSecond == 0)
        #expect(meter.eta(from: 900, to: 5000) == nil)
        meter.record(height: 1400, at: start + .seconds(3))
        #expect(meter.blocksPerSecond == 500)
        let eta = try #require(meter.eta(from: 1400, to: 2400))
        #expect(eta == 2)
    }
}

@Suite struct NodeStateTests {
    /// A part that winds down after the halt (the syncer leaving its phase, an HA campaign)
    /// must not make a halted node look like it syncs again, nor replace the halt's reason.
    @Test func haltedIsTerminalAndKeepsItsFirstReason() {
        let state = NodeState(metrics: NodeMetrics(), logger: Logger(label: "test"))
        state.enter(.syncing)
        state.enter(.halted, reason: "forced transaction omitted")
        state.enter(.syncing, reason: "HA follower")
        state.enter(.halted, reason: "the syncer stopped")
        state.leave(.halted, to: .aggregating)
        #expect(state.phase == .halted)
        #expect(state.snapshot.reason == "forced transaction omitted")
    }
}
