import Synchronization

/// DA height hints from P2P (`P2PSignedHeader.da_height_hint`, `P2PData.da_height_hint`): a
/// stranger's claim that a block is included at some DA height. Advisory only. The follower
/// still reads every DA height in order and DA order alone decides (SPEC §7); a hint can only
/// end the follower's wait at the DA head early, so that the inclusion of a block a peer already
/// gave us is confirmed sooner than the next poll.
///
/// Bounds, so that no hint stream costs more than a bounded number of DA requests or bytes:
/// - at most `capacity` (1024, as ev-node's `maxPriorityHeights`) distinct heights are held, each
///   above what the follower has processed; a hint already held, or below that, is dropped;
/// - a hint more than `maxDrift` (200, ev-node's `daHintMaxDrift`) past the processed height and
///   above the DA head the follower knows must be checked against DA's head first: it is held
///   only when a head check may be spent on it (one per `wakeInterval`), otherwise ignored;
/// - hints wake the follower at most once per `wakeInterval` (500 ms, ev-node's latest-height
///   query timeout); each wake costs one poll of DA from the follower's next height, which reads
///   the real head (that poll is the head check: heights above the head are not on DA yet).
///   A hint held without a wake shortens the follower's next wait at the head to `wakeInterval`;
///   every poll that reaches the head drops what is held. So hints cost at most about one poll
///   per `wakeInterval`, however many arrive.
package struct DAHeightHints: Sendable {
    package static let capacity = 1024
    package static let maxDrift: UInt64 = 200
    package static let wakeInterval: Duration = .milliseconds(500)

    /// What happened to one hint.
    package enum Outcome: Sendable, Equatable {
        /// Held; `wake`: the follower should poll DA now.
        case held(wake: Bool)
        /// 0 (no hint), or at or below what the follower has processed.
        case stale
        /// Already held.
        case duplicate
        /// Too far past the DA head the follower knows, and no head check is due.
        case aboveHead
        /// `capacity` heights are held already.
        case full
    }

    /// Counters for `DAFollowerStatus`.
    package struct Counts: Sendable, Equatable {
        package var received = 0
        package var held = 0
        package var ignored = 0
        package var wakes = 0
        /// Held hints the follower's walk has since passed.
        package var passed = 0
        package init() {}
    }

    /// Held hints, ascending.
    private var heights: [UInt64] = []
    package private(set) var counts = Counts()
    private var lastWake: ContinuousClock.Instant?

    package var isEmpty: Bool { heights.isEmpty }

    package init() {}

    /// Sorts one hint. `next`: the next DA height the follower reads (everything below it is
    /// processed); `knownHead`: the highest DA head it has seen.
    package mutating func offer(_ hint: UInt64, next: UInt64, knownHead: UInt64,
                               now: ContinuousClock.Instant = .now) -> Outcome {
        counts.received += 1
        let outcome = sort(hint, next: next, knownHead: knownHead, now: now)
        switch outcome {
        case .held(let wake):
            counts.held = heights.count
            if wake { counts.wakes += 1 }
        case .stale, .duplicate, .aboveHead, .full:
            counts.ignored += 1
        }
        return outcome
    }

    private mutating func sort(_ hint: UInt64, next: UInt64, knownHead: UInt64,
                               now: ContinuousClock.Instant) -> Outcome {
        guard hint != 0, hint >= next else { return .stale }
        let index = insertionIndex(of: hint)
        if index < heights.count, heights[index] == hint { return .duplicate }
        let wakeDue = lastWake.map { now - $0 >= Self.wakeInterval } ?? true
        let far = hint > knownHead && hint - next > Self.maxDrift
        if far && !wakeDue { return .aboveHead }
        guard heights.count < Self.capacity else { return .full }
        heights.insert(hint, at: index)
        if wakeDue { lastWake = now }
        return .held(wake: wakeDue)
    }

    /// The follower has processed every DA height below `next`: hints below it are passed.
    package mutating func passed(below next: UInt64) {
        let n = insertionIndex(of: next)
        guard n > 0 else { return }
        heights.removeFirst(n)
        counts.passed += n
        counts.held = heights.count
    }

    /// The follower reached DA's head at `next`: held hints at or above it name heights DA does
    /// not have; they are dropped (counted as ignored) rather than kept to wake it again.
    package mutating func headReached(at next: UInt64) {
        passed(below: next)
        counts.ignored += heights.count
        heights.removeAll()
        counts.held = 0
    }

    private func insertionIndex(of height: UInt64) -> Int {
        var lo = 0, hi = heights.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if heights[mid] < height { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }
}
