import Sync
import Synchronization

/// Shows divergence recovery in the node: its reports become the phase (`recovering` until
/// recovered, then back to the phase before; `halted`), the phase's reason, and the counters
/// `evnode_divergences_total`, `evnode_rollbacks_total` and `evnode_rollback_failures_total`.
final class NodeRecoveryObserver: RecoveryObserver {
    let state: NodeState
    let metrics: NodeMetrics
    /// The phase to return to after recovering (kept while several recoveries follow each other).
    private let resumePhase = Mutex<(phase: NodePhase, reason: String?)?>(nil)

    init(state: NodeState, metrics: NodeMetrics) {
        self.state = state
        self.metrics = metrics
    }

    var isRecovering: Bool { state.phase == .recovering }

    func report(_ report: RecoveryReport) {
        switch report {
        case .recovering(_, let reason):
            let snapshot = state.snapshot
            resumePhase.withLock { saved in
                if saved == nil, snapshot.phase != .recovering {
                    saved = (snapshot.phase, snapshot.reason)
                }
            }
            metrics.divergences.increment()
            state.enter(.recovering, reason: reason)
        case .progress(let reason):
            state.setReason(reason)
        case .rolledBack:
            metrics.rollbacks.increment()
        case .attemptFailed:
            metrics.rollbackFailures.increment()
        case .recovered:
            guard let saved = resumePhase.withLock({ s -> (phase: NodePhase, reason: String?)? in
                defer { s = nil }
                return s
            }) else { return }
            state.leave(.recovering, to: saved.phase, reason: saved.reason)
        case .halted(let error):
            state.enter(.halted, reason: error.description)
        }
    }
}
