import NIOCore

/// The multiaddrs this node dials, listens on and advertises: `/ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>`,
/// optionally ending in `/p2p/<peer id>`. Other transports (QUIC, WebSocket, …) are not spoken.
package struct Multiaddr: Hashable, Sendable, CustomStringConvertible {
    package enum Host: Hashable, Sendable {
        case ip4(String)
        case ip6(String)
        case dns(String, code: UInt64)
    }

    package var host: Host
    package var port: UInt16
    package var peerID: PeerID?

    package init(host: Host, port: UInt16, peerID: PeerID? = nil) {
        self.host = host
        self.port = port
        self.peerID = peerID
    }

    /// From `host:port` (an IP literal or a name) — how the node's listen address is configured.
    package init(hostPort host: String, port: UInt16, peerID: PeerID? = nil) {
        if (try? SocketAddress(ipAddress: host, port: 0))?.protocol == .inet {
            self.host = .ip4(host)
        } else if host.contains(":") {
            self.host = .ip6(host)
        } else {
            self.host = .dns(host, code: Code.dns)
        }
        self.port = port
        self.peerID = peerID
    }

    enum Code {
        static let ip4: UInt64 = 4, tcp: UInt64 = 6, ip6: UInt64 = 41
        static let dns: UInt64 = 53, dns4: UInt64 = 54, dns6: UInt64 = 55
        package static let p2p: UInt64 = 421
    }

    package var hostString: String {
        switch host {
        case .ip4(let a), .ip6(let a), .dns(let a, _): return a
        }
    }

    package var description: String {
        let h: String
        switch host {
        case .ip4(let a): h = "/ip4/\(a)"
        case .ip6(let a): h = "/ip6/\(a)"
        case .dns(let name, let code): h = "/\(code == Code.dns4 ? "dns4" : code == Code.dns6 ? "dns6" : "dns")/\(name)"
        }
        return h + "/tcp/\(port)" + (peerID.map { "/p2p/\($0)" } ?? "")
    }

    /// Parses the text form; the error says which part is wrong.
    package init(parsing text: String) throws(MultiaddrError) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.first == "", parts.count >= 5 else {
            throw .invalid(text, "expected /ip4|ip6|dns|dns4|dns6/<host>/tcp/<port>[/p2p/<peer id>]")
        }
        switch parts[1] {
        case "ip4":
            guard (try? SocketAddress(ipAddress: parts[2], port: 0))?.protocol == .inet else {
                throw .invalid(text, "\"\(parts[2])\" is not an IPv4 address")
            }
            host = .ip4(parts[2])
        case "ip6":
            guard (try? SocketAddress(ipAddress: parts[2], port: 0))?.protocol == .inet6 else {
                throw .invalid(text, "\"\(parts[2])\" is not an IPv6 address")
            }
            host = .ip6(parts[2])
        case "dns", "dns4", "dns6":
            guard !parts[2].isEmpty else { throw .invalid(text, "empty host name") }
            host = .dns(parts[2], code: parts[1] == "dns4" ? Code.dns4 : parts[1] == "dns6" ? Code.dns6 : Code.dns)
        default:
            throw .invalid(text, "unsupported protocol /\(parts[1]) (only ip4, ip6, dns, dns4, dns6 over tcp)")
        }
        guard parts[3] == "tcp" else { throw .invalid(text, "only /tcp is supported, not /\(parts[3])") }
        guard let p = UInt16(parts[4]) else { throw .invalid(text, "\"\(parts[4])\" is not a TCP port") }
        port = p
        switch parts.count {
        case 5:
            peerID = nil
        case 7 where parts[5] == "p2p" || parts[5] == "ipfs":
            guard let id = PeerID(string: parts[6]) else {
                throw .invalid(text, "\"\(parts[6])\" is not an Ed25519 peer id (12D3KooW…)")
            }
            peerID = id
        default:
            throw .invalid(text, "unexpected components after the port (only /p2p/<peer id> may follow)")
        }
    }

    /// The binary form (identify's `listenAddrs`, `observedAddr`).
    package var bytes: [UInt8] {
        var out: [UInt8] = []
        switch host {
        case .ip4(let a):
            Varint.append(Code.ip4, to: &out)
            out += a.split(separator: ".").map { UInt8($0) ?? 0 }
        case .ip6(let a):
            Varint.append(Code.ip6, to: &out)
            out += Self.ip6Bytes(a)
        case .dns(let name, let code):
            Varint.append(code, to: &out)
            Varint.append(UInt64(name.utf8.count), to: &out)
            out += Array(name.utf8)
        }
        Varint.append(Code.tcp, to: &out)
        out += [UInt8(port >> 8), UInt8(port & 0xff)]
        if let peerID {
            Varint.append(Code.p2p, to: &out)
            Varint.append(UInt64(peerID.bytes.count), to: &out)
            out += peerID.bytes
        }
        return out
    }

    /// Decodes the binary form; nil for anything but the shapes this node speaks.
    package init?(bytes: [UInt8]) {
        var i = 0
        guard let code = Varint.read(bytes, at: &i) else { return nil }
        switch code {
        case Code.ip4:
            guard i + 4 <= bytes.count else { return nil }
            host = .ip4(bytes[i..<i + 4].map(String.init).joined(separator: "."))
            i += 4
        case Code.ip6:
            guard i + 16 <= bytes.count else { return nil }
            var groups: [String] = []
            for g in 0..<8 { groups.append(String(UInt16(bytes[i + 2 * g]) << 8 | UInt16(bytes[i + 2 * g + 1]), radix: 16)) }
            host = .ip6(groups.joined(separator: ":"))
            i += 16
        case Code.dns, Code.dns4, Code.dns6:
            // Compared as UInt64: a length near 2^63 must not trap in `i + Int(n)`.
            guard let n = Varint.read(bytes, at: &i), n <= UInt64(bytes.count - i) else { return nil }
            host = .dns(String(decoding: bytes[i..<i + Int(n)], as: UTF8.self), code: code)
            i += Int(n)
        default:
            return nil
        }
        guard Varint.read(bytes, at: &i) == Code.tcp, i + 2 <= bytes.count else { return nil }
        port = UInt16(bytes[i]) << 8 | UInt16(bytes[i + 1])
        i += 2
        peerID = nil
        if i < bytes.count {
            guard Varint.read(bytes, at: &i) == Code.p2p, let n = Varint.read(bytes, at: &i),
                  n == UInt64(bytes.count - i), let id = PeerID(bytes: Array(bytes[i...])) else { return nil }
            peerID = id
        }
    }

    private static func ip6Bytes(_ text: String) -> [UInt8] {
        guard let address = try? SocketAddress(ipAddress: text, port: 0), case .v6(let v6) = address else {
            return [UInt8](repeating: 0, count: 16)
        }
        var a = v6.address.sin6_addr
        return withUnsafeBytes(of: &a) { Array($0) }
    }
}

package enum MultiaddrError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalid(String, String)

    package var description: String {
        switch self {
        case .invalid(let text, let reason): return "multiaddr \"\(text)\": \(reason)"
        }
    }
}
