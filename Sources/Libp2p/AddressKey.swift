import NIOCore

/// What per-address limits and address bans apply to: an IPv4 address as is; an IPv6 address by
/// its /64 (one host is commonly given a whole /64, so banning or counting single IPv6 addresses
/// is evaded by rotating within it); an IPv4-mapped IPv6 address as the IPv4 address it maps.
package enum AddressKey {
    package static func of(_ address: SocketAddress?) -> String? {
        switch address {
        case .v4?:
            return address?.ipAddress
        case .v6(let a)?:
            var raw = a.address.sin6_addr
            let bytes = withUnsafeBytes(of: &raw) { Array($0) }
            return of(ipv6: bytes)
        default:
            return nil
        }
    }

    /// From an IP literal (`1.2.3.4`, `2001:db8::1`); nil when it is neither.
    package static func of(ip: String) -> String? {
        guard let address = try? SocketAddress(ipAddress: ip, port: 0) else { return nil }
        return of(address)
    }

    package static func of(ipv6 bytes: [UInt8]) -> String? {
        guard bytes.count == 16 else { return nil }
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
            return bytes[12..<16].map(String.init).joined(separator: ".")
        }
        var groups: [String] = []
        for g in 0..<4 { groups.append(String(UInt16(bytes[2 * g]) << 8 | UInt16(bytes[2 * g + 1]), radix: 16)) }
        return groups.joined(separator: ":") + "::/64"
    }
}
