/// What divergence recovery tells the node, in the order it happens. The node turns these into
/// its phase (`recovering`, `halted`), the phase's reason, and its metrics; recovery itself knows
/// nothing of either.
package enum RecoveryReport: Sendable, Equatable {
    /// A divergence is being recovered: the node is not ready until `.recovered`. Each one counts
    /// as a divergence detected, also when several follow each other before `.recovered`.
    case recovering(divergedAt: UInt64, reason: String)
    /// What the recovery does now (the reason shown while recovering).
    case progress(String)
    /// Store and executor were rolled back from `from` to the common ancestor `to`, confirmed by
    /// reading the head back.
    case rolledBack(from: UInt64, to: UInt64)
    /// An attempt failed; it is retried after `retryIn`.
    case attemptFailed(attempt: Int, divergedAt: UInt64, failure: RecoveryAttemptFailure, retryIn: Duration)
    /// Every divergence reported so far is recovered: the node goes back to what it did before.
    case recovered
    /// Recovery cannot proceed without an operator; `run()` throws this error next.
    case halted(DivergenceRecoveryError)
}

/// Where `DivergenceRecovery` reports what it does (the node: its phase and metrics).
/// Called from the recovery's task, one report at a time; must return at once.
package protocol RecoveryObserver: Sendable {
    /// Whether the node shows a recovery now. It may differ from what was reported: another part
    /// of the node may have moved its phase on meanwhile (e.g. to halted).
    var isRecovering: Bool { get }
    func report(_ report: RecoveryReport)
}
