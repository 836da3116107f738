@testable import Node
import DAClient
import Chain
import Store
@testable import Config
import Foundation
import Libp2p
import P2PSync
import ProcessKit
import Testing
import TestSupport

/// Real full nodes (`EvNode`: RocksDB store, DA follower over a real local DA, P2P on
/// 127.0.0.1) following a chain that rotates from key A to key B while executing block 5
/// (reference/ev-node-chain-rules.md §1 scenario 1): blocks 1–5 signed by A, 6–10 by B. The
/// nodes run the KV application behind `RotatingExecutor` with the same schedule.
@Suite(.timeLimit(.minutes(2))) struct RotationNodeTests {
    let keyA = KeyFile.generate()
    let keyB = KeyFile.generate()
    var a: BlockSigner { BlockSigner(keyFile: keyA) }
    var b: BlockSigner { BlockSigner(keyFile: keyB) }

    func flag(_ value: String) -> RawSetting { RawSetting(value: value, source: "test") }

    /// A full node's setup on `home`; `peers`: multiaddrs to dial.
    func fullNode(home: String, genesis: Genesis, daURL: String, peers: [String] = [],
                  nodeKey: KeyFile = .generate()) throws -> NodeSetup {
        let rpcPort = try freeLoopbackPort()
        let p2pPort = try freeLoopbackPort(avoiding: [rpcPort])
        var flags = ["da.address": flag(daURL), "da.block_time": flag("200ms"),
                     "rpc.address": flag("127.0.0.1:\(rpcPort)"), "p2p.listen_address": flag("127.0.0.1:\(p2pPort)")]
        if !peers.isEmpty { flags["p2p.peers"] = flag(peers.joined(separator: ",")) }
        let config = try ConfigLoader.resolve(home: home, file: [:], flags: flags)
        return NodeSetup(layout: HomeLayout(home: home), config: config, genesis: genesis,
                         signer: nil, signerPath: nil, nodeKey: nodeKey, notices: [])
    }

    func rotating(_ schedule: [UInt64: [UInt8]]) -> EvNode.KVWrapper {
        { kv in RotatingExecutor(kv: kv, schedule: schedule) }
    }

    /// Posts each block as its proposer does: header envelope and signed data, one DA height each.
    func post(_ blocks: ArraySlice<BlockCommit>, client: CelestiaDAClient, config: NodeConfig, chainID: String) async throws {
        let headers = DANamespace(name: config.da.headerNamespaceName(chainID: chainID))
        let data = DANamespace(name: config.da.dataNamespaceName(chainID: chainID))
        for block in blocks {
            let signer = block.signedHeader.header.proposerAddress == a.address ? a : b
            var blobs = [DABlob(namespace: headers, data: try signer.envelope(for: block.signedHeader).encoded())]
            if !block.data.txs.isEmpty {
                blobs.append(DABlob(namespace: data, data: try signer.sign(data: block.data).encoded()))
            }
            _ = try await client.submit(blobs)
        }
    }

    func sourceChain(_ dir: TempDirectory, chainID: String) throws -> (TestChain, [BlockCommit]) {
        let chain = try TestChain(chainID: chainID, signer: a, path: dir.sub("source"), rotations: [5: b])
        var blocks: [BlockCommit] = []
        for h in 1...10 { blocks.append(try chain.produce(["k\(h)=v\(h)"])) }
        return (chain, blocks)
    }

    @Test func aFreshFullNodeFollowsTheRotatedChainFromDAAloneAndAfterARestartAtFive() async throws {
        try await withLocalDA(arguments: ["--block-time", "200ms"]) { da, client, dir in
            let (chain, blocks) = try sourceChain(dir, chainID: "rotation-da")
            defer { chain.close() }
            let home = dir.sub("node")
            let nodeKey = KeyFile.generate()
            var setup = try fullNode(home: home, genesis: chain.genesis, daURL: da.url, nodeKey: nodeKey)
            try await post(blocks[0..<5], client: client, config: setup.config, chainID: chain.chainID)

            let first = try await NodeAssembly.node(setup: setup, wrapKV: rotating([5: b.address]))
            let firstRun = Task { try await first.run() }
            try await waitUntil("synced to 5 from DA") { first.store.height == 5 }
            #expect(first.store.expectedNextProposer == b.address)
            firstRun.cancel()
            _ = try? await firstRun.value

            // Restart at 5: the expectation comes back from the store.
            setup = try fullNode(home: home, genesis: chain.genesis, daURL: da.url, nodeKey: nodeKey)
            let node = try await NodeAssembly.node(setup: setup, wrapKV: rotating([5: b.address]))
            #expect(node.store.expectedNextProposer == b.address)
            let run = Task { try await node.run() }
            defer { run.cancel() }
            try await post(blocks[5...], client: client, config: setup.config, chainID: chain.chainID)
            try await waitUntil("synced to 10 from DA") { node.store.height == 10 }
            #expect(node.store.state == chain.store.state)
            #expect(try node.store.headerHash(at: 10) == chain.store.headerHash(at: 10))
            run.cancel()
            _ = try? await run.value
        }
    }

    /// The P2P-only path: DA holds nothing; a peer serves the rotated chain. B's headers 6–10
    /// must be accepted (and their peer not banned) although the follower cannot place B
    /// before it applied block 5.
    @Test func aFreshFullNodeFollowsTheRotatedChainFromP2PAlone() async throws {
        try await withLocalDA(arguments: ["--block-time", "200ms"]) { da, _, dir in
            // The serving node's store is the source chain itself.
            let serverHome = dir.sub("server")
            let serverSetup = try fullNode(home: serverHome, genesis: Genesis(chainID: "rotation-p2p",
                startTimeNanoseconds: 1_700_000_000_000_000_000, proposerAddress: a.address), daURL: da.url)
            let chain = try TestChain(chainID: "rotation-p2p", signer: a, path: serverSetup.layout.storeDirectory,
                                      rotations: [5: b])
            for h in 1...10 { try chain.produce(["k\(h)=v\(h)"]) }
            let expected = chain.store.state
            let lastHash = try chain.store.headerHash(at: 10)
            chain.close()
            let server = try await NodeAssembly.node(setup: serverSetup, wrapKV: rotating([5: b.address]))
            let serverRun = Task { try await server.run() }
            defer { serverRun.cancel() }
            let serverAddress = "/ip4/127.0.0.1/tcp/\(serverSetup.config.p2p.listen.port)/p2p/\(PeerID(key: serverSetup.nodeKey))"

            let setup = try fullNode(home: dir.sub("node"), genesis: chain.genesis, daURL: da.url, peers: [serverAddress])
            let node = try await NodeAssembly.node(setup: setup, wrapKV: rotating([5: b.address]))
            let run = Task { try await node.run() }
            defer { run.cancel() }
            try await waitUntil("synced to 10 from P2P") { node.store.height == 10 }
            #expect(node.store.state == expected)
            #expect(try node.store.headerHash(at: 10) == lastHash)
            #expect(node.store.expectedNextProposer == b.address)
            #expect(node.p2p.peers.contains { $0.id == PeerID(key: serverSetup.nodeKey) }, "the honest server is not banned")
            run.cancel()
            serverRun.cancel()
            _ = try? await run.value
            _ = try? await serverRun.value
        }
    }

    /// Reference §1 scenario (6) on the KV path: aggregator A, promotable B and a full node. The
    /// executor names B while executing block 5: A stops producing and follows, B promotes
    /// (every SPEC §6 condition checked) and produces 6 on, the full node follows; no height
    /// anywhere has two hashes.
    @Test func aPromotableNodeTakesOverWhenTheChainNamesItsKey() async throws {
        try await withLocalDA(arguments: ["--block-time", "200ms"]) { da, _, dir in
            let genesis = Genesis(chainID: "rotation-promote", startTimeNanoseconds: UInt64(Date().timeIntervalSince1970 * 1e9),
                                  proposerAddress: a.address)
            let schedule = [UInt64(5): b.address]
            func setup(_ name: String, signer: BlockSigner?, extra: [String: String], peers: [String]) throws -> NodeSetup {
                let home = dir.sub(name)
                try FileManager.default.createDirectory(atPath: home + "/config", withIntermediateDirectories: true)
                let rpcPort = try freeLoopbackPort()
                let p2pPort = try freeLoopbackPort(avoiding: [rpcPort])
                var flags = ["da.address": flag(da.url), "da.block_time": flag("200ms"), "node.block_time": flag("200ms"),
                             "rpc.address": flag("127.0.0.1:\(rpcPort)"), "p2p.listen_address": flag("127.0.0.1:\(p2pPort)")]
                for (k, v) in extra { flags[k] = flag(v) }
                if !peers.isEmpty { flags["p2p.peers"] = flag(peers.joined(separator: ",")) }
                let config = try ConfigLoader.resolve(home: home, file: [:], flags: flags)
                return NodeSetup(layout: HomeLayout(home: home), config: config, genesis: genesis,
                                 signer: signer.map { _ in name == "a" ? keyA : keyB }, signerPath: nil,
                                 nodeKey: .generate(), notices: [])
            }
            func address(_ s: NodeSetup) -> String {
                "/ip4/127.0.0.1/tcp/\(s.config.p2p.listen.port)/p2p/\(PeerID(key: s.nodeKey))"
            }
            let setupA = try setup("a", signer: a, extra: ["node.aggregator": "true"], peers: [])
            let setupB = try setup("b", signer: b, extra: ["node.promotable": "true", "node.aggregator": "false"],
                                   peers: [address(setupA)])
            let setupFull = try setup("full", signer: nil, extra: [:], peers: [address(setupA), address(setupB)])
            #expect(setupB.config.role.name == "promotable")

            let nodeA = try await NodeAssembly.node(setup: setupA, wrapKV: rotating(schedule))
            let nodeB = try await NodeAssembly.node(setup: setupB, wrapKV: rotating(schedule))
            let full = try await NodeAssembly.node(setup: setupFull, wrapKV: rotating(schedule))
            let runs = [Task { try await nodeA.run() }, Task { try await nodeB.run() }, Task { try await full.run() }]
            defer { for r in runs { r.cancel() } }

            try await waitUntil("B produces after the rotation and the full node follows to 10") {
                full.store.height >= 10 && nodeB.store.height >= 10 && nodeA.store.height >= 10
            }
            #expect(nodeB.state.phase == .aggregating)
            #expect(nodeA.state.phase == .syncing, "A stopped producing and follows")
            let top = min(full.store.height, nodeA.store.height, nodeB.store.height)
            for h in UInt64(1)...top {
                let hashes = Set([try nodeA.store.headerHash(at: h), try nodeB.store.headerHash(at: h),
                                  try full.store.headerHash(at: h)].compactMap { $0 })
                #expect(hashes.count == 1, "height \(h) has \(hashes.count) hashes")
                let proposer = try #require(try full.store.signedHeader(at: h)).header.proposerAddress
                #expect(proposer == (h <= 5 ? a.address : b.address), "height \(h)")
            }
            #expect(full.store.expectedNextProposer == b.address)

            // The same after a lost disk on B: its store goes, its signer's mark stays. B
            // restarts promotable at height 0; once it syncs past 5 the chain names its key
            // again, but it must not sign a height it signed before: promotion waits for the
            // fence (the mark) until DA and peers supplied those blocks.
            runs[1].cancel()
            _ = try? await runs[1].value
            let signedByB = try #require(try SignerHighWaterMark(path: setupB.layout.signerStateFile).load())
            #expect(signedByB >= 10)
            try FileManager.default.removeItem(atPath: setupB.layout.storeDirectory)
            let restarted = try await NodeAssembly.node(setup: setupB, wrapKV: rotating(schedule))
            #expect(restarted.store.height == 0)
            let rerun = Task { try await restarted.run() }
            defer { rerun.cancel() }
            try await waitUntil("B produces again after its lost disk, above what it signed before") {
                restarted.store.height >= signedByB + 2 && full.store.height >= signedByB + 2
            }
            #expect(restarted.state.phase == .aggregating)
            for h in UInt64(1)...min(full.store.height, restarted.store.height) {
                let hashes = Set([try nodeA.store.headerHash(at: h), try restarted.store.headerHash(at: h),
                                  try full.store.headerHash(at: h)].compactMap { $0 })
                #expect(hashes.count == 1, "height \(h) has \(hashes.count) hashes after the lost disk")
            }
            rerun.cancel()
            _ = try? await rerun.value
            for r in runs { r.cancel() }
            for r in runs { _ = try? await r.value }
        }
    }

    /// Issue 31 §3: an HA leader (etcd) with key A on a chain whose executor names B while
    /// executing block 5, beside a promotable node with key B. A posts its blocks that DA does not
    /// hold yet (its DA block time is an hour: only the drain can post 5), steps down instead of
    /// halting, stops campaigning while the chain names B (no win–step-down loop), and follows
    /// as B produces 6 on. No height has two hashes.
    @Test func anHALeaderWhoseKeyIsRotatedAwayDrainsStepsDownAndFollows() async throws {
        let etcd = try await EtcdProcess.start()
        defer { etcd.kill9() }
        try await withLocalDA(arguments: ["--block-time", "200ms"]) { da, client, dir in
            let genesis = Genesis(chainID: "rotation-ha", startTimeNanoseconds: UInt64(Date().timeIntervalSince1970 * 1e9),
                                  proposerAddress: a.address)
            let schedule = [UInt64(5): b.address]
            func setup(_ name: String, key: KeyFile, extra: [String: String], peers: [String]) throws -> NodeSetup {
                let home = dir.sub(name)
                try FileManager.default.createDirectory(atPath: home + "/config", withIntermediateDirectories: true)
                let rpcPort = try freeLoopbackPort()
                let p2pPort = try freeLoopbackPort(avoiding: [rpcPort])
                var flags = ["da.address": flag(da.url), "da.block_time": flag("200ms"), "node.block_time": flag("200ms"),
                             "rpc.address": flag("127.0.0.1:\(rpcPort)"), "p2p.listen_address": flag("127.0.0.1:\(p2pPort)")]
                for (k, v) in extra { flags[k] = flag(v) }
                if !peers.isEmpty { flags["p2p.peers"] = flag(peers.joined(separator: ",")) }
                let config = try ConfigLoader.resolve(home: home, file: [:], flags: flags)
                return NodeSetup(layout: HomeLayout(home: home), config: config, genesis: genesis, signer: key,
                                 signerPath: nil, nodeKey: .generate(), notices: [])
            }
            func address(_ s: NodeSetup) -> String {
                "/ip4/127.0.0.1/tcp/\(s.config.p2p.listen.port)/p2p/\(PeerID(key: s.nodeKey))"
            }
            let setupA = try setup("a", key: keyA, extra: ["node.aggregator": "true", "raft.enable": "true",
                                                           "raft.endpoints": etcd.url, "da.block_time": "1h"], peers: [])
            let setupB = try setup("b", key: keyB, extra: ["node.promotable": "true", "node.aggregator": "false"],
                                   peers: [address(setupA)])
            let nodeA = try await NodeAssembly.node(setup: setupA, wrapKV: rotating(schedule))
            let nodeB = try await NodeAssembly.node(setup: setupB, wrapKV: rotating(schedule))
            let runA = Task { try await nodeA.run() }
            let runB = Task { try await nodeB.run() }
            defer { runA.cancel(); runB.cancel() }

            try await waitUntil("B produces after the rotation and the stepped-down leader A follows to 10") {
                nodeA.store.height >= 10 && nodeB.store.height >= 10
            }
            #expect(nodeA.state.phase == .syncing, "A follows; it did not halt")
            let ha = try #require(nodeA.ha?.status)
            #expect(ha.role == "follower", "A does not campaign while the chain names B: \(ha)")
            #expect(ha.last_step_down?.contains("production is handed over") == true, "\(ha)")
            // B re-posts A's missing headers without an envelope (README), so the store's
            // inclusion record cannot tell who posted 5: DA itself must hold A's envelope.
            let headers = DANamespace(name: setupA.config.da.headerNamespaceName(chainID: genesis.chainID))
            var postedByA = false
            for daHeight in UInt64(1)...(try await client.networkHead().height) where !postedByA {
                guard let blobs = try? await client.getAll(height: daHeight, namespaces: [headers]) else { continue }
                postedByA = blobs.contains { blob in
                    guard let envelope = try? DAHeaderEnvelope(decoding: blob.data) else { return false }
                    return envelope.header.height == 5 && envelope.signer.address == a.address && !envelope.envelopeSignature.isEmpty
                }
            }
            #expect(postedByA, "A drained its block 5 to DA, enveloped, before it stopped producing")
            for h in UInt64(1)...min(nodeA.store.height, nodeB.store.height) {
                let hashes = Set([try nodeA.store.headerHash(at: h), try nodeB.store.headerHash(at: h)].compactMap { $0 })
                #expect(hashes.count == 1, "height \(h) has \(hashes.count) hashes")
            }
            runA.cancel()
            runB.cancel()
            // Cancelled runs may end with the RPC servers' cancellation errors: only the phase
            // above tells whether A halted.
            _ = try? await runA.value
            _ = try? await runB.value
        }
    }
}
