@testable import Node
import DAClient
import Etcd
import Chain
import Store
import Execution
import Sync
@testable import Config
import Foundation
import Logging
import P2PSync
import ProcessKit
import Synchronization
import Testing
import TestSupport

/// Issue 27 (M6): the first leader of an HA group (etcd holds no block) makes its store the
/// chain's head only through the catchup's promotion check — all five conditions of SPEC §6,
/// then once more after the syncer stopped. Real parts: etcd, a local DA (empty), RocksDB, the
/// sync pipeline, the DA follower and the P2P service. The node has no aggregator, so a node
/// that leads ends its machine at once; one that may not lead steps down and keeps following.
@Suite(.serialized, .timeLimit(.minutes(2))) struct HABootstrapTests {
    final class Fixture {
        let dir = TempDirectory("evnode-ha-bootstrap")
        let etcd: EtcdProcess
        let da: RecoveryDA
        let store: BlockStore
        let client: CelestiaDAClient
        let pipeline: SyncPipeline
        let p2p: P2PService
        /// The P2P service's `run()`, when it runs (peers given).
        var p2pRun: Task<Void, any Error>?
        let state: NodeState
        let runtime: HARuntime
        let group: HAGroup
        var machine: FailoverDriver

        /// `peers`: the node's `--p2p.peers` (started, so that they are dialled).
        init(peers: [String] = []) async throws {
            etcd = try await EtcdProcess.start()
            da = try await RecoveryDA.start(home: dir.sub("da"))
            let logger = Logger(label: "test.ha.bootstrap")
            let key = KeyFile.generate()
            let genesis = Genesis(chainID: "ha-bootstrap", startTimeNanoseconds: UInt64(Date().timeIntervalSince1970 * 1e9) - 10_000_000_000,
                                  proposerAddress: key.address)
            store = try BlockStore.open(path: dir.sub("store"))
            let executor = KVExecutor(store: store)
            _ = try ChainExecution(store: store, executor: executor).initialize(genesis: genesis)
            let validator = BlockValidator(genesis: genesis)
            let applier = BlockApplier(store: store, executor: executor, validator: validator)
            pipeline = SyncPipeline(applier: applier, logger: logger)
            client = try CelestiaDAClient(options: DAClientOptions(url: da.url))
            let namespace = DANamespace(name: "ha-bootstrap-headers")
            let follower = DAFollower(client: client,
                                      options: .init(headerNamespace: namespace, dataNamespace: namespace, startHeight: 1,
                                                     parallelism: 1, pollInterval: .milliseconds(100)),
                                      sink: pipeline, store: store, executor: executor, validator: validator, logger: logger)
            let blockCheck = SignedBlockValidator(blockValidator: validator)
            p2p = P2PService(config: P2PConfig(listen: HostPort(host: "127.0.0.1", port: 0),
                                               peers: try peers.map { try P2PPeerAddress(parsing: $0) }),
                             nodeKey: KeyFile.generate(), chainID: genesis.chainID,
                             source: StoreBlockSource(store: store), validator: blockCheck,
                             provenHeights: ProvenPeerHeights(validator: validator), logger: logger)
            if !peers.isEmpty { p2pRun = Task { [p2p] in try await p2p.run() } }
            let metrics = NodeMetrics()
            state = NodeState(metrics: metrics, logger: logger)
            let recovery = DivergenceRecovery(store: store, pipeline: pipeline, authority: AuthoritativeHeaders(),
                                              replay: follower, rollbacker: applier, evidence: nil,
                                              observer: NodeRecoveryObserver(state: state, metrics: metrics),
                                              logger: logger)
            let sync = SyncRuntime(pipeline: pipeline, follower: follower, p2p: p2p, blockCheck: blockCheck,
                                   recovery: recovery, metrics: metrics, logger: logger)
            group = HAGroup(etcd: try EtcdClient(endpoints: [etcd.url]), chainID: genesis.chainID, nodeID: "first",
                            leaseTTL: .seconds(2), logger: logger)
            runtime = HARuntime(group: group, store: store, pipeline: pipeline, applier: applier, blockCheck: blockCheck,
                                mark: SignerHighWaterMark(path: dir.sub("signer.state")), p2p: p2p, logger: logger)
            let aggregator = AggregatorRuntime.forTests(
                store: store, executor: executor, signer: BlockSigner(keyFile: key),
                mark: SignerHighWaterMark(path: dir.sub("signer.state")), client: client, namespace: namespace,
                ha: runtime, logger: logger)
            machine = FailoverDriver(role: .ha(runtime, aggregator), state: state, sync: sync,
                                           p2p: p2p, peersConfigured: !peers.isEmpty,
                                           signerMark: SignerHighWaterMark(path: dir.sub("signer.state")),
                                           metrics: metrics, logger: logger)
            machine.haBootstrapTimeout = .milliseconds(800)
        }

        /// Runs the machine until `until` holds, failing the test once it leads (enters
        /// `aggregating`) or ends by itself before; then stops it and returns how it ended.
        func run(until what: String, _ condition: @escaping @Sendable () -> Bool) async throws -> (ended: Bool, NodeFailure?) {
            let machine = self.machine
            let state = self.state
            let run = Task { () -> NodeFailure? in
                do throws(NodeFailure) {
                    try await machine.run()
                    return nil
                } catch {
                    return error
                }
            }
            let ended = Mutex(false)
            let watcher = Task {
                _ = await run.value
                ended.withLock { $0 = true }
            }
            defer { run.cancel() }
            try await waitUntil(what, timeout: .seconds(45)) {
                if state.phase == .aggregating { throw TestFailure("the node led before \(what)") }
                if ended.withLock({ $0 }) { throw TestFailure("the machine ended before \(what)") }
                return condition()
            }
            run.cancel()
            let failure = await run.value
            _ = await watcher.value
            return (false, failure)
        }

        func close() async {
            p2pRun?.cancel()
            _ = await p2pRun?.result
            await client.shutdown()
            await da.stop()
            etcd.kill9()
            store.close()
        }
    }

    /// With nothing holding it back (empty DA, no peers, no mark), the first leader leads: it
    /// produces, and stops cleanly when the node stops.
    @Test func leadsWhenEveryConditionHolds() async throws {
        let f = try await Fixture()
        let machine = f.machine
        let run = Task { () -> NodeFailure? in
            do throws(NodeFailure) {
                try await machine.run()
                return nil
            } catch {
                return error
            }
        }
        let store = f.store
        try await waitUntil("the first leader to produce block 1", timeout: .seconds(45)) { store.height >= 1 }
        #expect(f.state.phase == .aggregating, "it led")
        run.cancel()
        let failure = await run.value
        #expect(failure == nil, "\(String(describing: failure))")
        await f.close()
    }

    /// A header for the next height is known (condition 4): the first leader never makes its
    /// store the head; once waiting cannot help it steps down, saying why, and keeps following.
    @Test func aKnownHeaderAtTheNextHeightKeepsTheFirstLeaderFromLeading() async throws {
        let f = try await Fixture()
        f.pipeline.noteKnownHeader(1)
        let runtime = f.runtime
        _ = try await f.run(until: "the node to step down for the known header") {
            runtime.status.last_step_down?.contains("a header for height 1 is known") == true
        }
        #expect(f.state.phase != .aggregating)
        #expect(try await f.group.head().block == nil, "nothing was replicated")
        #expect(f.runtime.status.last_step_down?.contains("catchup failed closed") == true)
        await f.close()
    }

    /// No mark and a configured peer that never answers (condition 2's no-mark rule): the node
    /// fails closed for the bootstrap, naming the silent peer, and steps down instead of leading.
    @Test func noMarkAndASilentConfiguredPeerKeepTheFirstLeaderFromLeading() async throws {
        let deadPort = try freeLoopbackPort()
        let f = try await Fixture(peers: ["127.0.0.1:\(deadPort)"])
        let runtime = f.runtime
        _ = try await f.run(until: "the node to step down for its silent peer") {
            runtime.status.last_step_down?.contains("no high-water mark") == true
        }
        let why = f.runtime.status.last_step_down ?? ""
        #expect(why.contains("never answered: 127.0.0.1:\(deadPort)"), "\(why)")
        #expect(f.state.phase != .aggregating)
        await f.close()
    }

    /// What the syncer held or saw while it stopped counts: the check runs again once it has
    /// stopped, and a header for the next height that arrived meanwhile sends the node back to
    /// following without leading.
    @Test func theBootstrapIsCheckedAgainAfterTheSyncerStopped() async throws {
        let f = try await Fixture()
        let pipeline = f.pipeline
        let delivered = Mutex(false)
        f.machine.afterSyncerStopped = {
            let first = delivered.withLock { d -> Bool in defer { d = true }; return !d }
            if first { pipeline.noteKnownHeader(1) }
        }
        let runtime = f.runtime
        _ = try await f.run(until: "the node to resign after the re-check") {
            runtime.status.last_step_down?.contains("no longer holds now that the syncer has stopped") == true
        }
        #expect(delivered.withLock { $0 })
        #expect(f.state.phase != .aggregating)
        #expect(try await f.group.head().block == nil)
        await f.close()
    }
}
