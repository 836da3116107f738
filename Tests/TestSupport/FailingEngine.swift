import Chain
import Config
import Execution
import Synchronization

/// The KV executor reached through the async `Executor` calls only (as a remote engine is),
/// failing on demand in the calls named in `failing`: an executor that cannot answer.
package final class FailingEngine: Executor {
    package let inner: KVExecutor
    private let failing: Mutex<Set<String>>
    private let asked = Mutex<[String]>([])

    package init(_ inner: KVExecutor, failing: Set<String> = []) {
        self.inner = inner
        self.failing = Mutex(failing)
    }

    package var calls: [String] { asked.withLock { $0 } }
    package func fail(_ methods: Set<String>) { failing.withLock { $0 = methods } }

    private func check(_ method: String, _ height: UInt64?) throws(ExecutionError) {
        asked.withLock { $0.append(method) }
        if failing.withLock({ $0.contains(method) }) {
            throw ExecutionError(kind: .unavailable, engine: "test engine", method: method, height: height,
                                 reason: "refused by the test")
        }
    }

    package func initChain(genesis: Genesis) async throws(ExecutionError) -> [UInt8] {
        try check("initChain", nil)
        return try inner.initChain(genesis: genesis)
    }
    package func getTxs(max: Int, maxBytes: Int) async throws(ExecutionError) -> [[UInt8]] {
        inner.getTxs(max: max, maxBytes: maxBytes)
    }
    package func hasPendingTransactions() async -> Bool { inner.hasPendingTransactions() }
    package func executeTxs(_ txs: [[UInt8]], height: UInt64, time: UInt64,
                    previousRoot: [UInt8]) async throws(ExecutionError) -> ExecutionResult {
        try check("executeTxs", height)
        return try inner.executeTxs(txs, height: height, time: time, previousRoot: previousRoot)
    }
    package func setFinal(height: UInt64) async throws(ExecutionError) -> WriteSet {
        try check("setFinal", height)
        return try inner.setFinal(height: height)
    }
    package func rollback(to height: UInt64, from currentHeight: UInt64) async throws(ExecutionError) -> WriteSet {
        try check("rollback", height)
        return try inner.rollback(to: height, from: currentHeight)
    }
    package func latestHeight() async throws(ExecutionError) -> UInt64? { nil }
}
