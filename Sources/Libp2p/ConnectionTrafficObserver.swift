/// Where the host counts what each connection carries. Libp2p knows no metrics system: its owner
/// implements this (the node's `p2p_peer_{receive,send}_bytes_total` and
/// `p2p_peer_pending_send_bytes` series), and tests run the host without one.
package protocol ConnectionTrafficObserver: Sendable {
    /// The counters of a connection that became `peer`'s connection; asked once, when it is
    /// established, so that counting a frame is no look-up.
    func traffic(of peer: PeerID) -> any ConnectionTraffic
}

/// One established connection's counters.
package protocol ConnectionTraffic: Sendable {
    /// `bytes` arrived from the socket (ciphertext, as written on the wire).
    func received(bytes: Int)
    /// `bytes` were written to the socket; `pending` bytes are still queued for sending.
    func sent(bytes: Int, pending: Int)
    /// The connection is closed: nothing is pending for it any more.
    func closed()
}
