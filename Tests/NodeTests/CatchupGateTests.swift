import Testing
@testable import Node

@Suite struct CatchupGateTests {
    let gate = CatchupGate(timeout: .seconds(30))

    /// A snapshot where every condition holds; each test breaks one.
    func caughtUp() -> CatchupSnapshot {
        CatchupSnapshot(daHeadReached: true, storeHeight: 40, p2pMaxHeight: 40, peersConfigured: true,
                        waitingToApply: 0, highestKnownHeader: 40, signerHighWaterMark: 40,
                        elapsed: .seconds(3), sinceLastProgress: .seconds(1))
    }

    @Test func promotesWhenAllFourHold() {
        #expect(gate.evaluate(caughtUp()) == .promote)
    }

    @Test func freshChainWithNoPeersPromotesAfterDAHead() {
        let s = CatchupSnapshot(daHeadReached: true, storeHeight: 0, p2pMaxHeight: nil, peersConfigured: false,
                                waitingToApply: 0, highestKnownHeader: 0, signerHighWaterMark: nil,
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

    @Test func silentPeersAreIgnoredAfterTheTimeout() {
        var s = caughtUp()
        s.p2pMaxHeight = nil
        guard case .keepSyncing = gate.evaluate(s) else { Issue.record("should wait for peers"); return }
        s.elapsed = .seconds(30)
        #expect(gate.evaluate(s) == .promote)
    }

    @Test func waitsForPendingBlocks() {
        var s = caughtUp()
        s.waitingToApply = 3
        #expect(gate.evaluate(s) == .keepSyncing("3 fetched blocks waiting to be applied"))
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
        s.signerHighWaterMark = 43
        guard case .keepSyncing = gate.evaluate(s) else { Issue.record("should keep syncing"); return }
        s.elapsed = .seconds(30)
        guard case .failClosed(let why) = gate.evaluate(s) else { Issue.record("should fail closed"); return }
        #expect(why.contains("41…43"))
        // A mark equal to the store height is the normal case: the last block we signed is stored.
        s.signerHighWaterMark = 40
        #expect(gate.evaluate(s) == .promote)
    }
}
