import Sync
import Testing

/// The bounds of P2P's DA height hints (`DAHeightHints`): whatever a peer sends, at most 1024
/// heights are held and the follower is woken at most once per 500 ms.
@Suite struct DAHeightHintsTests {
    let start = ContinuousClock.now

    @Test func aFloodOfHintsFarAheadWakesOnceAndHoldsOne() {
        var hints = DAHeightHints()
        var held = 0
        for i in UInt64(0)..<10_000 {
            // All within one wake interval, each more than 200 past the follower and above its head.
            let now = start + .microseconds(Int64(i))
            if case .held = hints.offer(1_000_000 + i, next: 10, knownHead: 50, now: now) { held += 1 }
        }
        #expect(held == 1, "only a hint that may spend the one wake of the interval is held")
        #expect(hints.counts.wakes == 1)
        #expect(hints.counts.ignored == 9_999)
        #expect(hints.offer(2_000_000, next: 10, knownHead: 50, now: start + .milliseconds(500)) == .held(wake: true),
                "the next interval may check the head again")
    }

    @Test func distinctHintsBelowTheHeadAreHeldUpToTheCapacity() {
        var hints = DAHeightHints()
        for i in UInt64(0)..<10_000 {
            _ = hints.offer(100 + i, next: 100, knownHead: 1_000_000, now: start)
        }
        #expect(hints.counts.held == DAHeightHints.capacity)
        #expect(hints.counts.wakes == 1, "every hint came within one wake interval")
        #expect(hints.counts.ignored == 10_000 - DAHeightHints.capacity)
        #expect(hints.offer(100, next: 100, knownHead: 1_000_000, now: start + .seconds(1)) == .duplicate)
        #expect(hints.offer(99, next: 100, knownHead: 1_000_000) == .stale)
        #expect(hints.offer(0, next: 0, knownHead: 1_000_000) == .stale, "0 is no hint")

        hints.passed(below: 600)
        #expect(hints.counts.passed == 500)
        #expect(hints.counts.held == DAHeightHints.capacity - 500)
        #expect(hints.offer(5_000, next: 600, knownHead: 1_000_000, now: start + .seconds(1)) == .held(wake: true),
                "room again once the walk passed held heights")
        hints.headReached(at: 700)
        #expect(hints.counts.held == 0, "heights above DA's head are not kept to wake the follower again")
        #expect(hints.counts.passed == 600)
    }

    @Test func aHintWithinTheDriftNeedsNoHeadCheck() {
        var hints = DAHeightHints()
        #expect(hints.offer(300, next: 100, knownHead: 120, now: start) == .held(wake: true))
        // Within 200 of the follower: held even above the known head and without a wake.
        #expect(hints.offer(299, next: 100, knownHead: 120, now: start) == .held(wake: false))
        #expect(hints.offer(301, next: 100, knownHead: 120, now: start) == .aboveHead)
        #expect(hints.offer(301, next: 100, knownHead: 400, now: start) == .held(wake: false), "below the known head")
    }
}
