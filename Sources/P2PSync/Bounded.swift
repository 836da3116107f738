import DequeModule
import NIOCore

/// The header hashes of the most recent `capacity` blocks this node has accepted or sent, so a
/// block that comes back around a loop of peers is dropped instead of relayed again.
/// Memory is bounded: inserting beyond `capacity` forgets the oldest entry.
struct SeenSet: Sendable {
    let capacity: Int
    private var members: Set<HashKey> = []
    private var order: Deque<HashKey> = []

    init(capacity: Int) {
        precondition(capacity > 0, "seen-set capacity must be positive")
        self.capacity = capacity
        members.reserveCapacity(capacity)
    }

    var count: Int { members.count }

    func contains(_ key: HashKey) -> Bool { members.contains(key) }

    /// Returns false when `key` was already present.
    @discardableResult
    mutating func insert(_ key: HashKey) -> Bool {
        guard members.insert(key).inserted else { return false }
        order.append(key)
        if order.count > capacity, let oldest = order.popFirst() {
            members.remove(oldest)
        }
        return true
    }
}

/// A token bucket: `rate` tokens per second up to `capacity`. Taking more than is there drives the
/// balance negative; the debt says how long the peer must wait and how badly it overran.
struct TokenBucket: Sendable {
    let rate: Double
    let capacity: Double
    private(set) var tokens: Double
    private var last: NIODeadline

    init(rate: Double, capacity: Double, now: NIODeadline) {
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.last = now
    }

    /// Refills for the time since the last call, then takes `amount`; returns the new balance.
    mutating func take(_ amount: Double, now: NIODeadline) -> Double {
        refill(now: now)
        tokens -= amount
        return tokens
    }

    mutating func refill(now: NIODeadline) {
        let elapsed = Double((now - last).nanoseconds) / 1e9
        if elapsed > 0 {
            tokens = min(capacity, tokens + elapsed * rate)
            last = now
        }
    }

    /// How long until the balance is back to zero (zero if it is not negative).
    var timeUntilSolvent: TimeAmount {
        guard tokens < 0, rate > 0 else { return .zero }
        return .nanoseconds(Int64((-tokens / rate * 1e9).rounded(.up)))
    }
}

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
