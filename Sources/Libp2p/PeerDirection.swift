/// Who opened a connection.
package enum PeerDirection: String, Sendable, Equatable {
    /// The peer connected to us.
    case inbound
    /// We dialled the peer.
    case outbound
}
