import DequeModule
import Synchronization

/// Bytes this node holds on behalf of its peers, bounded twice: per account (one connection, or
/// one request) and for the whole node. A peer can then never make the node hold more than its
/// account's share, and all peers together never more than the node's capacity.
///
/// `tryReserve` is for what can be dropped (a gossip frame to a slow peer); `reserve` waits for
/// room (reading or writing pauses, and yamux flow control pushes back on the peer); `charge`
/// takes room unconditionally for the few bytes that cannot wait (yamux control frames), so
/// usage may pass the capacity by those. Waiters are served in order for the node's room; one
/// blocked only by its own account's share does not hold up the others.
package final class BufferBudget: Sendable {
    let nodeCapacity: Int
    package let accountCapacity: Int

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

    package init(nodeCapacity: Int, accountCapacity: Int) {
        self.nodeCapacity = max(1, nodeCapacity)
        self.accountCapacity = max(1, min(accountCapacity, nodeCapacity))
    }

    /// Bytes held by every open account together.
    var used: Int { state.withLock { $0.used } }
    var openAccounts: Int { state.withLock { $0.accounts.count } }

    package func openAccount() -> Account {
        let id = state.withLock { s -> UInt64 in
            defer { s.nextID += 1 }
            s.accounts[s.nextID] = 0
            return s.nextID
        }
        return Account(budget: self, id: id)
    }

    /// One connection's (or request's) share of the budget.
    package final class Account: Sendable {
        package let budget: BufferBudget
        package let id: UInt64

        fileprivate init(budget: BufferBudget, id: UInt64) {
            self.budget = budget
            self.id = id
        }

        var used: Int { budget.state.withLock { $0.accounts[id] ?? 0 } }
        package var isOpen: Bool { budget.state.withLock { $0.accounts[id] != nil } }

        /// Takes `bytes` if both this account and the node have room now (and nobody waits
        /// ahead for the node's room).
        func tryReserve(_ bytes: Int) -> Bool {
            budget.state.withLock { s in BufferBudget.take(&s, account: id, bytes: bytes, budget: budget, queueFair: true) }
        }

        /// Takes `bytes`, waiting for room. Throws `LinkError.tooLarge` for more than an account
        /// can ever hold, `LinkError.closed` once the account is closed, and `CancellationError`.
        package func reserve(_ bytes: Int) async throws {
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

        package func release(_ bytes: Int) {
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
        package func close() {
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
