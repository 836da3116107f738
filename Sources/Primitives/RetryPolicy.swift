
/// Exponential backoff with a cap: delays `initialDelay`, `initialDelay × multiplier`, … never
/// above `maxDelay`, for at most `maxAttempts` attempts in all (the first one included).
public struct RetryPolicy: Sendable, Equatable {
    public var maxAttempts: Int
    public var initialDelay: Duration
    public var maxDelay: Duration
    public var multiplier: Double

    public init(maxAttempts: Int, initialDelay: Duration, maxDelay: Duration, multiplier: Double = 2) {
        precondition(maxAttempts >= 1, "a retry policy needs at least one attempt")
        precondition(multiplier >= 1, "backoff must not shrink")
        self.maxAttempts = maxAttempts
        self.initialDelay = initialDelay
        self.maxDelay = maxDelay
        self.multiplier = multiplier
    }

    /// A handful of attempts within a few seconds: enough to ride out a DA node restart blip.
    public static let `default` = RetryPolicy(maxAttempts: 5, initialDelay: .milliseconds(100),
                                              maxDelay: .seconds(2))
    /// Exactly one attempt.
    public static let none = RetryPolicy(maxAttempts: 1, initialDelay: .zero, maxDelay: .zero)

    /// The wait before attempt `attempt + 1`, after `attempt` (≥ 1) attempts have failed.
    public func delay(afterAttempt attempt: Int) -> Duration {
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
public struct Backoff: Sendable {
    public let policy: RetryPolicy
    public private(set) var failures = 0

    public init(policy: RetryPolicy) {
        self.policy = policy
    }

    /// Records a failure and returns how long to wait before the next try.
    public mutating func nextDelay() -> Duration {
        failures += 1
        return policy.delay(afterAttempt: failures)
    }

    public mutating func reset() {
        failures = 0
    }
}
