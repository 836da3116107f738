import Primitives
import DAClient
import Chain
import Store
import Execution
import Sync
import Submission
import Config
import EVM
import Foundation
import Logging
import P2PSync

/// The parts every role has: the store and the execution layer over it, DA, P2P, the sync
/// pipeline and the DA follower, evidence, and the node's state and metrics. `NodeAssembly`
/// opens them and adds the parts of one role.
struct NodeCore: Sendable {
    let setup: NodeSetup
    let store: BlockStore
    let executor: any Executor
    let kv: KVExecutor?
    let evm: EVMExecutor?
    let daClient: CelestiaDAClient
    let p2p: P2PService
    let validator: BlockValidator
    let blockCheck: SignedBlockValidator
    let applier: BlockApplier
    let pipeline: SyncPipeline
    let follower: DAFollower
    let recovery: DivergenceRecovery
    let evidence: EvidenceLog
    let state: NodeState
    let metrics: NodeMetrics
    /// `--da.subscribe`; nil when off or when no DA follower runs.
    let subscription: DAHeadSubscription?
    /// The last submissions to DA, for the DA visualizer and the dashboard.
    let submissions = DASubmissionLog()

    /// What is opened before the chain can be initialized: the store and the executor over it.
    struct Storage: Sendable {
        let store: BlockStore
        let executor: any Executor
        let kv: KVExecutor?
        let evm: EVMExecutor?

