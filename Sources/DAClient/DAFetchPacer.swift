import Synchronization

/// How many DA heights a retrieval keeps in flight, adapted to what the DA node delivers: the
/// number grows while the answers per second grow with it, falls back when a growth bought
/// nothing, and halves on faults (HTTP errors, 429s, transport failures), so that a DA node in
/// trouble sees fewer requests, not more. Pure arithmetic over answer and fault instants; the
/// retrieval (`DAFetchPacer`) applies it.
///
/// Measured in epochs of `limit` answers (about one round trip once the window is full, at least
/// `minimumEpoch`); the epoch after a change is not measured, its answers still carry the old
/// window's timing. A growth doubles the limit; it is kept when the next measured epoch answers
/// at least `gain` × faster, and undone otherwise (then held for `holdEpochs` epochs before it is
/// tried again: a consumer-bound or bandwidth-bound walk settles where it is). A fault halves the
/// limit at most once per window's worth of answers or faults (a burst of faults from one round
/// of requests counts once), down to 1.
struct AdaptiveFetchLimit: Sendable {
    package let maximum: Int
    package let adaptive: Bool
    private(set) var limit: Int
    /// The highest limit reached (for the bench and `/status`).
    private(set) var peak: Int

    private var epochStart: ContinuousClock.Instant?
    private var epochAnswers = 0
    private var epochFaulted = false
    private var settling = true
    /// The limit and answer rate before the last growth, until that growth is judged.
    private var beforeGrowth: (limit: Int, rate: Double)?
    private var holdEpochs = 0
    /// Answers and faults since the last decrease; another decrease waits for `limit` of them.
    private var sinceDecrease = Int.max / 2

    static let minimumEpoch: Duration = .milliseconds(20)
    static let gain = 1.15
    static let holdEpochs = 8

    /// `initial` is clamped to 1…`maximum`; a fixed limit (`adaptive` false) stays at `initial`.
    init(maximum: Int, initial: Int, adaptive: Bool = true) {
        self.maximum = max(1, maximum)
        self.adaptive = adaptive
        limit = min(max(1, initial), self.maximum)
        peak = limit
    }

    /// A fetch was answered (blobs or "not found").
    package mutating func answered(at now: ContinuousClock.Instant) {
        guard adaptive else { return }
        sinceDecrease += 1
        guard let start = epochStart else {
            epochStart = now
            return
        }
        epochAnswers += 1
        let elapsed = now - start
        guard epochAnswers >= limit, elapsed >= Self.minimumEpoch else { return }
        let rate = Double(epochAnswers) / Self.seconds(elapsed)
        let faulted = epochFaulted
        epochStart = now
        epochAnswers = 0
        epochFaulted = false
        if settling {
            settling = false
            return
        }
        if holdEpochs > 0 {
            holdEpochs -= 1
            return
        }
        if let before = beforeGrowth {
            beforeGrowth = nil
            if faulted || rate < before.rate * Self.gain {
                limit = before.limit
                holdEpochs = Self.holdEpochs
                settling = true
                return
            }
        }
        guard !faulted, limit < maximum else { return }
        beforeGrowth = (limit, rate)
        limit = min(maximum, limit * 2)
        peak = max(peak, limit)
        settling = true
    }

    /// A fetch failed with a fault (not "not found", not "from the future", not cancelled).
    mutating func faulted(at now: ContinuousClock.Instant) {
        guard adaptive else { return }
        epochFaulted = true
        sinceDecrease += 1
        guard sinceDecrease >= limit else { return }
        sinceDecrease = 0
        limit = max(1, limit / 2)
        beforeGrowth = nil
        holdEpochs = 0
        settling = true
        epochStart = now
        epochAnswers = 0
        epochFaulted = false
    }

    package static func seconds(_ d: Duration) -> Double {
        Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }
}

/// Paces a retrieval's fetches: how many DA heights are fetched or held ahead of the consumer
/// (`AdaptiveFetchLimit`, at most `maximum`), how far past the DA head it reaches (one height
/// beyond the highest known to exist: at the head a poll is one request, not a window of
/// "from the future" answers), and how many bytes it holds (fetched heights waiting for their
/// turn, plus the typical answer size for each fetch in flight, stay within `maxBufferedBytes`;
/// the height the consumer waits for is always fetched). One pacer serves the successive walks
/// of a follower, so what it learned survives the polls at the head.
package final class DAFetchPacer: Sendable {
    package let maximum: Int
    package let maxBufferedBytes: Int
    private let control: Mutex<AdaptiveFetchLimit>
    /// Highest DA height known to exist; 0 while unknown (then nothing bounds the reach).
    private let knownHead = Atomic<UInt64>(0)
    /// The largest recent answer of one DA height, decaying, for the byte bound.
    private let typicalAnswer = Mutex<Double>(0)

    package static let defaultMaxBufferedBytes = 64 << 20

    /// `initial`: where the limit starts (8, what a fixed window used to fetch, or `maximum` when
    /// lower).
    package init(maximum: Int, initial: Int = 8, adaptive: Bool = true, maxBufferedBytes: Int = defaultMaxBufferedBytes) {
        control = Mutex(AdaptiveFetchLimit(maximum: maximum, initial: initial, adaptive: adaptive))
        self.maximum = max(1, maximum)
        self.maxBufferedBytes = max(1, maxBufferedBytes)
    }

    /// Always `parallelism` heights in flight, no head bound (tests, tools).
    package static func fixed(_ parallelism: Int) -> DAFetchPacer {
        DAFetchPacer(maximum: parallelism, initial: parallelism, adaptive: false, maxBufferedBytes: .max)
    }

    /// The number of DA heights fetched or held ahead of the consumer now.
    package var limit: Int { control.withLock { $0.limit } }
    /// The highest limit reached so far.
    package var peak: Int { control.withLock { $0.peak } }

    /// DA holds `height` (its head said so, or a fetch at it was answered).
    package func headKnown(_ height: UInt64) {
        // Not `Atomic.max`: for UInt64 it compares as signed in Swift 6.3 (a head of 2^63 or
        // more would be dropped, and a later smaller one would replace it).
        var current = knownHead.load(ordering: .relaxed)
        while height > current {
            let (exchanged, original) = knownHead.compareExchange(expected: current, desired: height, ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }

    /// Whether the fetch at `height` may start now, `next` being the height the consumer waits
    /// for, `inFlight` the fetches started and not answered, `held` the bytes answered and
    /// waiting. Retries of a height ask again: a window that shrank holds back the heights
    /// beyond it until the consumer gets there.
    func mayFetch(_ height: UInt64, next: UInt64, inFlight: Int, held: Int) -> Bool {
        if height == next { return true }
        guard height > next, height - next < UInt64(limit) else { return false }
        let head = knownHead.load(ordering: .relaxed)
        // Written without `head + 1`: a head is bounded where it is decoded, but a trap here
        // would put the node in a crash loop.
        if head > 0, height > head, height - head > 1 { return false }
        let typical = typicalAnswer.withLock { $0 }
        return Double(held) + Double(inFlight + 1) * typical <= Double(maxBufferedBytes)
    }

    package func answered(height: UInt64, bytes: Int, at now: ContinuousClock.Instant = .now) {
        // Past the known head DA holds it too; without a known head nothing bounds the reach.
        if knownHead.load(ordering: .relaxed) > 0 { headKnown(height) }
        typicalAnswer.withLock { $0 = max($0 * 0.9, Double(bytes)) }
        control.withLock { $0.answered(at: now) }
    }

    package func faulted(at now: ContinuousClock.Instant = .now) {
        control.withLock { $0.faulted(at: now) }
    }
}
