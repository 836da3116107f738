import Config

/// Key/value writes an executor wants persisted. Keys are relative to the executor's own
/// namespace in the store (the store adds its prefix), so an executor cannot touch block data.
/// The store applies the operations in order, inside the same atomic batch as the block (or the
/// rollback / finality update) they belong to.
package struct WriteSet: Sendable, Equatable {
    package enum Operation: Sendable, Equatable {
        case put(key: [UInt8], value: [UInt8])
        case delete(key: [UInt8])
    }

    package private(set) var operations: [Operation]

    package init() { operations = [] }

    package init(operations: [Operation]) { self.operations = operations }

    package var isEmpty: Bool { operations.isEmpty }
    package var count: Int { operations.count }

    package mutating func put(_ key: [UInt8], _ value: [UInt8]) {
        operations.append(.put(key: key, value: value))
    }

    package mutating func delete(_ key: [UInt8]) {
        operations.append(.delete(key: key))
    }

    package mutating func append(contentsOf other: WriteSet) {
        operations.append(contentsOf: other.operations)
    }

    package mutating func reserveCapacity(_ n: Int) { operations.reserveCapacity(n) }
}

/// The result of executing one block's txs.
package struct ExecutionResult: Sendable, Equatable {
    /// State root after the block (the next block's `app_hash`).
    package var stateRoot: [UInt8]
    /// State changes, committed atomically with the block.
    package var writes: WriteSet
    /// The address that must sign the next block, when this block hands production to another
    /// key (ev-node v1.2 `ExecuteResult.NextProposerAddress`); empty = unchanged.
    package var nextProposerAddress: [UInt8]

    package init(stateRoot: [UInt8], writes: WriteSet, nextProposerAddress: [UInt8] = []) {
        self.stateRoot = stateRoot
        self.writes = writes
        self.nextProposerAddress = nextProposerAddress
    }
}

/// The executor failed: its state cannot be read, it cannot be reached, or it refuses the
/// request. Carries what an operator needs: the engine (an EL's URL), the method and the height.
package struct ExecutionError: Error, Sendable, Equatable, CustomStringConvertible {
    package enum Kind: Sendable, Equatable {
        /// The engine refused the request or answered something that cannot be right (INVALID,
        /// a JSON-RPC error, a malformed answer, a state root that disagrees with the chain).
        /// Asking again gets the same answer: the node stops and says why.
        case rejected
        /// The engine cannot be reached or is not ready (connection refused, timeout, still
        /// SYNCING after the retries). Nothing was decided: the same call is made again later,
        /// and the block it was for is neither skipped nor built twice.
        case unavailable
    }

    package let kind: Kind
    /// The block height involved, when there is one.
    package let height: UInt64?
    /// Which engine answered (e.g. `EL http://127.0.0.1:8551`); nil for the built-in executor.
    package let engine: String?
    /// The engine method that failed (e.g. `engine_newPayloadV4`).
    package let method: String?
    package let reason: String

    package init(height: UInt64?, reason: String) {
        self.init(kind: .rejected, engine: nil, method: nil, height: height, reason: reason)
    }

    package init(kind: Kind, engine: String?, method: String?, height: UInt64?, reason: String) {
        self.kind = kind
        self.engine = engine
        self.method = method
        self.height = height
        self.reason = reason
    }

    package var isUnavailable: Bool { kind == .unavailable }

    package var description: String {
        var where_ = "execution"
        if let engine { where_ = engine }
        if let method { where_ += " \(method)" }
        if let height { where_ += " at height \(height)" }
        return "\(where_): \(reason)"
    }
}

