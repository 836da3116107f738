import Primitives
import DAClient
import Chain
import Store
import Execution
import Sync
import Production
import Config
import Foundation
import Logging
import ProcessKit
import Synchronization
import Testing
import TestSupport

/// A chain signed by one proposer key that forks: a shared prefix, then an authoritative branch
/// (posted to DA) and a soft branch (gossiped over P2P only) — a double-signing proposer. Blocks
/// are built with the real builder and KV executor.
struct ForkedChain {
    let signer: BlockSigner
    let genesis: Genesis
    let prefix: [BlockCommit]
    let authoritative: [BlockCommit]
    let soft: [BlockCommit]

    var authoritativeChain: [BlockCommit] { prefix + authoritative }
    var softChain: [BlockCommit] { prefix + soft }

    init(prefix: Int, authoritative: Int, soft: Int, scratch: String) throws {
        signer = BlockSigner(keyFile: KeyFile.generate())
        genesis = Genesis(chainID: "recovery-test", startTimeNanoseconds: 1_700_000_000_000_000_000,
                          proposerAddress: signer.address)
        // The KV executor executes without reading its store; the scratch store is never written.
        let store = try BlockStore.open(path: scratch)
        defer { store.close() }
        let builder = BlockBuilder(signer: signer, executor: KVExecutor(store: store))
        let genesis = self.genesis
        func chain(from start: State, _ count: Int, _ txs: (UInt64) -> [String]) throws -> [BlockCommit] {
            var state = start
            var out: [BlockCommit] = []
            for _ in 0..<count {
                let h = state.nextHeight
                let block = try builder.build(on: state, txs: txs(h).map { Array($0.utf8) },
                                              time: genesis.startTimeNanoseconds + h * 1_000_000_000)
                out.append(block)
                state = block.state
            }
            return out
        }
        let shared = try chain(from: State(genesis: genesis, appHash: [UInt8](repeating: 0, count: 32)), prefix) {
            ["p\($0)=\($0)", "k=p\($0)"]
        }
        let base = shared.last!.state
        self.prefix = shared
        self.authoritative = try chain(from: base, authoritative) { ["x\($0)=1", "k=x\($0)"] }
        self.soft = try chain(from: base, soft) { ["y\($0)=1", "k=y\($0)"] }
    }

    func candidates(_ blocks: some Sequence<BlockCommit>, _ origin: BlockOrigin) -> [CandidateBlock] {
        blocks.map { CandidateBlock(signedHeader: $0.signedHeader, data: $0.data, origin: origin) }
    }
}

/// What the recovery reported, and what a node would show from it: whether it is recovering
/// and the reason (as `NodeRecoveryObserver` sets the phase and its reason). `isRecovering`
/// follows the reports, as the node's phase does when nothing else moves it.
final class RecordingRecoveryObserver: RecoveryObserver {
    struct Shown: Sendable {
        var recovering = false
        var reason: String?
    }

    private let box = Mutex<(reports: [RecoveryReport], shown: Shown)>(([], Shown()))

    var reports: [RecoveryReport] { box.withLock { $0.reports } }
    var shown: Shown { box.withLock { $0.shown } }
    var isRecovering: Bool { shown.recovering }

    func report(_ report: RecoveryReport) {
        box.withLock { box in
            box.reports.append(report)
            switch report {
            case .recovering(_, let reason):
                box.shown = Shown(recovering: true, reason: reason)
            case .progress(let reason):
                box.shown.reason = reason
            case .recovered:
                box.shown = Shown()
            case .halted(let error):
                box.shown = Shown(recovering: false, reason: error.description)
            case .rolledBack, .attemptFailed:
                break
            }
        }
    }

    /// The reports' kinds in order, without their texts (which other tests check).
    var kinds: [String] {
        reports.map { report in
            switch report {
            case .recovering: return "recovering"
            case .progress: return "progress"
            case .rolledBack: return "rolledBack"
            case .attemptFailed: return "attemptFailed"
            case .recovered: return "recovered"
            case .halted: return "halted"
            }
        }
    }

    func count(_ kind: String) -> Int { kinds.filter { $0 == kind }.count }
}

/// Injects rollback failures in front of the real store rollback: the first call throws, the
/// second claims success without touching the store (an unconfirmed rollback), later calls roll
/// back for real. Records what the store held, and what the node showed, at each call.
final class FlakyRollbacker: Rollbacker, Sendable {
    struct Call: Sendable {
        var state: State?
        var recovering: Bool
        var reason: String?
    }

