
/// Exponential backoff with a cap: delays `initialDelay`, `initialDelay × multiplier`, … never
/// above `maxDelay`, for at most `maxAttempts` attempts in all (the first one included).
package struct RetryPolicy: Sendable, Equatable {
    package var maxAttempts: Int
    package var initialDelay: Duration
    package var maxDelay: Duration
    package var multiplier: Double

    package init(maxAttempts: Int, initialDelay: Duration, maxDelay: Duration, multiplier: Double = 2) {
        precondition(maxAttempts >= 1, "a retry policy needs at least one attempt")
        precondition(multiplier >= 1, "backoff must not shrink")
        self.maxAttempts = maxAttempts
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.multiplier = multiplier
    }

    /// A handful of attempts within a few seconds: enough to ride out a DA node restart blip.
    package static let `default` = RetryPolicy(maxAttempts: 5, initialDelay: .milliseconds(100),
                                              maxDelay: .seconds(2))
    /// Exactly one attempt.
    package static let none = RetryPolicy(maxAttempts: 1, initialDelay: .zero, maxDelay: .zero)

    /// The wait before attempt `attempt + 1`, after `attempt` (≥ 1) attempts have failed.
    package func delay(afterAttempt attempt: Int) -> Duration {
        var d = Double(initialDelay.nanosecondsClamped)
        let cap = Double(maxDelay.nanosecondsClamped)
        var n = 1
        while n < attempt && d < cap {
            d *= multiplier
            n += 1
        }
        return .nanoseconds(Int64(min(d, cap)))
    }
}

/// A running backoff for loops that retry forever (the submitter while the DA node is down).
package struct Backoff: Sendable {
    package let policy: RetryPolicy
    package private(set) var failures = 0

    package init(policy: RetryPolicy) {
        self.policy = policy
    }

    /// Records a failure and returns how long to wait before the next try.
    package mutating func nextDelay() -> Duration {
        failures += 1
        return policy.delay(afterAttempt: failures)
    }

    package mutating func reset() {
        failures = 0
    }
}
