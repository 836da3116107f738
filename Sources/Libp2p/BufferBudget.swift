import Primitives
import DequeModule
import NIOCore
import Synchronization

/// Banned peer ids and banned remote addresses with their expiry, each kind bounded on its own:
/// a stranger who makes up new identities fills only the id list and can never push an address
/// ban out (nor the other way round). When a kind is full, its entry that expires soonest makes
/// room.
struct BanList: Sendable {
    enum Key: Hashable, Sendable, CustomStringConvertible {
        case peer(PeerID)
        /// An `AddressKey`: an IPv4 address or an IPv6 /64.
        case address(String)

        var description: String {
            switch self {
            case .peer(let id): return "peer \(id.short)"
            case .address(let ip): return "address \(ip)"
            }
        }
    }

    let peerCapacity: Int
    let addressCapacity: Int
    private(set) var peers: [Key: NIODeadline] = [:]
    private(set) var addresses: [Key: NIODeadline] = [:]

    init(peerCapacity: Int, addressCapacity: Int) {
        self.peerCapacity = max(1, peerCapacity)
        self.addressCapacity = max(1, addressCapacity)
    }

    init(capacity: Int) {
        self.init(peerCapacity: capacity, addressCapacity: capacity)
    }

    var entries: [Key: NIODeadline] { peers.merging(addresses) { a, _ in a } }

    mutating func ban(_ key: Key, until: NIODeadline, now: NIODeadline) {
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

    func isBanned(_ key: Key, now: NIODeadline) -> Bool {
        let until: NIODeadline?
        switch key {
        case .peer: until = peers[key]
        case .address: until = addresses[key]
        }
        guard let until else { return false }
        return until > now
    }

    mutating func active(now: NIODeadline) -> [(Key, NIODeadline)] {
        peers = peers.filter { $0.value > now }
        addresses = addresses.filter { $0.value > now }
        return peers.map { ($0.key, $0.value) } + addresses.map { ($0.key, $0.value) }
    }
}

/// What per-address limits and address bans apply to: an IPv4 address as is; an IPv6 address by
/// its /64 (one host is commonly given a whole /64, so banning or counting single IPv6 addresses
/// is evaded by rotating within it); an IPv4-mapped IPv6 address as the IPv4 address it maps.
enum AddressKey {
    static func of(_ address: SocketAddress?) -> String? {
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
    static func of(ip: String) -> String? {
        guard let address = try? SocketAddress(ipAddress: ip, port: 0) else { return nil }
        return of(address)
    }

    static func of(ipv6 bytes: [UInt8]) -> String? {
        guard bytes.count == 16 else { return nil }
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
            return bytes[12..<16].map(String.init).joined(separator: ".")
        }
        var groups: [String] = []
        for g in 0..<4 { groups.append(String(UInt16(bytes[2 * g]) << 8 | UInt16(bytes[2 * g + 1]), radix: 16)) }
        return groups.joined(separator: ":") + "::/64"
    }
}

/// Bytes this node holds on behalf of its peers, bounded twice: per account (one connection, or
/// one request) and for the whole node. A peer can then never make the node hold more than its
/// account's share, and all peers together never more than the node's capacity.
///
/// `tryReserve` is for what can be dropped (a gossip frame to a slow peer); `reserve` waits for
/// room (reading or writing pauses, and yamux flow control pushes back on the peer); `charge`
/// takes room unconditionally for the few bytes that cannot wait (yamux control frames), so
/// usage may pass the capacity by those. Waiters are served in order for the node's room; one
/// blocked only by its own account's share does not hold up the others.
final class BufferBudget: Sendable {
    let nodeCapacity: Int
    let accountCapacity: Int

    private struct Waiter {
        let id: UInt64
        let account: UInt64
        let bytes: Int
        let continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var used = 0
        var accounts: [UInt64: Int] = [:]
        var waiters: Deque<Waiter> = []
        var nextID: UInt64 = 1
    }

