@testable import Node
import Testing

@Suite struct CatchupGateTests {
    let gate = CatchupGate(timeout: .seconds(30))

    /// A snapshot where every condition holds; each test breaks one.
    func caughtUp() -> CatchupSnapshot {
        CatchupSnapshot(daHeadReached: true, storeHeight: 40, p2pMaxHeight: 40, peersConfigured: true, peersAnswered: true,
                        waitingToApply: 0, highestKnownHeader: 40, lastUnrecoverableSigned: 40,
                        elapsed: .seconds(3), sinceLastProgress: .seconds(1))
    }

    @Test func promotesWhenAllFourHold() {
        #expect(gate.evaluate(caughtUp()) == .promote)
    }

    @Test func freshChainWithNoPeersPromotesAfterDAHead() {
        let s = CatchupSnapshot(daHeadReached: true, storeHeight: 0, p2pMaxHeight: nil, peersConfigured: false,
                                waitingToApply: 0, highestKnownHeader: 0, lastUnrecoverableSigned: nil,
                                elapsed: .milliseconds(10), sinceLastProgress: .milliseconds(10))
        #expect(gate.evaluate(s) == .promote)
    }

    @Test func waitsForDAHeadForever() {
        var s = caughtUp()
        s.daHeadReached = false
        s.elapsed = .seconds(3600)
        s.sinceLastProgress = .seconds(3600)
        #expect(gate.evaluate(s) == .keepSyncing("DA head not reached yet"))
    }

    @Test func namesTheDAErrorWhileWaitingForDA() {
        var s = caughtUp()
        s.daHeadReached = false
        s.daError = "DA transport error talking to http://127.0.0.1:7980/: Couldn't connect to server"
        guard case .keepSyncing(let why) = gate.evaluate(s) else { Issue.record("should keep syncing"); return }
        #expect(why.hasPrefix("DA head not reached yet: DA unavailable (") && why.contains("Couldn't connect"))
    }

    @Test func waitsForPeersAheadThenFailsClosedWhenTheyCannotBeFetched() {
        var s = caughtUp()
        s.p2pMaxHeight = 45
        guard case .keepSyncing = gate.evaluate(s) else { Issue.record("should keep syncing"); return }
        // still making progress after the timeout: a long catchup is not a failure
        s.elapsed = .seconds(120)
        s.sinceLastProgress = .seconds(2)
        guard case .keepSyncing = gate.evaluate(s) else { Issue.record("progress: should keep syncing"); return }
        s.sinceLastProgress = .seconds(31)
        guard case .failClosed(let why) = gate.evaluate(s) else { Issue.record("should fail closed"); return }
        #expect(why.contains("41…45") && why.contains("store is at 40"))
    }

    @Test func silentPeersAreIgnoredAfterTheTimeoutWhenTheMarkIsThere() {
        var s = caughtUp()
        s.p2pMaxHeight = nil
        s.peersAnswered = false
        s.lastUnrecoverableSigned = 40
        guard case .keepSyncing = gate.evaluate(s) else { Issue.record("should wait for peers"); return }
        s.elapsed = .seconds(30)
        #expect(gate.evaluate(s) == .promote)
    }

    @Test func silentPeersWithoutAMarkFailClosedAfterTheTimeout() {
        var s = caughtUp()
        s.p2pMaxHeight = nil
        s.peersAnswered = false
        s.lastUnrecoverableSigned = nil
        guard case .keepSyncing = gate.evaluate(s) else { Issue.record("should wait for peers"); return }
        s.elapsed = .seconds(30)
        guard case .failClosed(let why) = gate.evaluate(s) else { Issue.record("should fail closed"); return }
        #expect(why.contains("none of the configured peers answered") && why.contains("no high-water mark"))
        // A peer that answers (even with an empty chain) lets DA decide.
        s.peersAnswered = true
        s.p2pMaxHeight = 0
        #expect(gate.evaluate(s) == .promote)
    }

    @Test func waitsForPendingBlocks() {
        var s = caughtUp()
        s.waitingToApply = 3
        s.lowestWaiting = 41
        #expect(gate.evaluate(s) == .keepSyncing("3 fetched blocks waiting to be applied"))
        s.lowestWaiting = 42
        #expect(gate.evaluate(s) == .keepSyncing("3 fetched blocks waiting to be applied (missing height 41)"))
    }

