import Store
import Production
import Logging
import Synchronization

/// `--max-pending-blocks N` (ev-node's `max_pending_headers_and_data`): the producer waits while
/// N or more produced blocks are not on DA yet (store height − DA-included height), so never more
/// than N are, and goes on as the submitter catches up. The gate holds only the producer: the submitter keeps draining,
/// so a node restarted with more than N pending starts by posting them (ev-node #1788 looped
/// here) and produces again once fewer than N are left.
final class PendingBlocksGate: ProductionGate, Sendable {
    struct Status: Sendable, Equatable {
        var pending: UInt64
        var paused: Bool
        var reason: String?
    }

    let limit: UInt64
    private let store: BlockStore
    private let logger: Logger
    private let checkInterval: Duration
    private let state = Mutex(Status(pending: 0, paused: false, reason: nil))

    init(limit: UInt64, store: BlockStore, checkInterval: Duration = .milliseconds(100), logger: Logger) {
        precondition(limit > 0, "a back-pressure limit of 0 means off: build no gate")
        self.limit = limit
        self.store = store
        self.checkInterval = checkInterval
        self.logger = logger
    }

    var pending: UInt64 {
        let height = store.height
        let included = store.finalizedHeight
        return height > included ? height - included : 0
    }

    var status: Status {
        var s = state.withLock { $0 }
        s.pending = pending
        return s
    }

    func waitUntilOpen() async throws {
        var current = pending
        guard current >= limit else { return }
        let reason = "production paused: \(current) blocks not on DA yet, --max-pending-blocks is \(limit)"
        state.withLock {
            $0.paused = true
            $0.reason = reason
        }
        logger.warning("pausing block production until DA catches up", metadata: [
            "pending": "\(current)", "max_pending_blocks": "\(limit)",
            "store_height": "\(store.height)", "da_included": "\(store.finalizedHeight)"])
        let started = ContinuousClock.now
        defer {
            state.withLock {
                $0.paused = false
                $0.reason = nil
            }
        }
        while current >= limit {
            try await Task.sleep(for: checkInterval)
            current = pending
        }
        logger.notice("resuming block production: DA caught up", metadata: [
            "pending": "\(current)", "max_pending_blocks": "\(limit)",
            "paused_for": "\(ContinuousClock.now - started)"])
    }
}
