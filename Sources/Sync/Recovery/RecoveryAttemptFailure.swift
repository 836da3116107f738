import Primitives
import Store

/// Why one recovery attempt failed; retried with backoff.
package enum RecoveryAttemptFailure: Error, Sendable, Equatable, CustomStringConvertible {
    case search(StoreError)
    case rollback(from: UInt64, fromHash: [UInt8], to: UInt64, toHash: [UInt8], StoreError)
    case unconfirmed(to: UInt64, toHash: [UInt8], headHeight: UInt64, headHash: [UInt8], above: Bool)
    case stopped

    package var description: String {
        switch self {
        case .search(let e):
            return "reading the store to find the common ancestor failed: \(e)"
        case let .rollback(from, fromHash, to, toHash, e):
            return "rollback from height \(from) (\(Hex.encode(fromHash))) to the common ancestor \(to) (\(Hex.encode(toHash))) failed: \(e)"
        case let .unconfirmed(to, toHash, head, headHash, above):
            return "rollback to \(to) (\(Hex.encode(toHash))) not confirmed: the store reads back height \(head) (\(Hex.encode(headHash)))"
                + (above ? " and still holds a block above it" : "")
        case .stopped:
            return "the node is stopping"
        }
    }
}
