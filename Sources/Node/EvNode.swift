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

/// A running evnode, built by `NodeAssembly` for its role: runs the RPC server, P2P and the
/// failover driver until SIGTERM/SIGINT or a failure.
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
    let driver: FailoverDriver
    let logger: Logger
    let submitter: DASubmitter?
    let ha: HARuntime?
    /// `--max-pending-blocks`; nil when off or not an aggregator.
    let backPressure: PendingBlocksGate?
    /// `--da.subscribe`; nil when off or when no DA follower runs.
    let subscription: DAHeadSubscription?
    /// The last submissions to DA, for the DA visualizer and the dashboard.
    let submissions: DASubmissionLog
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

    /// A node of the role `role`, over the shared parts `core`; `producing` for a producing
    /// role. Built by `NodeAssembly`, one function per role.
    init(core: NodeCore, sync: SyncRuntime, role: NodeRole, producing: ProducingParts? = nil, ha: HARuntime? = nil,
         remoteSigner: RemoteSignerClient? = nil, logger: Logger) {
        setup = core.setup
        self.logger = logger
        store = core.store
        executor = core.executor
        kv = core.kv
        evm = core.evm
        daClient = core.daClient
        p2p = core.p2p
        pipeline = core.pipeline
        follower = core.follower
        evidence = core.evidence
        state = core.state
        metrics = core.metrics
        subscription = core.subscription
        submissions = core.submissions
        submitter = producing?.runtime.submitter
        signerMark = producing?.mark
        backPressure = producing?.backPressure
        self.ha = ha
        self.remoteSigner = remoteSigner
        driver = FailoverDriver(role: role, state: core.state, sync: sync, p2p: core.p2p,
                                peersConfigured: !core.setup.config.p2p.peers.isEmpty, signerMark: producing?.mark,
                                metrics: core.metrics, logger: logger)
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
        } catch {
            if let failure = runtime.failure { throw failure }
            throw .failed(.serviceGroup, underlying: error)
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
                try await self.node.driver.run()
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
