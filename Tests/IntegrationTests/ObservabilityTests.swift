import Foundation
import ProcessKit
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

/// What an operator watches (issue 30): ev-node's Prometheus series on the Prometheus listener,
/// read by `prometheus_client`'s parser (PyPI, not evnode's code); the dashboard and its event
/// stream; ev-node's DA visualizer routes; `evnode status --watch` through a pipe. One aggregator
/// and one full node that follows it over P2P and DA, real processes on loopback.
@Suite(.serialized) struct ObservabilityTests {
    /// `prometheus_client` comes with the py-libp2p virtualenv `make deps` makes.
    static var python: URL { BuiltProducts.packageRoot.appendingPathComponent(".build/venv-libp2p/bin/python") }
    static var parser: String {
        BuiltProducts.packageRoot.appendingPathComponent("Tests/IntegrationTests/py/parse_metrics.py").path
    }

    struct Family: Decodable {
        struct Sample: Decodable {
            let name: String
            let labels: [String: String]
            let value: Double
        }
        let type: String
        let help: String
        let samples: [Sample]
    }

    /// The text at `url`, parsed by prometheus_client (a text it rejects fails the test).
    static func scrape(_ url: String) async throws -> [String: Family] {
        let response = try await HTTP.get(url)
        guard response.status == 200 else { throw TestFailure("\(url): HTTP \(response.status)") }
        let input = FileManager.default.temporaryDirectory.appendingPathComponent("metrics-\(UUID().uuidString).txt")
        try response.body.write(to: input)
        defer { try? FileManager.default.removeItem(at: input) }
        let parsed = try runCommand(URL(fileURLWithPath: "/usr/bin/sh"), ["-c", "\"$0\" \"$1\" < \"$2\"", python.path, parser, input.path])
        guard parsed.status == 0 else { throw TestFailure("prometheus_client rejected \(url):\n\(parsed.stderr)") }
        return try JSONDecoder().decode([String: Family].self, from: Data(parsed.stdout.utf8))
    }

    /// ev-node's families as prometheus_client names them (counters without `_total`) and their types.
    static let evNodeFamilies: [(String, String)] = [
        ("evnode_sequencer_height", "gauge"), ("evnode_sequencer_latest_block_height", "gauge"),
        ("evnode_sequencer_num_txs", "gauge"), ("evnode_sequencer_total_txs", "gauge"),
        ("evnode_sequencer_block_size_bytes", "gauge"), ("evnode_sequencer_txs_per_block", "histogram"),
        ("evnode_sequencer_operation_duration_seconds", "histogram"),
        ("evnode_sequencer_blocks_synchronized", "counter"),
        ("evnode_sequencer_da_retrieval_attempts", "counter"), ("evnode_sequencer_da_retrieval_successes", "counter"),
        ("evnode_sequencer_da_retrieval_failures", "counter"), ("evnode_sequencer_da_inclusion_height", "gauge"),
        ("evnode_sequencer_da_submitter_pending_blobs", "gauge"), ("evnode_sequencer_da_submitter_resends", "counter"),
        ("evnode_sequencer_da_submitter_failures", "counter"),
        ("evnode_sequencer_da_submitter_last_failure_timestamp", "gauge"),
        ("evnode_sequencer_forced_inclusion_txs_in_grace_period", "gauge"),
        ("evnode_sequencer_forced_inclusion_txs_malicious", "counter"),
        ("evnode_p2p_peers", "gauge"), ("evnode_p2p_peer_receive_bytes", "counter"),
        ("evnode_p2p_peer_send_bytes", "counter"), ("evnode_p2p_peer_pending_send_bytes", "gauge"),
        ("evnode_p2p_num_txs", "gauge"), ("evnode_p2p_message_receive_bytes", "counter"),
        ("evnode_p2p_message_send_bytes", "counter"),
    ]

