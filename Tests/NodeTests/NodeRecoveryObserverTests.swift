@testable import Node
import Store
import Sync
import Logging
import Testing

/// How the node shows what divergence recovery reports (`RecoveryReport`): the phase and its
/// reason in `NodeState`, the counters in `NodeMetrics`, the halt in `NodeFailure`. No threads,
/// no store: the reports are fed in the orders `DivergenceRecoveryTests` sees the recovery send.
@Suite struct NodeRecoveryObserverTests {
    let metrics = NodeMetrics()
    let state: NodeState
    let observer: NodeRecoveryObserver

    init() {
        state = NodeState(metrics: metrics, logger: Logger(label: "test.recovery.observer"))
        observer = NodeRecoveryObserver(state: state, metrics: metrics)
    }

    func counter(_ name: String) -> Double? {
        for line in metrics.text().split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.split(separator: " ").last!)
        }
        return nil
    }

    @Test func aRecoveryIsShownAsRecoveringAndReturnsToThePhaseAndReasonBefore() {
        state.enter(.syncing, reason: "following DA")
        #expect(!observer.isRecovering)

        observer.report(.recovering(divergedAt: 4, reason: "DA's block 4 differs"))
        #expect(observer.isRecovering)
        #expect(state.snapshot.phase == .recovering && state.snapshot.reason == "DA's block 4 differs")
        #expect(counter("evnode_divergences_total") == 1)

        observer.report(.attemptFailed(attempt: 1, divergedAt: 4,
                                       failure: .unconfirmed(to: 3, toHash: [1], headHeight: 7, headHash: [2], above: false),
                                       retryIn: .milliseconds(200)))
        #expect(counter("evnode_rollback_failures_total") == 1)
        #expect(state.snapshot.reason == "DA's block 4 differs", "a failure alone changes no reason")
        observer.report(.progress("attempt 1 failed"))
        #expect(state.snapshot.phase == .recovering && state.snapshot.reason == "attempt 1 failed")

        // A second divergence before the first is recovered: counted, and the phase to return
        // to is still the one from before the first.
        observer.report(.recovering(divergedAt: 2, reason: "DA's block 2 differs"))
        #expect(counter("evnode_divergences_total") == 2)

        observer.report(.rolledBack(from: 7, to: 1))
        #expect(counter("evnode_rollbacks_total") == 1)
        #expect(state.phase == .recovering)

        observer.report(.recovered)
        #expect(state.snapshot.phase == .syncing && state.snapshot.reason == "following DA")
        #expect(!observer.isRecovering)
        // Nothing saved any more: a stray report changes nothing.
        observer.report(.recovered)
        #expect(state.snapshot.phase == .syncing)
    }

    @Test func aHaltIsTerminalNamesTheErrorAndExitsWithStatus3() {
        state.enter(.syncing)
        let error = DivergenceRecoveryError.finalizedDivergence(height: 4, stored: [0xaa], authoritative: [0xbb],
                                                                finalized: 5, origin: .da(daHeight: 9))
        observer.report(.halted(error))
        #expect(state.snapshot.phase == .halted && state.snapshot.reason == error.description)
        #expect(error.description.contains("DA's block 4 is bb but the store holds aa (finalized height 5, DA block from DA height 9)"))
        observer.report(.recovering(divergedAt: 4, reason: "late"))
        #expect(state.snapshot.phase == .halted && state.snapshot.reason == error.description, "halted stays halted")

        let failure = NodeFailure(component: .syncer, underlying: NodeFailure.divergence(error))
        #expect(failure.exitStatus == 3)
        #expect(failure.description == "divergence recovery halted the node: \(error.description)")
        #expect(counter("evnode_rollbacks_total") == 0)
    }
}
