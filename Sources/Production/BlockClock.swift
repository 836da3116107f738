import Primitives
import Chain
import Logging
import Synchronization

/// Chooses the time of each block the producer makes.
///
/// A block's time is the wall clock, but never before the previous block's (a chain rule: a
/// block's time is at or after its parent's) and never further ahead of the previous block this
/// process produced than the time that really passed (the monotonic clock) plus `maxSlew` of it.
///
/// Why the second bound: full nodes hold a block more than a minute ahead of their own clocks
/// (SPEC §3). If the sequencer's wall clock is stepped forward by more than that (a bad NTP
/// source, an operator's typo), blocks stamped with it stall every full node until their clocks
/// get there; and when the clock is stepped back, block time must then stay at the last block's
/// until the wall clock passes it again — the chain's time is frozen for as long as the step was.
/// Following the monotonic clock instead keeps block time honest through the step; a clock that
/// was behind and was stepped forward is caught up with at `maxSlew` (10 % faster than real time).
/// Nothing is known across a restart, so the first block of a run takes the wall clock as it is.
package final class BlockClock: Sendable {
    /// How much faster than real time block time may advance to catch up with the wall clock.
    package static let maxSlew = 0.1
    /// A gap between the wall clock and block time beyond this is said in the log.
    package static let reportedGap: UInt64 = 1_000_000_000
    static let reportInterval: Duration = .seconds(60)

    private struct Last {
        var time: UInt64
        var at: ContinuousClock.Instant
    }

    private struct State {
        var last: Last?
        var reportedAt: ContinuousClock.Instant?
    }

    private let wall: @Sendable () -> UInt64
    private let monotonic: @Sendable () -> ContinuousClock.Instant
    private let logger: Logger
    private let state = Mutex(State())

    /// `wall` (Unix nanoseconds) and `monotonic` default to the system's clocks.
    package init(logger: Logger, wall: @escaping @Sendable () -> UInt64 = BlockValidator.currentTime,
                monotonic: @escaping @Sendable () -> ContinuousClock.Instant = { ContinuousClock.now }) {
        self.logger = logger
        self.wall = wall
        self.monotonic = monotonic
    }

    /// The time of the next block, whose parent's time is `parentTime`.
    package func nextBlockTime(after parentTime: UInt64) -> UInt64 {
        let now = monotonic()
        let wallNow = wall()
        let (time, gap) = state.withLock { s -> (UInt64, Gap?) in
            var time = max(wallNow, parentTime)
            if let last = s.last, now > last.at {
                let elapsed = UInt64((now - last.at).nanosecondsClamped)
                let slew = UInt64(Double(elapsed) * Self.maxSlew)
                let (reach, overflow) = last.time.addingReportingOverflow(elapsed.addingReportingOverflow(slew).partialValue)
                if !overflow { time = max(parentTime, min(wallNow, reach)) }
            }
            s.last = Last(time: time, at: now)
            let gap: Gap?
            if wallNow > time, wallNow - time > Self.reportedGap {
                gap = .wallAhead(wallNow - time)
            } else if wallNow < time, time - wallNow > Self.reportedGap {
                gap = .wallBehind(time - wallNow)
            } else {
                gap = nil
            }
            guard let gap else {
                s.reportedAt = nil
                return (time, nil)
            }
            if let at = s.reportedAt, now - at < Self.reportInterval { return (time, nil) }
            s.reportedAt = now
            return (time, gap)
        }
        if let gap { report(gap, blockTime: time) }
        return time
    }

    private enum Gap {
        case wallAhead(UInt64)
        case wallBehind(UInt64)
    }

    private func report(_ gap: Gap, blockTime: UInt64) {
        switch gap {
        case .wallAhead(let ns):
            logger.warning("the wall clock is \(Self.seconds(ns)) s ahead of block time: it was stepped forward; block time follows the time that really passed and catches up at most \(Int(Self.maxSlew * 100)) % faster (full nodes hold blocks more than 60 s ahead of their clocks)",
                           metadata: ["block_time_ns": "\(blockTime)", "gap_s": "\(Self.seconds(ns))"])
        case .wallBehind(let ns):
            logger.warning("the wall clock is \(Self.seconds(ns)) s behind the last block's time: block time stays at or after its parent's until the clock passes it",
                           metadata: ["block_time_ns": "\(blockTime)", "gap_s": "\(Self.seconds(ns))"])
        }
    }

    private static func seconds(_ ns: UInt64) -> String {
        let tenths = ns / 100_000_000
        return "\(tenths / 10).\(tenths % 10)"
    }
}
