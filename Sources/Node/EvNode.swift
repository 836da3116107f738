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
import EVM
import Foundation
import Logging
import NIOPosix
import P2PSync
import RemoteSigner
import ServiceLifecycle
import Synchronization
import Telemetry

/// A running evnode: opens the store, builds every part from the validated setup, and runs the
/// RPC server, P2P and the failover state machine until SIGTERM/SIGINT or a failure.
package final class EvNode: Sendable {
    package let setup: NodeSetup
    let store: BlockStore
    /// The execution layer: the built-in KV application, or an EL over the Engine API.
    let executor: any Executor
    /// Set when `--execution kv` (the default): its mempool takes `POST /tx`, `/kv` reads it.
    let kv: KVExecutor?
    /// Set when `--execution evm`: `POST /tx` goes to the EL's pool, `/status` shows its health.
    let evm: EVMExecutor?
    let daClient: CelestiaDAClient
    let p2p: P2PService
    let pipeline: SyncPipeline
    let follower: DAFollower
    let evidence: EvidenceLog
    let state: NodeState
    let metrics: NodeMetrics
    let machine: FailoverStateMachine
    let logger: Logger
    let submitter: DASubmitter?
    let ha: HARuntime?
    /// `--max-pending-blocks`; nil when off or not an aggregator.
    let backPressure: PendingBlocksGate?
    /// `--da.subscribe`; nil when off or when no DA follower runs.
    let subscription: DAHeadSubscription?
    /// The last submissions to DA, for the DA visualizer and the dashboard.
    let submissions = DASubmissionLog()
    /// The dashboard's history of heights and the live snapshots behind `GET /events`.
    let dashboard = DashboardFeed()
    /// The aggregator's signer mark (`config/signer.state`, or the remote signer's); nil on a
    /// full node.
    let signerMark: (any SignerMark)?
    /// `signer_type grpc`: the connection to `evnode signer serve`.
    let remoteSigner: RemoteSignerClient?

    /// Wraps the built-in KV application before the node uses it (a test's executor that names
    /// the next proposer, ev-node v1.2 rotation); nil: the KV application as it is.
    package typealias KVWrapper = @Sendable (KVExecutor) -> any Executor

    /// What the node opens before its chain can be initialized: the remote signer's connection,
    /// the store and the executor. Blocking (RocksDB, a signer handshake): built on a lane.
    struct Opened: Sendable {
        let remote: (client: RemoteSignerClient, signer: BlockSigner)?
        let store: BlockStore
        let executor: any Executor
        let kv: KVExecutor?
        let evm: EVMExecutor?

        init(setup: NodeSetup, logger: Logger, wrapKV: KVWrapper?) throws(NodeFailure) {
            let config = setup.config
            // Before anything is opened: a signer that cannot be reached, or that holds another key
            // or signs another chain, leaves nothing to clean up.
            if config.aggregator, config.signer.kind == .grpc {
                remote = try EvNode.connectRemoteSigner(setup: setup, logger: logger)
            } else {
                remote = nil
            }
            do throws(FileIO.Failure) {
                try FileIO.makeDirectories(setup.layout.dataDirectory, mode: 0o700)
            } catch {
                throw .config(.file(path: error.path, reason: error.description))
            }
            do throws(StoreError) {
                store = try BlockStore.open(path: setup.layout.storeDirectory)
            } catch {
                throw .store(error)
            }
            switch config.execution.kind {
            case .kv:
                let kv = KVExecutor(store: store)
                (executor, self.kv, evm) = (wrapKV?(kv) ?? kv, kv, nil)
            case .evm:
                let evm = try EvNode.makeEVM(config.execution.evm, store: store, logger: logger)
                (executor, kv, self.evm) = (evm, nil, evm)
            }
        }
    }

    /// Builds the node from what `Opened` opened, once the store holds the chain's state.
    /// Blocking (store reads, the DA client's setup): called on `make`'s lane.
    init(setup: NodeSetup, opened: Opened, logger: Logger) throws(NodeFailure) {
        self.setup = setup
        self.logger = logger
        let config = setup.config
        let genesis = setup.genesis
        metrics = NodeMetrics(namespace: config.instrumentation.namespace, chainID: genesis.chainID)
        state = NodeState(metrics: metrics, logger: logger)
        let remote = opened.remote
        remoteSigner = remote?.client
        store = opened.store
        (executor, kv, evm) = (opened.executor, opened.kv, opened.evm)
        metrics.observe(store: store)
        logger.info("store opened", metadata: ["path": "\(setup.layout.storeDirectory)",
                                               "height": "\(store.height)",
                                               "finalized": "\(store.finalizedHeight)"])

        let validator = BlockValidator(genesis: genesis)
        let headerNamespace = DANamespace(name: config.da.headerNamespaceName(chainID: genesis.chainID))
        let dataNamespace = DANamespace(name: config.da.dataNamespaceName(chainID: genesis.chainID))
        do throws(DAError) {
            daClient = try CelestiaDAClient(options: DAClientOptions(config: config.da),
                                            logger: Logger(label: "evnode.da"))
        } catch {
            store.close()
            throw .daFollower("cannot create the DA client: \(error)")
        }
        let blockCheck = SignedBlockValidator(blockValidator: validator, placement: store)
        p2p = P2PService(config: config.p2p, nodeKey: setup.nodeKey, chainID: genesis.chainID,
                         source: StoreBlockSource(store: store), validator: blockCheck,
                         provenHeights: ProvenPeerHeights(validator: validator, placement: store),
                         metrics: metrics.evnode.p2p, logger: Logger(label: "evnode.p2p"))
        let applier = BlockApplier(store: store, executor: executor, validator: validator)
        do throws(StoreError) {
            evidence = try EvidenceLog(store: store, validator: validator, logger: Logger(label: "evnode.evidence"))
        } catch {
            store.close()
            throw .store(error)
        }
        // What DA holds per unfinalized height, shared by the follower, the pipeline and recovery.
        let authority = AuthoritativeHeaders()
        pipeline = SyncPipeline(applier: applier, authority: authority, evidence: evidence, metrics: metrics.evnode,
                                logger: Logger(label: "evnode.sync"))
        let startDA = config.da.startHeight > 0 ? config.da.startHeight : genesis.daStartHeight
        var followerOptions = DAFollower.Options(headerNamespace: headerNamespace, dataNamespace: dataNamespace,
                                                 startHeight: startDA, parallelism: config.da.fetchParallelism,
                                                 pollInterval: min(config.da.blockTime, .seconds(1)),
                                                 maxHeldDataBytes: config.da.maxHeldData)
        followerOptions.metrics = metrics.evnode.sync
        if !config.da.forcedInclusionNamespace.isEmpty {
            // Every node that syncs from DA checks forced inclusion (ev-node's syncer does).
            let epochs = ForcedInclusionEpochs(startHeight: genesis.daStartHeight, size: genesis.daEpochForcedInclusion)
            let source = ForcedInclusionRetriever(client: daClient, namespace: DANamespace(name: config.da.forcedInclusionNamespace),
                                                  epochs: epochs)
            let name = config.da.forcedInclusionNamespace
            let series = metrics.evnode.forcedInclusion
            let checkExecutor = executor
            followerOptions.forcedInclusion = { resume in
                ForcedInclusionVerifier(source: source, epochs: epochs, executor: checkExecutor, namespace: name,
                                        resumeDAHeight: resume, metrics: series,
                                        logger: Logger(label: "evnode.forced-inclusion.check"))
            }
        }
        follower = DAFollower(
            client: daClient,
            options: followerOptions,
            sink: pipeline, store: store, executor: executor, validator: validator,
            authority: authority, evidence: evidence,
            logger: Logger(label: "evnode.da.follower"))
        let recovery = DivergenceRecovery(store: store, pipeline: pipeline, authority: authority, replay: follower,
                                          rollbacker: applier, evidence: evidence, state: state, metrics: metrics,
                                          logger: Logger(label: "evnode.recovery"))
        // Outside HA an aggregator is the only signer of its key: anything signed above its store
        // from elsewhere is a second live signer (an HA group shares the key behind etcd's fence).
        var secondSigner: SecondSignerWatch?
        if config.aggregator, !config.raft.enable {
            let store = self.store
            let watch = SecondSignerWatch(storeHeight: { store.height }, key: setup.signer?.address)
            p2p.provenHeights.observeProofs { proof in
                watch.saw(height: proof.height, hash: proof.hash, proposer: proof.proposer,
                          source: "peer \(proof.peer) (its head answer)")
            }
            secondSigner = watch
        }
        let sync = SyncRuntime(pipeline: pipeline, follower: follower, p2p: p2p, blockCheck: blockCheck,
                               recovery: recovery, metrics: metrics, secondSigner: secondSigner,
                               logger: Logger(label: "evnode.sync"))

        var subscription: DAHeadSubscription?
        if config.da.subscribe, config.role.syncs {
            let follower = self.follower
            subscription = DAHeadSubscription(
                options: .init(url: config.da.address.url, authToken: config.da.authToken, caFile: config.da.tlsCAFile,
                               namespace: headerNamespace),
                logger: Logger(label: "evnode.da.subscription")) { _ in follower.wake() }
        }
        self.subscription = subscription
        var backPressure: PendingBlocksGate?
        var aggregator: AggregatorRuntime?
        var submitter: DASubmitter?
        var mark: (any SignerMark)?
        var ha: HARuntime?
        let localSigner = setup.signer.map { (BlockSigner(keyFile: $0), SignerHighWaterMark(path: setup.layout.signerStateFile)) }
        var producingKey: [UInt8]?
        if !config.basedSequencer, config.aggregator, let (signer, signerMark) = remote.map({ ($0.signer, RemoteSignerMark(client: $0.client, signer: $0.signer.signer) as any SignerMark) })
            ?? localSigner.map({ ($0.0, $0.1 as any SignerMark) }) {
            mark = signerMark
            producingKey = signer.address
            if config.raft.enable {
                ha = try Self.makeHA(setup: setup, store: store, pipeline: pipeline, applier: applier,
                                     blockCheck: blockCheck, mark: signerMark, proposerKey: signer.address,
                                     p2p: p2p, logger: logger)
            }
            let p2p = self.p2p
            let metrics = self.metrics
            let haRuntime = ha
            if config.maxPendingBlocks > 0 {
                backPressure = PendingBlocksGate(limit: config.maxPendingBlocks, store: store,
                                                 logger: Logger(label: "evnode.producer"))
            }
            var forcedInclusion: ForcedInclusionQueue?
            if !config.da.forcedInclusionNamespace.isEmpty {
                forcedInclusion = try Self.forcedInclusionQueue(config: config, genesis: genesis, store: store,
                                                                daClient: daClient, logger: logger)
            }
            let producer = BlockProducer(
                store: store, executor: executor, signer: signer, mark: signerMark,
                timing: .init(blockTime: config.blockTime, lazy: config.lazy, lazyInterval: config.lazyInterval),
                fence: ha.map { HAFence(runtime: $0) }, gate: backPressure, chainMetrics: metrics.evnode.chain,
                forcedInclusion: forcedInclusion,
                logger: Logger(label: "evnode.producer")) { block in
                    metrics.blocksProduced.increment()
                    // Fenced moments ago; a leader paused since then lets nothing out.
                    if let haRuntime, !haRuntime.mayPublish { return }
                    p2p.publish(block)
                }
            var gate: (@Sendable () -> Bool)?
            if let haRuntime { gate = { haRuntime.mayPublish } }
            var submitterOptions = SubmitterOptions(config: config.da, chainID: genesis.chainID)
            submitterOptions.maxPendingBlocks = config.maxPendingBlocks
            let sub = DASubmitter(client: daClient, store: store, executor: executor, signer: signer,
                                  options: submitterOptions,
                                  publishGate: gate, metrics: metrics.evnode, submissions: submissions,
                                  logger: Logger(label: "evnode.da.submitter"))
            submitter = sub
            aggregator = AggregatorRuntime(producer: producer, submitter: sub, secondSigner: secondSigner,
                                           forcedInclusion: forcedInclusion, logger: logger)
        }
        self.submitter = submitter
        self.signerMark = mark
        self.backPressure = backPressure
        self.ha = ha
        let role: NodeRole
        switch config.role {
        case .full:
            role = .full
        case .based:
            let queue = try Self.forcedInclusionQueue(config: config, genesis: genesis, store: store,
                                                      daClient: daClient, logger: logger)
            let metrics = self.metrics
            // Not gossiped: based blocks carry no signature, which every syncing peer refuses
            // (ev-node's ErrSignatureEmpty); each follower of a based chain derives it itself.
            role = .based(BasedSequencer(store: store, executor: executor, queue: queue, proposerAddress: genesis.proposerAddress,
                                         pollInterval: min(config.da.blockTime, .seconds(1)),
                                         logger: Logger(label: "evnode.based")) { _ in metrics.blocksProduced.increment() })
        case .aggregator:
            guard let aggregator else {
                store.close()
                throw Self.noSigner
            }
            role = .aggregator(aggregator)
        case .aggregatorWithCatchup(let timeout):
            guard let aggregator else {
                store.close()
                throw Self.noSigner
            }
            role = .aggregatorWithCatchup(aggregator, timeout: timeout)
        case .promotable(let timeout):
            guard let aggregator, let own = producingKey else {
                store.close()
                throw Self.noSigner
            }
            let store = self.store
            role = .promotable(aggregator, timeout: timeout,
                               namesThisNode: { store.state != nil && store.expectedNextProposer == own })
        case .ha:
            guard let ha, let aggregator else {
                store.close()
                throw Self.noSigner
            }
            role = .ha(ha, aggregator)
        }
        machine = FailoverStateMachine(role: role, state: state, sync: sync, p2p: p2p,
                                       peersConfigured: !config.p2p.peers.isEmpty, signerMark: mark,
                                       metrics: metrics, logger: logger)
    }

    /// A producing role without a signer: `NodeSetup` refuses such a home with this text, so
    /// only a setup built by hand reaches it; it stops the node instead of running one that
    /// would never produce.
    private static var noSigner: NodeFailure {
        .config(.missing("--evnode.node.aggregator needs a signer key (config/signer.json)"))
    }

    /// Builds a node without blocking Swift's cooperative threads: the store is opened and the
    /// node built on a lane of its own, and the chain's first start (InitChain: an EVM node asks
    /// the EL for its genesis) is an async step between the two — an EL that cannot be reached
    /// yet is awaited, no thread waits for it.
    package static func make(setup: NodeSetup, logger: Logger = Logger(label: "evnode"),
                            wrapKV: KVWrapper? = nil) async throws(NodeFailure) -> EvNode {
        try await BlockingLane.with(name: "evnode-setup", threads: 1) { lane throws(NodeFailure) in
            let closed = NodeFailure.service("the setup lane is shut down")
            let opened = try await lane.run(orIfShutDown: closed) { () throws(NodeFailure) in
                try Opened(setup: setup, logger: logger, wrapKV: wrapKV)
            }
            do throws(NodeFailure) {
                try await initializeChain(opened, genesis: setup.genesis, on: lane, logger: logger)
                return try await lane.run(orIfShutDown: closed) { () throws(NodeFailure) in
                    try EvNode(setup: setup, opened: opened, logger: logger)
                }
            } catch {
                opened.store.close()
                throw error
            }
        }
    }

    fileprivate static func makeEVM(_ config: EVMConfig, store: BlockStore, logger: Logger) throws(NodeFailure) -> EVMExecutor {
        do throws(EVMSetupError) {
            let secret = try EngineJWT.readSecret(path: config.jwtSecretFile)
            let rpc = try EngineRPCClient(engineURL: config.engineURL?.url ?? "http://localhost:8551",
                                          ethURL: config.ethURL?.url ?? "http://localhost:8545",
                                          jwt: EngineJWT(secret: secret))
            logger.info("EVM execution", metadata: ["engine": "\(rpc.engineURL)", "eth": "\(rpc.ethURL)"])
            return EVMExecutor(rpc: rpc, store: store,
                               options: .init(genesisHash: config.genesisHash, feeRecipient: config.feeRecipient),
                               logger: Logger(label: "evnode.evm"))
        } catch {
            store.close()
            throw .execution(ExecutionError(height: nil, reason: error.description))
        }
    }

    /// The stored state, or on first start the executor's InitChain and the genesis state. An
    /// EL that cannot be reached yet is waited for (logged every attempt); one that answers
    /// wrongly, or a store of another chain, stops the node.
    private static func initializeChain(_ opened: Opened, genesis: Genesis, on lane: BlockingLane,
                                        logger: Logger) async throws(NodeFailure) {
        let execution = ChainExecution(store: opened.store, executor: opened.executor)
        while true {
            do throws(StoreError) {
                try await execution.initialize(genesis: genesis, on: lane)
                return
            } catch {
                guard case .execution(let e) = error, e.isUnavailable else { throw .store(error) }
                logger.warning("waiting for the execution layer to answer InitChain", metadata: ["error": "\(e)"])
                do {
                    try await Task.sleep(for: .seconds(2))
                } catch {
                    throw .service("stopped while waiting for the execution layer to answer InitChain")
                }
            }
        }
    }

    /// Start of every run: an engine with its own state is rolled back or replayed to the store
    /// (`ExecutionReconciler`). An unreachable EL is waited for, visible in `/status`.
    func reconcileExecution() async throws(NodeFailure) {
        let reconciler = ExecutionReconciler(store: store, executor: executor, logger: Logger(label: "evnode.evm"))
        while true {
            do throws(ExecutionError) {
                let outcome = try await reconciler.reconcile()
                if outcome != .inLine { logger.notice("execution layer reconciled with the store", metadata: ["outcome": "\(outcome)"]) }
                return
            } catch {
                guard error.isUnavailable else { throw .execution(error) }
                logger.warning("waiting for the execution layer", metadata: ["error": "\(error)"])
                do {
                    try await Task.sleep(for: .seconds(2))
                } catch {
                    return
                }
            }
        }
    }

    /// `signer_type grpc`: connects to `evnode signer serve`, and checks that it holds the
    /// genesis proposer's key and signs this chain. Blocking (called from the node's
    /// construction thread).
    private static func connectRemoteSigner(setup: NodeSetup, logger: Logger) throws(NodeFailure) -> (client: RemoteSignerClient, signer: BlockSigner) {
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
            throw .ha("\(error)")
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

    /// Pruning waits while the sync pipeline has a backlog of a batch or more (a catch-up).
    private func pruningService(_ executor: KVExecutor) -> StatePruningService {
        let pipeline = self.pipeline
        return StatePruningService(executor: executor, logger: Logger(label: "evnode.pruning"),
                                   deferWhile: { pipeline.progress.waiting >= pipeline.batchSize })
    }

    /// Runs until SIGTERM/SIGINT (returns) or a failure (throws `NodeFailure`).
    package func run() async throws(NodeFailure) {
        let rpc = RPCServer(address: setup.config.rpc.address, backend: NodeRPCBackend(node: self),
                            dashboard: NodeDashboardBackend(node: self), logger: Logger(label: "evnode.rpc"))
        let runtime = NodeRuntimeService(node: self)
        var extra: [ServiceGroupConfiguration.ServiceConfiguration] = []
        if let subscription {
            extra.append(.init(service: NamedService(.daSubscription, DAHeadSubscriptionService(subscription: subscription)),
                               successTerminationBehavior: .ignore))
        }
        if let server = try forcedInclusionServer() {
            extra.append(.init(service: NamedService(.forcedInclusionServer, server)))
        }
        if setup.config.instrumentation.prometheus {
            extra.append(.init(service: NamedService(.prometheus, PrometheusListener(
                address: setup.config.instrumentation.prometheusListen, metrics: metrics, logger: Logger(label: "evnode.metrics")))))
        }
        let group = ServiceGroup(configuration: .init(
            services: extra + [
                .init(service: NamedService(.rpc, rpc)),
                .init(service: NamedService(.p2p, p2p)),
                .init(service: NamedService(.metricsRefresher, MetricsRefresher(node: self))),
                .init(service: NamedService(.heapTrim, HeapTrimService())),
                .init(service: NamedService(.failover, runtime), successTerminationBehavior: .gracefullyShutdownGroup),
            ] + (kv.map { [.init(service: NamedService(.statePruning, pruningService($0)))] } ?? [])
              + [.init(service: NamedService(.blockPruning, BlockPruningService(store: store, config: setup.config.pruning,
                                                                                logger: Logger(label: "evnode.pruning"))),
                       successTerminationBehavior: .ignore)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: Logger(label: "evnode.lifecycle")))
        defer {
            store.close()
        }
        do {
            try await group.run()
        } catch let failure as NodeFailure {
            throw failure
        } catch let error as ServiceGroupError {
            throw .service("\(error)")
        } catch {
            if let failure = runtime.failure { throw failure }
            throw .service("\(String(reflecting: type(of: error))): \(error)")
        }
        if let failure = runtime.failure { throw failure }
        logger.notice("stopped", metadata: ["height": "\(store.height)", "finalized": "\(store.finalizedHeight)"])
    }

    // MARK: read-outs for RPC and metrics

    func status() -> NodeStatus {
        let snapshot = state.snapshot
        let follower = self.follower.status
        // An aggregator runs no DA follower; the DA height of its last submission is the newest
        // DA height it knows of.
        let daHead = max(follower.daHead, submitter?.status.lastDAHeight ?? 0)
        return NodeStatus(
            mode: setup.config.role.name,
            phase: snapshot.phase,
            reason: snapshot.reason,
            chain_id: setup.genesis.chainID,
            heights: .init(store: store.height, finalized: store.finalizedHeight, da_head: daHead,
                           p2p_max: p2p.maxPeerHeight ?? 0),
            catchup: snapshot.catchup,
            peers: p2p.peerCount,
            evidence: evidence.count,
            proposer: Hex.encode(store.expectedNextProposer),
            app_hash: Hex.encode(store.state?.appHash ?? []),
            ha: ha?.status,
            da: daStatus(),
            execution: evm.map { ExecutionStatus(evm: $0) } ?? ExecutionStatus(kind: "kv"),
            peer_id: p2p.localID.description,
            p2p_listen: p2p.listenMultiaddrs.map(\.description))
    }

    /// The DA follower's view (failures, junk) plus submission (fees, back-pressure) and
    /// subscription state, for `/status`.
    func daStatus() -> NodeStatus.DA {
        var da = NodeStatus.DA(follower.status, now: .now)
        let sub = submitter?.status
        let gate = backPressure?.status
        da.gas_price = sub?.gasPrice
        da.fee_escalations = sub?.feeEscalations ?? 0
        da.last_signer = sub?.lastSigner
        da.submit_error = sub?.lastError
        da.pending_blocks = gate?.pending ?? (store.height > store.finalizedHeight ? store.height - store.finalizedHeight : 0)
        da.max_pending_blocks = backPressure?.limit ?? 0
        da.production_paused = gate?.paused ?? false
        da.paused_reason = gate?.reason
        let subscribed = subscription?.status
        da.subscription = subscribed?.state.rawValue ?? "off"
        da.subscription_notifications = subscribed?.notifications ?? 0
        return da
    }
}

/// Runs the failover state machine as a service; keeps its failure for `EvNode.run` to throw.
final class NodeRuntimeService: Service, Sendable {
    let node: EvNode
    private let failureBox = Mutex<NodeFailure?>(nil)

    init(node: EvNode) {
        self.node = node
    }

    var failure: NodeFailure? { failureBox.withLock { $0 } }

    func run() async throws {
        do {
            try await cancelWhenGracefulShutdown {
                try await self.node.reconcileExecution()
                try await self.node.machine.run()
            }
        } catch let failure as NodeFailure {
            failureBox.withLock { $0 = failure }
            throw failure
        } catch is CancellationError {
            return
        }
    }
}

/// Runs the DA head subscription next to the rest; it ends with the node.
struct DAHeadSubscriptionService: Service {
    let subscription: DAHeadSubscription

    func run() async throws {
        try? await cancelWhenGracefulShutdown { await subscription.run() }
    }
}

/// Keeps the gauges current (once a second).
struct MetricsRefresher: Service {
    let node: EvNode

    func run() async throws {
        var applied = node.pipeline.progress.appliedTotal
        var daFailures = 0
        var badBlobs = 0
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let status = node.status()
            let m = node.metrics
            let total = node.pipeline.progress.appliedTotal
            if total > applied {
                m.blocksApplied.increment(by: Int64(total - applied))
                applied = total
            }
            m.storeHeight.set(Double(status.heights.store))
            m.finalizedHeight.set(Double(status.heights.finalized))
            m.daHeadHeight.set(Double(status.heights.da_head))
            m.p2pMaxHeight.set(Double(status.heights.p2p_max))
            m.peers.set(Double(status.peers))
            m.evnode.p2p.peers.set(status.peers)
            m.evnode.sync.daInclusionHeight.set(status.heights.finalized)
            // The snapshot reads the signer's mark file: off the cooperative threads.
            if let snapshot = try? await NIOThreadPool.singleton.runIfActive({ node.dashboardSnapshot(status) }) {
                node.dashboard.sample(snapshot)
            }
            m.doubleSignEvidence.set(Double(status.evidence))
            let follower = node.follower.status
            let failures = node.follower.availability.snapshot.totalFailures
            if failures > daFailures { m.daFailedRequests.increment(by: Int64(failures - daFailures)); daFailures = failures }
            if follower.badBlobs > badBlobs { m.daBadBlobs.increment(by: Int64(follower.badBlobs - badBlobs)); badBlobs = follower.badBlobs }
            m.daHeldDataBytes.set(Double(follower.heldDataBytes))
            m.daAuthFailing.set(follower.authError == nil ? 0.0 : 1.0)
            if let da = status.da {
                m.daGasPrice.set(da.gas_price ?? -1)
                m.daPendingBlocks.set(Double(da.pending_blocks) as Double)
                m.productionPaused.set(da.production_paused ? 1.0 : 0.0)
            }
            if let ha = status.ha {
                m.haLeader.set(ha.role == "leader" ? 1.0 : 0.0)
                m.haReplicatedHeight.set(Double(ha.last_replicated_height))
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .seconds(1)) }
        }
        node.dashboard.finish()
    }
}
