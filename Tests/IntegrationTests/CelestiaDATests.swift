import Foundation
import ProcessKit
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

// Issue 17 end to end: fee escalation against the local DA's --min-gas-price, https through a
// real TLS terminator (Debian's stunnel) with a CA made here, blob.Subscribe with its fallback to
// polling, and --max-pending-blocks back-pressure, each with real processes.

/// Addresses from celestia-node's sources (valid bech32, `celestia` prefix).
private let signerA = "celestia1377k5an3f94v6wyaceu0cf4nq6gk2jtpc46g7h"
private let signerB = "celestia1hakc56ax66ypjcmwj8w6hyr2c4g8cfs3wesguc"

/// The `da` part of `/status`, with the heights.
struct DAStatusView: Sendable {
    let da: StatusDocument.DA
    let heights: StatusDocument.Heights
}

extension NodeProcess {
    func daStatus() async throws -> DAStatusView {
        let s = try await status()
        guard let da = s.da else { throw TestFailure("\(name) /status has no da part") }
        return DAStatusView(da: da, heights: s.heights)
    }
}

/// Waits until the node's `/status` has a `da` part that satisfies `condition`.
@discardableResult
private func waitForDA(_ node: NodeProcess, _ what: String, timeout: Duration = .seconds(60),
                       _ condition: (DAStatusView) -> Bool) async throws -> DAStatusView {
    let s = try await node.waitForStatus(what, timeout: timeout) { s in
        s.da.map { condition(DAStatusView(da: $0, heights: s.heights)) } ?? false
    }
    return DAStatusView(da: s.da!, heights: s.heights)
}

@Suite("Celestia DA: fees, TLS, subscription, back-pressure", .serialized)
struct CelestiaDATests {
    @Test("a too-low gas price is raised by the multiplier until the DA node's minimum is met, signers in turn")
    func feeEscalation() async throws {
        try await Testnet.run { net in
            _ = try await net.startDA(extra: ["--min-gas-price", "0.004"])
            let agg = try net.makeNode(name: "agg", aggregator: true, blockTime: "200ms", extra: [
                "--da.gas-price", "0.001", "--da.gas-multiplier", "2", "--da.max-gas-price", "0.01",
                "--da.signing-addresses", "\(signerA),\(signerB)"])
            try await agg.start()
            _ = try await agg.send(tx: "fee=paid")
            let s = try await waitForDA(agg, "blocks DA-included at an escalated price") {
                $0.heights.finalized >= 3 && $0.da.submit_error == nil
            }
            // 0.001 → 0.002 → 0.004: two steps, then accepted; success relaxes toward the base only
            // when the next price would still be accepted — it is not, so it may step back and up.
            #expect(s.da.fee_escalations >= 2)
            #expect((s.da.gas_price ?? 0) >= 0.002 && (s.da.gas_price ?? 1) <= 0.01)
            let logs = agg.allLogs
            #expect(logs.contains("raising the DA gas price"))
            #expect(logs.contains("from=0.001") && logs.contains("to=0.002"))
            #expect(logs.contains("to=0.004"))
            let daLog = net.da!.child.output
            #expect(daLog.contains("insufficient") || daLog.contains("refused a submission"))
            #expect(daLog.contains("signer=\(signerA)"))
            #expect(daLog.contains("signer=\(signerB)"))
        }
    }

    @Test("the gas price never goes above --da.max-gas-price; the submitter keeps retrying and says why")
    func feeCeiling() async throws {
        try await Testnet.run { net in
            _ = try await net.startDA(extra: ["--min-gas-price", "0.004"])
            let agg = try net.makeNode(name: "agg", aggregator: true, blockTime: "200ms", extra: [
                "--da.gas-price", "0.001", "--da.gas-multiplier", "2", "--da.max-gas-price", "0.003"])
            try await agg.start()
            let s = try await waitForDA(agg, "the price stuck at the max") {
                $0.da.gas_price == 0.003 && ($0.da.submit_error ?? "").contains("insufficient fees")
            }
            #expect(s.heights.finalized == 0)
            try await waitUntil("the at-max warning in the log") {
                agg.allLogs.contains("at --da.max-gas-price")
            }
        }
    }

