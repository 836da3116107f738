import Primitives
import DAClient
import Config
import Foundation
import ProcessKit
import Synchronization
import RemoteSigner
import Testing
import TestSupport

/// `evnode signer serve` as a real process (issue 29): its home holds signer.json and the chain's
/// genesis; its mark lives under its data/.
final class SignerProcess: Sendable {
    let home: String
    let tokenFile: String
    let passphraseFile: String
    private let net: Testnet
    private let runs = Mutex<[ChildProcess]>([])
    private let boundPort = Mutex<Int>(0)

    /// A signer home made from `source`'s key and genesis; the key is then removed from
    /// `source` (the node's home holds no key with the remote signer).
    init(net: Testnet, keyFrom source: NodeProcess, name: String = "signer") throws {
        self.net = net
        home = net.dir.sub(name)
        tokenFile = net.dir.sub("\(name)-token")
        passphraseFile = net.passphraseFile
        let config = home + "/config"
        try FileManager.default.createDirectory(atPath: config, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: source.layout.signerJSONFile, toPath: config + "/signer.json")
        try FileManager.default.copyItem(atPath: source.layout.genesisFile, toPath: config + "/genesis.json")
        try FileManager.default.removeItem(atPath: source.layout.signerJSONFile)
        try "token-\(UUID().uuidString)\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
    }

    var token: String { get throws { try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) } }
    var port: Int { boundPort.withLock { $0 } }
    var address: String { "127.0.0.1:\(port)" }
    var markFile: String { home + "/data/signer.state" }
    var current: ChildProcess? { runs.withLock { $0.last } }
    var output: String { runs.withLock { $0 }.map(\.output).joined(separator: "\n") }

    func arguments(port: Int, extra: [String] = []) -> [String] {
        ["signer", "serve", "--home", home, "--listen", "127.0.0.1:\(port)", "--passphrase-file", passphraseFile,
         "--token-file", tokenFile, "--metrics-listen", "127.0.0.1:0"] + extra
    }

    /// Starts a run (on the port of the first run, so nodes find it again) and waits until it
    /// listens.
    func start(extra: [String] = []) async throws {
        let n = runs.withLock { $0.count } + 1
        let child = try net.startProcess(name: "signer-run\(n)", executable: BuiltProducts.evnode,
                                         arguments: arguments(port: port, extra: extra))
        runs.withLock { $0.append(child) }
        let bound = try await child.waitForLine("to listen") { line -> Int? in
            guard line.hasPrefix("listening on 127.0.0.1:") else { return nil }
            return Int(line.dropFirst("listening on 127.0.0.1:".count))
        }
        boundPort.withLock { $0 = bound }
    }

    func metrics() async throws -> String {
        guard let child = current else { throw TestFailure("no signer run") }
        let port = try await child.waitForLine("to serve metrics") { line -> Int? in
            guard line.hasPrefix("metrics on 127.0.0.1:") else { return nil }
            return Int(line.dropFirst("metrics on 127.0.0.1:".count))
        }
        return try await HTTP.get("http://127.0.0.1:\(port)/metrics").text
    }

    func stop(signal: Int32 = SIGTERM) async -> Int32 {
        await current?.stop(signal: signal) ?? 0
    }

    /// The flags that make a node sign through this signer.
    var nodeFlags: [String] {
        ["--evnode.signer.signer_type", "grpc", "--evnode.signer.grpc_address", address,
         "--evnode.signer.grpc_token_file", tokenFile]
    }

    /// A client of the test's own (no node in between).
    func client(token: String?, tls: SignerClientTLSFiles? = nil) throws -> RemoteSignerClient {
        try RemoteSignerClient(host: "127.0.0.1", port: port, token: token, tls: tls)
    }
}

/// A CA, and certificates it signed, made with the openssl CLI for the mutual-TLS test.
struct TestCA {
    let directory: String
    let name: String
    var caFile: String { "\(directory)/\(name)-ca.pem" }
    private var caKey: String { "\(directory)/\(name)-ca.key" }

