import Synchronization

/// Things in progress (requests being served, streams open), counted per key and in total, each
/// with a cap. A key's entry disappears when its count returns to zero, so the map holds only
/// keys with something in progress.
package final class SlotLimiter<Key: Hashable & Sendable>: Sendable {
    package let perKey: Int
    package let total: Int
    private struct State {
        var counts: [Key: Int] = [:]
        var total = 0
    }
    private let state = Mutex(State())

    package init(perKey: Int, total: Int) {
        self.perKey = max(1, perKey)
        self.total = max(1, total)
    }

    package enum Refusal: Equatable, Sendable { case perKey, total }

    /// Takes a slot for `key`, or says which cap is reached.
    package func acquire(_ key: Key) -> Refusal? {
        state.withLock { s in
            let mine = s.counts[key] ?? 0
            if mine >= perKey { return .perKey }
            if s.total >= total { return .total }
            s.counts[key] = mine + 1
            s.total += 1
            return nil
        }
    }

    package func release(_ key: Key) {
        state.withLock { s in
            guard let mine = s.counts[key] else { return }
            if mine <= 1 { s.counts.removeValue(forKey: key) } else { s.counts[key] = mine - 1 }
            s.total -= 1
        }
    }

    func inProgress(_ key: Key) -> Int { state.withLock { $0.counts[key] ?? 0 } }
    var inProgress: Int { state.withLock { $0.total } }
    package var keys: Int { state.withLock { $0.counts.count } }
}
