import Primitives
import Production
import Logging
import Synchronization
import Testing

/// The producer's block times across wall-clock steps (security review, minor: block time was
/// `max(wall clock, last)`, so a forward step stalled full nodes and a step back froze the chain's
/// time for as long as the step was).
@Suite struct BlockClockTests {
    /// A wall clock and a monotonic clock the test moves by hand.
    final class Clocks: Sendable {
        let start = ContinuousClock.now
        private let state = Mutex<(wall: UInt64, elapsed: Duration)>((1_700_000_000_000_000_000, .zero))
        var wall: UInt64 { state.withLock { $0.wall } }
        var monotonic: ContinuousClock.Instant { start + state.withLock { $0.elapsed } }
        /// Real time passes: both clocks move.
        func pass(_ d: Duration) {
            state.withLock { s in
                s.elapsed += d
                s.wall += d.nanosecondsClamped
            }
        }
        /// The wall clock alone is stepped (NTP, an operator).
        func step(by ns: Int64) { state.withLock { $0.wall = UInt64(Int64($0.wall) + ns) } }

        func blockClock() -> BlockClock {
            BlockClock(logger: Logger(label: "test.clock"), wall: { self.wall }, monotonic: { self.monotonic })
        }
    }

    /// Produces `count` blocks `every` apart on `clock`, from parent time `parent`; returns their times.
    func produce(_ count: Int, every: Duration, on clocks: Clocks, _ clock: BlockClock, after parent: inout UInt64) -> [UInt64] {
        var times: [UInt64] = []
        for _ in 0..<count {
            clocks.pass(every)
            parent = clock.nextBlockTime(after: parent)
            times.append(parent)
        }
        return times
    }

    @Test func blockTimeIsTheWallClockWhileItRunsTrue() {
        let clocks = Clocks()
        let clock = clocks.blockClock()
        let start = clocks.wall
        var parent = start
        let times = produce(50, every: .milliseconds(100), on: clocks, clock, after: &parent)
        #expect(times == (1...50).map { start + UInt64($0) * 100_000_000 })
    }

    /// The wall clock jumps an hour ahead: blocks keep the time that really passed (plus at most
    /// 10 %), so full nodes (which hold blocks over a minute ahead of their clocks) keep
    /// following; when it is stepped back, block time has not run away and goes on at once.
    @Test func aForwardStepIsNotStampedIntoBlocksAndAStepBackFreezesNothing() {
        let clocks = Clocks()
        let clock = clocks.blockClock()
        var parent = clocks.wall
        _ = produce(10, every: .milliseconds(100), on: clocks, clock, after: &parent)
        let beforeStep = parent
        clocks.step(by: 3_600_000_000_000)
        let during = produce(100, every: .milliseconds(100), on: clocks, clock, after: &parent)
        // 10 s of real time: at most 11 s of block time.
        #expect(parent - beforeStep <= 11_000_000_000, "block time ran \(parent - beforeStep) ns in 10 s")
        #expect(parent - beforeStep >= 10_000_000_000)
        #expect(zip(during, during.dropFirst()).allSatisfy { $0 <= $1 }, "block time never goes back")
        // Back to the true time: block time is at most the 10 % slew (1 s here) ahead of it, so
        // it stays put for at most a second, not for the hour.
        clocks.step(by: -3_600_000_000_000)
        #expect(during.last! <= clocks.wall + 1_000_000_000, "block time stays within a second of the true time")
        let afterBack = produce(20, every: .milliseconds(100), on: clocks, clock, after: &parent)
        #expect(afterBack.filter { $0 == during.last! }.count <= 10)
        #expect(afterBack.last! == clocks.wall, "block time follows the wall clock again")
    }

    /// A wall clock that was behind and is stepped forward 5 s is caught up with at 10 %: in
    /// 50 s of real time block time meets it again, never passing it.
    @Test func aClockThatWasBehindIsCaughtUpWithAtTenPercent() {
        let clocks = Clocks()
        let clock = clocks.blockClock()
        var parent = clocks.wall
        _ = produce(5, every: .milliseconds(100), on: clocks, clock, after: &parent)
        clocks.step(by: 5_000_000_000)
        let catchingUp = produce(600, every: .milliseconds(100), on: clocks, clock, after: &parent)
        let wall = clocks.wall
        #expect(catchingUp.allSatisfy { $0 <= wall })
        #expect(parent == wall, "caught up after 60 s: \(wall - parent) ns behind")
        let halfway = catchingUp[249]
        #expect(halfway < wall - 2_000_000_000, "not caught up at once")
    }

    /// Nothing is known before the first block of a run: it takes the wall clock (never before
    /// its parent).
    @Test func theFirstBlockOfARunTakesTheWallClock() {
        let clocks = Clocks()
        clocks.step(by: 3_600_000_000_000)
        let clock = clocks.blockClock()
        #expect(clock.nextBlockTime(after: 5) == clocks.wall)
        let future = clocks.wall + 10_000_000_000
        #expect(BlockClock(logger: Logger(label: "t"), wall: { clocks.wall }, monotonic: { clocks.monotonic })
            .nextBlockTime(after: future) == future)
    }
}
