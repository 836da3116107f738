/// Why the host did not keep a connection whose handshake completed. The one case a dialler
/// acts on (its configured address is this node itself) is a case of its own, so that nobody
/// has to recognise it by the words of a message.
package enum ConnectionRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    /// The handshake proved the remote is this node (a configured address that points back here).
    case connectionToSelf
    /// Refused by the peer lists, a ban, a limit, a duplicate or shutdown; the reason says which.
    case refused(String)

    package var description: String {
        switch self {
        case .connectionToSelf: return "connection to self"
        case .refused(let reason): return reason
        }
    }
}