    @Test func blocksHeldAboveAGapFailClosedAfterTheTimeoutNamingTheGap() {
        var s = caughtUp()
        s.waitingToApply = 3
        s.lowestWaiting = 44
        s.highestKnownHeader = 46
        #expect(gate.evaluate(s) == .keepSyncing("3 fetched blocks waiting to be applied (missing heights 41…43)"))
        s.elapsed = .seconds(40)
        s.sinceLastProgress = .seconds(35)
        guard case .failClosed(let why) = gate.evaluate(s) else { Issue.record("should fail closed"); return }
        #expect(why.contains("3 fetched blocks (from 44) wait above a gap: heights 41…43 not supplied"))
    }

    @Test func aPendingDivergenceRecoveryHoldsPromotion() {
        var s = caughtUp()
        s.recoveryPending = true
        guard case .keepSyncing(let why) = gate.evaluate(s) else { Issue.record("should wait for the recovery"); return }
        #expect(why.contains("divergence"))
        s.elapsed = .seconds(3600)
        s.sinceLastProgress = .seconds(3600)
        guard case .keepSyncing = gate.evaluate(s) else { Issue.record("never fails closed for a recovery"); return }
        s.recoveryPending = false
        #expect(gate.evaluate(s) == .promote)
    }

    @Test func aProvenHeightAboveTheStoreFailsClosedAfterTheStall() {
        var s = caughtUp()
        s.p2pMaxHeight = 60
        #expect(gate.evaluate(s) == .keepSyncing("peers proved height 60, store at 40"))
        s.elapsed = .seconds(40)
        s.sinceLastProgress = .seconds(35)
        guard case .failClosed(let why) = gate.evaluate(s) else { Issue.record("should fail closed"); return }
        #expect(why.contains("peers proved height 60") && why.contains("heights 41…60 could not be fetched"))
    }

    @Test func fenceKnownHeaderForNextHeight() {
        var s = caughtUp()
        s.highestKnownHeader = 41
        guard case .keepSyncing = gate.evaluate(s) else { Issue.record("should keep syncing"); return }
        s.elapsed = .seconds(60)
        s.sinceLastProgress = .seconds(60)
        guard case .failClosed = gate.evaluate(s) else { Issue.record("should fail closed"); return }
    }

    @Test func fenceHighWaterMarkAboveStore() {
        var s = caughtUp()
        s.lastUnrecoverableSigned = 43
        guard case .keepSyncing = gate.evaluate(s) else { Issue.record("should keep syncing"); return }
        s.elapsed = .seconds(30)
        guard case .failClosed(let why) = gate.evaluate(s) else { Issue.record("should fail closed"); return }
        #expect(why.contains("41…43"))
        // A mark equal to the store height is the normal case: the last block we signed is stored.
        s.lastUnrecoverableSigned = 40
        #expect(gate.evaluate(s) == .promote)
    }
}

extension CatchupGateTests {
    /// Issue 27 (C1): with no mark, a proven height that the store reached — anyone may have
    /// proven it, an inbound stranger too — is not a configured peer's answer: only
    /// `peersAnswered` releases the peer wait, and failing closed names the silent peers.
    @Test func withoutAMarkOnlyAConfiguredPeersAnswerReleasesAndTheSilentOnesAreNamed() {
        var s = caughtUp()
        s.lastUnrecoverableSigned = nil
        s.p2pMaxHeight = 40
        s.peersAnswered = false
        s.silentPeers = ["/ip4/10.0.0.7/tcp/7676/p2p/12D3KooWSilent", "10.0.0.8:7676"]
        guard case .keepSyncing(let waiting) = gate.evaluate(s) else { Issue.record("should wait for peers"); return }
        #expect(waiting.contains("waiting up to 30s for peers"))
        s.elapsed = .seconds(30)
        guard case .failClosed(let why) = gate.evaluate(s) else { Issue.record("should fail closed"); return }
        #expect(why.contains("none of the configured peers answered within 30s and the signer has no high-water mark"))
        #expect(why.contains("never answered: /ip4/10.0.0.7/tcp/7676/p2p/12D3KooWSilent, 10.0.0.8:7676"), "\(why)")
        #expect(why.contains("never an inbound stranger"))
        s.peersAnswered = true
        #expect(gate.evaluate(s) == .promote)
    }
}
