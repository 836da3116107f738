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
/// Two ways to prove a height past a rotation the node has not applied yet (issue 31):
/// - A claim that could not be placed is kept (the highest `maxHeldUnplaced` of them) and
///   counts as soon as the chain state names its key — without the peer asking again.
/// - A contiguous hash-linked run (`recordRun`): a first header the node can verify (the chain
///   places its signer; the P2P service uses the header the store holds at its height), then
///   at most `maxLinkedRun` headers, each validly signed by its own key and naming the hash of
///   the one before as its `last_header_hash`. It proves the top of the run. Links prove order,
///   not who may sign, so every read checks the run again against the chain state: a header at a
///   height the state now decides, signed by another key than the one expected there, ends the
///   run's proof below it. A forged run can thus hold promotion back only until the node's
///   state reaches it; an honest one keeps proving. A run that does not link, or whose first
///   header cannot be placed, proves nothing and blames nobody; a bad signature in it is the
///   peer's own fault, as in a head answer.
///
/// Proven heights count from any peer: they can only hold promotion back. An answer — a proven
/// head or an empty chain — counts as "a configured peer answered", which can let a node without
/// a signer mark promote, only when the transport vouches that it came from a configured peer
/// over an identity this node proved by dialling that peer itself (`fromConfiguredPeer`).
package final class ProvenPeerHeights: Sendable {
    /// What became of one claim.
    package enum Verdict: Sendable, Equatable {
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
    package struct Proof: Sendable, Equatable {
        package var height: UInt64
        package var hash: [UInt8]
        package var peer: String
        /// Who signed the header.
        package var proposer: [UInt8]

        package init(height: UInt64, hash: [UInt8], peer: String, proposer: [UInt8] = []) {
            self.height = height
            self.hash = hash
            self.peer = peer
            self.proposer = proposer
        }
    }

    /// Most headers a hash-linked run may carry above its first one: one header-exchange range.
    package static let maxLinkedRun = 64
    /// Most unplaced claims kept to be placed later (the highest heights stay).
    package static let maxHeldUnplaced = 16
    /// Most hash-linked runs kept (the highest tops stay): at most 4 × 65 headers.
    package static let maxHeldRuns = 4

    private struct HeldClaim {
        var header: SignedHeader
        var peer: String
        var configured: Bool
    }

    private struct State {
        var highest: Proof?
        var configuredPeerAnswered = false
        /// The highest height a validly self-signed but unplaced header claimed.
        var highestUnplaced: UInt64 = 0
        /// Validly self-signed claims the chain could not place yet, by height.
        var unplaced: [UInt64: HeldClaim] = [:]
        /// Verified hash-linked runs, checked against the chain state on every read.
        var runs: [(run: [SignedHeader], peer: String)] = []
    }

    private let validator: BlockValidator
    /// Where the chain says who signs; nil: the genesis proposer signs every height.
    private let placement: (any ProposerPlacement)?
    private let state = Mutex(State())
    /// Told of every proven claim, after it is recorded (the node's second-signer watch).
    private let observer = Mutex<(@Sendable (Proof) -> Void)?>(nil)

    package init(validator: BlockValidator, placement: (any ProposerPlacement)? = nil) {
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
    package func record(peer: String, claimed: UInt64, header: SignedHeader?,
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
            state.withLock { s in
                s.highestUnplaced = max(s.highestUnplaced, claimed)
                s.unplaced[claimed] = HeldClaim(header: header, peer: peer, configured: fromConfiguredPeer)
                if s.unplaced.count > Self.maxHeldUnplaced, let lowest = s.unplaced.keys.min() {
                    s.unplaced.removeValue(forKey: lowest)
                }
            }
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

    /// A hash-linked run as a proof of its top height (see the type's comment): `run[0]` a
    /// header the chain places, then up to `maxLinkedRun` headers, each at the next height and
    /// naming the previous one's hash. Cheap checks (length, chain, heights, links) come before
    /// the signatures. Thread-safe.
    @discardableResult
    package func recordRun(peer: String, run: [SignedHeader], fromConfiguredPeer: Bool) -> Verdict {
        guard let first = run.first, let last = run.last else {
            return .rejected("an empty hash-linked run proves nothing")
        }
        let top = last.height
        guard run.count >= 2, run.count <= Self.maxLinkedRun + 1 else { return .unplaced(top) }
        for (i, signed) in run.enumerated() {
            guard signed.header.chainID == validator.chainID else {
                return .rejected(ValidationError.wrongChainID(height: signed.height, chainID: signed.header.chainID,
                                                              expected: validator.chainID).description)
            }
            if i > 0 {
                let previous = run[i - 1]
                guard previous.height < .max, signed.height == previous.height + 1,
                      signed.header.lastHeaderHash == previous.header.hash else { return .unplaced(top) }
            }
        }
        guard places(first.header.proposerAddress, at: first.height) else { return .unplaced(top) }
        for signed in run {
            do throws(ValidationError) {
                try validator.verifySignature(signed)
            } catch {
                return .rejected("hash-linked run to height \(top): header \(signed.height) is not validly signed: \(error)")
            }
        }
        guard let proven = provenTop(of: run), proven > first.height else { return .unplaced(top) }
        state.withLock { s in
            s.highestUnplaced = max(s.highestUnplaced, top)
            s.runs.append((run, peer))
            if s.runs.count > Self.maxHeldRuns, let lowest = s.runs.indices.min(by: { s.runs[$0].run.last!.height < s.runs[$1].run.last!.height }) {
                s.runs.remove(at: lowest)
            }
            if fromConfiguredPeer { s.configuredPeerAnswered = true }
        }
        _ = best()
        return .proven(proven)
    }

    /// The highest height of `run` the chain state does not contradict: its first header is
    /// placed, and no header above it sits at a height the state decides under another key.
    private func provenTop(of run: [SignedHeader]) -> UInt64? {
        guard let first = run.first, places(first.header.proposerAddress, at: first.height) else { return nil }
        var top = first.height
        for signed in run.dropFirst() {
            if let expected = placement?.expectedProposer(at: signed.height), expected != signed.header.proposerAddress {
                break
            }
            top = signed.height
        }
        return top
    }

    /// The highest proof now: the highest proven claim (after placing the held claims whose key
    /// the chain has named since) or the highest top of a run the chain state does not contradict.
    private func best() -> Proof? {
        let (best, placed) = state.withLock { s -> (Proof?, [Proof]) in
            var placed: [Proof] = []
            for (height, claim) in s.unplaced where places(claim.header.header.proposerAddress, at: height) {
                s.unplaced.removeValue(forKey: height)
                let proof = Proof(height: height, hash: claim.header.header.hash, peer: claim.peer,
                                  proposer: claim.header.header.proposerAddress)
                if s.highest.map({ height > $0.height }) ?? true { s.highest = proof }
                if claim.configured { s.configuredPeerAnswered = true }
                placed.append(proof)
            }
            var best = s.highest
            for (run, peer) in s.runs {
                guard let top = provenTop(of: run), top > (best?.height ?? 0),
                      let header = run.first(where: { $0.height == top }) else { continue }
                best = Proof(height: top, hash: header.header.hash, peer: peer, proposer: header.header.proposerAddress)
            }
            return (best, placed)
        }
        if !placed.isEmpty, let notify = observer.withLock({ $0 }) {
            for proof in placed { notify(proof) }
        }
        return best
    }

    /// The highest height any peer proved; nil when none proved one (peers that answered only
    /// with empty chains prove nothing).
    package var highest: UInt64? {
        best()?.height
    }

    /// How far to fetch from peers: `highest`, or the highest height a validly self-signed header
    /// of a key the chain has not named yet claimed (the chain past a rotation this node has not
    /// applied). Only a fetch target: what is fetched is validated when applied, and it never
    /// counts for promotion.
    package var fetchTarget: UInt64? {
        let proven = best()?.height ?? 0
        return state.withLock { s in
            let target = max(proven, s.highestUnplaced)
            return target > 0 ? target : nil
        }
    }

    /// The header behind `highest`, and the peer that showed it.
    package var highestProof: Proof? {
        best()
    }

    /// A configured peer answered with a valid claim (a proven height, a hash-linked run, or an
    /// empty chain) over an identity this node proved by dialling it.
    package var configuredPeerAnswered: Bool {
        _ = best()
        return state.withLock { $0.configuredPeerAnswered }
    }

    /// Who is told of each proven claim, on the thread that recorded it; it must return at once.
    package func observeProofs(_ body: @escaping @Sendable (Proof) -> Void) {
        observer.withLock { $0 = body }
    }
}
