import Chain
import Execution
import Store
@testable import Sync
import Config
import Dispatch
import Foundation
import Logging
import ProcessKit
import Synchronization
import Testing
import TestSupport

/// The KV executor reached the way a remote engine is: through its async API only (it is not a
/// `SynchronousExecutor`), so the pipeline's awaiting loop runs, as it does for the EVM engine.
/// Block `gatedHeight` waits at `gate` until the test opens it: a batch is then in progress
/// for as long as the test needs.
final class AsyncOnlyExecutor: Executor {
    let inner: KVExecutor
    let gatedHeight: UInt64
    let gate = Gate()

    init(_ inner: KVExecutor, gatedHeight: UInt64) {
        self.inner = inner
        self.gatedHeight = gatedHeight
    }

    func initChain(genesis: Genesis) async throws(ExecutionError) -> [UInt8] { try initSync(genesis) }
    func getTxs(max: Int, maxBytes: Int) async throws(ExecutionError) -> [[UInt8]] { [] }
    func hasPendingTransactions() async -> Bool { false }
    func latestHeight() async throws(ExecutionError) -> UInt64? { nil }
    func executeTxs(_ txs: [[UInt8]], height: UInt64, time: UInt64,
                    previousRoot: [UInt8]) async throws(ExecutionError) -> ExecutionResult {
        if height == gatedHeight { await gate.pass() }
        return try executeSync(txs, height: height, time: time, previousRoot: previousRoot)
    }
    func setFinal(height: UInt64) async throws(ExecutionError) -> WriteSet { try setFinalSync(height) }
    func rollback(to height: UInt64, from currentHeight: UInt64) async throws(ExecutionError) -> WriteSet {
        try rollbackSync(height, currentHeight)
    }

    // Synchronous contexts, so that the KV executor's synchronous overloads are the ones called.
    private func initSync(_ genesis: Genesis) throws(ExecutionError) -> [UInt8] { try inner.initChain(genesis: genesis) }
    private func executeSync(_ txs: [[UInt8]], height: UInt64, time: UInt64,
                             previousRoot: [UInt8]) throws(ExecutionError) -> ExecutionResult {
        try inner.executeTxs(txs, height: height, time: time, previousRoot: previousRoot)
    }
    private func setFinalSync(_ height: UInt64) throws(ExecutionError) -> WriteSet { try inner.setFinal(height: height) }
    private func rollbackSync(_ height: UInt64, _ from: UInt64) throws(ExecutionError) -> WriteSet {
        try inner.rollback(to: height, from: from)
    }
}

/// Holds whoever passes until it is opened; says whether anyone reached it.
final class Gate: Sendable {
    private struct State {
        var open = false
        var reached = false
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state = Mutex(State())

    var reached: Bool { state.withLock { $0.reached } }

    func pass() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let passNow = state.withLock { s -> Bool in
                s.reached = true
                if s.open { return true }
                s.waiters.append(c)
                return false
            }
            if passNow { c.resume() }
        }
    }

    func open() {
        let waiters = state.withLock { s -> [CheckedContinuation<Void, Never>] in
            s.open = true
            defer { s.waiters = [] }
            return s.waiters
        }
        for w in waiters { w.resume() }
    }
}

@Suite struct SyncPipelineStopTests {
    let logger = Logger(label: "test.sync-stop")

    /// Defect 1: `stop()` waited for the apply thread on a semaphore, blocking the cooperative
    /// thread of the task that called it. With more pipelines stopping at once than the pool has
    /// threads, and each apply batch needing the pool for its executor's next call, nothing
    /// could move again. Now every stop completes, each store holds a consistent prefix of the
    /// chain, and each pipeline applies the rest once started again.
    @Test func stoppingPipelinesFromTasksMidBatchCompletesAndLeavesTheStoreConsistent() async throws {
        let signer = BlockSigner(keyFile: KeyFile.generate())
        let source = try TestChain(signer: signer)
        var blocks: [BlockCommit] = []
        for h in 1...600 { blocks.append(try source.produce(["k\(h % 7)=v\(h)", "n=\(h)"])) }
        let count = ProcessInfo.processInfo.activeProcessorCount + 1
        var followers: [TestChain] = []
        var pipelines: [SyncPipeline] = []
        var executors: [AsyncOnlyExecutor] = []
        for _ in 0..<count {
            let follower = try TestChain(signer: signer)
            let executor = AsyncOnlyExecutor(follower.executor, gatedHeight: 100)
            let pipeline = SyncPipeline(applier: BlockApplier(store: follower.store, executor: executor,
                                                              validator: follower.validator),
                                        batchSize: 512, logger: logger)
            pipeline.start()
            await pipeline.submit(candidates(blocks, .p2p(peer: "a")))
            followers.append(follower)
            pipelines.append(pipeline)
            executors.append(executor)
        }
        try await waitUntil("every pipeline's first batch to reach block 100") { executors.allSatisfy(\.gate.reached) }

        // A deadlock would stop every task, this test's included: only a thread of its own can
        // say so (and must end the process, since nothing else could move again).
        let done = DispatchSemaphore(value: 0)
        let watchdog = Thread {
            if done.wait(timeout: .now() + 120) == .timedOut {
                fatalError("SyncPipeline.stop() from \(count) tasks did not complete in 120 s: the cooperative pool is blocked")
            }
        }
        watchdog.start()
        await withTaskGroup(of: Void.self) { group in
            for pipeline in pipelines { group.addTask { await pipeline.stop() } }
            // The batches in progress go on only now, while the stops wait for them.
            for executor in executors { executor.gate.open() }
        }
        done.signal()

        for (follower, pipeline) in zip(followers, pipelines) {
            let height = follower.store.height
            #expect(height >= 100, "the batch in progress was finished, not abandoned")
            #expect(follower.store.state == blocks[Int(height) - 1].state, "the store is at a block of the chain")
            #expect(pipeline.progress.storeHeight == height && pipeline.progress.waiting == 0)
            pipeline.start()
            try await pipeline.stop(after: {
                await pipeline.submit(candidates(blocks[Int(height)...], .p2p(peer: "a")))
                try await pipeline.waitForStoreHeight(600)
                #expect(follower.store.state == source.store.state)
            })
        }
    }
}
