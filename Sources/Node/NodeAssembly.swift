import Primitives
import DAClient
import Submission
import Etcd
import Chain
import Store
import Execution
import Sync
import Production
import Config
import Foundation
import Logging
import P2PSync
import RemoteSigner

/// Builds a node for one role (ev-node's `NewSyncComponents`, `newAggregatorComponents`,
/// `NewAggregatorWithCatchupComponents`): the parts every role has (`NodeCore`) and only that
/// role's own, riding in its `NodeRole` — a full node has no producer to forget, an aggregator
/// cannot be written without one. `evnode start` and the tests build nodes here.
///
/// The blocking part of a build (opening RocksDB, unlocking or dialling the signer) runs on a
/// lane of its own, never on Swift's cooperative threads; an EVM node's InitChain is awaited.
package enum NodeAssembly {
    /// The node `setup.config.role` asks for.
    package static func node(setup: NodeSetup, logger: Logger = Logger(label: "evnode"),
                             wrapKV: EvNode.KVWrapper? = nil) async throws(NodeFailure) -> EvNode {
        switch setup.config.role {
        case .full: return try await full(setup: setup, logger: logger, wrapKV: wrapKV)
        case .aggregator: return try await aggregator(setup: setup, logger: logger, wrapKV: wrapKV)
        case .aggregatorWithCatchup(let timeout):
            return try await aggregatorWithCatchup(setup: setup, timeout: timeout, logger: logger, wrapKV: wrapKV)
        case .promotable(let timeout): return try await promotable(setup: setup, timeout: timeout, logger: logger, wrapKV: wrapKV)
        case .ha: return try await ha(setup: setup, logger: logger, wrapKV: wrapKV)
        case .based: return try await based(setup: setup, logger: logger, wrapKV: wrapKV)
        }
    }

    /// Syncs from DA and peers; never signs: no signer, producer or submitter is built.
    package static func full(setup: NodeSetup, logger: Logger = Logger(label: "evnode"),
                             wrapKV: EvNode.KVWrapper? = nil) async throws(NodeFailure) -> EvNode {
        try await assemble { lane throws(NodeFailure) -> EvNode in
            let core = try await NodeCore.open(setup: setup, logger: logger, wrapKV: wrapKV, on: lane)
            return EvNode(core: core, sync: core.syncRuntime(secondSigner: nil), role: .full, logger: logger)
        }
    }

    /// Produces from the first moment.
    package static func aggregator(setup: NodeSetup, logger: Logger = Logger(label: "evnode"),
                                   wrapKV: EvNode.KVWrapper? = nil) async throws(NodeFailure) -> EvNode {
        try await producing(setup: setup, logger: logger, wrapKV: wrapKV) { parts, _, _ in .aggregator(parts) }
    }

    /// Syncs until every catchup condition holds (SPEC §6), then produces.
    package static func aggregatorWithCatchup(setup: NodeSetup, timeout: Duration, logger: Logger = Logger(label: "evnode"),
                                              wrapKV: EvNode.KVWrapper? = nil) async throws(NodeFailure) -> EvNode {
        try await producing(setup: setup, logger: logger, wrapKV: wrapKV) { parts, _, _ in
            .aggregatorWithCatchup(parts, timeout: timeout)
        }
    }

    /// Follows until the chain names this node's key, then produces (ev-node v1.2 rotation).
    package static func promotable(setup: NodeSetup, timeout: Duration, logger: Logger = Logger(label: "evnode"),
                                   wrapKV: EvNode.KVWrapper? = nil) async throws(NodeFailure) -> EvNode {
        try await producing(setup: setup, logger: logger, wrapKV: wrapKV) { parts, key, store in
            .promotable(parts, timeout: timeout, namesThisNode: {
                store.state != nil && store.expectedNextProposer == key
            })
        }
    }

    /// An HA aggregator: follows etcd's replicated block while campaigning; leads with every
    /// block fenced through etcd. No second-signer watch: the group shares the key.
    package static func ha(setup: NodeSetup, logger: Logger = Logger(label: "evnode"),
                           wrapKV: EvNode.KVWrapper? = nil) async throws(NodeFailure) -> EvNode {
        try await assemble { lane throws(NodeFailure) -> EvNode in
            let signing = try await lane.run(orIfShutDown: laneClosed(lane)) { () throws(NodeFailure) in
                try Signing.connect(setup: setup, logger: logger)
            }
            let core: NodeCore
            do throws(NodeFailure) {
                core = try await NodeCore.open(setup: setup, logger: logger, wrapKV: wrapKV, on: lane)
            } catch {
                signing.remote?.close()
                throw error
            }
            return try await lane.run(orIfShutDown: laneClosed(lane)) { () throws(NodeFailure) -> EvNode in
                let ha = try makeHA(setup: setup, store: core.store, pipeline: core.pipeline, applier: core.applier,
                                    blockCheck: core.blockCheck, mark: signing.mark, proposerKey: signing.signer.address,
                                    p2p: core.p2p, logger: logger)
                let parts = try aggregatorParts(core, signing, ha: ha, secondSigner: nil, logger: logger)
                return EvNode(core: core, sync: core.syncRuntime(secondSigner: nil), role: .ha(ha, parts.runtime),
                              producing: parts, ha: ha, remoteSigner: signing.remote, logger: logger)
            }
        }
    }

    /// Derives the chain from the forced-inclusion namespace; signs nothing.
    package static func based(setup: NodeSetup, logger: Logger = Logger(label: "evnode"),
                              wrapKV: EvNode.KVWrapper? = nil) async throws(NodeFailure) -> EvNode {
        try await assemble { lane throws(NodeFailure) -> EvNode in
            let core = try await NodeCore.open(setup: setup, logger: logger, wrapKV: wrapKV, on: lane)
            let queue = try await lane.run(orIfShutDown: laneClosed(lane)) { () throws(NodeFailure) in
                try forcedInclusionQueue(config: setup.config, genesis: setup.genesis, store: core.store,
                                         daClient: core.daClient, logger: logger)
            }
            let metrics = core.metrics
            // Not gossiped: based blocks carry no signature, which every syncing peer refuses
            // (ev-node's ErrSignatureEmpty); each follower of a based chain derives it itself.
            let sequencer = BasedSequencer(store: core.store, executor: core.executor, queue: queue,
                                           proposerAddress: setup.genesis.proposerAddress,
                                           pollInterval: min(setup.config.da.blockTime, .seconds(1)),
                                           logger: Logger(label: "evnode.based")) { _ in metrics.blocksProduced.increment() }
            return EvNode(core: core, sync: core.syncRuntime(secondSigner: nil), role: .based(sequencer), logger: logger)
        }
    }

    /// A producing role outside HA: the signer, the shared parts, the second-signer watch (this
    /// node is the only signer of its key), and the producer and submitter.
    private static func producing(setup: NodeSetup, logger: Logger, wrapKV: EvNode.KVWrapper?,
                                  role: @escaping @Sendable (AggregatorRuntime, [UInt8], BlockStore) -> NodeRole) async throws(NodeFailure) -> EvNode {
        try await assemble { lane throws(NodeFailure) -> EvNode in
            let signing = try await lane.run(orIfShutDown: laneClosed(lane)) { () throws(NodeFailure) in
                try Signing.connect(setup: setup, logger: logger)
            }
            let core: NodeCore
            do throws(NodeFailure) {
                core = try await NodeCore.open(setup: setup, logger: logger, wrapKV: wrapKV, on: lane)
            } catch {
                signing.remote?.close()
                throw error
            }
            let store = core.store
            let watch = SecondSignerWatch(storeHeight: { store.height }, key: signing.signer.address)
            core.p2p.provenHeights.observeProofs { proof in
                watch.saw(height: proof.height, hash: proof.hash, proposer: proof.proposer,
                          source: "peer \(proof.peer) (its head answer)")
            }
            let parts = try await lane.run(orIfShutDown: laneClosed(lane)) { () throws(NodeFailure) in
                try aggregatorParts(core, signing, ha: nil, secondSigner: watch, logger: logger)
            }
            return EvNode(core: core, sync: core.syncRuntime(secondSigner: watch),
                          role: role(parts.runtime, signing.signer.address, store),
                          producing: parts, ha: nil, remoteSigner: signing.remote, logger: logger)
        }
    }

    /// The producer and the DA submitter of a producing role, gossiping each block it stores
    /// (an HA leader only while it may publish).
    private static func aggregatorParts(_ core: NodeCore, _ signing: Signing, ha: HARuntime?, secondSigner: SecondSignerWatch?,
                                        logger: Logger) throws(NodeFailure) -> ProducingParts {
        let config = core.setup.config
        let genesis = core.setup.genesis
        let store = core.store
        var backPressure: PendingBlocksGate?
        if config.maxPendingBlocks > 0 {
            backPressure = PendingBlocksGate(limit: config.maxPendingBlocks, store: store,
                                             logger: Logger(label: "evnode.producer"))
        }
        var forcedInclusion: ForcedInclusionQueue?
        if !config.da.forcedInclusionNamespace.isEmpty {
            forcedInclusion = try forcedInclusionQueue(config: config, genesis: genesis, store: store,
                                                       daClient: core.daClient, logger: logger)
        }
        let p2p = core.p2p
        let metrics = core.metrics
        let producer = BlockProducer(
            store: store, executor: core.executor, signer: signing.signer, mark: signing.mark,
            timing: .init(blockTime: config.blockTime, lazy: config.lazy, lazyInterval: config.lazyInterval),
            fence: ha.map { HAFence(runtime: $0) }, gate: backPressure, chainMetrics: metrics.evnode.chain,
            forcedInclusion: forcedInclusion,
            logger: Logger(label: "evnode.producer")) { block in
                metrics.blocksProduced.increment()
                // Fenced moments ago; a leader paused since then lets nothing out.
                if let ha, !ha.mayPublish { return }
                p2p.publish(block)
            }
        var gate: (@Sendable () -> Bool)?
        if let ha { gate = { ha.mayPublish } }
        var submitterOptions = SubmitterOptions(config: config.da, chainID: genesis.chainID)
        submitterOptions.maxPendingBlocks = config.maxPendingBlocks
        let submitter = DASubmitter(client: core.daClient, store: store, executor: core.executor, signer: signing.signer,
                                    options: submitterOptions,
                                    publishGate: gate, metrics: metrics.evnode, submissions: core.submissions,
                                    logger: Logger(label: "evnode.da.submitter"))
        let runtime = AggregatorRuntime(producer: producer, submitter: submitter, secondSigner: secondSigner,
                                        forcedInclusion: forcedInclusion, logger: logger)
        return ProducingParts(runtime: runtime, mark: signing.mark, backPressure: backPressure)
    }

    /// Runs `build` with a lane of its own for the blocking steps (RocksDB, Argon2id, the remote
    /// signer's first calls), shut down when the node is built; InitChain is awaited between them.
    private static func assemble(_ build: (BlockingLane) async throws(NodeFailure) -> EvNode) async throws(NodeFailure) -> EvNode {
        try await BlockingLane.with(name: "evnode-setup", threads: 1) { lane throws(NodeFailure) in try await build(lane) }
    }

    static func laneClosed(_ lane: BlockingLane) -> NodeFailure {
        .failed(.serviceGroup, underlying: BlockingLaneError<NodeFailure>.shutDown(lane: lane.name))
    }

    /// A producing role without a signer: `NodeSetup` refuses such a home with this text, so
    /// only a setup built by hand reaches it; it stops the node instead of running one that
    /// would never produce.
    static var noSigner: NodeFailure {
        .config(.missing("--evnode.node.aggregator needs a signer key (config/signer.json)"))
    }

    /// `signer_type grpc`: connects to `evnode signer serve`, and checks that it holds the
    /// genesis proposer's key and signs this chain. Blocking (called from the node's
    /// construction thread).
    static func connectRemoteSigner(setup: NodeSetup, logger: Logger) throws(NodeFailure) -> (client: RemoteSignerClient, signer: BlockSigner) {
        let s = setup.config.signer
        guard let address = s.grpcAddress else {
            throw .config(.missing("--evnode.signer.signer_type grpc needs --evnode.signer.grpc_address"))
        }
        var token: String?
        if !s.grpcTokenFile.isEmpty {
            do throws(ConfigError) {
                token = try SignerToken.read(setup.layout.resolve(s.grpcTokenFile))
            } catch {
                throw .config(error)
            }
        }
        let tls = s.grpcTLSCertFile.isEmpty ? nil
            : SignerClientTLSFiles(certificate: setup.layout.resolve(s.grpcTLSCertFile),
                                   key: setup.layout.resolve(s.grpcTLSKeyFile), serverCA: setup.layout.resolve(s.grpcTLSCAFile))
        let client: RemoteSignerClient
        let key: [UInt8]
        let mark: RemoteMark
        do throws(RemoteSignerError) {
            client = try RemoteSignerClient(host: address.host, port: address.port, token: token, tls: tls)
            key = try client.blockingPublicKey()
            mark = try client.blockingMark(withBlock: false)
        } catch {
            throw .config(.remoteMark(address: "\(address)", reason: error.description))
        }
        let signer = BlockSigner(backend: RemoteSigningBackend(client: client), rawPublicKey: key)
        let genesis = setup.genesis
        guard signer.address == genesis.proposerAddress else {
            client.close()
            throw .config(.conflict("the remote signer at \(address) holds key \(Hex.encode(signer.address)) but the genesis proposer is \(Hex.encode(genesis.proposerAddress)): it cannot sign blocks for chain \(genesis.chainID)"))
        }
        guard mark.chainID == genesis.chainID else {
            client.close()
            throw .config(.conflict("the remote signer at \(address) signs for chain \"\(mark.chainID)\" but this node's genesis is chain \"\(genesis.chainID)\""))
        }
        logger.notice("remote signer connected", metadata: [
            "address": "\(address)", "proposer": "\(Hex.encode(signer.address))",
            "mark": "\(mark.height.map(String.init) ?? "none")", "tls": "\(tls != nil)", "token": "\(token != nil)"])
        return (client, signer)
    }

    /// The forced-inclusion queue of a sequencer or a based node, resumed from the checkpoint
    /// the store keeps with the blocks (or `da_start_height` on a chain that has none yet).
    static func forcedInclusionQueue(config: NodeConfig, genesis: Genesis, store: BlockStore, daClient: CelestiaDAClient,
                                     logger: Logger) throws(NodeFailure) -> ForcedInclusionQueue {
        let checkpoint: ForcedInclusionCheckpoint?
        do throws(StoreError) {
            checkpoint = try store.forcedInclusionCheckpoint()
        } catch {
            store.close()
            throw .store(error)
        }
        let epochs = ForcedInclusionEpochs(startHeight: genesis.daStartHeight, size: genesis.daEpochForcedInclusion)
        let retriever = ForcedInclusionRetriever(client: daClient,
                                                 namespace: DANamespace(name: config.da.forcedInclusionNamespace),
                                                 epochs: epochs)
        logger.info("forced inclusion on", metadata: [
            "namespace": "\(config.da.forcedInclusionNamespace)", "da_start_height": "\(epochs.startHeight)",
            "epoch": "\(epochs.size)", "checkpoint": "\(checkpoint.map { "\($0)" } ?? "none")"])
        return ForcedInclusionQueue(source: retriever, epochs: epochs, checkpoint: checkpoint,
                                    startTime: genesis.startTimeNanoseconds, logger: Logger(label: "evnode.forced-inclusion"))
    }

    /// The HA group's parts (`--raft.enable`). The lease TTL defaults to five block times, at
    /// least 2 s (etcd's shortest); the node id to one derived from the node key; the heartbeat
    /// timeout to five heartbeat intervals.
    private static func makeHA(setup: NodeSetup, store: BlockStore, pipeline: SyncPipeline, applier: BlockApplier,
                               blockCheck: SignedBlockValidator, mark: any SignerMark, proposerKey: [UInt8],
                               p2p: P2PService, logger: Logger) throws(NodeFailure) -> HARuntime {
        let raft = setup.config.raft
        let ttl = raft.leaseTTL > .zero ? raft.leaseTTL : max(.seconds(2), setup.config.blockTime * 5)
        let nodeID = raft.nodeID.isEmpty ? "node-" + Hex.encode(Array(setup.nodeKey.address.prefix(8))) : raft.nodeID
        let etcd: EtcdClient
        do throws(EtcdError) {
            etcd = try EtcdClient(endpoints: raft.endpoints.map(\.url),
                                  requestTimeout: min(.seconds(2), max(.milliseconds(500), ttl / 3)))
        } catch {
            store.close()
            throw .failed(.haEtcdClient, underlying: error)
        }
        let timing = HATiming(leaseTTL: ttl, heartbeatInterval: raft.heartbeatInterval,
                              heartbeatTimeout: raft.effectiveHeartbeatTimeout)
        let group = HAGroup(etcd: etcd, chainID: setup.genesis.chainID, nodeID: nodeID, timing: timing,
                            logger: Logger(label: "evnode.ha"))
        logger.info("HA aggregator on etcd", metadata: [
            "node_id": "\(nodeID)", "endpoints": "\(raft.endpoints.map(\.url).joined(separator: ","))",
            "lease_ttl": "\(DurationParser.format(ttl))",
            "heartbeat": timing.heartbeats
                ? "every \(DurationParser.format(timing.heartbeatInterval)), take-over after \(DurationParser.format(timing.heartbeatTimeout)) of silence"
                : "off (a dead leader is replaced when its lease expires)"])
        return HARuntime(group: group, store: store, pipeline: pipeline, applier: applier, blockCheck: blockCheck,
                         mark: mark, p2p: p2p, logger: Logger(label: "evnode.ha"), proposerKey: proposerKey)
    }

}
