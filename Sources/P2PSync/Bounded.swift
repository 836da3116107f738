import NIOCore

/// Banned peer ids and remote addresses with their expiry. Bounded: when full, the entry that
/// expires soonest makes room.
struct BanList: Sendable {
    enum Key: Hashable, Sendable, CustomStringConvertible {
        case peer(PeerID)
        case address(String)

        var description: String {
            switch self {
            case .peer(let id): return "peer \(id.short)"
            case .address(let ip): return "address \(ip)"
            }
        }
    }

    let capacity: Int
    private(set) var entries: [Key: NIODeadline] = [:]

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    mutating func ban(_ key: Key, until: NIODeadline, now: NIODeadline) {
        if entries[key] == nil, entries.count >= capacity {
            entries = entries.filter { $0.value > now }
            if entries.count >= capacity, let soonest = entries.min(by: { $0.value < $1.value }) {
                entries.removeValue(forKey: soonest.key)
            }
        }
        entries[key] = max(until, entries[key] ?? until)
    }

    func isBanned(_ key: Key, now: NIODeadline) -> Bool {
        guard let until = entries[key] else { return false }
        return until > now
    }

    mutating func active(now: NIODeadline) -> [(Key, NIODeadline)] {
        entries = entries.filter { $0.value > now }
        return entries.map { ($0.key, $0.value) }
    }
}

/// Exponential backoff for redialling: initial, 2×, 4×, … capped, with ±20 % jitter so that
/// peers that dropped together do not redial in lockstep.
struct Backoff: Sendable {
    let initial: Duration
    let maximum: Duration
    private(set) var current: Duration

    init(initial: Duration, maximum: Duration) {
        self.initial = initial
        self.maximum = max(initial, maximum)
        self.current = initial
    }

    mutating func next() -> Duration {
        let base = current
        current = min(maximum, current * 2)
        return base * Double.random(in: 0.8...1.2)
    }

    mutating func reset() { current = initial }
}

extension Duration {
    var timeAmount: TimeAmount {
        let (seconds, attoseconds) = components
        return .nanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
