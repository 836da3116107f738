/// Exponential backoff for redialling: initial, 2×, 4×, … capped, with ±20 % jitter so that
/// peers that dropped together do not redial in lockstep.
struct Backoff: Sendable {
    let initial: Duration
    let maximum: Duration
    private(set) var current: Duration

    init(initial: Duration, maximum: Duration) {
        self.initial = initial
        self.maximum = max(initial, maximum)
        self.current = initial
    }

    mutating func next() -> Duration {
        let base = current
        current = min(maximum, current * 2)
        return base * Double.random(in: 0.8...1.2)
    }

    mutating func reset() { current = initial }
}
