import Primitives
import Config
import Foundation
import Libp2p
import P2PSync
import ProcessKit
import Testing
import TestSupport

#if canImport(Glibc)
import Glibc
#endif

// The Swift node against an independent libp2p implementation: py-libp2p 0.8.1 (PyPI, in the
// virtualenv `make deps` makes under .build/venv-libp2p) running Tests/IntegrationTests/py,
// whose ev-node and go-header messages are built with Google's protobuf runtime. Real processes,
// real TCP on 127.0.0.1.

enum PyLibp2p {
    static var repoRoot: URL { BuiltProducts.packageRoot }
    static var python: URL { repoRoot.appendingPathComponent(".build/venv-libp2p/bin/python") }
    static var script: String { repoRoot.appendingPathComponent("Tests/IntegrationTests/py/libp2p_peer.py").path }
    static var available: Bool { FileManager.default.isExecutableFile(atPath: python.path) }

    /// A chain made by the independent encoder (`shared/tools/wire/make_vectors.py`, Google's
    /// protobuf runtime and `cryptography`), written to `dir`; returns its path.
    static func makeChain(dir: String, chainID: String, blocks: Int, seed: String) throws -> String {
        let pb = dir + "/wire-pb"
        try FileManager.default.createDirectory(atPath: pb, withIntermediateDirectories: true)
        let wire = repoRoot.appendingPathComponent("../shared/tools/wire").standardized.path
        let protoc = try runCommand(URL(fileURLWithPath: "/usr/bin/protoc"),
                                    ["-I", wire, "--python_out", pb, wire + "/evnode_wire.proto"])
        guard protoc.status == 0 else { throw TestFailure("protoc: \(protoc.stderr)") }
        let made = try runCommand(python, [wire + "/make_vectors.py", "--seed", seed, "--chain-id", chainID,
                                           "--blocks", "\(blocks)"],
                                  environment: ["WIRE_PB_DIR": pb, "PATH": "/usr/bin:/bin"], timeout: .seconds(120))
        guard made.status == 0 else { throw TestFailure("make_vectors.py: \(made.stderr)") }
        let path = dir + "/\(chainID).json"
        try made.stdout.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

/// One run of the py peer: JSON events on stdout (read from its log), commands on stdin.
final class PyPeer: Sendable {
    let child: ChildProcess

    init(_ mode: String, _ arguments: [String], logDirectory: String, name: String) throws {
        child = try ChildProcess(name: name, executable: PyLibp2p.python, arguments: [PyLibp2p.script, mode] + arguments,
                                 logDirectory: logDirectory,
                                 workingDirectory: URL(fileURLWithPath: PyLibp2p.script).deletingLastPathComponent().path,
                                 separateStderr: true, acceptsInput: true)
    }

    var events: [[String: Any]] {
        child.lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    var stderrText: String { child.stderrText }

    func event(_ name: String, timeout: Duration = .seconds(90)) async throws -> [String: Any] {
        var found: [String: Any]?
        try await waitUntil("py peer event \(name)", timeout: timeout) {
            if let e = events.first(where: { ($0["event"] as? String) == "error" }) {
                throw TestFailure("py peer failed: \(e["error"] ?? "")\n\(e["trace"] ?? "")\n\(stderrText.suffix(2000))")
            }
            found = events.first { ($0["event"] as? String) == name }
            if found == nil, !child.isRunning {
                throw TestFailure("py peer exited (\(child.terminationStatus)) before \(name): \(stderrText.suffix(2000))")
            }
            return found != nil
        }
        return found!
    }

    func send(_ line: String) { child.writeLine(line) }

    func stop() async { await child.stop(timeout: .seconds(5)) }
}

extension NodeProcess {
    /// The node's libp2p peer id, from its node key (ev-node's node_key.json).
    var peerID: PeerID {
        get throws { PeerID(key: try NodeKeyFile.load(path: home + "/config/node_key.json")) }
    }

    var multiaddr: String {
        get throws { "/ip4/127.0.0.1/tcp/\(p2pPort)/p2p/\(try peerID)" }
    }
}

@Suite(.serialized, .enabled(if: PyLibp2p.available, "py-libp2p virtualenv missing: run `make deps`"))
struct Libp2pInteropTests {
    /// py dials Swift (Noise-only, then py's default mix of Noise, TLS, secio and plaintext, so
    /// that Swift answers `na` until /noise); identify lists exactly what Swift serves; ping; the
    /// connection survives 60 s idle (yamux keep-alive). Then Swift dials py (`--p2p.peers`).
    @Test func handshakeIdentifyAndPingBothWays() async throws {
        try await Testnet.run(chainID: "interop") { net in
            _ = try await net.startDA()
            let node = try net.makeNode(name: "swift", aggregator: false)
            try await node.start()
            let addr = try node.multiaddr
            let noiseOnly = try PyPeer("handshake", ["--chain-id", "interop", "--dial", addr],
                                       logDirectory: net.logDirectory, name: "py-noise")
            let mixed = try PyPeer("handshake", ["--chain-id", "interop", "--dial", addr, "--default-security", "--idle", "62"],
                                   logDirectory: net.logDirectory, name: "py-default-security")
            let r1 = try await noiseOnly.event("result")
            #expect(try r1["remote"] as? String == node.peerID.description)
            #expect(r1["protocols"] as? [String] == ["/floodsub/1.0.0", "/interop-dataSync/header-ex/v0.0.3",
                                                     "/interop-headerSync/header-ex/v0.0.3", "/ipfs/id/1.0.0",
                                                     "/ipfs/id/push/1.0.0", "/ipfs/ping/1.0.0"])
            #expect((r1["ping_ms"] as? Double) != nil)
            let r2 = try await mixed.event("result", timeout: .seconds(150))
            #expect(try r2["remote"] as? String == node.peerID.description)
            #expect(r2["connected_after_idle"] as? Bool == true)
            #expect((r2["ping_after_idle_ms"] as? Double) != nil)

            // Swift dials py.
            let listener = try PyPeer("handshake", ["--chain-id", "interop", "--linger", "5"],
                                      logDirectory: net.logDirectory, name: "py-listener")
            let ready = try await listener.event("ready")
            let dialer = try net.makeNode(name: "swift-dialer", aggregator: false, genesisFrom: node,
                                          extra: ["--p2p.peers", ready["addr"] as! String])
            try await dialer.start()
            let r3 = try await listener.event("result")
            #expect(try r3["remote"] as? String == dialer.peerID.description)
            #expect((r3["protocols"] as? [String])?.contains("/floodsub/1.0.0") == true)
            try await waitUntil("the dialler to count py as a peer") {
                (try await dialer.statusObject()["peers"] as? Int) == 1
            }
            for p in [noiseOnly, mixed, listener] { await p.stop() }
        }
    }

    /// A Swift aggregator's blocks arrive at py by FloodSub, StrictSign-checked by py-libp2p,
    /// the header signature checked by py against the proposer key, paired with their data, in
    /// height order — and they are the blocks the aggregator stores.
    @Test func aggregatorGossipReachesPy() async throws {
        try await Testnet.run(chainID: "interop-gossip") { net in
            _ = try await net.startDA()
            let agg = try net.makeNode(name: "aggregator", aggregator: true, blockTime: "300ms")
            try await agg.start()
            let py = try PyPeer("gossip-recv", ["--chain-id", "interop-gossip", "--dial", try agg.multiaddr,
                                                "--count", "5", "--timeout", "60"],
                                logDirectory: net.logDirectory, name: "py-gossip")
            let result = try await py.event("result")
            let heights = try #require(result["heights"] as? [Int])
            #expect(heights.count == 5)
            #expect(result["in_order"] as? Bool == true)
            let hashes = try #require(result["hashes"] as? [String])
            for (h, hash) in zip(heights, hashes) {
                #expect(try await agg.block(UInt64(h))?.hash == hash, "height \(h)")
            }
        }
    }

    /// py publishes the independent encoder's chain as ev-node envelopes; a Swift full node whose
    /// DA has none of it syncs it by gossip, hash for hash. Then py is the exchange client
    /// against that node (head, full range, over-limit → reset, above head → NOT_FOUND, partial,
    /// no FIN, Go's lazy multistream), byte for byte. Then bad messages: a duplicate costs a
    /// penalty point; a wrong chain id and a bad signature get the sender banned.
    @Test func pyChainSyncsIntoSwiftAndPyQueriesIt() async throws {
        try await Testnet.run(chainID: "pychain") { net in
            let chainPath = try PyLibp2p.makeChain(dir: net.dir.path, chainID: "pychain", blocks: 30,
                                                   seed: String(repeating: "42", count: 32))
            let otherPath = try PyLibp2p.makeChain(dir: net.dir.path, chainID: "otherchain", blocks: 2,
                                                   seed: String(repeating: "42", count: 32))
            let chain = try ChainVectors.load(path: chainPath)
            _ = try await net.startDA()
            let py = try PyPeer("gossip-send", ["--chain-id", "pychain", "--chain", chainPath, "--other-chain", otherPath,
                                                "--timeout", "20"],
                                logDirectory: net.logDirectory, name: "py-publisher")
            let ready = try await py.event("ready")
            let full = try net.makeNode(name: "full", aggregator: false, genesis: chain.genesis.jsonText(),
                                        extra: ["--p2p.peers", ready["addr"] as! String])
            try await full.start()
            _ = try await py.event("published")
            let last = chain.blocks.last!
            _ = try await full.waitForStatus("the py chain synced by gossip", timeout: .seconds(60)) {
                $0.heights.store >= last.height
            }
            for b in chain.blocks {
                #expect(try await full.block(b.height)?.hash == Hex.encode(b.headerHash), "height \(b.height)")
            }
            #expect((try await full.statusObject()["app_hash"] as? String) == Hex.encode(last.appHashAfter))

            // py as exchange client, byte-exact against the vector bytes.
            let client = try PyPeer("exchange-client", ["--chain-id", "pychain", "--dial", try full.multiaddr,
                                                        "--head", "\(last.height)", "--range", "64",
                                                        "--hash", Hex.encode(chain.blocks[4].headerHash)],
                                    logDirectory: net.logDirectory, name: "py-exchange-client")
            let r = try await client.event("result")
            func ok(_ body: String) -> String {
                let b = Hex.decode(body)!
                var m: [UInt8] = [0x0a] + varint(b.count) + b + [0x10, 0x01]
                m = m + []
                return Hex.encode(m)
            }
            func headerEnv(_ b: ChainVectors.Block) -> String { ok(Hex.encode(b.signedHeaderBytes) + "2000") }
            func dataEnv(_ b: ChainVectors.Block) -> String { ok(Hex.encode(b.dataBytes) + "1800") }
            for (kind, env) in [("header", headerEnv), ("data", dataEnv)] as [(String, (ChainVectors.Block) -> String)] {
                let d = try #require(r[kind] as? [String: Any])
                func answer(_ name: String) -> ([String], String) {
                    let pair = d[name] as? [Any] ?? []
                    return (pair.first as? [String] ?? [], pair.last as? String ?? "")
                }
                #expect(answer("head").0 == [env(last)], "\(kind) head")
                #expect(answer("head").1 == "eof")
                #expect(answer("range").0 == chain.blocks.map(env), "\(kind) range 1…64 is the partial 1…30")
                #expect(answer("over_limit").0.isEmpty && answer("over_limit").1 == "reset", "\(kind) amount 65")
                #expect(answer("above_head").0 == ["1002"], "\(kind) origin above head")
                #expect(answer("partial").0 == chain.blocks.suffix(3).map(env), "\(kind) partial")
                #expect(answer("no_fin").0 == chain.blocks.prefix(2).map(env), "\(kind) without FIN")
            }
            let header = try #require(r["header"] as? [String: Any])
            #expect((header["hash"] as? [Any])?.first as? [String] == [headerEnv(chain.blocks[4])])
            let lazy = try #require(r["lazy"] as? [String])
            #expect(lazy.count == 3 && lazy.last == headerEnv(chain.blocks[0]), "lazy multistream client")

            // Bad messages.
            let pyID = try #require(ready["peer_id"] as? String)
            py.send("duplicate")
            let dup = try await py.event("result", timeout: .seconds(40))
            #expect(dup["disconnected"] as? Bool == false)
            try await waitUntil("the duplicate to be penalised") { full.allLogs.contains("penalising peer") && full.allLogs.contains(pyID) }
            for bad in ["wrong-chain", "bad-signature"] {
                let sender = try PyPeer("gossip-send", ["--chain-id", "pychain", "--chain", chainPath, "--other-chain", otherPath,
                                                        "--dial", try full.multiaddr, "--timeout", "20"],
                                        logDirectory: net.logDirectory, name: "py-\(bad)")
                let senderReady = try await sender.event("ready")
                _ = try await sender.event("published")
                sender.send(bad)
                let res = try await sender.event("result", timeout: .seconds(40))
                #expect(res["disconnected"] as? Bool == true, "\(bad): the sender is disconnected")
                let id = senderReady["peer_id"] as! String
                #expect(full.allLogs.contains("banning peer") && full.allLogs.contains(id), "\(bad): banned")
                await sender.stop()
            }
            // The chain is unchanged by all of it.
            #expect(try await full.block(last.height + 1) == nil)
            await py.stop()
            await client.stop()
        }
    }

    /// Review M1 (b): py gossips the independent chain with every data message's
    /// `metadata.last_data_hash` forged (the txs genuine). Nothing verified covers the metadata,
    /// so the Swift full node drops it, syncs the very same chain, and blames py for nothing; it
    /// used to count the pipeline's metadata mismatch against the header's sender and ban it.
    @Test func forgedDataMetadataChangesNothingAndBlamesNobody() async throws {
        try await Testnet.run(chainID: "pyforged") { net in
            let chainPath = try PyLibp2p.makeChain(dir: net.dir.path, chainID: "pyforged", blocks: 10,
                                                   seed: String(repeating: "55", count: 32))
            let chain = try ChainVectors.load(path: chainPath)
            _ = try await net.startDA()
            let py = try PyPeer("gossip-send", ["--chain-id", "pyforged", "--chain", chainPath, "--forge-last-data-hash",
                                                "--timeout", "3"],
                                logDirectory: net.logDirectory, name: "py-forger")
            let ready = try await py.event("ready")
            let full = try net.makeNode(name: "full", aggregator: false, genesis: chain.genesis.jsonText(),
                                        extra: ["--p2p.peers", ready["addr"] as! String])
            try await full.start()
            _ = try await py.event("published")
            let last = chain.blocks.last!
            _ = try await full.waitForStatus("the chain synced from gossip with forged metadata", timeout: .seconds(60)) {
                $0.heights.store >= last.height
            }
            for b in chain.blocks {
                #expect(try await full.block(b.height)?.hash == Hex.encode(b.headerHash), "height \(b.height)")
            }
            #expect((try await full.statusObject()["app_hash"] as? String) == Hex.encode(last.appHashAfter))
            py.send("nothing")
            let result = try await py.event("result", timeout: .seconds(30))
            #expect(result["disconnected"] as? Bool == false, "py stays connected")
            let id = try #require(ready["peer_id"] as? String)
            let blamed = full.allLogs.split(separator: "\n").filter {
                ($0.contains("banning peer") || $0.contains("penalising peer")) && $0.contains(id)
            }
            #expect(blamed.isEmpty, "py blamed: \(blamed)")
            await py.stop()
        }
    }

    /// py serves the independent chain over go-header's exchange; a Swift full node with an empty
    /// DA learns py's head (a proven height) and range-syncs the chain from it, hash for hash.
    @Test func pyServesTheExchangeToASwiftClient() async throws {
        try await Testnet.run(chainID: "pyserve") { net in
            let chainPath = try PyLibp2p.makeChain(dir: net.dir.path, chainID: "pyserve", blocks: 150,
                                                   seed: String(repeating: "17", count: 32))
            let chain = try ChainVectors.load(path: chainPath)
            _ = try await net.startDA()
            let py = try PyPeer("exchange-server", ["--chain-id", "pyserve", "--chain", chainPath],
                                logDirectory: net.logDirectory, name: "py-exchange-server")
            let ready = try await py.event("ready")
            let full = try net.makeNode(name: "full", aggregator: false, genesis: chain.genesis.jsonText(),
                                        extra: ["--p2p.peers", ready["addr"] as! String])
            try await full.start()
            let last = chain.blocks.last!
            let status = try await full.waitForStatus("the chain synced from py's exchange", timeout: .seconds(90)) {
                $0.heights.store >= last.height
            }
            #expect(status.heights.p2p_max == last.height)
            for b in chain.blocks {
                #expect(try await full.block(b.height)?.hash == Hex.encode(b.headerHash), "height \(b.height)")
            }
            py.send("done")
            let served = try await py.event("result")
            let requests = try #require(served["requests"] as? [[String: Any]])
            #expect(requests.contains { ($0["origin"] as? Int) == 0 && ($0["kind"] as? String) == "header" }, "head asked")
            #expect(requests.allSatisfy { ($0["amount"] as? Int ?? 0) <= 64 }, "no request over 64")
            #expect(requests.contains { ($0["kind"] as? String) == "data" && ($0["origin"] as? Int ?? 0) > 0 })
        }
    }

    /// A liar: py answers head requests with a huge height whose header is not the proposer's.
    /// The Swift node never counts it (p2p_max stays 0), bans the liar and stays ready to follow DA.
    @Test func liarWithAHugeUnprovenHeadIsIgnoredAndBanned() async throws {
        try await Testnet.run(chainID: "liar") { net in
            let chainPath = try PyLibp2p.makeChain(dir: net.dir.path, chainID: "liar", blocks: 3,
                                                   seed: String(repeating: "23", count: 32))
            let chain = try ChainVectors.load(path: chainPath)
            _ = try await net.startDA()
            let py = try PyPeer("exchange-server", ["--chain-id", "liar", "--chain", chainPath, "--lie", "1000000"],
                                logDirectory: net.logDirectory, name: "py-liar")
            let ready = try await py.event("ready")
            let full = try net.makeNode(name: "full", aggregator: false, genesis: chain.genesis.jsonText(),
                                        extra: ["--p2p.peers", ready["addr"] as! String])
            try await full.start()
            let id = ready["peer_id"] as! String
            try await waitUntil("the liar to be banned", timeout: .seconds(30)) {
                full.allLogs.contains("banning peer") && full.allLogs.contains(id)
            }
            let s = try await full.status()
            #expect(s.heights.p2p_max == 0)
            #expect(s.heights.store == 0)
            py.send("done")
        }
    }
}

private func varint(_ n: Int) -> [UInt8] {
    var v = UInt64(n)
    var out: [UInt8] = []
    while v >= 0x80 {
        out.append(UInt8(v & 0x7f) | 0x80)
        v >>= 7
    }
    out.append(UInt8(v))
    return out
}
