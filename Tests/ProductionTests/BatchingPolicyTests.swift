@testable import Submission
@testable import Config
import Testing

/// ev-node's batching strategies and `da.mempool_ttl` as pure decisions: no clock, no I/O.
@Suite struct BatchingPolicyTests {
    typealias Load = BatchingPolicy.Load

    func policy(_ strategy: DABatchingConfig.Strategy, threshold: Double = 0.8, maxDelay: Duration = .zero,
                minItems: Int = 1, daBlockTime: Duration = .seconds(6), maxBlobSize: Int = 1000) -> BatchingPolicy {
        var config = DABatchingConfig()
        config.strategy = strategy
        config.sizeThreshold = threshold
        config.maxDelay = maxDelay
        config.minItems = minItems
        return BatchingPolicy(config: config, daBlockTime: daBlockTime, maxBlobSize: maxBlobSize)
    }

    @Test func nothingPendingIsNeverPosted() {
        for strategy in DABatchingConfig.Strategy.allCases {
            #expect(policy(strategy).decide(Load(blocks: 0, bytes: 0), sinceLastPost: .seconds(600))
                    == .wait(.milliseconds(1500)), "\(strategy)")
        }
    }

    @Test func immediatePostsAnythingAtOnceWhateverMinItems() {
        let p = policy(.immediate, minItems: 5)
        #expect(p.decide(Load(blocks: 1, bytes: 10), sinceLastPost: .zero) == .post)
    }

    @Test func timePostsOnceMaxDelayPassedAndDefaultsToTheDABlockTime() {
        let p = policy(.time)
        #expect(p.maxDelay == .seconds(6), "max_delay 0 = DA block time")
        #expect(p.decide(Load(blocks: 3, bytes: 10), sinceLastPost: .seconds(2)) == .wait(.seconds(4)))
        #expect(p.decide(Load(blocks: 3, bytes: 10), sinceLastPost: .seconds(6)) == .post)
        // Size does not matter to the time rule.
        #expect(p.decide(Load(blocks: 3, bytes: 10_000), sinceLastPost: .seconds(1)) == .wait(.seconds(5)))
        // A backlog found at start (no post yet) goes out at once.
        #expect(p.decide(Load(blocks: 1, bytes: 1), sinceLastPost: nil) == .post)
        #expect(policy(.time, maxDelay: .seconds(30)).decide(Load(blocks: 1, bytes: 1), sinceLastPost: .seconds(10))
                == .wait(.seconds(20)))
    }

    @Test func minItemsHoldsBackTimeSizeAndAdaptive() {
        for strategy in [DABatchingConfig.Strategy.time, .size, .adaptive] {
            let p = policy(strategy, minItems: 4)
            #expect(p.decide(Load(blocks: 3, bytes: 999_999), sinceLastPost: .seconds(600)) == .wait(p.checkInterval),
                    "\(strategy)")
            #expect(p.decide(Load(blocks: 4, bytes: 999_999), sinceLastPost: .seconds(600)) == .post, "\(strategy)")
        }
    }

    @Test func sizePostsAtTheThresholdFractionOfTheBlobSizeOnly() {
        let p = policy(.size, threshold: 0.5, maxBlobSize: 1000)
        #expect(p.sizeThresholdBytes == 500)
        #expect(p.decide(Load(blocks: 9, bytes: 499), sinceLastPost: .seconds(3600)) == .wait(p.checkInterval))
        #expect(p.decide(Load(blocks: 9, bytes: 500), sinceLastPost: .zero) == .post)
        // Out of range falls back to ev-node's 0.8.
        #expect(policy(.size, threshold: 0, maxBlobSize: 1000).sizeThresholdBytes == 800)
        #expect(policy(.size, threshold: 1.5, maxBlobSize: 1000).sizeThresholdBytes == 800)
    }

    @Test func adaptivePostsOnSizeOrTimeWhicheverComesFirst() {
        let p = policy(.adaptive, threshold: 0.5, maxDelay: .seconds(10), daBlockTime: .seconds(2), maxBlobSize: 1000)
        #expect(p.decide(Load(blocks: 2, bytes: 600), sinceLastPost: .seconds(1)) == .post)
        #expect(p.decide(Load(blocks: 2, bytes: 100), sinceLastPost: .seconds(10)) == .post)
        // Neither: look again within the check interval (a quarter DA block time), sooner if the delay ends first.
        #expect(p.decide(Load(blocks: 2, bytes: 100), sinceLastPost: .seconds(1)) == .wait(.milliseconds(500)))
        #expect(p.decide(Load(blocks: 2, bytes: 100), sinceLastPost: .milliseconds(9800)) == .wait(.milliseconds(200)))
    }

    @Test func theBackPressureLimitAlwaysPosts() {
        // Production pauses at 50 pending: a threshold or a min_items above what 50 blocks make
        // would wait forever.
        var config = DABatchingConfig()
        config.strategy = .size
        config.minItems = 100
        let p = BatchingPolicy(config: config, daBlockTime: .seconds(6), maxBlobSize: 1_000_000, backPressureLimit: 50)
        #expect(p.decide(Load(blocks: 49, bytes: 1000), sinceLastPost: .seconds(3600)) == .wait(p.checkInterval))
        #expect(p.decide(Load(blocks: 50, bytes: 1000), sinceLastPost: .zero) == .post)
    }

    @Test func theCheckIntervalIsAQuarterDABlockTimeAtLeast100ms() {
        #expect(policy(.size, daBlockTime: .seconds(6)).checkInterval == .milliseconds(1500))
        #expect(policy(.size, daBlockTime: .milliseconds(200)).checkInterval == .milliseconds(100))
    }

    @Test func mempoolTTLDelaysOnlyANotIncludedSubmission() {
        let ttl = ResubmitDelay(mempoolTTL: 5, daBlockTime: .seconds(2))
        #expect(ttl.ttl == .seconds(10))
        // Sent 3 s ago, not included: wait until 5 DA blocks passed since it was sent.
        #expect(ttl.delay(after: .notIncluded, backoff: .milliseconds(250), sentAgo: .seconds(3)) == .seconds(7))
        // The backoff when it is already longer.
        #expect(ttl.delay(after: .notIncluded, backoff: .seconds(30), sentAgo: .seconds(3)) == .seconds(30))
        // Refused outright: the transaction is not in any mempool, so no reason to wait for it.
        #expect(ttl.delay(after: .feeTooLow(estimatedPrice: nil), backoff: .milliseconds(250), sentAgo: .zero)
                == .milliseconds(250))
        #expect(ttl.delay(after: .unavailable, backoff: .milliseconds(250), sentAgo: .zero) == .milliseconds(250))
        // TTL 0 (ev-node's default): the ordinary backoff.
        let off = ResubmitDelay(mempoolTTL: 0, daBlockTime: .seconds(2))
        #expect(off.delay(after: .notIncluded, backoff: .milliseconds(250), sentAgo: .zero) == .milliseconds(250))
        // An absurd TTL saturates instead of overflowing.
        #expect(ResubmitDelay(mempoolTTL: .max, daBlockTime: .seconds(6)).ttl == .nanoseconds(Int64.max))
    }

    @Test func theNodeConfigReachesTheSubmitterOptions() {
        var config = DAConfig(address: try! HTTPEndpoint(parsing: "http://127.0.0.1:7980"), authToken: "", namespace: "",
                              dataNamespace: "", blockTime: .seconds(3), startHeight: 0, maxBlobSize: 2000,
                              requestTimeout: .seconds(60), fetchParallelism: 4, txConfig: DATxConfig(),
                              gasMultiplier: 1, signingAddresses: [], tlsCAFile: "", subscribe: false)
        config.batching.strategy = .adaptive
        config.batching.sizeThreshold = 0.5
        config.mempoolTTL = 7
        config.maxSubmitAttempts = 12
        let options = SubmitterOptions(config: config, chainID: "c")
        #expect(options.batchingPolicy.strategy == .adaptive)
        #expect(options.batchingPolicy.sizeThresholdBytes == 1000)
        #expect(options.batchingPolicy.maxDelay == .seconds(3))
        #expect(options.resubmitDelay.ttl == .seconds(21))
        #expect(options.backoff.maxAttempts == 12)
        config.maxSubmitAttempts = 0
        #expect(SubmitterOptions(config: config, chainID: "c").backoff.maxAttempts == .max, "0: never give up")
    }
}
