import Primitives
/// A P2P peer to dial (`--p2p.peers`): a multiaddr as ev-node's `p2p.peers` takes it,
/// `/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>/p2p/<peer id>`, or a plain `host:port`.
///
/// With a peer id the Noise handshake must prove that identity. Without one (a `host:port` or a
/// multiaddr without `/p2p/`) the node accepts whichever Ed25519 identity answers there and
/// logs it: safe for what this node takes from peers — every block and every height claim is
/// checked against the genesis proposer's signature, the peer id only names whom to penalise —
/// but an operator who wants that peer and no other should give its id.
package struct P2PPeerAddress: Hashable, Sendable, CustomStringConvertible {
    package var host: String
    package var port: Int
    /// Base58btc Ed25519 peer id (`12D3KooW…`), nil when the address did not name one.
    package var peerID: String?
    /// The text was a multiaddr (kept for messages).
    package var isMultiaddr: Bool

    package init(host: String, port: Int, peerID: String? = nil, isMultiaddr: Bool = false) {
        self.host = host
        self.port = port
        self.peerID = peerID
        self.isMultiaddr = isMultiaddr
    }

    package var hostPort: HostPort { HostPort(host: host, port: port) }

    package var description: String {
        guard isMultiaddr || peerID != nil else { return hostPort.description }
        let proto: String
        if host.contains(":") { proto = "ip6" } else if host.allSatisfy({ $0.isNumber || $0 == "." }) { proto = "ip4" } else { proto = "dns" }
        return "/\(proto)/\(host)/tcp/\(port)" + (peerID.map { "/p2p/\($0)" } ?? "")
    }

    package enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case invalid(String)

        package var description: String {
            switch self {
            case .invalid(let why): return why
            }
        }
    }

    /// True when `text` is the base58 form of an Ed25519 libp2p peer id.
    package static func isEd25519PeerID(_ text: String) -> Bool {
        guard let raw = Base58.decode(text), raw.count == 38 else { return false }
        return Array(raw.prefix(6)) == [0x00, 0x24, 0x08, 0x01, 0x12, 0x20]
    }

    package init(parsing raw: String, allowPortZero: Bool = false) throws(Failure) {
        let text = raw.trimmingWhitespace()
        guard text.hasPrefix("/") else {
            do {
                let hp = try HostPort(parsing: text, allowPortZero: allowPortZero)
                self.init(host: hp.host, port: hp.port)
            } catch {
                throw .invalid("\(error.description) (or a multiaddr /ip4/<ip>/tcp/<port>/p2p/<peer id>)")
            }
            return
        }
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 5 || parts.count == 7 else {
            throw .invalid("expected /ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>[/p2p/<peer id>]")
        }
        guard ["ip4", "ip6", "dns", "dns4", "dns6"].contains(parts[1]) else {
            throw .invalid("unsupported protocol /\(parts[1]) (only ip4, ip6, dns, dns4, dns6 over tcp)")
        }
        guard !parts[2].isEmpty else { throw .invalid("empty host") }
        if parts[1] == "ip4", parts[2].split(separator: ".").count != 4 || parts[2].split(separator: ".").contains(where: { UInt8($0) == nil }) {
            throw .invalid("\"\(parts[2])\" is not an IPv4 address")
        }
        guard parts[3] == "tcp" else { throw .invalid("only /tcp is supported, not /\(parts[3])") }
        guard let port = Int(parts[4]), port >= (allowPortZero ? 0 : 1), port <= 65535 else {
            throw .invalid("port \"\(parts[4])\" is not a number in \(allowPortZero ? 0 : 1)...65535")
        }
        var id: String?
        if parts.count == 7 {
            guard parts[5] == "p2p" || parts[5] == "ipfs" else {
                throw .invalid("only /p2p/<peer id> may follow the port, not /\(parts[5])")
            }
            guard Self.isEd25519PeerID(parts[6]) else {
                throw .invalid("\"\(parts[6])\" is not an Ed25519 peer id (12D3KooW…)")
            }
            id = parts[6]
        }
        self.init(host: parts[2], port: port, peerID: id, isMultiaddr: true)
    }
}

extension ValueReader {
    /// `p2p.listen`: `host:port` or `/ip4|ip6/<ip>/tcp/<port>` (no peer id: it is the node key's).
    func p2pListen(_ key: SettingKey) throws(ConfigError) -> HostPort {
        let text = raw(key).value
        let a: P2PPeerAddress
        do throws(P2PPeerAddress.Failure) {
            a = try P2PPeerAddress(parsing: text, allowPortZero: true)
        } catch {
            throw fail(key, error.description)
        }
        guard a.peerID == nil else {
            throw fail(key, "a listen address takes no /p2p/ part (the node key is the id)")
        }
        return a.hostPort
    }

    func p2pPeerList(_ key: SettingKey) throws(ConfigError) -> [P2PPeerAddress] {
        var out: [P2PPeerAddress] = []
        for part in splitList(raw(key).value) {
            do {
                out.append(try P2PPeerAddress(parsing: part))
            } catch {
                throw fail(key, "\"\(part)\": \(error.description)")
            }
        }
        return out
    }
}
