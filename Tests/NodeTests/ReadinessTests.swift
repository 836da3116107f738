@testable import Node
@testable import Sync
import Testing

/// `GET /health/ready` of a following node (SPEC §10): not ready while behind peers, behind DA's
/// head, or cut off from DA with no peer to compare with.
@Suite struct ReadinessTests {
    let now = ContinuousClock.now

    func status(phase: NodePhase = .syncing, store: UInt64 = 100, p2pMax: UInt64 = 0, peers: Int = 0) -> NodeStatus {
        NodeStatus(mode: "full", phase: phase, chain_id: "c", heights: .init(store: store, finalized: store, p2p_max: p2pMax),
                   catchup: .init(), peers: peers, evidence: 0, proposer: "", app_hash: "")
    }

    /// A node whose last block is 50 ms old, P2P listening, no peers configured.
    func facts(aggregator: Bool = false, peersConfigured: Bool = false, listening: Bool = true,
               blockAge: Duration = .milliseconds(50), lazy: Bool = false) -> ReadinessFacts {
        let now: UInt64 = 1_800_000_000_000_000_000
        let age = UInt64(blockAge.components.seconds) * 1_000_000_000 + UInt64(blockAge.components.attoseconds / 1_000_000_000)
        return ReadinessFacts(aggregator: aggregator, p2pListening: listening, peersConfigured: peersConfigured,
                              lastBlockTime: now - age, now: now, blockTime: .milliseconds(100), lazy: lazy,
                              lazyInterval: .seconds(2))
    }

    func follower(next: UInt64 = 51, head: UInt64 = 50, reached: Bool = true, failingFor: Duration? = nil) -> DAFollowerStatus {
        DAFollowerStatus(nextDAHeight: next, daHead: head, headReached: reached, unresolved: 0, highestHeader: 0,
                         lastError: failingFor == nil ? nil : "connection refused",
                         failingSince: failingFor.map { now - $0 }, badBlobs: 0)
    }

    @Test func aFollowingNodeAtTheHeadIsReady() {
        #expect(Readiness.of(status(), follower: follower(), facts: facts(), now: now) == .ready)
        // Waiting for the next DA block or two is not being behind.
        #expect(Readiness.of(status(), follower: follower(next: 49, head: 51), facts: facts(), now: now) == .ready)
        #expect(Readiness.of(status(p2pMax: 102, peers: 1), follower: follower(), facts: facts(), now: now) == .ready)
    }

