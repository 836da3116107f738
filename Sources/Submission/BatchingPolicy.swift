import Config

/// When the aggregator posts what is pending to DA: ev-node's `da.batching_strategy` with its
/// knobs, as a decision over a snapshot (no clock, no I/O), so that it can be tested alone.
///
/// The submitter asks it on every check with what waits (blocks not on DA and their encoded
/// bytes) and how long ago the last successful post was. Once a post is due, everything pending
/// goes out, in as many `blob.Submit` calls as the size limit needs: a backlog is never drained
/// one blob per `max_delay` (ev-node posts one size-capped batch per decision; draining at once
/// is what keeps the finalized height close behind the head).
package struct BatchingPolicy: Sendable, Equatable {
    package typealias Strategy = DABatchingConfig.Strategy

    package let strategy: Strategy
    /// Pending bytes that make a size-triggered post (`size`, `adaptive`).
    package let sizeThresholdBytes: Int
    /// Longest time between posts while something waits (`time`, `adaptive`).
    package let maxDelay: Duration
    /// Fewest pending blocks any post waits for, except `immediate`.
    package let minItems: Int
    /// How often the submitter re-evaluates while it waits (ev-node: a quarter of the DA block
    /// time, at least 100 ms): a size threshold is noticed within that time.
    package let checkInterval: Duration
    /// Production pauses at this many blocks not on DA (`max_pending_headers_and_data`; 0:
    /// off). That many waiting are always posted, whatever the strategy, or a size threshold or
    /// `batch_min_items` above it would wait for blocks that never come.
    package let backPressureLimit: UInt64

    /// What waits for DA at one moment.
    package struct Load: Sendable, Equatable {
        /// Blocks with a header or data not yet posted.
        package var blocks: Int
        /// Their encoded headers and data (before the DA envelope's signature), in bytes.
        package var bytes: Int

        package init(blocks: Int, bytes: Int) {
            self.blocks = blocks
            self.bytes = bytes
        }
    }

    package enum Decision: Sendable, Equatable {
        case post
        /// Nothing is due; look again after this long (or earlier when woken).
        case wait(Duration)
    }

    /// `daBlockTime` stands in for a zero `max_delay`; `maxBlobSize` is what the size threshold
    /// is a fraction of. Out-of-range knobs fall back to ev-node's defaults (threshold 0.8, one
    /// item), as ev-node does; the config layer is where they are refused with a message.
    package init(config: DABatchingConfig, daBlockTime: Duration, maxBlobSize: Int, backPressureLimit: UInt64 = 0) {
        self.backPressureLimit = backPressureLimit
        strategy = config.strategy
        let fraction = config.sizeThreshold > 0 && config.sizeThreshold <= 1 ? config.sizeThreshold : 0.8
        sizeThresholdBytes = max(1, Int(Double(max(maxBlobSize, 1)) * fraction))
        maxDelay = config.maxDelay > .zero ? config.maxDelay : daBlockTime
        minItems = max(1, config.minItems)
        checkInterval = max(daBlockTime / 4, .milliseconds(100))
    }

    /// Whether to post now, given what waits and the time since the last successful post
    /// (nil: none since the submitter started — a backlog left by a restart or a promotion is
    /// then posted at once under the time rule instead of one `max_delay` later).
    package func decide(_ load: Load, sinceLastPost: Duration?) -> Decision {
        guard load.blocks > 0 else { return .wait(checkInterval) }
        if strategy == .immediate { return .post }
        if backPressureLimit > 0, UInt64(load.blocks) >= backPressureLimit { return .post }
        guard load.blocks >= minItems else { return .wait(checkInterval) }
        let sizeReached = load.bytes >= sizeThresholdBytes
        let remaining = sinceLastPost.map { maxDelay - $0 } ?? .zero
        switch strategy {
        case .immediate:
            return .post
        case .size:
            return sizeReached ? .post : .wait(checkInterval)
        case .time:
            return remaining <= .zero ? .post : .wait(remaining)
        case .adaptive:
            if sizeReached || remaining <= .zero { return .post }
            return .wait(min(remaining, checkInterval))
        }
    }
}
