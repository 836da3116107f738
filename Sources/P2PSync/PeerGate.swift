import Config
import Foundation
import Libp2p

/// ev-node's connection gater over `p2p.blocked_peers` and `p2p.allowed_peers`: which peer ids
/// this node keeps connections with. Asked once the Noise handshake has proven the remote's id,
/// before any stream is accepted, and before a configured peer whose id is known is dialled.
///
/// - A peer on `allowed_peers` is always admitted, also when it is on `blocked_peers` too
///   (ev-node unblocks the allowed peers after blocking the blocked ones).
/// - A peer on `blocked_peers` is refused, inbound and outbound, configured or not.
/// - When `allowed_peers` is not empty, any other peer is refused too — except the configured
///   peers (`p2p.peers`): the ones named by id, and whoever answers at a configured address
///   this node dialled itself. Naming a peer to dial is already allowing it.
///
/// ev-node documents `allowed_peers` as a whitelist but its code only unblocks them (go-libp2p's
/// `UnblockPeer`): there a non-empty list restricts nothing. evnode does what the setting says.
package struct PeerGate: Sendable, Equatable {
    package let blocked: Set<PeerID>
    package let allowed: Set<PeerID>
    /// Configured peers named by id.
    package let configured: Set<PeerID>

    package init(blocked: Set<PeerID> = [], allowed: Set<PeerID> = [], configured: Set<PeerID> = []) {
        self.blocked = blocked
        self.allowed = allowed
        self.configured = configured
    }

    /// From the node configuration; a peer id that does not parse is an error naming the setting.
    package init(config: P2PConfig) throws(P2PError) {
        func parse(_ ids: [String], _ setting: String) throws(P2PError) -> Set<PeerID> {
            var out: Set<PeerID> = []
            for text in ids {
                let trimmed = text.trimmingCharacters(in: .whitespaces)
                if trimmed.isEmpty { continue }
                guard let id = PeerID(string: trimmed) else { throw .invalidPeerID(setting: setting, value: text) }
                out.insert(id)
            }
            return out
        }
        blocked = try parse(config.blockedPeers, "p2p.blocked_peers")
        allowed = try parse(config.allowedPeers, "p2p.allowed_peers")
        configured = Set(config.peers.compactMap { $0.peerID.flatMap(PeerID.init(string:)) })
    }

    package var isOpen: Bool { blocked.isEmpty && allowed.isEmpty }

    /// Why a connection with `peer` is refused, or nil. `dialledConfiguredAddress`: this node
    /// dialled it at a configured address (only configured peers are ever dialled).
    package func refusal(_ peer: PeerID, dialledConfiguredAddress: Bool) -> String? {
        if allowed.contains(peer) { return nil }
        if blocked.contains(peer) { return "peer \(peer) is in p2p.blocked_peers" }
        if !allowed.isEmpty, !configured.contains(peer), !dialledConfiguredAddress {
            return "peer \(peer) is not in p2p.allowed_peers"
        }
        return nil
    }
}
