import Primitives

/// Why divergence recovery halts the node: what it found cannot be fixed without an operator.
/// Nothing was changed. Each case names the heights and hashes involved; the description is
/// the halt's reason as logged, shown in the phase and in the process's exit message.
package enum DivergenceRecoveryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// DA's block at `height` differs from the stored one at or below the finalized height:
    /// finality is never rolled back.
    case finalizedDivergence(height: UInt64, stored: [UInt8], authoritative: [UInt8], finalized: UInt64,
                             origin: BlockOrigin)
    /// DA's block `height + 1` links to `link`, but DA's first block at `height` is `firstSeen`:
    /// the proposer signed two chains, and DA holds no consistent one.
    case brokenAuthority(height: UInt64, link: [UInt8], firstSeen: [UInt8])
    /// DA's block `height + 1` links to our block `height` but expects the state root
    /// `authoritative`, while ours is `stored`: no rollback can fix the executor state.
    case stateRootMismatch(height: UInt64, stored: [UInt8], authoritative: [UInt8])

    /// The height that diverged.
    package var height: UInt64 {
        switch self {
        case .finalizedDivergence(let height, _, _, _, _), .brokenAuthority(let height, _, _),
             .stateRootMismatch(let height, _, _):
            return height
        }
    }

    package var description: String {
        switch self {
        case let .finalizedDivergence(height, stored, authoritative, finalized, origin):
            return "divergence at or below the finalized height: DA's block \(height) is \(Hex.encode(authoritative)) but the store holds \(Hex.encode(stored)) (finalized height \(finalized), DA block from \(origin)); finality is never rolled back, nothing was changed — an operator must decide (double-sign evidence is recorded, see /evidence)"
        case let .brokenAuthority(height, link, firstSeen):
            return "DA holds no consistent chain: its block \(height + 1) links to \(Hex.encode(link)) but its first block at \(height) is \(Hex.encode(firstSeen)) (the proposer signed two chains); nothing was changed — an operator must decide"
        case let .stateRootMismatch(height, stored, authoritative):
            return "state root mismatch: DA's block \(height + 1) expects app_hash \(Hex.encode(authoritative)) on top of our block \(height), but our state root is \(Hex.encode(stored)); the blocks agree, so no rollback can fix the executor state — an operator must look at it"
        }
    }
}
