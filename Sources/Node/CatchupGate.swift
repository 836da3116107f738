/// The promotion conditions of SPEC §6, evaluated over one snapshot of the node.
/// Pure: the failover state machine samples the syncer, the peers and the signer's mark into a
/// `CatchupSnapshot` and asks the gate; the gate never looks at anything else, so every rule can
/// be tested on its own.
package struct CatchupSnapshot: Sendable, Equatable {
    /// Condition 1, sticky: the DA follower processed every DA height up to a head observed
    /// after start.
    package var daHeadReached: Bool
    package var storeHeight: UInt64
    /// Highest height any peer *proved* during this catchup (with the genesis proposer's signed
    /// header at that height), whether or not that peer is still connected; nil when none did.
    package var p2pMaxHeight: UInt64?
    /// Peers are configured (if none are, condition 2 holds by definition).
    package var peersConfigured: Bool
    /// A configured peer gave a valid answer about its height (a proven height or an empty
    /// chain) over an identity this node proved by dialling it. Strangers' answers never count.
    package var peersAnswered: Bool
    /// The configured peers that have not answered so far (named when the gate fails closed).
    package var silentPeers: [String]
    /// Complete blocks fetched from DA or P2P and not yet applied (condition 3).
    package var waitingToApply: Int
    /// The lowest of those heights: above `storeHeight + 1` they wait for a gap to be filled.
    package var lowestWaiting: UInt64?
    /// A divergence was raised and its recovery (search, rollback, replay) has not finished
    /// (condition 5).
    package var recoveryPending: Bool
    /// Highest height of any header seen from DA or P2P, applied or not (condition 4).
    package var highestKnownHeader: UInt64
    /// The highest height this key signed whose block the node cannot supply itself (condition
    /// 4). Not the signer's high-water mark as stored: when the block signed at the mark is kept
    /// beside it the producer commits that very block, so this is the mark less one. Nil when
    /// the signer has no mark.
    package var lastUnrecoverableSigned: UInt64?
    /// Time since catchup started.
    package var elapsed: Duration
    /// Time since the last block was applied (or since start when none was).
    package var sinceLastProgress: Duration
    /// The DA follower's last error while DA is failing (said in the reason the node waits).
    package var daError: String?

    package init(daHeadReached: Bool, storeHeight: UInt64, p2pMaxHeight: UInt64?, peersConfigured: Bool,
                peersAnswered: Bool = false, silentPeers: [String] = [], waitingToApply: Int, lowestWaiting: UInt64? = nil,
                recoveryPending: Bool = false, highestKnownHeader: UInt64, lastUnrecoverableSigned: UInt64?,
                elapsed: Duration, sinceLastProgress: Duration, daError: String? = nil) {
        self.daHeadReached = daHeadReached
        self.storeHeight = storeHeight
        self.p2pMaxHeight = p2pMaxHeight
        self.peersConfigured = peersConfigured
        // Not inferred from `p2pMaxHeight`: anyone, a stranger too, may have proven that.
        self.peersAnswered = peersAnswered
        self.silentPeers = silentPeers
        self.waitingToApply = waitingToApply
        self.lowestWaiting = lowestWaiting
        self.recoveryPending = recoveryPending
        self.highestKnownHeader = highestKnownHeader
        self.lastUnrecoverableSigned = lastUnrecoverableSigned
        self.elapsed = elapsed
        self.sinceLastProgress = sinceLastProgress
        self.daError = daError
    }
}

package enum CatchupDecision: Sendable, Equatable, CustomStringConvertible {
    /// Not yet; the text names the condition that holds promotion back.
    case keepSyncing(String)
    /// All conditions hold: produce at store height + 1.
    case promote
    /// Producing would risk a fork or a double signature and waiting will not help.
    case failClosed(String)

    package var description: String {
        switch self {
        case .keepSyncing(let why): return why
        case .promote: return "every condition holds"
        case .failClosed(let why): return "failed closed: \(why)"
        }
    }
}

