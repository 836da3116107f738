@testable import DAClient
import Foundation
import Testing

/// The arithmetic of `AdaptiveFetchLimit` over a simulated DA node: a fixed round-trip time and
/// a ceiling of requests it serves at once (beyond it, more in flight only queue).
@Suite struct AdaptiveFetchLimitTests {
    /// Feeds `limit` answers per epoch at the rate a DA node with `rtt` and `ceiling` gives for
    /// the current limit; `faultEvery`: every n-th request fails instead of answering.
    func drive(_ control: inout AdaptiveFetchLimit, rtt: Double, ceiling: Int, epochs: Int, clock: inout Double,
               faultEvery: Int? = nil, trace: inout [Int]) {
        let t0 = ContinuousClock.now
        var request = 0
        for _ in 0..<epochs {
            let inFlight = min(control.limit, ceiling)
            let spacing = rtt / Double(inFlight)
            for _ in 0..<max(control.limit, 1) {
                clock += spacing
                request += 1
                let at = t0 + .nanoseconds(Int64(clock * 1e9))
                if let n = faultEvery, request % n == 0 {
                    control.faulted(at: at)
                } else {
                    control.answered(at: at)
                }
            }
            trace.append(control.limit)
        }
    }

    @Test func growsWhileThroughputGrowsUpToTheCap() {
        var control = AdaptiveFetchLimit(maximum: 64, initial: 8)
        var clock = 0.0, trace: [Int] = []
        drive(&control, rtt: 0.1, ceiling: 1_000, epochs: 40, clock: &clock, trace: &trace)
        #expect(control.limit == 64, "\(trace)")
        #expect(control.peak == 64)
        #expect(trace.allSatisfy { $0 <= 64 })
    }

    /// The DA node serves at most 18 at once: 16 → 32 buys too little, so the limit goes back
    /// to 16 and stays there, only probing 32 now and then.
    @Test func fallsBackWhenGrowthBuysNothing() {
        var control = AdaptiveFetchLimit(maximum: 64, initial: 8)
        var clock = 0.0, trace: [Int] = []
        drive(&control, rtt: 0.1, ceiling: 18, epochs: 200, clock: &clock, trace: &trace)
        let settled = trace.suffix(150)
        #expect(settled.allSatisfy { $0 == 16 || $0 == 32 }, "\(trace)")
        #expect(settled.filter { $0 == 16 }.count > settled.count * 2 / 3, "mostly at 16: \(trace)")
        #expect(!trace.contains(64))
    }

    /// Faults halve the limit (once per window's worth of requests); a DA node failing one
    /// request in three keeps it at the bottom; once the faults stop it grows back.
    @Test func shrinksOnFaultsAndRecovers() {
        var control = AdaptiveFetchLimit(maximum: 64, initial: 64)
        var clock = 0.0, trace: [Int] = []
        drive(&control, rtt: 0.1, ceiling: 1_000, epochs: 30, clock: &clock, faultEvery: 3, trace: &trace)
        #expect(trace.suffix(20).allSatisfy { $0 <= 2 }, "\(trace)")
        control.faulted(at: .now)
        control.faulted(at: .now)
        #expect(control.limit == 1, "never below 1")
        trace = []
        drive(&control, rtt: 0.1, ceiling: 1_000, epochs: 40, clock: &clock, trace: &trace)
        #expect(control.limit == 64, "grows back once DA answers: \(trace)")
    }

    /// A burst of faults from one round of requests halves the limit once, not once per fault.
    @Test func aBurstOfFaultsCountsOnce() {
        var control = AdaptiveFetchLimit(maximum: 64, initial: 32)
        let now = ContinuousClock.now
        for i in 0..<16 { control.faulted(at: now + .milliseconds(i)) }
        #expect(control.limit == 16)
        for i in 0..<8 { control.faulted(at: now + .milliseconds(20 + i)) }
        #expect(control.limit == 8, "the next window's worth of faults halves it again")
    }

    @Test func aFixedLimitNeverMoves() {
        var control = AdaptiveFetchLimit(maximum: 8, initial: 8, adaptive: false)
        var clock = 0.0, trace: [Int] = []
        drive(&control, rtt: 0.1, ceiling: 1_000, epochs: 20, clock: &clock, faultEvery: 2, trace: &trace)
        #expect(trace.allSatisfy { $0 == 8 })
        #expect(AdaptiveFetchLimit(maximum: 4, initial: 8).limit == 4, "the initial limit is capped")
        #expect(AdaptiveFetchLimit(maximum: 0, initial: 0).limit == 1)
    }

    /// The pacer's reach: the consumer's height always; others within the limit, at most one
    /// past the known head, and within the byte budget at the largest recent answer size.
    @Test func thePacerBoundsReachByLimitHeadAndBytes() {
        let pacer = DAFetchPacer(maximum: 64, initial: 8, maxBufferedBytes: 10_000)
        #expect(pacer.mayFetch(100, next: 100, inFlight: 50, held: 1 << 30), "the awaited height always goes")
        #expect(pacer.mayFetch(107, next: 100, inFlight: 0, held: 0))
        #expect(!pacer.mayFetch(108, next: 100, inFlight: 0, held: 0), "beyond the limit of 8")
        pacer.headKnown(103)
        #expect(pacer.mayFetch(104, next: 100, inFlight: 0, held: 0), "one past the head")
        #expect(!pacer.mayFetch(105, next: 100, inFlight: 0, held: 0))
        pacer.answered(height: 104, bytes: 3_000)
        #expect(pacer.mayFetch(105, next: 100, inFlight: 0, held: 0), "an answer at the head raises it")
        #expect(pacer.mayFetch(105, next: 100, inFlight: 1, held: 3_000), "3,000 held + 2 × 3,000 ≤ 10,000")
        #expect(!pacer.mayFetch(105, next: 100, inFlight: 2, held: 3_000), "3,000 held + 3 × 3,000 > 10,000")
        let fixed = DAFetchPacer.fixed(4)
        fixed.answered(height: 10, bytes: 1 << 40)
        #expect(fixed.mayFetch(13, next: 10, inFlight: 3, held: 1 << 40), "a fixed pacer has no head or byte bound")
        #expect(!fixed.mayFetch(14, next: 10, inFlight: 3, held: 0))
    }

    /// A head of 2^64−1 reaching the pacer (issue 27, M4: it computed `head + 1`) bounds nothing
    /// and traps nothing; the client refuses such a head before it gets here.
    @Test func aHeadAtTheTopOfUInt64DoesNotTrap() {
        let pacer = DAFetchPacer(maximum: 64, initial: 8)
        // The head is raised past 2^63 (Swift 6.3's `Atomic<UInt64>.max` compares as signed and
        // kept 103 here) and never lowered again.
        pacer.headKnown(103)
        pacer.headKnown(1 << 63)
        pacer.headKnown(104)
        #expect(pacer.mayFetch(106, next: 100, inFlight: 0, held: 0), "the head is above 103")
        pacer.headKnown(.max)
        #expect(pacer.mayFetch(101, next: 100, inFlight: 0, held: 0))
        #expect(pacer.mayFetch(.max, next: .max - 1, inFlight: 0, held: 0))
        pacer.answered(height: .max, bytes: 10)
        #expect(pacer.mayFetch(102, next: 100, inFlight: 0, held: 0))
    }
}
