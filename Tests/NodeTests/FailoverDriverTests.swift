@testable import Node
import Primitives
import DAClient
import Chain
import Store
import Execution
import Sync
import Production
@testable import Config
import Foundation
import Logging
import P2PSync
import ProcessKit
import Synchronization
import Testing
import TestSupport

/// The failover state machine with the node's real sync parts (RocksDB store, sync pipeline,
/// DA follower with the libcurl client, P2P service). DA is down (nothing listens on the
/// address), so the node stays in `syncing` until the test acts.
@Suite(.timeLimit(.minutes(1))) struct FailoverDriverTests {
    /// An execution layer that cannot execute (its state cannot be read). The KV executor cannot
    /// be made to fail on demand; this stands in for a broken disk under it. Everything else is
    /// the real KV executor.
    final class BrokenExecutor: SynchronousExecutor {
        let inner: KVExecutor
        init(inner: KVExecutor) { self.inner = inner }

        func initChain(genesis: Genesis) throws(ExecutionError) -> [UInt8] { try inner.initChain(genesis: genesis) }
        func getTxs(max: Int, maxBytes: Int) -> [[UInt8]] { inner.getTxs(max: max, maxBytes: maxBytes) }
        func hasPendingTransactions() -> Bool { inner.hasPendingTransactions() }
        func latestHeight() -> UInt64? { nil }
        func executeTxs(_ txs: [[UInt8]], height: UInt64, time: UInt64,
                        previousRoot: [UInt8]) throws(ExecutionError) -> ExecutionResult {
            throw ExecutionError(height: height, reason: "reading KV state: Input/output error (injected)")
        }
        func setFinal(height: UInt64) throws(ExecutionError) -> WriteSet { try inner.setFinal(height: height) }
        func rollback(to height: UInt64, from currentHeight: UInt64) throws(ExecutionError) -> WriteSet {
            try inner.rollback(to: height, from: currentHeight)
        }
    }

    /// A node in catchup mode over a fresh store, and block 1 of its chain signed by the proposer.
    final class Fixture {
        let dir: String
        let store: BlockStore
        let client: CelestiaDAClient
        let pipeline: SyncPipeline
        let state: NodeState
        var machine: FailoverDriver
        let block1: BlockCommit
        /// Block 2 of the same chain: held above a gap while block 1 is missing.
        let block2: BlockCommit
        let signer: BlockSigner

        /// `daURL`: a DA to follow; by default nothing listens there (DA down). `markPath`: the
        /// signer's `signer.state` (none by default).
        init(brokenExecutor: Bool, daURL: String = "http://127.0.0.1:1/", markPath: String? = nil) throws {
            dir = NSTemporaryDirectory() + "/evnode-fsm-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let key = KeyFile.generate()
            let now = UInt64(Date().timeIntervalSince1970 * 1e9)
            let genesis = Genesis(chainID: "fsm-test", startTimeNanoseconds: now - 10_000_000_000,
                                  proposerAddress: key.address)

            // The proposer's block 1, made on a store of its own.
            let producerStore = try BlockStore.open(path: dir + "/producer")
            let producerExecutor = KVExecutor(store: producerStore)
            let genesisState = try ChainExecution(store: producerStore, executor: producerExecutor).initialize(genesis: genesis)
            signer = BlockSigner(keyFile: key)
            let builder = BlockBuilder(signer: signer, executor: producerExecutor)
            block1 = try builder.build(on: genesisState, txs: [Array("k=v".utf8)], time: now)
            try producerStore.commit(block1, sync: false)
            block2 = try builder.build(on: try #require(producerStore.state), txs: [], time: now + 1)
            producerStore.close()

            let logger = Logger(label: "fsm-test")
            store = try BlockStore.open(path: dir + "/node")
            let kv = KVExecutor(store: store)
            let executor: any Executor = brokenExecutor ? BrokenExecutor(inner: kv) : kv
            _ = try ChainExecution(store: store, executor: executor).initialize(genesis: genesis)
            let validator = BlockValidator(genesis: genesis)
            pipeline = SyncPipeline(applier: BlockApplier(store: store, executor: executor, validator: validator),
                                    logger: logger)
            // Port 1 on loopback: connection refused, as when the DA node is down.
            client = try CelestiaDAClient(options: DAClientOptions(url: daURL))
            let namespace = DANamespace(name: "fsm-test-headers")
            let follower = DAFollower(client: client,
                                      options: .init(headerNamespace: namespace, dataNamespace: namespace, startHeight: 1,
                                                     parallelism: 1, pollInterval: .milliseconds(100)),
                                      sink: pipeline, store: store, executor: executor, validator: validator,
                                      logger: logger)
            let blockCheck = SignedBlockValidator(blockValidator: validator)
            let p2p = P2PService(config: P2PConfig(listen: HostPort(host: "127.0.0.1", port: 0), peers: []),
                                 nodeKey: KeyFile.generate(), chainID: genesis.chainID,
                                 source: StoreBlockSource(store: store), validator: blockCheck,
                                 provenHeights: ProvenPeerHeights(validator: validator))
            let metrics = NodeMetrics()
            state = NodeState(metrics: metrics, logger: logger)
            let recovery = DivergenceRecovery(store: store, pipeline: pipeline, authority: AuthoritativeHeaders(),
                                              replay: follower,
                                              rollbacker: BlockApplier(store: store, executor: executor, validator: validator),
                                              evidence: nil,
                                              observer: NodeRecoveryObserver(state: state, metrics: metrics),
                                              logger: logger)
            let sync = SyncRuntime(pipeline: pipeline, follower: follower, p2p: p2p, blockCheck: blockCheck,
                                   recovery: recovery, metrics: metrics, logger: logger)
            let aggregator = AggregatorRuntime.forTests(
                store: store, executor: executor, signer: signer,
                mark: SignerHighWaterMark(path: markPath ?? dir + "/signer.state"),
                client: client, namespace: namespace, logger: logger)
            machine = FailoverDriver(role: .aggregatorWithCatchup(aggregator, timeout: .milliseconds(500)), state: state,
                                           sync: sync, p2p: p2p, peersConfigured: false,
                                           signerMark: markPath.map(SignerHighWaterMark.init(path:)),
                                           metrics: metrics, logger: logger)
        }

        func close() async {
            await client.shutdown()
            store.close()
            try? FileManager.default.removeItem(atPath: dir)
        }
    }

    /// SPEC §6: after the gate opens the syncer stops, and what arrives meanwhile (here: a
    /// validly signed header for the next height, as gossip delivers it) is counted: the
    /// re-check fails, the node syncs again and never promotes; that header's block never comes,
    /// so it fails closed after the timeout.
    @Test func whatArrivesWhileTheSyncerStopsIsCheckedAgainBeforePromotion() async throws {
        let dir = TempDirectory()
        let da = try await RecoveryDA.start(home: dir.sub("da"))
        var f = try Fixture(brokenExecutor: false, daURL: da.url)
        let pipeline = f.pipeline
        let height = f.block1.height
        let delivered = Mutex(false)
        f.machine.afterSyncerStopped = {
            let first = delivered.withLock { d -> Bool in defer { d = true }; return !d }
            if first { pipeline.noteKnownHeader(height) }
        }
        let machine = f.machine
        let failure: NodeFailure?
        do throws(NodeFailure) {
            try await machine.run()
            failure = nil
        } catch {
            failure = error
        }
        #expect(delivered.withLock { $0 }, "the gate opened once")
        guard case .failClosed(let why)? = failure else {
            Issue.record("expected to fail closed, got \(String(describing: failure))")
            await f.close()
            await da.stop()
            return
        }
        #expect(why.contains("a header for height 1 is known"), "\(why)")
        #expect(f.state.phase == .halted)
        #expect(f.store.height == 0)
        await f.close()
        await da.stop()
    }

    /// Issue 27 (M5): a block the syncer takes and holds in the moment between the gate's
    /// decision and the syncer's stop (here: block 2, above the missing block 1, as gossip
    /// delivers it) is dropped by the stop — and still counted: the re-check sees a header above
    /// the store, the node never promotes, and since block 1 never comes it fails closed.
    @Test func aBlockHeldAsTheSyncerStopsIsCountedByTheReCheck() async throws {
        let dir = TempDirectory()
        let da = try await RecoveryDA.start(home: dir.sub("da"))
        let f = try Fixture(brokenExecutor: false, daURL: da.url)
        let pipeline = f.pipeline
        let block2 = f.block2
        let delivered = Mutex(false)
        f.machine.beforeSyncerStops = {
            let first = delivered.withLock { d -> Bool in defer { d = true }; return !d }
            guard first else { return }
            await pipeline.submit([CandidateBlock(signedHeader: block2.signedHeader, data: block2.data,
                                                  origin: .p2p(peer: "gossip"), signatureVerified: true)])
        }
        let machine = f.machine
        let failure: NodeFailure?
        do throws(NodeFailure) {
            try await machine.run()
            failure = nil
        } catch {
            failure = error
        }
        #expect(delivered.withLock { $0 }, "the gate opened once")
        guard case .failClosed(let why)? = failure else {
            Issue.record("expected to fail closed, got \(String(describing: failure)) in phase \(f.state.phase)")
            await f.close()
            await da.stop()
            return
        }
        #expect(why.contains("a header for height 1 is known (up to 2)"), "\(why)")
        #expect(f.state.phase == .halted)
        #expect(f.store.height == 0)
        await f.close()
        await da.stop()
    }

    /// Issue 27: a crafted `signer.state` — a block kept at height 0 — fails the catchup closed
    /// as an unreadable mark; it used to trap computing the height below 0.
    @Test func aCraftedMarkFailsClosedInsteadOfTrapping() async throws {
        let dir = TempDirectory()
        let markPath = dir.sub("signer.state")
        let f = try Fixture(brokenExecutor: false, markPath: markPath)
        // The proposer's header at height 0, signed: what the kept-block check decodes.
        var header = f.block1.signedHeader.header
        header.height = 0
        let zero = try f.signer.sign(header: header)
        let kept = SignedBlockBytes.encode(zero, BlockData(metadata: nil, txs: []))
        try FileIO.writeAtomically(markPath, "{\"last_signed_height\": 0, \"block\": \"\(Data(kept).base64EncodedString())\"}\n")
        f.machine.pollInterval = .milliseconds(20)
        let machine = f.machine
        let failure: NodeFailure?
        do throws(NodeFailure) {
            try await machine.run()
            failure = nil
        } catch {
            failure = error
        }
        guard case .failClosed(let why)? = failure else {
            Issue.record("expected to fail closed, got \(String(describing: failure))")
            await f.close()
            return
        }
        #expect(why.contains("cannot be read") && why.contains("height 0"), "\(why)")
        #expect(failure?.exitStatus == 3)
        await f.close()
    }

    @Test func syncerFailureDuringCatchupHaltsTheNode() async throws {
        let f = try Fixture(brokenExecutor: true)
        let machine = f.machine
        let run = Task { () -> NodeFailure? in
            do throws(NodeFailure) {
                try await machine.run()
                return nil
            } catch {
                return error
            }
        }
        try await waitUntil("syncing") { f.state.phase == .syncing }
        // Block 1 arrives (as from a peer); executing it fails.
        await f.pipeline.submit([CandidateBlock(signedHeader: f.block1.signedHeader, data: f.block1.data,
                                                origin: .p2p(peer: "test"))])
        // The machine ends by itself (a hang would hit the suite's time limit).
        let failure = await run.value
        guard case .syncer(let error)? = failure else {
            Issue.record("expected a syncer failure, got \(String(describing: failure))")
            await f.close()
            return
        }
        #expect(error.description.contains("injected"))
        #expect(failure?.exitStatus == 1)
        #expect(f.state.phase == .halted)
        #expect(f.state.snapshot.reason?.contains("sync pipeline stopped") == true)
        #expect(f.store.height == 0)
        await f.close()
    }

    /// Stopping the node (its task cancelled, as on SIGTERM) while it syncs ends the machine
    /// cleanly and never promotes it.
    @Test func stopDuringCatchupNeverPromotes() async throws {
        let f = try Fixture(brokenExecutor: false)
        let machine = f.machine
        let run = Task { () -> NodeFailure? in
            do throws(NodeFailure) {
                try await machine.run()
                return nil
            } catch {
                return error
            }
        }
        // DA is down: syncing, and held back by it, past the 500 ms timeout.
        try await waitUntil("held back by DA") {
            f.state.snapshot.catchup.blocked_by?.contains("DA unavailable") == true
                && f.state.snapshot.catchup.elapsed_seconds > 0.6
        }
        run.cancel()
        let failure = await run.value
        #expect(failure == nil)
        #expect(f.state.phase == .syncing)
        await f.close()
    }
}