    @Test("submission and sync through an https DA behind stunnel, with a private CA and a bearer token")
    func tlsThroughStunnel() async throws {
        try await Testnet.run { net in
            let token = "tls-test-token"
            let da = try await net.startDA(extra: ["--auth-token", token])
            let tls = try TLSTerminator(directory: net.dir.path + "/tls", backendPort: da.port,
                                        logDirectory: net.logDirectory, takenPorts: [da.port])
            defer { tls.stop() }
            try await tls.waitUntilListening()
            // A host name: TLS checks the certificate against it (SAN DNS:localhost), and the
            // WebSocket's TLS needs one for SNI.
            let https = "https://localhost:\(tls.port)"
            let tlsArgs = ["--da.address", https, "--da.auth-token", token, "--da.tls-ca-file", tls.caFile]
            let agg = try net.makeNode(name: "agg", aggregator: true, blockTime: "200ms", extra: tlsArgs)
            try await agg.start()
            let full = try net.makeNode(name: "full", aggregator: false, genesisFrom: agg, extra: tlsArgs)
            try await full.start()
            _ = try await agg.send(tx: "over=tls")
            let s = try await agg.waitForStatus("blocks DA-included over https") { $0.heights.finalized >= 4 }
            try await full.waitForStatus("the full node synced over https") { $0.heights.store >= s.heights.finalized }
            try await waitUntil("the tx on the full node") { try await full.value(forKey: "over") == "tls" }
            // The WebSocket went through the terminator too (wss with the same CA and token).
            try await waitForDA(full, "blob.Subscribe live over wss") { $0.da.subscription == "live" }

            // Without the CA the certificate is refused, and the node says so.
            let untrusting = try net.makeNode(name: "untrusting", aggregator: false, genesisFrom: agg,
                                              extra: ["--da.address", https, "--da.auth-token", token])
            try await untrusting.start()
            try await waitUntil("a certificate error in the log", timeout: .seconds(30)) {
                let log = untrusting.allLogs.lowercased()
                return log.contains("certificate") || log.contains("ssl")
            }
            #expect(try await untrusting.status().heights.store == 0)

            // By IP address the JSON-RPC still verifies (SAN IP:127.0.0.1); the subscription says
            // why it polls instead.
            let byIP = try net.makeNode(name: "by-ip", aggregator: false, genesisFrom: agg, extra: [
                "--da.address", "https://127.0.0.1:\(tls.port)", "--da.auth-token", token, "--da.tls-ca-file", tls.caFile])
            try await byIP.start()
            let synced = try await agg.status().heights.finalized
            try await byIP.waitForStatus("synced over https by IP") { $0.heights.store >= synced }
            let ipStatus = try await byIP.daStatus()
            #expect(ipStatus.da.subscription == "polling")
            #expect(byIP.allLogs.contains("needs a host name"))
        }
    }

    @Test("blob.Subscribe wakes the full node per DA height; when the WebSocket dies it falls back to polling")
    func subscriptionFallsBackToPolling() async throws {
        try await Testnet.run { net in
            _ = try await net.startDA(blockTime: "6s")
            let agg = try net.makeNode(name: "agg", aggregator: true, blockTime: "300ms")
            try await agg.start()
            let full = try net.makeNode(name: "full", aggregator: false, genesisFrom: agg)
            try await full.start()
            try await waitForDA(full, "subscription live") { $0.da.subscription == "live" }
            _ = try await agg.send(tx: "sub=1")
            try await waitForDA(full, "notifications arriving") { $0.da.subscription_notifications >= 3 }
            try await waitUntil("tx via DA", timeout: .seconds(30)) { try await full.value(forKey: "sub") == "1" }

            // The DA node comes back without blob.Subscribe: the socket drops, the method is
            // missing on redial, and the follower keeps going by polling.
            try await net.restartDA(blockTime: "6s", extra: ["--no-subscribe"])
            try await waitForDA(full, "fallen back to polling") { $0.da.subscription == "polling" }
            try await waitUntil("the fallback in the log") {
                full.allLogs.contains("has no blob.Subscribe") || full.allLogs.contains("polling until it is back")
            }
            let before = try await full.status().heights.store
            _ = try await agg.send(tx: "sub=2")
            try await waitUntil("a new block applied by polling", timeout: .seconds(40)) {
                try await full.value(forKey: "sub") == "2"
            }
            #expect(try await full.status().heights.store > before)
        }
    }

