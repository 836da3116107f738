import Primitives
import Logging
import Synchronization

/// Whether the DA node answers the follower, told by every fetch, and what the log says of it.
///
/// A DA that fails is retried in the background; the log must explain without flooding. So an
/// *episode* of trouble begins with the first fault (one WARNING), is summarised every
/// `summaryInterval` while it lasts ("DA unavailable for 2m10s, 812 failed attempts, …"), and
/// ends with one INFO once DA has answered without a fault for `quietPeriod` — a DA answering
/// 30 % of calls with faults is one episode, not a WARNING/INFO pair per fault. HTTP 401/403 is a
/// configuration problem (the auth token): said once per episode at ERROR level, kept in
/// `authError` for `/status` and readiness, and retried like any fault (tokens get rotated).
///
/// `failingSince`/`lastError` describe the *current* run of faults (cleared by any answer) for
/// readiness, whatever the episode.
///
/// A DA height that fails while its neighbours answer (an answer over the client's size limit, a
/// malformed `blob.GetAll` at that height alone) clears `failingSince` with every other answer,
/// yet the follower cannot go past it. So faults are also counted per DA height: one that failed
/// `stallAttempts` times in a row for at least `stallDuration` is *stalled* — an ERROR naming the
/// height and the error, repeated every `summaryInterval` until it is read, and `stalled` in the
/// snapshot (`/status` `da.stalled_*`). It is never skipped: blocks may be there.
package final class DAAvailability: DAFetchObserver {
    /// A DA height the follower keeps failing to read.
    package struct StalledHeight: Sendable, Equatable {
        package var daHeight: UInt64
        package var attempts: Int
        package var since: ContinuousClock.Instant
        package var lastError: String
    }

    package struct Snapshot: Sendable, Equatable {
        /// Since when every request failed; nil once one is answered.
        package var failingSince: ContinuousClock.Instant?
        package var lastError: String?
        /// The DA node refused the credentials (401/403) on the last failed request, and none
        /// was answered since.
        package var authError: String?
        /// Failed attempts in the current episode (0 when none).
        package var failedAttempts: Int
        /// All failed attempts since start.
        package var totalFailures: Int
        /// The lowest DA height that keeps failing, if any.
        package var stalled: StalledHeight? = nil
    }

    /// The run of faults of one DA height (cleared when it is answered).
    private struct HeightFaults {
        var attempts = 0
        var since: ContinuousClock.Instant
        var lastError = ""
        var lastReported: ContinuousClock.Instant?
    }

    private struct Episode {
        var since: ContinuousClock.Instant
        var failures = 0
        var answers = 0
        var lastFailure: ContinuousClock.Instant
        var lastSummary: ContinuousClock.Instant
        var lastError = ""
        var authReported = false
    }

    private struct State {
        var episode: Episode?
        var snapshot = Snapshot(failingSince: nil, lastError: nil, authError: nil, failedAttempts: 0, totalFailures: 0)
        /// By DA height; at most `maxTrackedHeights` (the fetch window's heights, in practice).
        var heightFaults: [UInt64: HeightFaults] = [:]
    }

    let summaryInterval: Duration
    let quietPeriod: Duration
    let stallAttempts: Int
    let stallDuration: Duration
    /// Heights whose faults are counted at once; the highest are forgotten first (the follower
    /// waits for the lowest).
    static let maxTrackedHeights = 1024
    private let logger: Logger
    private let state = Mutex(State())

    package init(logger: Logger, summaryInterval: Duration = .seconds(30), quietPeriod: Duration = .seconds(10),
                stallAttempts: Int = 5, stallDuration: Duration = .seconds(10)) {
        self.logger = logger
        self.summaryInterval = summaryInterval
        self.quietPeriod = quietPeriod
        self.stallAttempts = max(1, stallAttempts)
        self.stallDuration = stallDuration
    }

    package var snapshot: Snapshot { state.withLock { $0.snapshot } }

    private enum Line {
        case started(String), auth(String), summary(Duration, Int, Int, String), recovered(Duration, Int)
        case stalled(StalledHeight, Duration), unstalled(UInt64, Int, Duration)
    }

    package func fetchAnswered(height: UInt64) {
        fetchAnswered(height: height, at: .now)
    }

    package func fetchAnswered(height: UInt64, at now: ContinuousClock.Instant) {
        let line = state.withLock { s -> Line? in
            guard let faults = s.heightFaults.removeValue(forKey: height) else { return nil }
            defer { s.snapshot.stalled = Self.lowestStalled(s.heightFaults, attempts: stallAttempts, duration: stallDuration, now: now) }
            return faults.lastReported == nil ? nil : .unstalled(height, faults.attempts, now - faults.since)
        }
        if let line { log(line) }
        answered(at: now)
    }

    package func fetchFailed(height: UInt64, error: DAError, attempt: Int, retryIn: Duration) {
        fetchFailed(height: height, error: error, at: .now)
    }

    package func fetchFailed(height: UInt64, error: DAError, at now: ContinuousClock.Instant) {
        let context = "blob.GetAll at DA height \(height)"
        let line = state.withLock { s -> Line? in
            var faults = s.heightFaults[height] ?? HeightFaults(since: now)
            faults.attempts += 1
            faults.lastError = "\(context): \(error)"
            s.heightFaults[height] = faults
            if s.heightFaults.count > Self.maxTrackedHeights, let highest = s.heightFaults.keys.max() {
                s.heightFaults.removeValue(forKey: highest)
            }
            let stalled = Self.lowestStalled(s.heightFaults, attempts: stallAttempts, duration: stallDuration, now: now)
            s.snapshot.stalled = stalled
            // The lowest stalled height is the one the follower waits for: said at once, then
            // every summary interval while it lasts.
            guard let stalled, stalled.daHeight == height else { return nil }
            if let last = faults.lastReported, now - last < summaryInterval { return nil }
            s.heightFaults[height]?.lastReported = now
            return .stalled(stalled, now - stalled.since)
        }
        failed(error, context: context, at: now)
        if let line { log(line) }
    }

    private static func lowestStalled(_ faults: [UInt64: HeightFaults], attempts: Int, duration: Duration,
                                      now: ContinuousClock.Instant) -> StalledHeight? {
        faults.filter { $0.value.attempts >= attempts && now - $0.value.since >= duration }
            .min { $0.key < $1.key }
            .map { StalledHeight(daHeight: $0.key, attempts: $0.value.attempts, since: $0.value.since, lastError: $0.value.lastError) }
    }

    /// A request was answered (an empty height and "from the future" are answers too).
    package func answered(at now: ContinuousClock.Instant = .now) {
        let line = state.withLock { s -> Line? in
            s.snapshot.failingSince = nil
            s.snapshot.lastError = nil
            s.snapshot.authError = nil
            guard var e = s.episode else { return nil }
            e.answers += 1
            if now - e.lastFailure >= quietPeriod {
                s.episode = nil
                s.snapshot.failedAttempts = 0
                return .recovered(now - e.since, e.failures)
            }
            defer { s.episode = e }
            if now - e.lastSummary >= summaryInterval {
                e.lastSummary = now
                return .summary(now - e.since, e.failures, e.answers, e.lastError)
            }
            return nil
        }
        if let line { log(line) }
    }

    /// A request failed with a fault (it is retried by the caller).
    package func failed(_ error: DAError, context: String, at now: ContinuousClock.Instant = .now) {
        let description = "\(context): \(error)"
        let lines = state.withLock { s -> [Line] in
            var out: [Line] = []
            var e = s.episode ?? Episode(since: now, lastFailure: now, lastSummary: now)
            if s.episode == nil { out.append(.started(description)) }
            e.failures += 1
            e.lastFailure = now
            e.lastError = description
            s.snapshot.failingSince = s.snapshot.failingSince ?? now
            s.snapshot.lastError = description
            s.snapshot.totalFailures += 1
            s.snapshot.failedAttempts = e.failures
            if error.isAuthFailure {
                s.snapshot.authError = error.description
                if !e.authReported {
                    e.authReported = true
                    out.append(.auth(error.description))
                }
            }
            if now - e.lastSummary >= summaryInterval {
                e.lastSummary = now
                out.append(.summary(now - e.since, e.failures, e.answers, description))
            }
            s.episode = e
            return out
        }
        for line in lines { log(line) }
    }

    private func log(_ line: Line) {
        switch line {
        case .started(let error):
            logger.warning("DA is failing; retrying in the background, a summary follows every \(DurationParser.format(summaryInterval)) until it answers again",
                           metadata: ["error": "\(error)"])
        case .auth(let error):
            logger.error("the DA node refuses this node's credentials: a configuration problem (check da.auth_token / --da.auth-token); still retrying in case the token is rotated",
                         metadata: ["error": "\(error)"])
        case let .summary(duration, failures, answers, error):
            logger.warning("DA unavailable for \(Self.format(duration)), \(failures) failed attempts (\(answers) answered), last error: \(error)")
        case let .recovered(duration, failures):
            logger.info("DA is answering again after \(Self.format(duration)) of trouble (\(failures) failed attempts)")
        case let .stalled(stalled, duration):
            logger.error("DA height \(stalled.daHeight) cannot be read: \(stalled.attempts) failed attempts over \(Self.format(duration)); the node does not go past it (its blobs may hold blocks) and keeps retrying; check the DA node",
                         metadata: ["da_height": "\(stalled.daHeight)", "attempts": "\(stalled.attempts)",
                                    "error": "\(stalled.lastError)"])
        case let .unstalled(height, attempts, duration):
            logger.notice("DA height \(height) read after \(attempts) failed attempts over \(Self.format(duration))")
        }
    }

    /// Whole seconds as `2m10s` (below a second: `0s`).
    static func format(_ d: Duration) -> String {
        let seconds = d.components.seconds
        return seconds <= 0 ? "0s" : DurationParser.format(.seconds(seconds))
    }
}

extension DAError {
    /// HTTP 401/403: the DA node refuses the credentials (a configuration problem).
    package var isAuthFailure: Bool {
        if case let .httpStatus(status, _, _) = self { return status == 401 || status == 403 }
        return false
    }
}
