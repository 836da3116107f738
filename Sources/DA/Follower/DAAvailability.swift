import Config
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
public final class DAAvailability: DAFetchObserver {
    public struct Snapshot: Sendable, Equatable {
        /// Since when every request failed; nil once one is answered.
        public var failingSince: ContinuousClock.Instant?
        public var lastError: String?
        /// The DA node refused the credentials (401/403) on the last failed request, and none
        /// was answered since.
        public var authError: String?
        /// Failed attempts in the current episode (0 when none).
        public var failedAttempts: Int
        /// All failed attempts since start.
        public var totalFailures: Int
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
    }

    let summaryInterval: Duration
    let quietPeriod: Duration
    private let logger: Logger
    private let state = Mutex(State())

    public init(logger: Logger, summaryInterval: Duration = .seconds(30), quietPeriod: Duration = .seconds(10)) {
        self.logger = logger
        self.summaryInterval = summaryInterval
        self.quietPeriod = quietPeriod
    }

    public var snapshot: Snapshot { state.withLock { $0.snapshot } }

    private enum Line {
        case started(String), auth(String), summary(Duration, Int, Int, String), recovered(Duration, Int)
    }

    public func fetchAnswered(height: UInt64) { answered() }

    public func fetchFailed(height: UInt64, error: DAError, attempt: Int, retryIn: Duration) {
        failed(error, context: "blob.GetAll at DA height \(height)")
    }

    /// A request was answered (an empty height and "from the future" are answers too).
    public func answered(at now: ContinuousClock.Instant = .now) {
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
    public func failed(_ error: DAError, context: String, at now: ContinuousClock.Instant = .now) {
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
    public var isAuthFailure: Bool {
        if case let .httpStatus(status, _, _) = self { return status == 401 || status == 403 }
        return false
    }
}
