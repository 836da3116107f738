import Foundation
import ProcessKit
import Testing
import TestSupport

// ev-node's RPC surface checked by clients evnode did not write: Python's grpcio (stubs made by
// grpcio-tools from Protos/ at test time), plain HTTP/1.1 POSTs for Connect, and grpcio-reflection's
// client, against a real aggregator and a real full node on loopback (Tests/IntegrationTests/py/
// rpc_client.py; virtualenv .build/venv-rpc from `make deps`).

enum PyRPC {
    static var repoRoot: URL { BuiltProducts.packageRoot }
    static var python: URL { repoRoot.appendingPathComponent(".build/venv-rpc/bin/python") }
    static var script: String { repoRoot.appendingPathComponent("Tests/IntegrationTests/py/rpc_client.py").path }
    static var available: Bool { FileManager.default.isExecutableFile(atPath: python.path) }

    /// Runs the client against `node`; returns its report, or fails with what it said.
    static func check(_ node: NodeProcess, aggregator: Bool, peer: String?) throws -> [String: Any] {
        var args = [script, "--rpc", node.rpc, "--protos", repoRoot.appendingPathComponent("Protos").path]
        if aggregator { args.append("--aggregator") }
        if let peer { args += ["--peer", peer] }
        let run = try runCommand(python, args, timeout: .seconds(120))
        guard run.status == 0,
              let line = run.stdout.split(separator: "\n").last,
              let report = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
              report["ok"] as? Bool == true
        else { throw TestFailure("rpc_client.py against \(node.name) (exit \(run.status)):\n\(run.stdout)\n\(run.stderr.suffix(3000))") }
        return report
    }
}

@Suite(.serialized) struct RPCServicesTests {
    @Test(.timeLimit(.minutes(5)), .enabled(if: PyRPC.available, "make deps makes .build/venv-rpc"))
    func evNodesServicesAnswerGRPCConnectAndReflectionClients() async throws {
        try await Testnet.run(chainID: "rpc-chain") { net in
            _ = try await net.startDA()
            let aggregator = try net.makeNode(name: "agg", aggregator: true, blockTime: "100ms")
            let full = try net.makeNode(name: "full", peers: [aggregator], genesisFrom: aggregator)

            // Before any block exists: ev-node's UNREADY body, live all the same.
            try await full.start()
            let unready = try await full.readiness()
            #expect(unready.status == 503 && unready.text.hasPrefix("UNREADY: "), "\(unready)")
            let live = try await HTTP.get(full.rpc + "/health/live")
            #expect(live.status == 200 && live.text == "OK\n")

            try await aggregator.start()
            // Blocks, their DA inclusion (GetBlock's DA heights, gdh) and the P2P link.
            try await full.waitForStatus("full node finalized past 5 with a peer") { $0.heights.finalized >= 5 && $0.peers >= 1 }
            try await aggregator.waitForStatus("aggregator finalized past 5") { $0.heights.finalized >= 5 }
            try await waitUntil("both READY", timeout: .seconds(30)) {
                let a = try await aggregator.readiness(), f = try await full.readiness()
                return a == (200, "READY\n") && f == (200, "READY\n")
            }
            for node in [aggregator, full] {
                let live = try await HTTP.get(node.rpc + "/health/live")
                #expect(live.status == 200 && live.text == "OK\n", "\(node.name): \(live.status) \(live.text)")
            }
            let aggID = try await aggregator.statusObject()["peer_id"] as? String
            let fullID = try await full.statusObject()["peer_id"] as? String
            let a = try PyRPC.check(aggregator, aggregator: true, peer: fullID)
            let f = try PyRPC.check(full, aggregator: false, peer: aggID)
            #expect(a["namespace"] as? String == f["namespace"] as? String)

            // No HA here: /raft/node is not served.
            #expect(try await HTTP.get(aggregator.rpc + "/raft/node").status == 404)
        }
    }
}