package struct CatchupGate: Sendable {
    package let timeout: Duration
    /// The mark is a remote signer's (`evnode signer serve`): the operator's way past a
    /// fail-closed decision is `signer reset` on the signer's home, not on the node's.
    package let remoteSigner: Bool

    package init(timeout: Duration, remoteSigner: Bool = false) {
        self.timeout = timeout
        self.remoteSigner = remoteSigner
    }

    /// The explicit, logged operator action that accepts the risk of lowering the mark to `height`.
    func reset(to height: some CustomStringConvertible) -> String {
        remoteSigner
            ? "`evnode signer reset --home <the signer's home> --height \(height)`, run where the remote signer runs, on its home, while `evnode signer serve` is stopped (not on this node's home)"
            : "`evnode signer reset --height \(height)`"
    }

    package func evaluate(_ s: CatchupSnapshot) -> CatchupDecision {
        let next = s.storeHeight + 1
        let timedOut = s.elapsed >= timeout
        // A stall longer than the timeout, after the timeout, means what is missing cannot be had.
        let stalled = timedOut && s.sinceLastProgress >= timeout

        // 1. DA head reached. DA is the authority: without it there is no promotion, however
        // long it takes (a DA outage keeps the node syncing, it does not let it produce).
        guard s.daHeadReached else {
            if let daError = s.daError {
                return .keepSyncing("DA head not reached yet: DA unavailable (\(daError))")
            }
            return .keepSyncing("DA head not reached yet")
        }

        // 5. No divergence recovery pending or running: it rewrites the store, from the moment
        // the conflict is raised until DA's chain is replayed.
        if s.recoveryPending {
            return .keepSyncing("a divergence from DA is being recovered (ancestor search, rollback, replay)")
        }

        // 2. P2P caught up, to the highest height a peer proved (still counted if that peer left).
        if let peerMax = s.p2pMaxHeight, peerMax > s.storeHeight {
            if stalled {
                return .failClosed("peers proved height \(peerMax) but the store is at \(s.storeHeight) and heights \(next)…\(peerMax) could not be fetched within \(timeoutText); refusing to produce")
            }
            return .keepSyncing("peers proved height \(peerMax), store at \(s.storeHeight)")
        }
        if s.peersConfigured && !s.peersAnswered {
            if !timedOut {
                let silent = s.silentPeers.isEmpty ? "" : " (not answered yet: \(s.silentPeers.joined(separator: ", ")))"
                return .keepSyncing("waiting up to \(timeoutText) for peers to prove their height\(silent)")
            }
            // Without a mark only the peers could say what this key signed beyond DA.
            if s.lastUnrecoverableSigned == nil {
                let silent = s.silentPeers.isEmpty ? "" : "; never answered: \(s.silentPeers.joined(separator: ", "))"
                return .failClosed("none of the configured peers answered within \(timeoutText) and the signer has no high-water mark (signer.state)\(silent); what this key signed beyond DA's height \(s.storeHeight) cannot be known; only configured peers answering on connections this node dialled count, never an inbound stranger; refusing to produce (bring a peer up, restore \(remoteSigner ? "the signer's data/signer.state" : "signer.state"), or accept the risk with \(reset(to: s.storeHeight)))")
            }
        }

        // 3. Nothing fetched is still waiting to be applied — with a deadline.
        if s.waitingToApply > 0 {
            // Held from `lowest` on: heights next ..< lowest are missing (none when lowest = next).
            let lowest = s.lowestWaiting ?? next
            let gap = lowest > next + 1 ? "heights \(next)…\(lowest - 1)" : "height \(next)"
            if stalled {
                let what = lowest > next ? "wait above a gap: \(gap) not supplied by DA or any peer" : "could not be applied"
                return .failClosed("\(s.waitingToApply) fetched blocks (from \(lowest)) \(what) within \(timeoutText); refusing to produce")
            }
            let missing = lowest > next ? " (missing \(gap))" : ""
            return .keepSyncing("\(s.waitingToApply) fetched blocks waiting to be applied\(missing)")
        }

        // 4. Equivocation fence.
        if s.highestKnownHeader >= next {
            if stalled {
                return .failClosed("a header for height \(next) is known (up to \(s.highestKnownHeader)) but its block could not be applied within \(timeoutText); refusing to produce")
            }
            return .keepSyncing("a header for height \(next) is known but not applied yet")
        }
        if let mark = s.lastUnrecoverableSigned, mark >= next {
            if timedOut {
                return .failClosed("the signer's high-water mark is \(mark) but DA and peers only supply blocks up to \(s.storeHeight): heights \(next)…\(mark) were signed and cannot be recovered; producing could sign a second block at those heights (accept the risk explicitly with \(reset(to: s.storeHeight)))")
            }
            return .keepSyncing("signer high-water mark \(mark) is above the store (\(s.storeHeight)); waiting for DA or peers to supply those blocks")
        }
        return .promote
    }

    private var timeoutText: String {
        let (secs, atto) = timeout.components
        let ms = secs * 1000 + atto / 1_000_000_000_000_000
        return ms % 1000 == 0 ? "\(ms / 1000)s" : "\(ms)ms"
    }
}