    static func value(_ families: [String: Family], _ family: String, sample: String? = nil,
                      _ labels: [String: String] = [:]) -> Double {
        families[family]?.samples.first { s in
            s.name == (sample ?? family) && labels.allSatisfy { s.labels[$0.key] == $0.value }
        }?.value ?? -1
    }

    static func checkNamesAndLabels(_ families: [String: Family], chainID: String, node: String) {
        for (name, type) in evNodeFamilies {
            guard let family = families[name] else {
                Issue.record("\(node): no \(name) in /metrics")
                continue
            }
            #expect(family.type == type, "\(node): \(name) is a \(family.type), ev-node's is a \(type)")
            #expect(!family.help.isEmpty, "\(node): \(name) has no help text")
            for sample in family.samples {
                #expect(sample.labels["chain_id"] == chainID, "\(node): \(sample.name) \(sample.labels) lacks chain_id")
            }
        }
        let reasons = Set(families["evnode_sequencer_da_submitter_failures"]?.samples.compactMap { $0.labels["reason"] } ?? [])
        #expect(reasons == ["already_rejected", "insufficient_fee", "timeout", "already_in_mempool",
                            "not_included_in_block", "too_big", "context_canceled", "unknown"], "\(node): reasons \(reasons)")
        let sources = Set(families["evnode_sequencer_blocks_synchronized"]?.samples.compactMap { $0.labels["source"] } ?? [])
        #expect(sources == ["da", "p2p", "raft"], "\(node): sources \(sources)")
        let operations = Set(families["evnode_sequencer_operation_duration_seconds"]?.samples.compactMap { $0.labels["operation"] } ?? [])
        #expect(operations == ["block_production", "da_submission", "block_retrieval", "block_validation", "state_update"],
                "\(node): operations \(operations)")
        // evnode's own series stay beside ev-node's.
        #expect(families["evnode_phase"] != nil && families["evnode_store_height"] != nil, "\(node): evnode's own series are gone")
    }

    @Test func metricsDashboardVisualizerAndWatch() async throws {
        guard FileManager.default.isExecutableFile(atPath: Self.python.path) else {
            Issue.record("no \(Self.python.path): run `make deps`")
            return
        }
        try await Testnet.run(chainID: "observe-chain") { net in
            _ = try await net.startDA()
            let aggregatorMetrics = try net.freePort()
            let fullMetrics = try net.freePort()
            let aggregator = try net.makeNode(name: "aggregator", aggregator: true, extra: [
                "--evnode.instrumentation.prometheus", "--evnode.instrumentation.prometheus_listen_addr", "127.0.0.1:\(aggregatorMetrics)",
                "--evnode.rpc.enable_da_visualization"])
            try await aggregator.start()
            let full = try net.makeNode(name: "full", peers: [aggregator], genesisFrom: aggregator, extra: [
                "--evnode.instrumentation.prometheus", "--evnode.instrumentation.prometheus_listen_addr", "127.0.0.1:\(fullMetrics)"])
            try await full.start()
            try await full.waitForStatus("the full node past height 5") { $0.heights.store >= 5 && $0.peers >= 1 }

            // 1. ev-node's series, parsed by prometheus_client, on both nodes.
            let aggregatorURL = "http://127.0.0.1:\(aggregatorMetrics)/metrics"
            let fullURL = "http://127.0.0.1:\(fullMetrics)/metrics"
            try await waitUntil("the aggregator's first DA submission and P2P bytes", timeout: .seconds(60), every: .milliseconds(200)) {
                let m = try await Self.scrape(aggregatorURL)
                return Self.value(m, "evnode_sequencer_operation_duration_seconds", sample: "evnode_sequencer_operation_duration_seconds_count",
                                  ["operation": "da_submission"]) > 0 && Self.value(m, "evnode_p2p_peers") >= 1
            }
            let a1 = try await Self.scrape(aggregatorURL)
            let f1 = try await Self.scrape(fullURL)
            Self.checkNamesAndLabels(a1, chainID: "observe-chain", node: "aggregator")
            Self.checkNamesAndLabels(f1, chainID: "observe-chain", node: "full node")
            // The RPC port's /metrics is the same text.
            let rpcMetrics = try await Self.scrape(aggregator.rpc + "/metrics")
            #expect(rpcMetrics["evnode_sequencer_height"] != nil && rpcMetrics["evnode_phase"] != nil)

            for i in 0..<10 { #expect(try await aggregator.send(tx: "metrics-\(i)=v\(i)") == 202) }
            let h1 = try await aggregator.status().heights.store
            try await full.waitForStatus("the full node 10 blocks further") { $0.heights.store >= h1 + 10 }
            try await waitUntil("the txs on the full node", timeout: .seconds(60), every: .milliseconds(200)) {
                try await full.value(forKey: "metrics-9") == "v9"
            }
            let a2 = try await Self.scrape(aggregatorURL)
            let f2 = try await Self.scrape(fullURL)

            // Production moved the aggregator's chain series.
            #expect(Self.value(a2, "evnode_sequencer_height") > Self.value(a1, "evnode_sequencer_height"))
            #expect(Self.value(a2, "evnode_sequencer_latest_block_height") >= Double(h1))
            #expect(Self.value(a2, "evnode_sequencer_total_txs") >= Self.value(a1, "evnode_sequencer_total_txs") + 10)
            #expect(Self.value(a2, "evnode_sequencer_txs_per_block", sample: "evnode_sequencer_txs_per_block_count")
                    > Self.value(a1, "evnode_sequencer_txs_per_block", sample: "evnode_sequencer_txs_per_block_count"))
            let production = ["operation": "block_production"]
            #expect(Self.value(a2, "evnode_sequencer_operation_duration_seconds",
                               sample: "evnode_sequencer_operation_duration_seconds_count", production)
                    > Self.value(a1, "evnode_sequencer_operation_duration_seconds",
                                 sample: "evnode_sequencer_operation_duration_seconds_count", production))
            // Submission: more posts, the inclusion height moved, no failures on a healthy DA.
            let submission = ["operation": "da_submission"]
            #expect(Self.value(a2, "evnode_sequencer_operation_duration_seconds",
                               sample: "evnode_sequencer_operation_duration_seconds_count", submission)
                    > Self.value(a1, "evnode_sequencer_operation_duration_seconds",
                                 sample: "evnode_sequencer_operation_duration_seconds_count", submission))
            #expect(Self.value(a2, "evnode_sequencer_da_inclusion_height") > Self.value(a1, "evnode_sequencer_da_inclusion_height"))
            #expect(Self.value(a2, "evnode_sequencer_da_submitter_failures", sample: "evnode_sequencer_da_submitter_failures_total",
                               ["reason": "unknown"]) == 0)
            // P2P: the aggregator sent gossip; the full node received it from that peer.
            #expect(Self.value(a2, "evnode_p2p_message_send_bytes", sample: "evnode_p2p_message_send_bytes_total", ["message_type": "header"])
                    > Self.value(a1, "evnode_p2p_message_send_bytes", sample: "evnode_p2p_message_send_bytes_total", ["message_type": "header"]))
            let aggregatorID = try #require(try await aggregator.statusObject()["peer_id"] as? String)
            let fromAggregator = ["peer_id": aggregatorID, "chID": "tcp"]
            #expect(Self.value(f2, "evnode_p2p_peer_receive_bytes", sample: "evnode_p2p_peer_receive_bytes_total", fromAggregator)
                    > Self.value(f1, "evnode_p2p_peer_receive_bytes", sample: "evnode_p2p_peer_receive_bytes_total", fromAggregator))
            // Sync: the full node applied blocks from DA or P2P, and fetched DA heights.
            func synced(_ m: [String: Family]) -> Double {
                ["da", "p2p"].reduce(0) { $0 + Self.value(m, "evnode_sequencer_blocks_synchronized",
                                                           sample: "evnode_sequencer_blocks_synchronized_total", ["source": $1]) }
            }
            #expect(synced(f2) >= synced(f1) + 10)
            #expect(Self.value(f2, "evnode_sequencer_height") >= Double(h1 + 10))
            #expect(Self.value(f2, "evnode_sequencer_da_retrieval_attempts", sample: "evnode_sequencer_da_retrieval_attempts_total")
                    > Self.value(f1, "evnode_sequencer_da_retrieval_attempts", sample: "evnode_sequencer_da_retrieval_attempts_total"))
            #expect(Self.value(f2, "evnode_sequencer_da_retrieval_successes", sample: "evnode_sequencer_da_retrieval_successes_total") > 0)

            // 2. The dashboard: one page, nothing fetched from elsewhere, every section there.
            let page = try await HTTP.get(aggregator.rpc + "/")
            #expect(page.status == 200)
            let html = page.text
            for pattern in [#"src\s*=\s*["']?https?:"#, #"href\s*=\s*["']?https?:"#, #"@import"#, #"url\(\s*["']?https?:"#] {
                #expect(html.range(of: pattern, options: [.regularExpression, .caseInsensitive]) == nil, "the page loads \(pattern)")
            }
            #expect(html.contains("name=\"viewport\""))
            for section in ["phase-section", "catchup-section", "chart-section", "blocks-per-second", "da-section",
                            "peers-section", "signer-section", "evidence", "signer-mark", "ha-section", "EventSource(\"/events\")"] {
                #expect(html.contains(section), "the page has no \(section)")
            }

            // 3. The event stream: the history, then snapshots whose heights move.
            let stream = try runCurl(["-N", "--max-time", "4", full.rpc + "/events"], timeout: .seconds(20))
            #expect(stream.output.hasPrefix("retry: 2000\nevent: history\ndata: ["))
            let snapshots = stream.output.components(separatedBy: "\n\n").filter { $0.hasPrefix("event: snapshot\ndata: ") }
                .compactMap { block -> [String: Any]? in
                    let json = block.dropFirst("event: snapshot\ndata: ".count)
                    return try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
                }
            let heights = snapshots.compactMap { Self.number((($0["status"] as? [String: Any])?["heights"] as? [String: Any])?["store"]) }
            #expect(heights.count >= 3, "snapshots in 4 s: \(heights)")
            #expect((heights.last ?? 0) > (heights.first ?? 0), "heights did not move: \(heights)")
            if let first = snapshots.first {
                for key in ["time", "status", "blocks_per_second", "peers", "da_visualization"] {
                    #expect(first[key] != nil, "a snapshot without \(key)")
                }
                #expect((Self.number((first["peers"] as? [[String: Any]])?.first?["proven_height"]) ?? 0) > 0)
            }

            // 4. The DA visualizer: ev-node's shapes on the aggregator, 503 where it is off.
            let submissions = try await Self.json(aggregator.rpc + "/da/submissions")
            let list = try #require(submissions["submissions"] as? [[String: Any]])
            #expect(Self.number(submissions["total"]) == Double(list.count) && !list.isEmpty)
            let newest = try #require(list.first)
            for key in ["id", "height", "blob_size", "timestamp", "gas_price", "status_code", "num_blobs", "blob_ids", "namespace"] {
                #expect(newest[key] != nil, "a submission without \(key): \(newest)")
            }
            #expect(newest["status_code"] as? String == "Success")
            let stats = try await Self.json(aggregator.rpc + "/da/stats")
            for key in ["total_submissions", "success_count", "error_count", "success_rate", "total_blob_size",
                        "avg_blob_size", "avg_gas_price", "time_range"] {
                #expect(stats[key] != nil, "/da/stats without \(key)")
            }
            #expect(stats["success_rate"] as? String == "100.00%")
            let health = try await Self.json(aggregator.rpc + "/da/health")
            #expect(health["status"] as? String == "healthy" && Self.flag(health["is_healthy"]) == true)
            #expect(Self.number((health["metrics"] as? [String: Any])?["recent_sample_size"]) == Double(min(10, list.count)))
            let blobID = try #require((newest["blob_ids"] as? [String])?.first)
            let blob = try await Self.json(aggregator.rpc + "/da/blob?id=\(blobID)")
            let size = Int(Self.number(blob["size"]) ?? -1)
            #expect(blob["id"] as? String == blobID && size > 0)
            #expect((blob["content"] as? String)?.count == 2 * size)
            #expect(try await HTTP.get(aggregator.rpc + "/da/blob").status == 400)
            #expect(try await HTTP.get(aggregator.rpc + "/da/blob?id=zz").status == 400)
            #expect(try await HTTP.get(aggregator.rpc + "/da").text.contains("DA submissions"))
            for route in ["/da", "/da/submissions", "/da/blob?id=00", "/da/stats", "/da/health"] {
                #expect(try await HTTP.get(full.rpc + route).status == 503, "\(route) on a node without the visualizer")
            }

            // 5. `evnode status --watch` on a terminal (util-linux `script` gives it a pty):
            // the block is redrawn in place (cursor up, erase line).
            let screenLog = net.dir.sub("watch-tty.txt")
            let tty = try net.startProcess(name: "watch-tty", executable: URL(fileURLWithPath: "/usr/bin/script"),
                                           arguments: ["-qfec", "\(BuiltProducts.evnode.path) status --watch --rpc \(aggregator.rpc)",
                                                       screenLog],
                                           // `script` runs the command with $SHELL.
                                           environment: ProcessInfo.processInfo.environment.merging(["SHELL": "/usr/bin/sh"]) { $1 })
            let redraw = "\u{1B}\\[[0-9]+A\u{1B}\\[2Kobserve-chain  aggregator  phase aggregating"
            try await waitUntil("the terminal watch to redraw its block in place", timeout: .seconds(30), every: .milliseconds(100)) {
                ((try? String(contentsOfFile: screenLog, encoding: .utf8)) ?? "").range(of: redraw, options: .regularExpression) != nil
            }

            // `evnode status --watch` into a pipe: a line per update, heights moving; it ends
            // when the node stops.
            let watch = try net.startProcess(name: "watch", executable: BuiltProducts.evnode,
                                             arguments: ["status", "--watch", "--rpc", full.rpc])
            try await waitUntil("three watch lines", timeout: .seconds(30), every: .milliseconds(100)) {
                watch.lines.filter { $0.contains("phase=") }.count >= 3
            }
            let lines = watch.lines.filter { $0.contains("phase=") }
            let stores = lines.compactMap { line in
                line.split(separator: " ").first { $0.hasPrefix("store=") }.flatMap { UInt64($0.dropFirst(6)) }
            }
            #expect(stores.count == lines.count && stores.last! > stores.first!, "watch lines: \(lines)")
            #expect(!watch.output.contains("\u{1B}["), "escape sequences in a pipe")
            await full.stop()
            let status = try await watch.waitForExit("status --watch to end with the node", timeout: .seconds(30))
            #expect(status == 0, "status --watch exited \(status): \(watch.output.suffix(500))")
            #expect(watch.output.contains("the node ended the stream"))
            await aggregator.stop()
            #expect(try await tty.waitForExit("the terminal watch to end with the aggregator", timeout: .seconds(30)) == 0)
        }
    }

    /// A JSON number, however Foundation bridged it.
    static func number(_ any: Any?) -> Double? {
        if let n = any as? NSNumber { return n.doubleValue }
        if let i = any as? Int { return Double(i) }
        return any as? Double
    }

    static func flag(_ any: Any?) -> Bool? {
        if let b = any as? Bool { return b }
        return (any as? NSNumber)?.boolValue
    }

    static func json(_ url: String) async throws -> [String: Any] {
        let r = try await HTTP.get(url)
        guard r.status == 200 else { throw TestFailure("\(url): HTTP \(r.status): \(r.text)") }
        guard let o = try JSONSerialization.jsonObject(with: r.body) as? [String: Any] else {
            throw TestFailure("\(url): not a JSON object")
        }
        return o
    }
}
