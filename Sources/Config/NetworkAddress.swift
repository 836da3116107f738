import Primitives
/// A `host:port` pair as used for listen and peer addresses. IPv6 hosts are written in brackets
/// (`[::1]:7676`).
package struct HostPort: Hashable, Sendable, CustomStringConvertible {
    package var host: String
    package var port: Int

    package init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    package enum Failure: Error, CustomStringConvertible, Equatable, Sendable {
        case missingPort
        case badPort(String)
        case emptyHost
        case badHost(String)

        package var description: String {
            switch self {
            case .missingPort: return "expected host:port"
            case .badPort(let p): return "port \"\(p)\" is not a number in 1...65535"
            case .emptyHost: return "empty host"
            case .badHost(let h): return "host \"\(h)\" has characters a host name cannot have"
            }
        }
    }

    /// Parses `host:port`; `allowPortZero` is for listeners that take an ephemeral port.
    package init(parsing text: String, allowPortZero: Bool = false) throws(Failure) {
        let s = text.trimmingWhitespace()
        let hostPart: Substring
        let portPart: Substring
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { throw .badHost(s) }
            hostPart = s[s.index(after: s.startIndex)..<close]
            let after = s[s.index(after: close)...]
            guard after.hasPrefix(":") else { throw .missingPort }
            portPart = after.dropFirst()
        } else {
            guard let colon = s.lastIndex(of: ":") else { throw .missingPort }
            hostPart = s[..<colon]
            portPart = s[s.index(after: colon)...]
            if hostPart.contains(":") { throw .badHost(String(hostPart)) }
        }
        if hostPart.isEmpty { throw .emptyHost }
        let allowed = hostPart.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-._:".contains($0)) }
        if !allowed { throw .badHost(String(hostPart)) }
        guard let port = Int(portPart), port >= (allowPortZero ? 0 : 1), port <= 65535 else {
            throw .badPort(String(portPart))
        }
        self.host = String(hostPart)
        self.port = port
    }

    package var description: String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// 127.0.0.0/8, ::1 or localhost: what never leaves the machine.
    package static func isLoopbackHost(_ host: String) -> Bool {
        let h = host.lowercased()
        if h == "localhost" || h == "::1" { return true }
        let octets = h.split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets.allSatisfy { UInt8($0) != nil } && octets[0] == "127"
    }
}

/// An `http://` or `https://` endpoint such as a DA node or an etcd member.
package struct HTTPEndpoint: Hashable, Sendable, CustomStringConvertible {
    package var scheme: String
    package var hostPort: HostPort
    package var path: String

    package enum Failure: Error, CustomStringConvertible, Equatable, Sendable {
        case badScheme(String)
        case badAuthority(HostPort.Failure)

        package var description: String {
            switch self {
            case .badScheme(let s): return "URL must start with http:// or https:// (got \"\(s)\")"
            case .badAuthority(let f): return f.description
            }
        }
    }

    package init(parsing text: String) throws(Failure) {
        let s = text.trimmingWhitespace()
        let scheme: String
        if s.hasPrefix("http://") { scheme = "http" } else if s.hasPrefix("https://") { scheme = "https" } else {
            throw .badScheme(s)
        }
        let rest = s.dropFirst(scheme.count + 3)
        let slash = rest.firstIndex(of: "/") ?? rest.endIndex
        var authority = String(rest[..<slash])
        // Default ports keep `http://host` usable.
        if !authority.contains(":") || (authority.hasPrefix("[") && authority.hasSuffix("]")) {
            authority += scheme == "http" ? ":80" : ":443"
        }
        do {
            self.hostPort = try HostPort(parsing: authority)
        } catch {
            throw .badAuthority(error)
        }
        self.scheme = scheme
        self.path = slash == rest.endIndex ? "/" : String(rest[slash...])
    }

    package var description: String { "\(scheme)://\(hostPort)\(path == "/" ? "" : path)" }

    /// The URL string handed to the HTTP client.
    package var url: String { "\(scheme)://\(hostPort)\(path)" }
}