    private let state = Mutex(State())

    init(nodeCapacity: Int, accountCapacity: Int) {
        self.nodeCapacity = max(1, nodeCapacity)
        self.accountCapacity = max(1, min(accountCapacity, nodeCapacity))
    }

    /// Bytes held by every open account together.
    var used: Int { state.withLock { $0.used } }
    var openAccounts: Int { state.withLock { $0.accounts.count } }

    func openAccount() -> Account {
        let id = state.withLock { s -> UInt64 in
            defer { s.nextID += 1 }
            s.accounts[s.nextID] = 0
            return s.nextID
        }
        return Account(budget: self, id: id)
    }

    /// One connection's (or request's) share of the budget.
    final class Account: Sendable {
        let budget: BufferBudget
        let id: UInt64

        fileprivate init(budget: BufferBudget, id: UInt64) {
            self.budget = budget
            self.id = id
        }

        var used: Int { budget.state.withLock { $0.accounts[id] ?? 0 } }
        var isOpen: Bool { budget.state.withLock { $0.accounts[id] != nil } }

        /// Takes `bytes` if both this account and the node have room now (and nobody waits
        /// ahead for the node's room).
        func tryReserve(_ bytes: Int) -> Bool {
            budget.state.withLock { s in BufferBudget.take(&s, account: id, bytes: bytes, budget: budget, queueFair: true) }
        }

        /// Takes `bytes`, waiting for room. Throws `LinkError.tooLarge` for more than an account
        /// can ever hold, `LinkError.closed` once the account is closed, and `CancellationError`.
        func reserve(_ bytes: Int) async throws {
            guard bytes > 0 else { return }
            guard bytes <= budget.accountCapacity else { throw LinkError.tooLarge(bytes, limit: budget.accountCapacity) }
            let waiterID = budget.state.withLock { s -> UInt64 in
                defer { s.nextID += 1 }
                return s.nextID
            }
            try await withTaskCancellationHandler {
                try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                    let outcome = budget.state.withLock { s -> Result<Bool, any Error> in
                        guard s.accounts[id] != nil else { return .failure(LinkError.closed) }
                        if Task.isCancelled { return .failure(CancellationError()) }
                        if BufferBudget.take(&s, account: id, bytes: bytes, budget: budget, queueFair: true) {
                            return .success(true)
                        }
                        s.waiters.append(Waiter(id: waiterID, account: id, bytes: bytes, continuation: c))
                        return .success(false)
                    }
                    switch outcome {
                    case .success(true): c.resume()
                    case .success(false): break
                    case .failure(let error): c.resume(throwing: error)
                    }
                }
            } onCancel: {
                let waiter = budget.state.withLock { s -> Waiter? in
                    guard let i = s.waiters.firstIndex(where: { $0.id == waiterID }) else { return nil }
                    return s.waiters.remove(at: i)
                }
                waiter?.continuation.resume(throwing: CancellationError())
            }
        }

        /// Takes `bytes` whether or not there is room.
        func charge(_ bytes: Int) {
            guard bytes > 0 else { return }
            budget.state.withLock { s in
                guard let mine = s.accounts[id] else { return }
                s.accounts[id] = mine + bytes
                s.used += bytes
            }
        }

        func release(_ bytes: Int) {
            guard bytes > 0 else { return }
            let ready = budget.state.withLock { s -> [CheckedContinuation<Void, any Error>] in
                guard let mine = s.accounts[id] else { return [] }
                let n = min(bytes, mine)
                s.accounts[id] = mine - n
                s.used -= n
                return BufferBudget.grant(&s, budget: budget)
            }
            for c in ready { c.resume() }
        }