        /// Blocking (RocksDB): called on the assembly's lane.
        init(setup: NodeSetup, logger: Logger, wrapKV: EvNode.KVWrapper?) throws(NodeFailure) {
            let config = setup.config
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
                let application = KVExecutor(store: store)
                (executor, kv, evm) = (wrapKV?(application) ?? application, application, nil)
            case .evm:
                let engine = try NodeCore.makeEVM(config.execution.evm, store: store, logger: logger)
                (executor, kv, evm) = (engine, nil, engine)
            }
        }
    }

    /// Opens the store and the executor, initializes the chain on a first start (InitChain: an
    /// EVM node asks the EL for its genesis, an async step — an EL that cannot be reached yet is
    /// awaited, no thread waits for it) and builds every shared part; the blocking steps run on
    /// `lane`.
    static func open(setup: NodeSetup, logger: Logger, wrapKV: EvNode.KVWrapper?,
                     on lane: BlockingLane) async throws(NodeFailure) -> NodeCore {
        let closed = NodeAssembly.laneClosed(lane)
        let storage = try await lane.run(orIfShutDown: closed) { () throws(NodeFailure) in
            try Storage(setup: setup, logger: logger, wrapKV: wrapKV)
        }
        do throws(NodeFailure) {
            try await initializeChain(storage, genesis: setup.genesis, on: lane, logger: logger)
            logger.info("store opened", metadata: ["path": "\(setup.layout.storeDirectory)",
                                                   "height": "\(storage.store.height)",
                                                   "finalized": "\(storage.store.finalizedHeight)"])
            return try await lane.run(orIfShutDown: closed) { () throws(NodeFailure) in
                try NodeCore.build(setup: setup, storage: storage, logger: logger)
            }
        } catch {
            storage.store.close()
            throw error
        }
    }

    /// Every shared part over an initialized store. Blocking (store reads, the DA client's setup).
    private static func build(setup: NodeSetup, storage: Storage, logger: Logger) throws(NodeFailure) -> NodeCore {
        let config = setup.config
        let genesis = setup.genesis
        let metrics = NodeMetrics(namespace: config.instrumentation.namespace, chainID: genesis.chainID)
        let state = NodeState(metrics: metrics, logger: logger)
        let (store, executor, kv, evm) = (storage.store, storage.executor, storage.kv, storage.evm)
        metrics.observe(store: store)

        let validator = BlockValidator(genesis: genesis)
        let headerNamespace = DANamespace(name: config.da.headerNamespaceName(chainID: genesis.chainID))
        let dataNamespace = DANamespace(name: config.da.dataNamespaceName(chainID: genesis.chainID))
        let daClient: CelestiaDAClient
        do throws(DAError) {
            daClient = try CelestiaDAClient(options: DAClientOptions(config: config.da),
                                            logger: Logger(label: "evnode.da"))
        } catch {
            throw .failed(.daClient, underlying: error)
        }
        let blockCheck = SignedBlockValidator(blockValidator: validator, placement: store)
        let p2p = P2PService(config: config.p2p, nodeKey: setup.nodeKey, chainID: genesis.chainID,
                         source: StoreBlockSource(store: store), validator: blockCheck,
                         provenHeights: ProvenPeerHeights(validator: validator, placement: store),
                         metrics: metrics.evnode.p2p, logger: Logger(label: "evnode.p2p"))
        let applier = BlockApplier(store: store, executor: executor, validator: validator)
        let evidence: EvidenceLog
        do throws(StoreError) {
            evidence = try EvidenceLog(store: store, validator: validator, logger: Logger(label: "evnode.evidence"))
        } catch {
            throw .store(error)
        }
        // What DA holds per unfinalized height, shared by the follower, the pipeline and recovery.
        let authority = AuthoritativeHeaders()
        let pipeline = SyncPipeline(applier: applier, authority: authority, evidence: evidence, metrics: metrics.evnode,
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
        let follower = DAFollower(
            client: daClient,
            options: followerOptions,
            sink: pipeline, store: store, executor: executor, validator: validator,
            authority: authority, evidence: evidence,
            logger: Logger(label: "evnode.da.follower"))
        let recovery = DivergenceRecovery(store: store, pipeline: pipeline, authority: authority, replay: follower,
                                          rollbacker: applier, evidence: evidence,
                                          observer: NodeRecoveryObserver(state: state, metrics: metrics),
                                          logger: Logger(label: "evnode.recovery"))
        var subscription: DAHeadSubscription?
        if config.da.subscribe, config.role.syncs {
            subscription = DAHeadSubscription(
                options: .init(url: config.da.address.url, authToken: config.da.authToken, caFile: config.da.tlsCAFile,
                               namespace: headerNamespace),
                logger: Logger(label: "evnode.da.subscription")) { _ in follower.wake() }
        }
        return NodeCore(setup: setup, store: store, executor: executor, kv: kv, evm: evm, daClient: daClient, p2p: p2p,
                        validator: validator, blockCheck: blockCheck, applier: applier, pipeline: pipeline,
                        follower: follower, recovery: recovery, evidence: evidence, state: state, metrics: metrics,
                        subscription: subscription)
    }

    /// The sync phase's parts; `secondSigner` sees what peers gossip while this node produces.
    func syncRuntime(secondSigner: SecondSignerWatch?) -> SyncRuntime {
        SyncRuntime(pipeline: pipeline, follower: follower, p2p: p2p, blockCheck: blockCheck, recovery: recovery,
                    metrics: metrics, secondSigner: secondSigner, logger: Logger(label: "evnode.sync"))
    }

    private static func makeEVM(_ config: EVMConfig, store: BlockStore, logger: Logger) throws(NodeFailure) -> EVMExecutor {
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

    /// The stored state, or on a first start the executor's InitChain and the genesis state. An
    /// EL that cannot be reached yet is waited for (logged every attempt); one that answers
    /// wrongly, or a store of another chain, stops the node.
    private static func initializeChain(_ storage: Storage, genesis: Genesis, on lane: BlockingLane,
                                        logger: Logger) async throws(NodeFailure) {
        let execution = ChainExecution(store: storage.store, executor: storage.executor)
        while true {
            do throws(StoreError) {
                _ = try await execution.initialize(genesis: genesis, on: lane)
                return
            } catch {
                guard case .execution(let e) = error, e.isUnavailable else { throw .store(error) }
                logger.warning("waiting for the execution layer to answer InitChain", metadata: ["error": "\(e)"])
                do {
                    try await Task.sleep(for: .seconds(2))
                } catch {
                    throw .failed(.serviceGroup, underlying: error)
                }
            }
        }
    }
}