    init(directory: String, name: String) throws {
        self.directory = directory
        self.name = name
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Self.openssl(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", caKey, "-out", caFile,
                          "-days", "2", "-subj", "/CN=\(name) test CA"])
    }

    static func openssl(_ args: [String]) throws {
        let r = try runCommand(URL(fileURLWithPath: "/usr/bin/openssl"), args)
        guard r.status == 0 else { throw TestFailure("openssl \(args.first ?? ""): \(r.stderr)") }
    }

    /// A certificate for 127.0.0.1 with `usage` (serverAuth or clientAuth): (certificate, key).
    func issue(_ leaf: String, usage: String) throws -> (String, String) {
        let key = "\(directory)/\(leaf).key", csr = "\(directory)/\(leaf).csr", cert = "\(directory)/\(leaf).pem"
        let ext = "\(directory)/\(leaf).ext"
        try Self.openssl(["req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=\(leaf)"])
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=\(usage)\n"
            .write(toFile: ext, atomically: true, encoding: .utf8)
        try Self.openssl(["x509", "-req", "-in", csr, "-CA", caFile, "-CAkey", caKey, "-CAcreateserial", "-out", cert,
                          "-days", "2", "-extfile", ext])
        return (cert, key)
    }
}

@Suite(.serialized, .timeLimit(.minutes(4)))
struct RemoteSignerTests {
    /// Mutual TLS: a node with a certificate from the signer's client CA produces through it; a
    /// client with a certificate from another CA, or without TLS, is refused, token or not.
    @Test func mutualTLSAdmitsOnlyCertificatesOfTheClientCA() async throws {
        try await Testnet.run(chainID: "remote-tls") { net in
            try await net.startDA()
            let ca = try TestCA(directory: net.dir.sub("tls"), name: "signer")
            let (serverCert, serverKey) = try ca.issue("signer-server", usage: "serverAuth")
            let (nodeCert, nodeKey) = try ca.issue("node-client", usage: "clientAuth")
            let stranger = try TestCA(directory: net.dir.sub("tls"), name: "stranger")
            let (strangerCert, strangerKey) = try stranger.issue("stranger-client", usage: "clientAuth")

            let seq = try net.makeNode(name: "seq", aggregator: true, blockTime: "100ms")
            let signer = try SignerProcess(net: net, keyFrom: seq)
            try await signer.start(extra: ["--tls-cert", serverCert, "--tls-key", serverKey, "--tls-client-ca", ca.caFile])
            let token = try signer.token

            let good = try signer.client(token: token, tls: SignerClientTLSFiles(certificate: nodeCert, key: nodeKey, serverCA: ca.caFile))
            defer { good.close() }
            #expect(try await good.publicKey().count == 32)
            for (what, tls) in [("another CA's certificate", SignerClientTLSFiles(certificate: strangerCert, key: strangerKey, serverCA: ca.caFile)),
                                ("no TLS", nil)] as [(String, SignerClientTLSFiles?)] {
                let client = try signer.client(token: token, tls: tls)
                defer { client.close() }
                do throws(RemoteSignerError) {
                    _ = try await client.publicKey()
                    Issue.record("a client with \(what) was answered")
                } catch {}
            }
            #expect(!FileManager.default.fileExists(atPath: signer.markFile))

            try await seq.start(flags: seq.flags + signer.nodeFlags + [
                "--evnode.signer.grpc_tls_cert_file", nodeCert, "--evnode.signer.grpc_tls_key_file", nodeKey,
                "--evnode.signer.grpc_tls_ca_file", ca.caFile])
            try await seq.waitForHeight(5)
            #expect(try SignerHighWaterMark(path: signer.markFile).load() ?? 0 >= 5)
        }
    }

    /// Issue 29's restore: a sequencer signing through the remote signer is killed -9 and its
    /// whole home except evnode.yaml and genesis.json is deleted (store, node key, everything).
    /// The restart with `--catchup-timeout` reads the signer's mark in place of signer.state,
    /// promotes without `signer reset`, and continues the same chain, hash for hash.
    @Test func aSequencerThatLostItsWholeHomePromotesOnTheSignersMark() async throws {
        try await Testnet.run(chainID: "remote-restore") { net in
            try await net.startDA()
            let seq = try net.makeNode(name: "seq", aggregator: true, blockTime: "100ms")
            let signer = try SignerProcess(net: net, keyFrom: seq)
            try await signer.start()
            let full = try net.makeNode(name: "full", peers: [seq], genesisFrom: seq)
            let produce = seq.flags + signer.nodeFlags
            try await seq.start(flags: produce)
            try await full.start()
            try await seq.produceBlocksWithTxs(3, tag: "before")
            try await full.waitForHeight(12)

            #expect(await seq.stop(signal: SIGKILL) == SIGKILL)
            let before = try await full.hashes(through: try await full.status().heights.store)
            let config = seq.layout.configDirectory
            for entry in try FileManager.default.contentsOfDirectory(atPath: seq.home) where entry != "config" {
                try FileManager.default.removeItem(atPath: seq.home + "/" + entry)
            }
            for entry in try FileManager.default.contentsOfDirectory(atPath: config)
            where entry != "evnode.yaml" && entry != "genesis.json" {
                try FileManager.default.removeItem(atPath: config + "/" + entry)
            }
            #expect(try FileManager.default.contentsOfDirectory(atPath: config).sorted() == ["evnode.yaml", "genesis.json"])
            let mark = try #require(try SignerHighWaterMark(path: signer.markFile).load())

            try await seq.start(flags: produce + ["--catchup-timeout", "20s", "--p2p.peers", full.p2pAddress])
            try await seq.waitForPhase("aggregating", timeout: .seconds(60))
            try await seq.waitForHeight(mark + 5)
            try await full.waitForHeight(mark + 5)
            let output = seq.output
            #expect(output.contains("remote signer connected"), "\(output.suffix(3000))")
            #expect(!output.contains("signer reset"), "\(output.suffix(3000))")
            // Hash for hash: what the full node held before the loss is still the chain.
            let after = try await seq.hashes(through: UInt64(before.count))
            #expect(after == before)
            try await expectSameChain(seq, full, through: mark + 5)
            #expect(!signer.output.contains("refused"), "\(signer.output.suffix(3000))")
        }
    }

