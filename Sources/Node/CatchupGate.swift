/// The four promotion conditions of SPEC §6, evaluated over one snapshot of the node.
/// Pure: the failover state machine samples the syncer, the peers and the signer's mark into a
/// `CatchupSnapshot` and asks the gate; the gate never looks at anything else, so every rule can
/// be tested on its own.
public struct CatchupSnapshot: Sendable, Equatable {
    /// Condition 1, sticky: the DA follower processed every DA height up to a head observed
    /// after start.
    public var daHeadReached: Bool
    public var storeHeight: UInt64
    /// Highest height announced by any connected peer, nil when no peer announced anything.
    public var p2pMaxHeight: UInt64?
    /// Peers are configured (if none are, condition 2 holds by definition).
    public var peersConfigured: Bool
    /// Complete blocks fetched from DA or P2P and not yet applied (condition 3).
    public var waitingToApply: Int
    /// Highest height of any header seen from DA or P2P, applied or not (condition 4).
    public var highestKnownHeader: UInt64
    /// The signer's persisted high-water mark: last height it signed, nil when there is none.
    public var signerHighWaterMark: UInt64?
    /// Time since catchup started.
    public var elapsed: Duration
    /// Time since the last block was applied (or since start when none was).
    public var sinceLastProgress: Duration
    /// The DA follower's last error while DA is failing (said in the reason the node waits).
    public var daError: String?

    public init(daHeadReached: Bool, storeHeight: UInt64, p2pMaxHeight: UInt64?, peersConfigured: Bool,
                waitingToApply: Int, highestKnownHeader: UInt64, signerHighWaterMark: UInt64?,
                elapsed: Duration, sinceLastProgress: Duration, daError: String? = nil) {
        self.daHeadReached = daHeadReached
        self.storeHeight = storeHeight
        self.p2pMaxHeight = p2pMaxHeight
        self.peersConfigured = peersConfigured
        self.waitingToApply = waitingToApply
        self.highestKnownHeader = highestKnownHeader
        self.signerHighWaterMark = signerHighWaterMark
        self.elapsed = elapsed
        self.sinceLastProgress = sinceLastProgress
        self.daError = daError
    }
}

public enum CatchupDecision: Sendable, Equatable {
    /// Not yet; the text names the condition that holds promotion back.
    case keepSyncing(String)
    /// All four conditions hold: produce at store height + 1.
    case promote
    /// Producing would risk a fork or a double signature and waiting will not help.
    case failClosed(String)
}

public struct CatchupGate: Sendable {
    public let timeout: Duration

    public init(timeout: Duration) {
        self.timeout = timeout
    }

    public func evaluate(_ s: CatchupSnapshot) -> CatchupDecision {
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

        // 2. P2P caught up.
        if let peerMax = s.p2pMaxHeight, peerMax > s.storeHeight {
            if stalled {
                return .failClosed("peers announce height \(peerMax) but the store is at \(s.storeHeight) and heights \(next)…\(peerMax) could not be fetched within \(timeoutText); refusing to produce")
            }
            return .keepSyncing("peers are at \(peerMax), store at \(s.storeHeight)")
        }
        if s.peersConfigured && s.p2pMaxHeight == nil && !timedOut {
            return .keepSyncing("waiting up to \(timeoutText) for peers to announce their height")
        }

        // 3. Nothing fetched is still waiting to be applied.
        if s.waitingToApply > 0 {
            return .keepSyncing("\(s.waitingToApply) fetched blocks waiting to be applied")
        }

        // 4. Equivocation fence.
        if s.highestKnownHeader >= next {
            if stalled {
                return .failClosed("a header for height \(next) is known (up to \(s.highestKnownHeader)) but its block could not be applied within \(timeoutText); refusing to produce")
            }
            return .keepSyncing("a header for height \(next) is known but not applied yet")
        }
        if let mark = s.signerHighWaterMark, mark >= next {
            if timedOut {
                return .failClosed("the signer's high-water mark is \(mark) but DA and peers only supply blocks up to \(s.storeHeight): heights \(next)…\(mark) were signed and cannot be recovered; producing could sign a second block at those heights (accept the risk explicitly with `evnode signer reset --height \(s.storeHeight)`)")
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