    @Test func behindDAsHeadIsNotReadyEvenAfterTheHeadWasReachedOnce() {
        #expect(Readiness.of(status(), follower: follower(next: 41, head: 50), facts: facts(), now: now)
            == .notReady("behind DA: read through DA height 40, DA is at 50"))
    }

    @Test func aLongDAOutageWithoutPeersIsNotReady() {
        #expect(Readiness.of(status(), follower: follower(failingFor: .seconds(5)), facts: facts(), now: now) == .ready,
                "a short outage is retried quietly")
        #expect(Readiness.of(status(), follower: follower(failingFor: .seconds(45)), facts: facts(), now: now)
            == .notReady("DA unavailable for 45 s and no peers: connection refused"))
        #expect(Readiness.of(status(p2pMax: 100, peers: 2), follower: follower(failingFor: .seconds(45)), facts: facts(), now: now) == .ready,
                "peers at the same height vouch for it")
    }

    /// Cut off from DA with no peers, a follower applies no block, and ev-node's window (15 s)
    /// runs out before the 30 s of quiet retries: ev-node's words come first, DA's failure after.
    @Test func anEvNodeCheckFailingWhileDAFailsWithoutPeersNamesTheDA() {
        #expect(Readiness.of(status(), follower: follower(failingFor: .seconds(20)), facts: facts(blockAge: .seconds(20)), now: now)
            == .notReady("node not executing blocks; DA unavailable for 20 s and no peers: connection refused"))
        #expect(Readiness.of(status(store: 0), follower: follower(failingFor: .seconds(3)), facts: facts(), now: now)
            == .notReady("no blocks yet; DA unavailable for 3 s and no peers: connection refused"))
        // With a peer, or with DA answering, ev-node's words alone.
        #expect(Readiness.of(status(peers: 1), follower: follower(failingFor: .seconds(20)), facts: facts(blockAge: .seconds(20)), now: now)
            == .notReady("node not executing blocks"))
        #expect(Readiness.of(status(), follower: follower(), facts: facts(blockAge: .seconds(20)), now: now)
            == .notReady("node not executing blocks"))
    }

    @Test func otherPhasesAndPeersAhead() {
        #expect(Readiness.of(status(p2pMax: 110, peers: 1), follower: follower(), facts: facts(), now: now)
            == .notReady("behind: peers are at 110, store at 100"))
        #expect(Readiness.of(status(), follower: follower(reached: false), facts: facts(), now: now)
            == .notReady("syncing: DA head not reached yet (height 100)"))
        #expect(Readiness.of(status(phase: .aggregating), follower: follower(next: 1, head: 90), facts: facts(), now: now) == .ready)
        #expect(Readiness.of(status(phase: .starting), follower: follower(), facts: facts(), now: now) == .notReady("starting"))
    }

    // ev-node's checks (pkg/rpc/server/http.go), in its order and with its words.

    @Test func evNodesChecksInEvNodesOrder() {
        let f = follower()
        #expect(Readiness.of(status(peers: 0), follower: f, facts: facts(listening: false), now: now)
            == .notReady("P2P not listening for connections"))
        #expect(Readiness.of(status(peers: 0), follower: f, facts: facts(peersConfigured: true), now: now)
            == .notReady("no peers connected"))
        #expect(Readiness.of(status(phase: .aggregating, peers: 0), follower: f, facts: facts(aggregator: true, peersConfigured: true), now: now)
            == .ready, "an aggregator needs no peers")
        #expect(Readiness.of(status(store: 0, peers: 1), follower: f, facts: facts(peersConfigured: true), now: now)
            == .notReady("no blocks yet"))
        // The producer: 5 × block time (100 ms), or 2 × the lazy interval (2 s) in lazy mode.
        #expect(Readiness.of(status(phase: .aggregating), follower: f, facts: facts(aggregator: true, blockAge: .milliseconds(400)), now: now) == .ready)
        #expect(Readiness.of(status(phase: .aggregating), follower: f, facts: facts(aggregator: true, blockAge: .milliseconds(600)), now: now)
            == .notReady("aggregator not producing blocks at expected rate"))
        #expect(Readiness.of(status(phase: .aggregating), follower: f, facts: facts(aggregator: true, blockAge: .seconds(3), lazy: true), now: now) == .ready)
        #expect(Readiness.of(status(phase: .aggregating), follower: f, facts: facts(aggregator: true, blockAge: .seconds(5), lazy: true), now: now)
            == .notReady("aggregator not producing blocks at expected rate"))
        // A follower: readiness_window_seconds (15).
        #expect(Readiness.of(status(), follower: f, facts: facts(blockAge: .seconds(14)), now: now) == .ready)
        #expect(Readiness.of(status(), follower: f, facts: facts(blockAge: .seconds(16)), now: now)
            == .notReady("node not executing blocks"))
        // readiness_max_blocks_behind (15) of the best height known, here a proven peer's.
        #expect(Readiness.of(status(phase: .aggregating, p2pMax: 116, peers: 1), follower: f, facts: facts(aggregator: true), now: now)
            == .notReady("behind best-known head"))
        #expect(Readiness.of(status(phase: .aggregating, p2pMax: 115, peers: 1), follower: f, facts: facts(aggregator: true), now: now) == .ready)
    }

    @Test func evnodesPhasesComeBeforeEvNodesChecks() {
        var halted = status(phase: .halted, store: 0)
        halted.reason = "double sign at 7"
        #expect(Readiness.of(halted, follower: follower(), facts: facts(listening: false), now: now)
            == .notReady("halted: double sign at 7"))
        var auth = follower()
        auth.authError = "HTTP 401"
        #expect(Readiness.of(status(store: 0), follower: auth, facts: facts(), now: now)
            == .notReady("DA refuses this node's credentials, a configuration problem (check da.auth_token); retrying: HTTP 401"))
    }
}