        /// Gives everything back and refuses further use; whoever waits on it gets `closed`.
        func close() {
            let (ready, failed) = budget.state.withLock { s -> ([CheckedContinuation<Void, any Error>], [CheckedContinuation<Void, any Error>]) in
                guard let mine = s.accounts.removeValue(forKey: id) else { return ([], []) }
                s.used -= mine
                var failed: [CheckedContinuation<Void, any Error>] = []
                s.waiters.removeAll { w in
                    guard w.account == id else { return false }
                    failed.append(w.continuation)
                    return true
                }
                return (BufferBudget.grant(&s, budget: budget), failed)
            }
            for c in failed { c.resume(throwing: LinkError.closed) }
            for c in ready { c.resume() }
        }
    }

    private static func take(_ s: inout State, account: UInt64, bytes: Int, budget: BufferBudget, queueFair: Bool) -> Bool {
        guard let mine = s.accounts[account] else { return false }
        guard bytes > 0 else { return true }
        guard mine + bytes <= budget.accountCapacity, s.used + bytes <= budget.nodeCapacity else { return false }
        // Someone already waits for the node's room: do not overtake them.
        if queueFair, s.waiters.contains(where: { (s.accounts[$0.account] ?? 0) + $0.bytes <= budget.accountCapacity }) {
            return false
        }
        s.accounts[account] = mine + bytes
        s.used += bytes
        return true
    }

    /// Serves waiters in order; stops at the first one the node has no room for (so a large
    /// request is not starved by small ones), skips those only their own account holds back.
    private static func grant(_ s: inout State, budget: BufferBudget) -> [CheckedContinuation<Void, any Error>] {
        var ready: [CheckedContinuation<Void, any Error>] = []
        var i = 0
        while i < s.waiters.count {
            let w = s.waiters[i]
            let mine = s.accounts[w.account] ?? 0
            if mine + w.bytes > budget.accountCapacity {
                i += 1
                continue
            }
            guard s.used + w.bytes <= budget.nodeCapacity else { break }
            s.accounts[w.account] = mine + w.bytes
            s.used += w.bytes
            ready.append(w.continuation)
            s.waiters.remove(at: i)
        }
        return ready
    }
}

/// Things in progress (requests being served, streams open), counted per key and in total, each
/// with a cap. A key's entry disappears when its count returns to zero, so the map holds only
/// keys with something in progress.
final class SlotLimiter<Key: Hashable & Sendable>: Sendable {
    let perKey: Int
    let total: Int
    private struct State {
        var counts: [Key: Int] = [:]
        var total = 0
    }
    private let state = Mutex(State())

    init(perKey: Int, total: Int) {
        self.perKey = max(1, perKey)
        self.total = max(1, total)
    }

    enum Refusal: Equatable, Sendable { case perKey, total }

    /// Takes a slot for `key`, or says which cap is reached.
    func acquire(_ key: Key) -> Refusal? {
        state.withLock { s in
            let mine = s.counts[key] ?? 0
            if mine >= perKey { return .perKey }
            if s.total >= total { return .total }
            s.counts[key] = mine + 1
            s.total += 1
            return nil
        }
    }

    func release(_ key: Key) {
        state.withLock { s in
            guard let mine = s.counts[key] else { return }
            if mine <= 1 { s.counts.removeValue(forKey: key) } else { s.counts[key] = mine - 1 }
            s.total -= 1
        }
    }

    func inProgress(_ key: Key) -> Int { state.withLock { $0.counts[key] ?? 0 } }
    var inProgress: Int { state.withLock { $0.total } }
    var keys: Int { state.withLock { $0.counts.count } }
}

/// A count with a ceiling, shared by concurrent tasks.
final class BoundedCounter: Sendable {
    let limit: Int
    private let count = Mutex(0)

    init(limit: Int) { self.limit = limit }

    func tryIncrement() -> Bool {
        count.withLock { n in
            guard n < limit else { return false }
            n += 1
            return true
        }
    }

    func decrement() { count.withLock { $0 -= 1 } }
    var value: Int { count.withLock { $0 } }
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
