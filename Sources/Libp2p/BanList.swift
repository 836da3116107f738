import NIOCore

/// Banned peer ids and banned remote addresses with their expiry, each kind bounded on its own:
/// a stranger who makes up new identities fills only the id list and can never push an address
/// ban out (nor the other way round). When a kind is full, its entry that expires soonest makes
/// room.
package struct BanList: Sendable {
    package enum Key: Hashable, Sendable, CustomStringConvertible {
        case peer(PeerID)
        /// An `AddressKey`: an IPv4 address or an IPv6 /64.
        case address(String)

        package var description: String {
            switch self {
            case .peer(let id): return "peer \(id.short)"
            case .address(let ip): return "address \(ip)"
            }
        }
    }

    package let peerCapacity: Int
    package let addressCapacity: Int
    private(set) var peers: [Key: NIODeadline] = [:]
    private(set) var addresses: [Key: NIODeadline] = [:]

    package init(peerCapacity: Int, addressCapacity: Int) {
        self.peerCapacity = max(1, peerCapacity)
        self.addressCapacity = max(1, addressCapacity)
    }

    package init(capacity: Int) {
        self.init(peerCapacity: capacity, addressCapacity: capacity)
    }

    var entries: [Key: NIODeadline] { peers.merging(addresses) { a, _ in a } }

    package mutating func ban(_ key: Key, until: NIODeadline, now: NIODeadline) {
        switch key {
        case .peer: Self.insert(key, until: until, now: now, into: &peers, capacity: peerCapacity)
        case .address: Self.insert(key, until: until, now: now, into: &addresses, capacity: addressCapacity)
        }
    }

    private static func insert(_ key: Key, until: NIODeadline, now: NIODeadline, into entries: inout [Key: NIODeadline],
                               capacity: Int) {
        if entries[key] == nil, entries.count >= capacity {
            entries = entries.filter { $0.value > now }
            if entries.count >= capacity, let soonest = entries.min(by: { $0.value < $1.value }) {
                entries.removeValue(forKey: soonest.key)
            }
        }
        entries[key] = max(until, entries[key] ?? until)
    }

    package func isBanned(_ key: Key, now: NIODeadline) -> Bool {
        let until: NIODeadline?
        switch key {
        case .peer: until = peers[key]
        case .address: until = addresses[key]
        }
        guard let until else { return false }
        return until > now
    }

    package mutating func active(now: NIODeadline) -> [(Key, NIODeadline)] {
        peers = peers.filter { $0.value > now }
        addresses = addresses.filter { $0.value > now }
        return peers.map { ($0.key, $0.value) } + addresses.map { ($0.key, $0.value) }
    }
}
