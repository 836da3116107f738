@testable import DA
@testable import Node
import Testing

/// `GET /health/ready` of a following node (SPEC §10): not ready while behind peers, behind DA's
/// head, or cut off from DA with no peer to compare with.
@Suite struct ReadinessTests {
    let now = ContinuousClock.now

    func status(phase: NodePhase = .syncing, store: UInt64 = 100, p2pMax: UInt64 = 0, peers: Int = 0) -> NodeStatus {
        NodeStatus(mode: "full", phase: phase, chain_id: "c", heights: .init(store: store, finalized: store, p2p_max: p2pMax),
                   catchup: .init(), peers: peers, evidence: 0, proposer: "", app_hash: "")
    }

    func follower(next: UInt64 = 51, head: UInt64 = 50, reached: Bool = true, failingFor: Duration? = nil) -> DAFollowerStatus {
        DAFollowerStatus(nextDAHeight: next, daHead: head, headReached: reached, unresolved: 0, highestHeader: 0,
                         lastError: failingFor == nil ? nil : "connection refused",
                         failingSince: failingFor.map { now - $0 }, badBlobs: 0)
    }

    @Test func aFollowingNodeAtTheHeadIsReady() {
        #expect(Readiness.of(status(), follower: follower(), now: now) == .ready)
        // Waiting for the next DA block or two is not being behind.
        #expect(Readiness.of(status(), follower: follower(next: 49, head: 51), now: now) == .ready)
        #expect(Readiness.of(status(p2pMax: 102, peers: 1), follower: follower(), now: now) == .ready)
    }

    @Test func behindDAsHeadIsNotReadyEvenAfterTheHeadWasReachedOnce() {
        #expect(Readiness.of(status(), follower: follower(next: 41, head: 50), now: now)
            == .notReady("behind DA: read through DA height 40, DA is at 50"))
    }

    @Test func aLongDAOutageWithoutPeersIsNotReady() {
        #expect(Readiness.of(status(), follower: follower(failingFor: .seconds(5)), now: now) == .ready,
                "a short outage is retried quietly")
        #expect(Readiness.of(status(), follower: follower(failingFor: .seconds(45)), now: now)
            == .notReady("DA unavailable for 45 s and no peers: connection refused"))
        #expect(Readiness.of(status(p2pMax: 100, peers: 2), follower: follower(failingFor: .seconds(45)), now: now) == .ready,
                "peers at the same height vouch for it")
    }

    @Test func otherPhasesAndPeersAhead() {
        #expect(Readiness.of(status(p2pMax: 110, peers: 1), follower: follower(), now: now)
            == .notReady("behind: peers are at 110, store at 100"))
        #expect(Readiness.of(status(), follower: follower(reached: false), now: now)
            == .notReady("syncing: DA head not reached yet (height 100)"))
        #expect(Readiness.of(status(phase: .aggregating), follower: follower(next: 1, head: 90), now: now) == .ready)
        #expect(Readiness.of(status(phase: .starting), follower: follower(), now: now) == .notReady("starting"))
    }
}
