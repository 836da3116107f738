import Chain

/// Why a store operation failed. Nothing is half-written when one is thrown: every write is a
/// single RocksDB batch.
package enum StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Another process (or another open handle in this process) holds the directory's lock.
    case locked(path: String, detail: String)
    /// The path exists but is not an evnode block store (a file, a non-empty directory without
    /// a database, or a RocksDB database of something else).
    case notAStore(path: String, reason: String)
    /// RocksDB refused to open the directory for another reason (corruption, permissions…).
    case openFailed(path: String, reason: String)
    /// The store was closed.
    case closed
    /// A RocksDB read or write failed.
    case io(operation: String, reason: String)
    /// A stored value could not be decoded.
    case corrupted(what: String, reason: String)
    /// No chain state yet: initialise it from genesis first.
    case notInitialized
    /// The store belongs to another chain.
    case genesisMismatch(storedChainID: String, genesisChainID: String)
    /// A commit that does not extend the stored chain by the next height, or whose parts
    /// disagree (header, data, state at different heights; state hash not the header's).
    case invalidCommit(height: UInt64, reason: String)
    /// Rollback (or finality) below the finalized height is refused: finality never goes back.
    case belowFinalized(requested: UInt64, finalized: UInt64)
    /// A target height above the store's height (rollback target, finalized height).
    case aboveHeight(requested: UInt64, height: UInt64)
    /// A rollback planned from head `expected` found the store at `found`: a commit or another
    /// rollback ran while the executor undid the blocks. Nothing was written.
    case headMoved(expected: UInt64, found: UInt64)
    /// The executor failed while preparing its part of a store write (raised by Execution,
    /// which asks the executor before it hands the store the batch).
    case execution(ExecutionError)
    /// Pruning up to `requested` would delete what is not final yet (divergence recovery and
    /// rollback may still need it).
    case pruneAboveFinalized(requested: UInt64, finalized: UInt64)

    package var description: String {
        switch self {
        case .locked(let path, let detail):
            return "store \(path) is in use by another process or handle (lock held): \(detail)"
        case .notAStore(let path, let reason):
            return "\(path) is not an evnode block store: \(reason)"
        case .openFailed(let path, let reason):
            return "cannot open store \(path): \(reason)"
        case .closed:
            return "store is closed"
        case .io(let operation, let reason):
            return "store \(operation) failed: \(reason)"
        case .corrupted(let what, let reason):
            return "store value \(what) is corrupted: \(reason)"
        case .notInitialized:
            return "store has no chain state (not initialised from genesis)"
        case .genesisMismatch(let stored, let genesis):
            return "store holds chain \"\(stored)\" but genesis is \"\(genesis)\""
        case .invalidCommit(let height, let reason):
            return "cannot commit block \(height): \(reason)"
        case .belowFinalized(let requested, let finalized):
            return "refusing height \(requested): below the finalized height \(finalized)"
        case .aboveHeight(let requested, let height):
            return "height \(requested) is above the store height \(height)"
        case .headMoved(let expected, let found):
            return "the store head moved from \(expected) to \(found) while the executor rolled back; nothing written"
        case .execution(let error):
            return "executor: \(error)"
        case .pruneAboveFinalized(let requested, let finalized):
            return "refusing to prune through height \(requested): above the finalized height \(finalized)"
        }
    }
}
