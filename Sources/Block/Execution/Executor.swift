import Config

/// Key/value writes an executor wants persisted. Keys are relative to the executor's own
/// namespace in the store (the store adds its prefix), so an executor cannot touch block data.
/// The store applies the operations in order, inside the same atomic batch as the block (or the
/// rollback / finality update) they belong to.
public struct WriteSet: Sendable, Equatable {
    public enum Operation: Sendable, Equatable {
        case put(key: [UInt8], value: [UInt8])
        case delete(key: [UInt8])
    }

    public private(set) var operations: [Operation]

    public init() { operations = [] }

    public init(operations: [Operation]) { self.operations = operations }

    public var isEmpty: Bool { operations.isEmpty }
    public var count: Int { operations.count }

    public mutating func put(_ key: [UInt8], _ value: [UInt8]) {
        operations.append(.put(key: key, value: value))
    }

    public mutating func delete(_ key: [UInt8]) {
        operations.append(.delete(key: key))
    }

    public mutating func append(contentsOf other: WriteSet) {
        operations.append(contentsOf: other.operations)
    }

    public mutating func reserveCapacity(_ n: Int) { operations.reserveCapacity(n) }
}

/// The result of executing one block's txs.
public struct ExecutionResult: Sendable, Equatable {
    /// State root after the block (the next block's `app_hash`).
    public var stateRoot: [UInt8]
    /// State changes, committed atomically with the block.
    public var writes: WriteSet

    public init(stateRoot: [UInt8], writes: WriteSet) {
        self.stateRoot = stateRoot
        self.writes = writes
    }
}

/// The executor failed: its state cannot be read, or it refuses the request.
public struct ExecutionError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The block height involved, when there is one.
    public let height: UInt64?
    public let reason: String

    public init(height: UInt64?, reason: String) {
        self.height = height
        self.reason = reason
    }

    public var description: String {
        height.map { "execution at height \($0): \(reason)" } ?? "execution: \(reason)"
    }
}

/// The execution layer behind the node (SPEC §4): InitChain, GetTxs, ExecuteTxs, SetFinal,
/// Rollback. Shaped so that the block store commits the executor's state in the *same* write
/// batch as the block, the rollback or the finality update: executors never write on their
/// own, they return `WriteSet`s. So a crash can never leave block and state apart.
///
/// `executeTxs` must not depend on uncommitted writes of earlier blocks: catch-up executes many
/// blocks before committing them in one batch. (The KV executor writes versioned keys and needs
/// no reads to execute.) `setFinal` and `rollback` may read committed state; the store calls
/// them while it holds its writer lock, so they must not call the store's write methods.
public protocol Executor: AnyObject, Sendable {
    /// The state root before the first block.
    func initChain(genesis: Genesis) throws(ExecutionError) -> [UInt8]

    /// Takes up to `max` txs and at most `maxBytes` bytes of txs from the mempool, in order, for
    /// the next block.
    func getTxs(max: Int, maxBytes: Int) -> [[UInt8]]

    /// Whether transactions wait in the mempool (lazy aggregators produce only then).
    var hasPendingTransactions: Bool { get }

    /// Executes block `height`'s txs on top of `previousRoot`.
    func executeTxs(_ txs: [[UInt8]], height: UInt64, time: UInt64,
                    previousRoot: [UInt8]) throws(ExecutionError) -> ExecutionResult

    /// Height `height` is final (DA-included) and will never be rolled back. Returns writes to
    /// commit with the finalized height (e.g. pruning of undo data).
    func setFinal(height: UInt64) throws(ExecutionError) -> WriteSet

    /// Returns the writes that undo blocks `currentHeight` down to `height + 1`, committed by
    /// the store in its rollback batch.
    func rollback(to height: UInt64, from currentHeight: UInt64) throws(ExecutionError) -> WriteSet
}

extension Executor {
    /// Up to `max` txs, bounded by the bytes a block can carry.
    public func getTxs(max: Int) -> [[UInt8]] {
        getTxs(max: max, maxBytes: WireLimits.maxTxBytesPerBlock)
    }
}
