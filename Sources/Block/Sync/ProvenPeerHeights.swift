import Chain
import Synchronization

/// SPEC §6 condition 2, above any transport: the heights peers have *proven* during this
/// process's life, and whether any peer answered at all.
///
/// A peer's claim "my chain is at height h" counts only with the genesis proposer's validly
/// signed header at h. The transport (whatever protocol carries status or head answers) hands
/// every claim here with the header it came with; this type verifies it and keeps the highest
/// proven height per peer. What is proven stays: a peer that disconnects, is banned or goes
/// silent keeps its height counted, because the blocks it proved exist were signed whether or
/// not that peer is still reachable. A claim that fails verification is returned as rejected so
/// that the transport can penalise the peer; it never counts.
public final class ProvenPeerHeights: Sendable {
    /// What became of one claim.
    public enum Verdict: Sendable, Equatable {
        /// The header proves the height; it now counts (if it is the peer's highest so far).
        case proven(UInt64)
        /// The peer claims an empty chain: an answer, with nothing to prove.
        case empty
        /// The proof is wrong: the reason names the height and the rule. Penalise the peer.
        case rejected(String)
    }

    private struct State {
        /// 0 for a peer that answered with an empty chain.
        var highestByPeer: [String: UInt64] = [:]
    }

    private let validator: BlockValidator
    private let state = Mutex(State())

    public init(validator: BlockValidator) {
        self.validator = validator
    }

    /// A peer's claim of its head height `claimed`, proven by `header` (nil only when the claim
    /// is 0, an empty chain). Verifies that the header is at exactly that height, for this
    /// chain, and signed by the genesis proposer. Thread-safe; runs one signature check.
    @discardableResult
    public func record(peer: String, claimed: UInt64, header: SignedHeader?) -> Verdict {
        guard claimed > 0 else {
            state.withLock { s in s.highestByPeer[peer] = s.highestByPeer[peer] ?? 0 }
            return .empty
        }
        guard let header else {
            return .rejected("peer claims height \(claimed) without the signed header that proves it")
        }
        guard header.height == claimed else {
            return .rejected("peer claims height \(claimed) but its proof is the header of height \(header.height)")
        }
        guard header.header.chainID == validator.chainID else {
            return .rejected(ValidationError.wrongChainID(height: claimed, chainID: header.header.chainID,
                                                          expected: validator.chainID).description)
        }
        do throws(ValidationError) {
            try validator.verifySignature(header)
        } catch {
            return .rejected("the proof of height \(claimed) is not the genesis proposer's: \(error)")
        }
        state.withLock { s in s.highestByPeer[peer] = max(s.highestByPeer[peer] ?? 0, claimed) }
        return .proven(claimed)
    }

    /// The highest height any peer proved (0 when peers answered only with empty chains); nil
    /// when no peer answered.
    public var highest: UInt64? {
        state.withLock { $0.highestByPeer.values.max() }
    }

    /// Some peer answered with a valid claim (a proven height, or an empty chain).
    public var anyPeerAnswered: Bool {
        state.withLock { !$0.highestByPeer.isEmpty }
    }
}