    let real: BlockApplier
    let observer: RecordingRecoveryObserver
    private let box = Mutex<[Call]>([])

    init(real: BlockApplier, observer: RecordingRecoveryObserver) {
        self.real = real
        self.observer = observer
    }

    var calls: [Call] { box.withLock { $0 } }

    func rollback(to height: UInt64) async throws(StoreError) -> State {
        let shown = observer.shown
        let n = box.withLock { calls -> Int in
            calls.append(Call(state: real.store.state, recovering: shown.recovering, reason: shown.reason))
            return calls.count
        }
        switch n {
        case 1: throw .io(operation: "write", reason: "injected failure")
        case 2: return real.store.state!
        default: return try await real.rollback(to: height)
        }
    }
}

/// A full node's sync side assembled from the real parts: RocksDB store, KV executor, sync
/// pipeline, DA follower on the local DA, divergence recovery.
final class SyncingNode: Sendable {
    let dir = TempDirectory("evnode-recovery")
    let store: BlockStore
    let executor: KVExecutor
    let applier: BlockApplier
    let authority = AuthoritativeHeaders()
    let evidence: EvidenceLog
    let pipeline: SyncPipeline
    let follower: DAFollower
    let recovery: DivergenceRecovery
    let observer = RecordingRecoveryObserver()
    private let tasks = Mutex<[Task<Void, Never>]>([])
    private let failureBox = Mutex<DivergenceRecoveryError?>(nil)
    private let recoveryEnded = Mutex<Bool>(false)

    init(chain: ForkedChain, da: RecoveryDA,
         rollbacker: ((BlockApplier, RecordingRecoveryObserver) -> any Rollbacker)? = nil) throws {
        let logger = Logger(label: "test.node")
        store = try BlockStore.open(path: dir.sub("store"))
        executor = KVExecutor(store: store)
        try ChainExecution(store: store, executor: executor).initialize(genesis: chain.genesis)
        let validator = BlockValidator(genesis: chain.genesis)
        applier = BlockApplier(store: store, executor: executor, validator: validator)
        evidence = try EvidenceLog(store: store, validator: validator, logger: logger)
        pipeline = SyncPipeline(applier: applier, batchSize: 4, authority: authority, evidence: evidence, logger: logger)
        follower = DAFollower(client: da.client,
                              options: .init(headerNamespace: da.headerNamespace, dataNamespace: da.dataNamespace,
                                             startHeight: 1, parallelism: 4, pollInterval: .milliseconds(50)),
                              sink: pipeline, store: store, executor: executor, validator: validator,
                              authority: authority, evidence: evidence, logger: logger)
        var options = DivergenceRecovery.Options()
        options.retry = RetryPolicy(maxAttempts: .max, initialDelay: .milliseconds(50), maxDelay: .milliseconds(200))
        recovery = DivergenceRecovery(store: store, pipeline: pipeline, authority: authority, replay: follower,
                                      rollbacker: rollbacker?(applier, observer) ?? applier, evidence: evidence,
                                      observer: observer, options: options, logger: logger)
        pipeline.start()
    }

    /// Offers blocks as a peer would (soft) and waits until they are applied.
    func applyFromPeer(_ blocks: [CandidateBlock]) async throws {
        await pipeline.submit(blocks)
        let top = blocks.last!.height
        try await waitUntil("P2P blocks applied up to \(top)") { store.height == top }
    }

    /// Starts following DA, with pipeline events going to the recovery.
    func followDA() {
        let follower = self.follower, pipeline = self.pipeline, recovery = self.recovery
        let started: [Task<Void, Never>] = [
            Task { try? await follower.run() },
            Task { for await event in pipeline.events { recovery.observe(event) } },
            Task { [self] in
                do throws(DivergenceRecoveryError) {
                    try await recovery.run()
                } catch {
                    self.failureBox.withLock { $0 = error }
                }
                self.recoveryEnded.withLock { $0 = true }
            },
        ]
        tasks.withLock { $0.append(contentsOf: started) }
    }

    /// The failure recovery halted with, once it has.
    var failure: DivergenceRecoveryError? { failureBox.withLock { $0 } }
    var recoveryHasEnded: Bool { recoveryEnded.withLock { $0 } }

    func hashes(through height: UInt64) throws -> [[UInt8]] {
        try (1...height).map { try store.headerHash(at: $0) ?? [] }
    }

    func stop() async {
        let running = tasks.withLock { $0 }
        for task in running { task.cancel() }
        await pipeline.stop()
        for task in running { await task.value }
        store.close()
    }
}
