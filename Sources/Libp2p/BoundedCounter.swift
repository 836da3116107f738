import Synchronization

/// A count with a ceiling, shared by concurrent tasks.
final class BoundedCounter: Sendable {
    package let limit: Int
    private let count = Mutex(0)

    package init(limit: Int) { self.limit = limit }

    func tryIncrement() -> Bool {
        count.withLock { n in
            guard n < limit else { return false }
            n += 1
            return true
        }
    }

    func decrement() { count.withLock { $0 -= 1 } }
    package var value: Int { count.withLock { $0 } }
}