/// The execution layer behind the node (SPEC §4): InitChain, GetTxs, ExecuteTxs, SetFinal,
/// Rollback, and the engine's own height for the reconcile at start.
///
/// Asynchronous, because an execution client over the Engine API keeps its own state, answers
/// over the network and can fail, stall, or be ahead of or behind the store after a crash. An
/// embedded executor (the KV application) implements the same calls synchronously and also
/// conforms to `SynchronousExecutor`, so the block layer calls it directly, with no hop per block.
///
/// State: an embedded executor returns `WriteSet`s that the block store commits in the *same*
/// write batch as the block, the rollback or the finality update, so a crash never leaves block
/// and state apart. A remote engine keeps its state itself; its `WriteSet`s hold only its own
/// bookkeeping, and what it must persist *during* a call (an EL's per-height build progress) it
/// writes to its namespace in the store itself. The reconcile at start (`ExecutionReconciler`)
/// puts a remote engine back in line with the store after any crash.
///
/// `executeTxs` must not depend on uncommitted writes of earlier blocks: catch-up executes many
/// blocks before committing them in one batch. `setFinal` and `rollback` may read committed
/// state; the store calls `rollback` while it holds its writer lock, so it must not call the
/// store's write methods.
package protocol Executor: AnyObject, Sendable {
    /// The state root before the first block.
    func initChain(genesis: Genesis) async throws(ExecutionError) -> [UInt8]

    /// Up to `max` txs and at most `maxBytes` bytes of txs, in order, for the next block.
    func getTxs(max: Int, maxBytes: Int) async throws(ExecutionError) -> [[UInt8]]

    /// Whether transactions wait (lazy aggregators produce only then).
    func hasPendingTransactions() async -> Bool

    /// Executes block `height`'s txs (block time `time`, unix ns) on top of `previousRoot`.
    func executeTxs(_ txs: [[UInt8]], height: UInt64, time: UInt64,
                    previousRoot: [UInt8]) async throws(ExecutionError) -> ExecutionResult

    /// Height `height` is final (DA-included) and will never be rolled back. Returns writes to
    /// commit with the finalized height (e.g. pruning of undo data).
    func setFinal(height: UInt64) async throws(ExecutionError) -> WriteSet

    /// Undoes blocks `currentHeight` down to `height + 1`; returns the writes the store commits
    /// in its rollback batch.
    func rollback(to height: UInt64, from currentHeight: UInt64) async throws(ExecutionError) -> WriteSet

    /// The height of the engine's own head, when its state lives outside the store (nil: it is
    /// in the store's batches, so it is always exactly at the store's height).
    func latestHeight() async throws(ExecutionError) -> UInt64?

    /// Judges the candidate transactions of the next block in order (ev-node's `FilterTxs`):
    /// at most `maxBytes` of them included (0: no bound), and `maxGas` of gas where the engine
    /// counts gas (0: no bound). `hasForced`: the list starts with forced-inclusion transactions,
    /// which nobody checked before (mempool transactions were checked when queued). Pure and
    /// deterministic: every node that verifies forced inclusion runs it on the same inputs.
    func filterTxs(_ txs: [[UInt8]], maxBytes: UInt64, maxGas: UInt64, hasForced: Bool) -> [TxFilterStatus]

    /// The gas a block may use, as `filterTxs` takes it (ev-node's `GetExecutionInfo().MaxGas`;
    /// 0: the engine counts no gas). Asked before forced transactions are filtered, by the
    /// sequencer and by every verifier alike.
    func maxGasPerBlock() async throws(ExecutionError) -> UInt64
}

extension Executor {
    /// Size alone: an empty transaction or one larger than `maxBytes` is removed, and once the
    /// bound is reached everything after is postponed.
    package func filterTxs(_ txs: [[UInt8]], maxBytes: UInt64, maxGas: UInt64, hasForced: Bool) -> [TxFilterStatus] {
        TxSizeFilter.filter(txs, maxBytes: maxBytes) { _ in true }
    }

    /// No gas.
    package func maxGasPerBlock() async throws(ExecutionError) -> UInt64 { 0 }
}

/// The size rule every executor's filter shares (ev-node's testapp order): removed when empty,
/// invalid or alone larger than the bound; postponed from the first one that would overflow it on.
package enum TxSizeFilter {
    package static func filter(_ txs: [[UInt8]], maxBytes: UInt64,
                              isValid: ([UInt8]) -> Bool) -> [TxFilterStatus] {
        var result: [TxFilterStatus] = []
        result.reserveCapacity(txs.count)
        var taken: UInt64 = 0
        var full = false
        for tx in txs {
            let size = UInt64(tx.count)
            if tx.isEmpty || !isValid(tx) || (maxBytes > 0 && size > maxBytes) {
                result.append(.remove)
            } else if full || (maxBytes > 0 && taken + size > maxBytes) {
                full = true
                result.append(.postpone)
            } else {
                taken += size
                result.append(.include)
            }
        }
        return result
    }
}

/// An executor that runs in-process and waits on nothing but the store: the same calls as
/// `Executor`, synchronous. Blocking callers (the sync pipeline's thread, the producer's pool
/// thread) call it directly.
package protocol SynchronousExecutor: Executor {
    func initChain(genesis: Genesis) throws(ExecutionError) -> [UInt8]
    func getTxs(max: Int, maxBytes: Int) throws(ExecutionError) -> [[UInt8]]
    func executeTxs(_ txs: [[UInt8]], height: UInt64, time: UInt64,
                    previousRoot: [UInt8]) throws(ExecutionError) -> ExecutionResult
    func setFinal(height: UInt64) throws(ExecutionError) -> WriteSet
    func rollback(to height: UInt64, from currentHeight: UInt64) throws(ExecutionError) -> WriteSet
}

extension ExecutionError {
    /// A blocking path (a thread that may not wait for a task) was handed an executor that
    /// answers only asynchronously. A wiring fault of the node, not of the engine: never retried.
    package static func notInProcess(method: String, height: UInt64?) -> ExecutionError {
        ExecutionError(kind: .rejected, engine: nil, method: method, height: height,
                       reason: "the executor answers asynchronously; a blocking path cannot call it (use the async form)")
    }
}
