import Logging
import Synchronization

/// The node's phase and catchup progress, shared by the state machine (writer) and the RPC,
/// metrics and logs (readers).
package final class NodeState: Sendable {
    package struct Snapshot: Sendable, Equatable {
        package var phase: NodePhase = .starting
        /// Why the node halted, or what holds it back.
        package var reason: String?
        package var catchup = NodeStatus.Catchup()
    }

    private let box = Mutex(Snapshot())
    private let metrics: NodeMetrics
    private let logger: Logger

    package init(metrics: NodeMetrics, logger: Logger) {
        self.metrics = metrics
        self.logger = logger
        metrics.setPhase(.starting)
    }

    package var snapshot: Snapshot { box.withLock { $0 } }
    package var phase: NodePhase { box.withLock { $0.phase } }

    /// Moves to `phase`, logging the transition with its reason.
    package func enter(_ phase: NodePhase, reason: String? = nil) {
        // `halted` is terminal and keeps its first reason: a part still winding down after the
        // halt must neither make the node look healthy again nor replace the cause with a symptom.
        let previous = box.withLock { s -> NodePhase? in
            let p = s.phase
            if p == .halted { return nil }
            s.phase = phase
            s.reason = reason
            return p
        }
        guard let previous else { return }
        metrics.setPhase(phase)
        guard previous != phase else { return }
        var metadata: Logger.Metadata = ["from": "\(previous.rawValue)", "to": "\(phase.rawValue)"]
        if let reason { metadata["reason"] = "\(reason)" }
        if phase == .halted {
            logger.critical("node halted", metadata: metadata)
        } else {
            logger.notice("phase change", metadata: metadata)
        }
    }

    /// Moves from `current` to `phase` only if the node is still in `current` (another part may
    /// have moved it on meanwhile, e.g. to `halted`).
    package func leave(_ current: NodePhase, to phase: NodePhase, reason: String? = nil) {
        let moved = box.withLock { s -> Bool in
            guard s.phase == current, current != .halted else { return false }
            s.phase = phase
            s.reason = reason
            return true
        }
        guard moved else { return }
        metrics.setPhase(phase)
        var metadata: Logger.Metadata = ["from": "\(current.rawValue)", "to": "\(phase.rawValue)"]
        if let reason { metadata["reason"] = "\(reason)" }
        logger.notice("phase change", metadata: metadata)
    }

    package func setReason(_ reason: String?) {
        box.withLock { $0.reason = reason }
    }

    package func updateCatchup(_ update: (inout NodeStatus.Catchup) -> Void) {
        box.withLock { update(&$0.catchup) }
    }
}
