import Config
import Dispatch
import Synchronization

/// The executor as the block layer's blocking code calls it (the store, the builder, the
/// applier — all run on threads that may block: the sync pipeline's own thread, the thread pool
/// of the producer and of the DA follower and submitter).
///
/// An embedded executor is called directly. A remote one runs its async call in a task and the
/// calling thread waits for it; its network I/O runs on threads of its own, so the task needs
/// the cooperative pool only briefly. Never call this from a task on the cooperative pool.
package struct BlockingExecutor: Sendable {
    package let executor: any Executor
    private let local: (any SynchronousExecutor)?

    package init(_ executor: any Executor) {
        self.executor = executor
        self.local = executor as? any SynchronousExecutor
    }

    package func initChain(genesis: Genesis) throws(ExecutionError) -> [UInt8] {
        if let local { return try local.initChain(genesis: genesis) }
        let executor = self.executor
        return try Self.wait { () async throws(ExecutionError) in try await executor.initChain(genesis: genesis) }
    }

    package func getTxs(max: Int, maxBytes: Int) throws(ExecutionError) -> [[UInt8]] {
        if let local { return try local.getTxs(max: max, maxBytes: maxBytes) }
        let executor = self.executor
        return try Self.wait { () async throws(ExecutionError) in try await executor.getTxs(max: max, maxBytes: maxBytes) }
    }

    package func executeTxs(_ txs: [[UInt8]], height: UInt64, time: UInt64,
                           previousRoot: [UInt8]) throws(ExecutionError) -> ExecutionResult {
        if let local { return try local.executeTxs(txs, height: height, time: time, previousRoot: previousRoot) }
        let executor = self.executor
        return try Self.wait { () async throws(ExecutionError) in
            try await executor.executeTxs(txs, height: height, time: time, previousRoot: previousRoot)
        }
    }

    package func setFinal(height: UInt64) throws(ExecutionError) -> WriteSet {
        if let local { return try local.setFinal(height: height) }
        let executor = self.executor
        return try Self.wait { () async throws(ExecutionError) in try await executor.setFinal(height: height) }
    }

    package func rollback(to height: UInt64, from currentHeight: UInt64) throws(ExecutionError) -> WriteSet {
        if let local { return try local.rollback(to: height, from: currentHeight) }
        let executor = self.executor
        return try Self.wait { () async throws(ExecutionError) in
            try await executor.rollback(to: height, from: currentHeight)
        }
    }

    /// Runs `body` in a task and blocks the calling thread until it ends.
    static func wait<T: Sendable>(_ body: @escaping @Sendable () async throws(ExecutionError) -> T) throws(ExecutionError) -> T {
        let outcome = Mutex<Result<T, ExecutionError>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task {
            let result: Result<T, ExecutionError>
            do throws(ExecutionError) {
                result = .success(try await body())
            } catch {
                result = .failure(error)
            }
            outcome.withLock { $0 = result }
            done.signal()
        }
        done.wait()
        return try outcome.withLock { $0! }.get()
    }
}