    @Test("--max-pending-blocks holds production while DA is down, releases it, and a restart above N drains (ev-node #1788)")
    func backPressure() async throws {
        try await Testnet.run { net in
            _ = try await net.startDA()
            let agg = try net.makeNode(name: "agg", aggregator: true, blockTime: "100ms",
                                       extra: ["--max-pending-blocks", "5"])
            try await agg.start()
            try await agg.waitForStatus("some blocks finalized") { $0.heights.finalized >= 3 }

            await net.stopDA()
            let paused = try await waitForDA(agg, "production paused with DA down") { $0.da.production_paused }
            #expect(paused.da.pending_blocks == 5)
            #expect((paused.da.paused_reason ?? "").contains("--max-pending-blocks"))
            // Held: a second later the store has not moved past N pending.
            try await Task.sleep(for: .seconds(1))
            let held = try await agg.daStatus()
            #expect(held.heights.store == paused.heights.store)
            #expect(held.da.production_paused)

            try await net.restartDA()
            try await waitForDA(agg, "production resumed once DA caught up") {
                !$0.da.production_paused && $0.heights.store > held.heights.store + 3
                    && $0.heights.finalized > held.heights.store
            }
            #expect(agg.allLogs.contains("pausing block production"))
            #expect(agg.allLogs.contains("resuming block production"))
            await agg.stop()

            // Restarted with more pending than N: it must drain them, then produce again.
            await net.stopDA()
            let unlimited = agg
            try await unlimited.start(flags: agg.flags.filter { $0 != "--max-pending-blocks" && $0 != "5" })
            let piled = try await waitForDA(unlimited, "12 blocks pending with DA down") { $0.da.pending_blocks >= 12 }
            await unlimited.stop()
            try await net.restartDA()
            try await agg.start()
            try await waitForDA(agg, "drained the pile and producing again", timeout: .seconds(60)) {
                $0.heights.finalized >= piled.heights.store && $0.heights.store > piled.heights.store + 2
                    && !$0.da.production_paused
            }
        }
    }
}

/// stunnel (Debian's `stunnel4`) terminating TLS on a free loopback port in front of a local
/// DA, with a CA and a server certificate for 127.0.0.1 made here with the openssl CLI.
final class TLSTerminator {
    let port: Int
    let caFile: String
    private let child: ChildProcess

    init(directory: String, backendPort: Int, logDirectory: String, takenPorts: Set<Int>) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let openssl = URL(fileURLWithPath: "/usr/bin/openssl")
        func run(_ args: [String]) throws {
            let r = try runCommand(openssl, args)
            guard r.status == 0 else { throw TestFailure("openssl \(args.first ?? ""): \(r.stderr)") }
        }
        caFile = directory + "/ca.pem"
        let caKey = directory + "/ca.key", key = directory + "/server.key", csr = directory + "/server.csr"
        let cert = directory + "/server.pem", ext = directory + "/server.ext"
        try run(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", caKey, "-out", caFile, "-days", "2",
                 "-subj", "/CN=evnode test CA"])
        try run(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"])
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            .write(toFile: ext, atomically: true, encoding: .utf8)
        try run(["x509", "-req", "-in", csr, "-CA", caFile, "-CAkey", caKey, "-CAcreateserial", "-out", cert,
                 "-days", "2", "-extfile", ext])
        port = try freeLoopbackPort(avoiding: takenPorts)
        let conf = directory + "/stunnel.conf"
        try """
        foreground = yes
        pid =
        debug = notice
        [da]
        accept = 127.0.0.1:\(port)
        connect = 127.0.0.1:\(backendPort)
        cert = \(cert)
        key = \(key)
        """.write(toFile: conf, atomically: true, encoding: .utf8)
        child = try ChildProcess(name: "stunnel", executable: URL(fileURLWithPath: "/usr/bin/stunnel4"),
                                 arguments: [conf], logDirectory: logDirectory)
    }

    func waitUntilListening() async throws {
        try await waitUntil("stunnel to accept TLS", timeout: .seconds(20), every: .milliseconds(100)) {
            if !child.isRunning { throw TestFailure("stunnel exited:\n\(child.output)") }
            let r = try runCommand(URL(fileURLWithPath: "/usr/bin/curl"),
                                   ["-sS", "-o", "/dev/null", "--cacert", caFile, "-X", "POST",
                                    "-d", "{}", "https://127.0.0.1:\(port)/"])
            return r.status == 0
        }
    }

    func stop() {
        if child.isRunning { kill(child.pid, SIGTERM) }
    }
}
