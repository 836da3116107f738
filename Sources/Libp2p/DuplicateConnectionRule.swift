
/// Which of two authenticated connections between the same two nodes both nodes keep.
///
/// Each node decides on its own, when a handshake completes, without a message about it. The
/// decision must therefore depend only on facts both ends agree on — never on the order in
/// which a node happened to finish its handshakes, which differs between the two ends when they
/// dial each other at the same moment. The rule is a strict total order on `ConnectionOrigin`:
/// the connection dialled by the smaller node id wins; between two dialled by the same node,
/// the one with the smaller dialler nonce wins. Both ends keep the same connection, whatever
/// order their handshakes complete in.
enum DuplicateConnectionRule {
    /// True when `candidate` must be kept instead of `existing`. False for the same connection.
    package static func keeps(_ candidate: ConnectionOrigin, over existing: ConnectionOrigin) -> Bool {
        if candidate.dialer != existing.dialer {
            return candidate.dialer < existing.dialer
        }
        return candidate.dialerNonce.lexicographicallyPrecedes(existing.dialerNonce)
    }
}

/// Which node dialled a connection, and a value unique to it that both ends know (the Noise
/// handshake hash), so both ends order duplicate connections the same way.
package struct ConnectionOrigin: Sendable, Equatable {
    package let dialer: PeerID
    let dialerNonce: [UInt8]
}