    /// The other half of the restore: the signer's mark is above everything DA and the peers
    /// can supply (it signed heights that never left the lost machine). The node, with nothing
    /// of its own but the config and genesis, fails closed (exit 3) naming the gap; it never
    /// asks the signer for a block at those heights.
    @Test func aRestoreBelowTheSignersMarkFailsClosedNamingTheGap() async throws {
        try await Testnet.run(chainID: "remote-gap") { net in
            try await net.startDA()
            let seq = try net.makeNode(name: "seq", aggregator: true, blockTime: "100ms")
            let signer = try SignerProcess(net: net, keyFrom: seq)
            try await signer.start()
            let full = try net.makeNode(name: "full", peers: [seq], genesisFrom: seq)
            let produce = seq.flags + signer.nodeFlags
            try await seq.start(flags: produce)
            try await full.start()
            try await full.waitForHeight(8)
            #expect(await seq.stop(signal: SIGTERM) == 0)
            try seq.wipeStore()
            let signed = try #require(try SignerHighWaterMark(path: signer.markFile).load())
            // The sequencer may have stored (and the signer signed) a block that it neither
            // gossiped nor posted before SIGTERM: what a restore can get back is what DA and the
            // full node (its only peer) hold, not the signer's mark.
            let supplied = try await suppliedHeight(da: try #require(net.da), chainID: net.chainID, full: full, proposer: try seq.genesis.proposerAddress)
            #expect(supplied >= 8 && supplied <= signed, "DA and peers supply \(supplied), the signer signed up to \(signed)")
            // Heights the signer signed for a machine that is gone: nobody else has them.
            #expect(await signer.stop() == 0)
            let mark = signed + 3
            try SignerHighWaterMark(path: signer.markFile).record(mark)
            try await signer.start()

            try seq.launch(flags: produce + ["--catchup-timeout", "3s", "--p2p.peers", full.p2pAddress])
            let status = try await seq.waitForExit("the restore to fail closed")
            let output = seq.output
            #expect(status == 3, "\(output.suffix(3000))")
            #expect(output.contains("the signer's high-water mark is \(mark) but DA and peers only supply blocks up to \(supplied): heights \(supplied + 1)…\(mark) were signed"),
                    "\(output.suffix(3000))")
            #expect(!output.contains("producing blocks"))
            // The way past it is on the signer's home, not on this node's.
            #expect(output.contains("`evnode signer reset --home <the signer's home> --height \(supplied)`, run where the remote signer runs"),
                    "\(output.suffix(3000))")
            #expect(!signer.output.contains("refused"), "\(signer.output.suffix(2000))")

            // The operator accepts the risk on the signer's home: refused while it serves.
            let reset = ["signer", "reset", "--home", signer.home, "--height", "\(supplied)"]
            let busy = try runCommand(BuiltProducts.evnode, reset)
            #expect(busy.status == 2 && busy.stderr.contains("while `evnode signer serve` runs"), "\(busy.stderr)")
            #expect(try SignerHighWaterMark(path: signer.markFile).load() == mark)
            #expect(await signer.stop() == 0)
            let done = try runCommand(BuiltProducts.evnode, reset)
            #expect(done.status == 0 && done.stdout.contains("\(mark) → \(supplied)"), "\(done.stdout)\(done.stderr)")
            try await signer.start()
            try await seq.start(flags: produce + ["--catchup-timeout", "3s", "--p2p.peers", full.p2pAddress])
            try await seq.waitForHeight(mark)
            try await full.waitForHeight(mark)
            try await expectSameChain(seq, full, through: mark)
        }
    }

    /// The highest height DA and `full` (the only peer left) can give a restored sequencer once
    /// the sequencer is gone: a blob it posted before it stopped is on DA after the next DA
    /// block, and the full node then holds at least what DA has.
    private func suppliedHeight(da: LocalDAProcess, chainID: String, full: NodeProcess, proposer: [UInt8]) async throws -> UInt64 {
        let client = try da.client()
        defer { Task { [client] in await client.shutdown() } }
        let head = try await client.networkHead().height
        try await waitUntil("a DA block after the sequencer stopped") {
            try await client.networkHead().height > head
        }
        let namespace = DANamespace(name: chainID + "-headers")
        let onDA = try await DAContents.read(client, headerNamespace: namespace, dataNamespace: namespace,
                                             proposer: proposer).headers.keys.max() ?? 0
        try await waitUntil("the full node to hold what DA has (\(onDA))") {
            try await full.status().heights.store >= onDA
        }
        return try await full.status().heights.store
    }

    /// A second sequencer pointed at the same signer, with its own empty store, asks to sign
    /// from height 1 while the first is at its mark: it is refused and produces nothing; the
    /// signer's own fence refuses a different header at its mark, naming both hashes; and no
    /// height anywhere has two hashes.
    @Test func aSecondNodeOnTheSameSignerIsRefused() async throws {
        try await Testnet.run(chainID: "remote-second") { net in
            try await net.startDA()
            let seq = try net.makeNode(name: "seq", aggregator: true, blockTime: "100ms")
            let signer = try SignerProcess(net: net, keyFrom: seq)
            try await signer.start()
            let full = try net.makeNode(name: "full", peers: [seq], genesisFrom: seq)
            try await seq.start(flags: seq.flags + signer.nodeFlags)
            try await full.start()
            try await full.waitForHeight(5)

            let second = try net.makeNode(name: "second", aggregator: true, blockTime: "100ms", genesisFrom: seq)
            try FileManager.default.removeItem(atPath: second.layout.signerJSONFile)
            try second.launch(flags: second.flags + signer.nodeFlags)
            let status = try await second.waitForExit("the second sequencer to be refused")
            #expect(status != 0)
            let output = second.output
            #expect(output.contains("were already signed") || output.contains("the remote signer at \(signer.address) refused"),
                    "\(output.suffix(3000))")
            #expect(try second.storedHashes().isEmpty)

            // The signer's own fence, asked directly: another header at its mark. The first
            // sequencer stops first, so the mark cannot move between reading it and asking.
            try await full.waitForHeight(8)
            #expect(await seq.stop() == 0)
            let client = try signer.client(token: try signer.token)
            defer { client.close() }
            let mark = try await client.mark(withBlock: true)
            let kept = try #require(mark.signedHeader)
            var other = kept.header
            other.appHash = [UInt8](repeating: 0xAB, count: 32)
            do throws(RemoteSignerError) {
                _ = try await client.sign(other.encoded())
                Issue.record("the signer signed a second header at its mark \(kept.header.height)")
            } catch {
                #expect(error == .refused(address: signer.address, reason: "failedPrecondition: " + SignRefusal.fenced(
                    height: other.height, hash: other.hash, mark: other.height, markHash: kept.header.hash).description),
                        "\(error)")
            }
            // Every height the first sequencer stored has one hash, the one the full node holds.
            let sequenced = try seq.storedHashes()
            // A stop that lands between the signer's answer and the store leaves the mark one
            // above the store; the next start signs that header again (the retry rule).
            #expect([kept.header.height, kept.header.height - 1].contains(UInt64(sequenced.count)))
            if UInt64(sequenced.count) == kept.header.height {
                #expect(sequenced.last == Hex.encode(kept.header.hash))
            }
            let height = try await full.status().heights.store
            let followed = try await full.hashes(through: min(height, UInt64(sequenced.count)))
            #expect(followed == Array(sequenced.prefix(followed.count)))
            #expect(try await signer.metrics().contains("evnode_signer_refusals_total 1"))
        }
    }

    /// The signer is killed -9 after the mark for height H is durable and before it answers.
    /// The node's call fails, and it stops producing rather than sign anything else at H. The
    /// restarted signer answers the retried request (the header kept at H) with the signature
    /// kept with the mark, refuses any other header at H, and the restarted node commits
    /// exactly that block at H and goes on.
    @Test func aSignerKilledBetweenItsMarkAndItsAnswerSignsTheRetryTheSame() async throws {
        try await Testnet.run(chainID: "remote-crash") { net in
            try await net.startDA()
            let seq = try net.makeNode(name: "seq", aggregator: true, blockTime: "100ms")
            let signer = try SignerProcess(net: net, keyFrom: seq)
            try await signer.start(extra: ["--crash-after-mark", "6"])
            try await seq.start(flags: seq.flags + signer.nodeFlags)
            let status = try await seq.waitForExit("the node to stop when the signer dies")
            #expect(status == 1, "\(seq.output.suffix(3000))")
            #expect(seq.output.contains("the remote signer at \(signer.address) did not answer"), "\(seq.output.suffix(3000))")
            #expect(signer.current?.diedOfSignal == true)
            #expect(try seq.storedHashes().count == 5)

            try await signer.start()
            let client = try signer.client(token: try signer.token)
            defer { client.close() }
            let mark = try await client.mark(withBlock: true)
            #expect(mark.height == 6)
            let kept = try #require(mark.signedHeader)
            let retried = try await client.sign(kept.header.encoded())
            #expect(retried == kept.signature)
            #expect(try await signer.metrics().contains("evnode_signer_signatures_total{kind=\"header_repeated\"} 1"))

            try await seq.start(flags: seq.flags + signer.nodeFlags)
            try await seq.waitForHeight(10)
            let block6 = try #require(try await seq.block(6))
            #expect(block6.hash == Hex.encode(kept.header.hash))
            #expect(seq.output.contains("committed the block signed before the last stop"), "\(seq.output.suffix(3000))")
        }
    }

    /// Clients without the token are refused (a node, and a client of the test's own); the
    /// signer will not listen off loopback without TLS, nor run twice on one home.
    @Test func aClientWithoutTheTokenIsRefused() async throws {
        try await Testnet.run(chainID: "remote-auth") { net in
            try await net.startDA()
            let seq = try net.makeNode(name: "seq", aggregator: true, blockTime: "100ms")
            let signer = try SignerProcess(net: net, keyFrom: seq)
            try await signer.start()

            for token in [nil, "wrong-token"] as [String?] {
                let client = try signer.client(token: token)
                defer { client.close() }
                do throws(RemoteSignerError) {
                    _ = try await client.publicKey()
                    Issue.record("a client with token \(token ?? "none") was answered")
                } catch {
                    guard case .refused(_, let reason) = error, reason.hasPrefix("unauthenticated") else {
                        Issue.record("\(error)")
                        continue
                    }
                }
            }
            let wrong = net.dir.sub("wrong-token")
            try "not-the-token".write(toFile: wrong, atomically: true, encoding: .utf8)
            let node = try seq.launch(flags: seq.flags + ["--evnode.signer.signer_type", "grpc",
                                                      "--evnode.signer.grpc_address", signer.address,
                                                      "--evnode.signer.grpc_token_file", wrong])
            // Unusable input before anything starts: the configuration-error status (README).
            #expect(try await seq.waitForExit("the node to be refused") == 2, "\(node.output.suffix(2000))")
            #expect(node.output.contains("unauthenticated"), "\(node.output.suffix(2000))")
            #expect(try await signer.metrics().contains("evnode_signer_unauthenticated_total 3"))
            #expect(!FileManager.default.fileExists(atPath: signer.markFile))

            let open = try runCommand(BuiltProducts.evnode, signer.arguments(port: 0).map { $0 == "127.0.0.1:0" ? "0.0.0.0:0" : $0 })
            #expect(open.status == 2 && open.stderr.contains("without TLS"), "\(open.stderr)")
            let twice = try runCommand(BuiltProducts.evnode, signer.arguments(port: 0))
            #expect(twice.status == 2 && twice.stderr.contains("another `evnode signer serve` runs on this home"), "\(twice.stderr)")

            // Another home on the port this signer holds: a start failure, exit 2 in one line.
            let other = net.dir.sub("signer-other")
            try FileManager.default.createDirectory(atPath: other + "/config", withIntermediateDirectories: true)
            for file in ["signer.json", "genesis.json"] {
                try FileManager.default.copyItem(atPath: signer.home + "/config/" + file, toPath: other + "/config/" + file)
            }
            let taken = try runCommand(BuiltProducts.evnode, ["signer", "serve", "--home", other, "--listen", signer.address,
                                                               "--passphrase-file", signer.passphraseFile])
            #expect(taken.status == 2 && taken.stderr.contains("cannot listen on \(signer.address)"), "\(taken.status) \(taken.stderr)")
        }
    }
}
