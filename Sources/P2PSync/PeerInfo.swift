import Config
import Libp2p

/// A snapshot of one connected (authenticated) peer.
package struct PeerInfo: Sendable, Equatable {
    package var id: PeerID
    /// `ip:port` of the remote end of the TCP connection.
    package var remoteAddress: String
    package var direction: PeerDirection
    /// The configured address this connection was dialled to, for outbound connections.
    package var dialTarget: P2PPeerAddress?
    package var connectedAt: ContinuousClock.Instant
    /// The peer's proven head height (its last head answer, verified); nil until it answered.
    package var announcedHeight: UInt64?
    package var lastAnnouncedAt: ContinuousClock.Instant?
    /// Last time the peer answered one of our range requests with blocks.
    package var lastResponseAt: ContinuousClock.Instant?
    package var requestsAnswered: Int
    /// Our requests to it that timed out, were refused or came back unusable.
    package var requestsFailed: Int
    /// Penalty points (e.g. duplicate messages); a peer is banned at the threshold.
    package var penalty: Int
    /// What identify said it speaks, and its agent.
    package var protocols: [String]
    package var agentVersion: String
}

/// The state of one configured peer address (`--p2p.peers`).
package struct DialTargetInfo: Sendable, Equatable {
    package enum State: Sendable, Equatable {
        case connecting
        case connected(PeerID)
        /// Waiting before the next attempt.
        case backingOff
        /// The address turned out to be this node itself; it is not dialled again.
        case isSelf
        /// Its peer id is refused by `p2p.blocked_peers` / `p2p.allowed_peers`: not dialled.
        case gated(reason: String)
    }

    package var target: P2PPeerAddress
    package var state: State
    /// Attempts that failed since the last successful connection.
    package var consecutiveFailures: Int
    package var lastError: String?
}

/// An active ban.
package struct BanInfo: Sendable, Equatable {
    package enum Subject: Sendable, Equatable, CustomStringConvertible {
        case peer(PeerID)
        case address(String)

        package var description: String {
            switch self {
            case .peer(let id): return "peer \(id)"
            case .address(let ip): return "address \(ip)"
            }
        }
    }

    package var subject: Subject
    package var remaining: Duration
}

/// Errors of the public P2P API.
package enum P2PError: Error, Equatable, Sendable, CustomStringConvertible {
    /// `requestRange` could not get heights `from...to` from any connected peer.
    case rangeUnavailable(from: UInt64, to: UInt64, reason: String)
    case invalidRange(from: UInt64, to: UInt64)
    case notRunning
    case alreadyStarted
    /// The calling task was cancelled.
    case cancelled
    /// The listener could not be bound.
    case bindFailed(address: String, reason: String)
    /// A peer id in a peer list setting (`p2p.blocked_peers`, `p2p.allowed_peers`) is not a
    /// base58 libp2p peer id.
    case invalidPeerID(setting: String, value: String)

    package var description: String {
        switch self {
        case .rangeUnavailable(let from, let to, let reason):
            return "blocks \(from)...\(to) unavailable from peers: \(reason)"
        case .invalidRange(let from, let to):
            return "invalid range \(from)...\(to) (heights start at 1 and from must not exceed to)"
        case .notRunning:
            return "P2P service is not running"
        case .alreadyStarted:
            return "P2P service was already started (a service runs once)"
        case .cancelled:
            return "range request cancelled"
        case .bindFailed(let address, let reason):
            return "cannot listen on \(address): \(reason)"
        case let .invalidPeerID(setting, value):
            return "\(setting): '\(value)' is not a libp2p peer id (base58, e.g. 12D3KooW…)"
        }
    }
}
