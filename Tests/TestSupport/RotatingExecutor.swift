import Chain
import Execution
import Config

/// The KV application with a proposer schedule, for tests of ev-node v1.2 rotation: executing
/// block h returns `schedule[h]` as the next proposer (ev-node's `ExecuteResult` with
/// `NextProposerAddress`), every other block leaves it unchanged. The built-in KV application
/// keeps ev-node's testapp behaviour and never rotates; only tests use this one.
package final class RotatingExecutor: SynchronousExecutor {
    package let kv: KVExecutor
    /// Height executed → the address that signs the blocks after it.
    package let schedule: [UInt64: [UInt8]]

    package init(kv: KVExecutor, schedule: [UInt64: [UInt8]]) {
        self.kv = kv
        self.schedule = schedule
    }

    package func initChain(genesis: Genesis) throws(ExecutionError) -> [UInt8] { try kv.initChain(genesis: genesis) }
    package func getTxs(max: Int, maxBytes: Int) -> [[UInt8]] { kv.getTxs(max: max, maxBytes: maxBytes) }
    package func hasPendingTransactions() -> Bool { kv.hasPendingTransactions() }
    package func latestHeight() -> UInt64? { nil }

    package func executeTxs(_ txs: [[UInt8]], height: UInt64, time: UInt64,
                           previousRoot: [UInt8]) throws(ExecutionError) -> ExecutionResult {
        var result = try kv.executeTxs(txs, height: height, time: time, previousRoot: previousRoot)
        result.nextProposerAddress = schedule[height] ?? []
        return result
    }

    package func setFinal(height: UInt64) throws(ExecutionError) -> WriteSet { try kv.setFinal(height: height) }

    package func rollback(to height: UInt64, from currentHeight: UInt64) throws(ExecutionError) -> WriteSet {
        try kv.rollback(to: height, from: currentHeight)
    }
}
