import Chain
import Synchronization

/// SPEC §6 condition 2, above any transport: the highest height any peer has *proven* during
/// this process's life, and whether a configured peer answered at all.
///
/// A peer's claim "my chain is at height h" counts only with a validly signed header at h whose
/// signer the chain state places (SPEC §6, README "Proven peer heights under rotation"): at a
/// height the state already decides, the proposer it expects there; above it, any key the chain
/// has named so far (the genesis proposer, each rotation's) — counting a height signed by a key
/// the chain named only ever holds promotion back. A header validly signed by a key the chain
/// has not named (yet) is `unplaced`: it proves nothing, and it is no reason to blame the peer,
/// which may simply be ahead of us past a rotation we have not applied. The transport (whatever protocol carries status or head answers) hands
/// every claim here with the header it came with; this type verifies it and keeps the highest
/// proven height. What is proven stays: a peer that disconnects, is banned or goes silent keeps
/// its height counted, because the blocks it proved exist were signed whether or not that peer
/// is still reachable. So nothing is kept per peer — only the highest proof, whoever gave it —
/// and a stranger that comes and goes under ever new identities costs nothing here. A claim that
/// fails verification is returned as rejected so that the transport can penalise the peer; it
/// never counts.
///
/// Proven heights count from any peer: they can only hold promotion back. An answer — a proven
/// head or an empty chain — counts as "a configured peer answered", which can let a node without
/// a signer mark promote, only when the transport vouches that it came from a configured peer
/// over an identity this node proved by dialling that peer itself (`fromConfiguredPeer`).
public final class ProvenPeerHeights: Sendable {
    /// What became of one claim.
    public enum Verdict: Sendable, Equatable {
        /// The header proves the height; it now counts (if it is the highest so far).
        case proven(UInt64)
        /// The peer claims an empty chain: an answer, with nothing to prove.
        case empty
        /// The proof is wrong: the reason names the height and the rule. Penalise the peer.
        case rejected(String)
        /// The header is validly signed by its own key, but the chain state cannot place that
        /// key at this height yet: not proven, and not the peer's fault.
        case unplaced(UInt64)
    }

    /// The header behind the highest proven height, and who showed it.
    public struct Proof: Sendable, Equatable {
        public var height: UInt64
        public var hash: [UInt8]
        public var peer: String
        /// Who signed the header.
        public var proposer: [UInt8]

        public init(height: UInt64, hash: [UInt8], peer: String, proposer: [UInt8] = []) {
            self.height = height
            self.hash = hash
            self.peer = peer
            self.proposer = proposer
        }
    }

    private struct State {
        var highest: Proof?
        var configuredPeerAnswered = false
        /// The highest height a validly self-signed but unplaced header claimed.
        var highestUnplaced: UInt64 = 0
    }

    private let validator: BlockValidator
    /// Where the chain says who signs; nil: the genesis proposer signs every height.
    private let placement: (any ProposerPlacement)?
    private let state = Mutex(State())
    /// Told of every proven claim, after it is recorded (the node's second-signer watch).
    private let observer = Mutex<(@Sendable (Proof) -> Void)?>(nil)

    public init(validator: BlockValidator, placement: (any ProposerPlacement)? = nil) {
        self.validator = validator
        self.placement = placement
    }

    /// Whether the chain state places `proposer` at `height` (see the type's comment).
    private func places(_ proposer: [UInt8], at height: UInt64) -> Bool {
        guard let placement else { return proposer == validator.proposerAddress }
        if let expected = placement.expectedProposer(at: height) { return proposer == expected }
        return proposer == validator.proposerAddress || placement.namedProposers.contains(proposer)
    }

    /// A peer's claim of its head height `claimed`, proven by `header` (nil only when the claim
    /// is 0, an empty chain). Verifies that the header is at exactly that height, for this
    /// chain, validly signed by its own key, and that the chain places that key there.
    /// Thread-safe; runs one signature check, after the cheap checks.
    @discardableResult
    public func record(peer: String, claimed: UInt64, header: SignedHeader?,
                       fromConfiguredPeer: Bool) -> Verdict {
        guard claimed > 0 else {
            if fromConfiguredPeer { state.withLock { $0.configuredPeerAnswered = true } }
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
            return .rejected("the proof of height \(claimed) is not validly signed: \(error)")
        }
        guard places(header.header.proposerAddress, at: claimed) else {
            state.withLock { $0.highestUnplaced = max($0.highestUnplaced, claimed) }
            return .unplaced(claimed)
        }
        let proof = Proof(height: claimed, hash: header.header.hash, peer: peer, proposer: header.header.proposerAddress)
        state.withLock { s in
            if s.highest.map({ claimed > $0.height }) ?? true { s.highest = proof }
            if fromConfiguredPeer { s.configuredPeerAnswered = true }
        }
        observer.withLock { $0 }?(proof)
        return .proven(claimed)
    }

    /// The highest height any peer proved; nil when none proved one (peers that answered only
    /// with empty chains prove nothing).
    public var highest: UInt64? {
        state.withLock { $0.highest?.height }
    }

    /// How far to fetch from peers: `highest`, or the highest height a validly self-signed header
    /// of a key the chain has not named yet claimed (the chain past a rotation this node has not
    /// applied). Only a fetch target: what is fetched is validated when applied, and it never
    /// counts for promotion.
    public var fetchTarget: UInt64? {
        state.withLock { s in
            let target = max(s.highest?.height ?? 0, s.highestUnplaced)
            return target > 0 ? target : nil
        }
    }

    /// The header behind `highest`, and the peer that showed it.
    public var highestProof: Proof? {
        state.withLock { $0.highest }
    }

    /// A configured peer answered with a valid claim (a proven height, or an empty chain) over
    /// an identity this node proved by dialling it.
    public var configuredPeerAnswered: Bool {
        state.withLock { $0.configuredPeerAnswered }
    }

    /// Who is told of each proven claim, on the thread that recorded it; it must return at once.
    public func observeProofs(_ body: @escaping @Sendable (Proof) -> Void) {
        observer.withLock { $0 = body }
    }
}
