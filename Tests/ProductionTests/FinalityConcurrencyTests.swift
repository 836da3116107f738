import Chain
import Execution
import Production
import Config
import Foundation
import Synchronization
import Testing
import TestSupport

/// The KV executor with a hook run (once) inside `setFinal` after its writes are computed, to
/// act while the store prepares finality.
final class HookedExecutor: SynchronousExecutor {
    let inner: KVExecutor
    private let hook: Mutex<(@Sendable () -> Void)?>
    private let calls = Atomic<Int>(0)

    init(_ inner: KVExecutor, hook: @escaping @Sendable () -> Void) {
        self.inner = inner
        self.hook = Mutex(hook)
    }

    var setFinalCalls: Int { calls.load(ordering: .relaxed) }

    func initChain(genesis: Genesis) throws(ExecutionError) -> [UInt8] { try inner.initChain(genesis: genesis) }
    func getTxs(max: Int, maxBytes: Int) -> [[UInt8]] { inner.getTxs(max: max, maxBytes: maxBytes) }
    func hasPendingTransactions() -> Bool { inner.hasPendingTransactions() }
    func latestHeight() -> UInt64? { nil }
    func executeTxs(_ txs: [[UInt8]], height: UInt64, time: UInt64,
                    previousRoot: [UInt8]) throws(ExecutionError) -> ExecutionResult {
        try inner.executeTxs(txs, height: height, time: time, previousRoot: previousRoot)
    }
    func rollback(to height: UInt64, from currentHeight: UInt64) throws(ExecutionError) -> WriteSet {
        try inner.rollback(to: height, from: currentHeight)
    }
    func setFinal(height: UInt64) throws(ExecutionError) -> WriteSet {
        calls.add(1, ordering: .relaxed)
        let writes = try inner.setFinal(height: height)
        let once = hook.withLock { h -> (@Sendable () -> Void)? in
            defer { h = nil }
            return h
        }
        once?()
        return writes
    }
}

/// Runs `work` on a thread of its own; false when it did not finish within `seconds` (it is
/// blocked, e.g. behind the store's writer lock).
func finishesOnAnotherThread(within seconds: Double, _ work: @escaping @Sendable () -> Void) -> Bool {
    let done = DispatchSemaphore(value: 0)
    Thread {
        work()
        done.signal()
    }.start()
    return done.wait(timeout: .now() + seconds) == .success
}

/// Finality's executor work (`Executor.setFinal`'s writes) is prepared outside the store's writer
/// lock: block commits go on meanwhile, and a rollback in between makes it start over. (The KV
/// executor itself writes nothing there; it prunes behind finality in `prune`.)
@Suite struct FinalityConcurrencyTests {
    @Test func commitsGoOnWhileFinalityIsPrepared() throws {
        let chain = try TestChain()
        for h in 1...10 { try chain.produce(["hot=\(h)", "k\(h)=x"]) }
        let next = try chain.next(["hot=11"])
        let store = chain.store
        let committed = Mutex(false)
        let executor = HookedExecutor(chain.executor) {
            let ok = finishesOnAnotherThread(within: 20) { try? store.commit(next, sync: false) }
            committed.withLock { $0 = ok }
        }
        try ChainExecution(store: store, executor: executor).finalize(through: 8)
        #expect(committed.withLock { $0 }, "a block commit waited for the finality preparation")
        #expect(store.height == 11 && store.finalizedHeight == 8)
        #expect(try chain.value("hot") == "11")
        #expect(executor.setFinalCalls == 1)
    }

    @Test func aRollbackInBetweenMakesFinalityStartOver() throws {
        let chain = try TestChain()
        for h in 1...12 { try chain.produce(["hot=\(h)", "k\(h)=x"]) }
        let store = chain.store
        let kv = chain.executor
        let signer = chain.signer
        let genesis = chain.genesis
        let replaced = Mutex(false)
        let executor = HookedExecutor(kv) {
            // Another writer rolls back below the height being finalized and builds another tip
            // that no longer writes `hot` after 3: writes prepared on the old chain (pruning, for
            // an executor that prunes here) could now delete `hot`'s last version.
            let ok = finishesOnAnotherThread(within: 20) {
                do {
                    try ChainExecution(store: store, executor: kv).rollback(to: 3)
                    for h in 4...12 {
                        let block = try BlockBuilder(signer: signer, executor: kv)
                            .build(on: store.state!, txs: [Array("other=\(h)".utf8)],
                                   time: genesis.startTimeNanoseconds + UInt64(h) * 1_000_000_000)
                        try store.commit(block, sync: false)
                    }
                } catch {
                    Issue.record("rollback and rebuild failed: \(error)")
                }
            }
            replaced.withLock { $0 = ok }
        }
        try ChainExecution(store: store, executor: executor).finalize(through: 6)
        #expect(replaced.withLock { $0 })
        #expect(executor.setFinalCalls == 2, "prepared again after the rollback")
        #expect(store.finalizedHeight == 6 && store.height == 12)
        #expect(try chain.value("hot") == "3", "finality was prepared again on the new chain")
        #expect(try chain.value("other") == "12")
        #expect(try chain.value("k9") == nil)
    }
}
