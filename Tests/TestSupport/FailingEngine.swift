import Chain
import Config
import Execution
import Synchronization

/// The KV executor reached through the async `Executor` calls only (as a remote engine is),
/// failing on demand in the calls named in `failing`: an executor that cannot answer.
public final class FailingEngine: Executor {
    public let inner: KVExecutor
    private let failing: Mutex<Set<String>>
    private let asked = Mutex<[String]>([])

    public init(_ inner: KVExecutor, failing: Set<String> = []) {
        self.inner = inner
        self.failing = Mutex(failing)
    }

    public var calls: [String] { asked.withLock { $0 } }
    public func fail(_ methods: Set<String>) { failing.withLock { $0 = methods } }

    private func check(_ method: String, _ height: UInt64?) throws(ExecutionError) {
        asked.withLock { $0.append(method) }
        if failing.withLock({ $0.contains(method) }) {
            throw ExecutionError(kind: .unavailable, engine: "test engine", method: method, height: height,
                                 reason: "refused by the test")
        }
    }

    public func initChain(genesis: Genesis) async throws(ExecutionError) -> [UInt8] {
        try check("initChain", nil)
        return try inner.initChain(genesis: genesis)
    }
    public func getTxs(max: Int, maxBytes: Int) async throws(ExecutionError) -> [[UInt8]] {
        inner.getTxs(max: max, maxBytes: maxBytes)
    }
    public func hasPendingTransactions() async -> Bool { inner.hasPendingTransactions() }
    public func executeTxs(_ txs: [[UInt8]], height: UInt64, time: UInt64,
                    previousRoot: [UInt8]) async throws(ExecutionError) -> ExecutionResult {
        try check("executeTxs", height)
        return try inner.executeTxs(txs, height: height, time: time, previousRoot: previousRoot)
    }
    public func setFinal(height: UInt64) async throws(ExecutionError) -> WriteSet {
        try check("setFinal", height)
        return try inner.setFinal(height: height)
    }
    public func rollback(to height: UInt64, from currentHeight: UInt64) async throws(ExecutionError) -> WriteSet {
        try check("rollback", height)
        return try inner.rollback(to: height, from: currentHeight)
    }
    public func latestHeight() async throws(ExecutionError) -> UInt64? { nil }
}
