import Primitives
import DAClient
import Submission
import Store
import Config
import Foundation
import ProcessKit
import Synchronization
import Testing
import TestSupport

/// The submitter with a real block store and a real `evnode local-da` process.
@Suite struct SubmitterTests {
    let headerNS = DANamespace(name: "sub-headers")
    let dataNS = DANamespace(name: "sub-data")

    func options(maxBlobSize: Int = 1_000_000, shared: Bool = false) -> SubmitterOptions {
        SubmitterOptions(headerNamespace: headerNS, dataNamespace: shared ? headerNS : dataNS,
                         maxBlobSize: maxBlobSize, interval: .milliseconds(50),
                         backoff: RetryPolicy(maxAttempts: .max, initialDelay: .milliseconds(50), maxDelay: .milliseconds(400)))
    }

    /// Block h has txs unless h is a multiple of 3.
    func produce(_ chain: TestChain, _ heights: ClosedRange<Int>) throws {
        for h in heights {
            _ = try chain.produce(h % 3 == 0 ? [] : ["k\(h)=v\(h)", "n\(h)=\(h)"])
        }
    }

    func expectEveryBlockOnceOnDA(_ contents: DAContents, through top: UInt64, chain: TestChain) throws {
        #expect(contents.badSignatures == 0)
        for h in 1...top {
            #expect(contents.headers[h]?.count == 1, "header \(h) posted \(contents.headers[h]?.count ?? 0) times")
            let hasTxs = try !(chain.store.blockData(at: h)?.txs.isEmpty ?? true)
            #expect((contents.data[h]?.count ?? 0) == (hasTxs ? 1 : 0), "data \(h) posted \(contents.data[h]?.count ?? 0) times")
            // The store's inclusion records say where the blobs really are.
            let inclusion = try chain.store.daInclusion(at: h)
            #expect(inclusion.headerDAHeight == contents.headers[h]?.first, "header \(h)")
            #expect(inclusion.dataDAHeight == contents.data[h]?.first, "data \(h)")
        }
        #expect(contents.headers.keys.max() == top, "nothing above the store height")
        // Height order: a later block never lands at an earlier DA height.
        let daHeights = (1...top).map { contents.headers[$0]!.first! }
        #expect(daHeights == daHeights.sorted())
    }

    @Test func postsBlocksInOrderAndFinalizes() async throws {
        try await withLocalDA { _, client, dir in
            let chain = try TestChain(chainID: "da-test", path: dir.path + "/store")
            defer { chain.close() }
            try produce(chain, 1...12)
            let submitter = DASubmitter(client: client, store: chain.store, executor: chain.executor,
                                        signer: chain.signer, options: options())
            let submissions = try await submitter.submitPending()
            #expect(submissions == 2, "one submission per namespace for all 12 blocks")
            #expect(chain.store.finalizedHeight == 12)
            #expect(try chain.store.submitterProgress() == SubmitterProgress(lastHeaderHeight: 12, lastDataHeight: 12))
            #expect(try await submitter.submitPending() == 0, "nothing left to post")

            try produce(chain, 13...15)
            #expect(try await submitter.submitPending() == 2)
            #expect(chain.store.finalizedHeight == 15)
            try expectEveryBlockOnceOnDA(try await DAContents.read(client, headerNamespace: headerNS, dataNamespace: dataNS),
                                         through: 15, chain: chain)
        }
    }

    @Test func sharedNamespaceMeansOneSubmissionPerBatch() async throws {
        try await withLocalDA { _, client, dir in
            let chain = try TestChain(chainID: "da-test", path: dir.path + "/store")
            defer { chain.close() }
            try produce(chain, 1...9)
            let submitter = DASubmitter(client: client, store: chain.store, executor: chain.executor,
                                        signer: chain.signer, options: options(shared: true))
            #expect(try await submitter.submitPending() == 1)
            let contents = try await DAContents.read(client, headerNamespace: headerNS, dataNamespace: headerNS)
            try expectEveryBlockOnceOnDA(contents, through: 9, chain: chain)
            for h in UInt64(1)...9 where contents.data[h] != nil {
                #expect(contents.data[h] == contents.headers[h], "header and data of \(h) in one DA block")
            }
        }
    }

    @Test func batchesAreSplitWhenTheDANodeFindsThemTooLarge() async throws {
        // The DA node accepts 1,500 bytes per submission; the submitter thinks 100 kB is fine.
        try await withLocalDA(arguments: ["--block-time", "1h", "--max-blob-size", "1500"]) { _, client, dir in
            let chain = try TestChain(chainID: "da-test", path: dir.path + "/store")
            defer { chain.close() }
            try produce(chain, 1...20)
            let submitter = DASubmitter(client: client, store: chain.store, executor: chain.executor,
                                        signer: chain.signer, options: options(maxBlobSize: 100_000, shared: true))
            let submissions = try await submitter.submitPending()
            #expect(submissions > 2, "split into several submissions")
            #expect(chain.store.finalizedHeight == 20)
            try expectEveryBlockOnceOnDA(try await DAContents.read(client, headerNamespace: headerNS, dataNamespace: headerNS),
                                         through: 20, chain: chain)
        }
    }

    @Test func aBlobOverTheLimitStopsTheSubmitterWithItsHeight() async throws {
        try await withLocalDA(arguments: ["--block-time", "1h", "--max-blob-size", "600"]) { _, client, dir in
            let chain = try TestChain(chainID: "da-test", path: dir.path + "/store")
            defer { chain.close() }
            _ = try chain.produce(["small=1"])
            _ = try chain.produce(["big=" + String(repeating: "x", count: 2_000)])
            let submitter = DASubmitter(client: client, store: chain.store, executor: chain.executor,
                                        signer: chain.signer, options: options(maxBlobSize: 100_000))
            await #expect {
                try await submitter.run()
            } throws: { error in
                guard case let .blobTooLarge(kind, height, _, _)? = error as? SubmitterError else { return false }
                return kind == .data && height == 2
            }
            #expect(chain.store.finalizedHeight == 1, "the block before it is posted and final")
        }
    }

    @Test func resumesAfterRestartWithoutPostingAnythingTwice() async throws {
        try await withLocalDA { _, client, dir in
            let chain = try TestChain(chainID: "da-test", path: dir.path + "/store")
            defer { chain.close() }
            try produce(chain, 1...6)
            do {
                let submitter = DASubmitter(client: client, store: chain.store, executor: chain.executor,
                                            signer: chain.signer, options: options())
                try await submitter.submitPending()
            }
            // Restart: the store is reopened, a new submitter starts from what the store recorded.
            try chain.reopen()
            try produce(chain, 7...10)
            let submitter = DASubmitter(client: client, store: chain.store, executor: chain.executor,
                                        signer: chain.signer, options: options())
            let task = Task { try await submitter.run() }
            try await waitUntil("finalized height 10") { chain.store.finalizedHeight == 10 }
            task.cancel()
            try await task.value  // returns, does not throw, when cancelled
            try expectEveryBlockOnceOnDA(try await DAContents.read(client, headerNamespace: headerNS, dataNamespace: dataNS),
                                         through: 10, chain: chain)
        }
    }

    /// The process stopped after recording the DA inclusion of some blocks but before it
    /// advanced its progress: those blocks are not posted again.
    @Test func inclusionRecordedBeforeACrashIsNotPostedAgain() async throws {
        try await withLocalDA { _, client, dir in
            let chain = try TestChain(chainID: "da-test", path: dir.path + "/store")
            defer { chain.close() }
            try produce(chain, 1...8)
            let first = DASubmitter(client: client, store: chain.store, executor: chain.executor,
                                    signer: chain.signer, options: options())
            try await first.submitPending()
            let before = try await DAContents.read(client, headerNamespace: headerNS, dataNamespace: dataNS)
            // Wind the progress and finality record back as if the crash hit between the writes;
            // the inclusion records stay.
            try chain.store.setSubmitterProgress(SubmitterProgress(lastHeaderHeight: 3, lastDataHeight: 2))
            try produce(chain, 9...9)

            let second = DASubmitter(client: client, store: chain.store, executor: chain.executor,
                                     signer: chain.signer, options: options())
            let task = Task { try await second.run() }
            try await waitUntil("finalized height 9") { chain.store.finalizedHeight == 9 }
            task.cancel()
            try await task.value
            let after = try await DAContents.read(client, headerNamespace: headerNS, dataNamespace: dataNS)
            for h in UInt64(1)...8 {
                #expect(after.headers[h] == before.headers[h], "header \(h) not posted again")
                #expect(after.data[h] == before.data[h], "data \(h) not posted again")
            }
            try expectEveryBlockOnceOnDA(after, through: 9, chain: chain)
        }
    }

    /// The DA node is stopped for a while and comes back on the same address: nothing is lost,
    /// nothing posted twice, and finality catches up.
    @Test func survivesADANodeOutage() async throws {
        let dir = TempDirectory("evnode-submitter-outage")
        let daHome = dir.path + "/da"
        var da = try await LocalDAProcess.start(home: daHome, arguments: ["--block-time", "200ms"])
        let port = da.port
        let client = try CelestiaDAClient(options: DAClientOptions(
            url: da.url, connectTimeout: .seconds(1), requestTimeout: .seconds(5),
            retry: RetryPolicy(maxAttempts: 2, initialDelay: .milliseconds(20), maxDelay: .milliseconds(20))))
        let chain = try TestChain(chainID: "da-test", path: dir.path + "/store")
        let submitter = DASubmitter(client: client, store: chain.store, executor: chain.executor,
                                    signer: chain.signer, options: options())
        let running = Task { try await submitter.run() }
        do {
            try produce(chain, 1...10)
            try await waitUntil("blocks 1-10 final") { chain.store.finalizedHeight == 10 }

            #expect(await da.stop() == 0)
            try produce(chain, 11...30)
            try await waitUntil("the submitter to fail against the stopped DA node") {
                submitter.status.consecutiveFailures >= 3
            }
            #expect(chain.store.finalizedHeight == 10, "nothing is final while DA is down")

            da = try await LocalDAProcess.start(home: daHome, port: port, arguments: ["--block-time", "200ms"])
            try await waitUntil("blocks 11-30 final after DA returned", timeout: .seconds(30)) {
                chain.store.finalizedHeight == 30
            }
            #expect(submitter.status.consecutiveFailures == 0)
            #expect(submitter.status.lastError == nil)
            try produce(chain, 31...32)
            try await waitUntil("blocks 31-32 final") { chain.store.finalizedHeight == 32 }

            running.cancel()
            try await running.value
            try expectEveryBlockOnceOnDA(try await DAContents.read(client, headerNamespace: headerNS, dataNamespace: dataNS),
                                         through: 32, chain: chain)
        } catch {
            running.cancel()
            _ = try? await running.value
            await client.shutdown()
            chain.close()
            await da.stop()
            throw error
        }
        await client.shutdown()
        chain.close()
        await da.stop()
    }

    @Test func wakeEndsTheWaitBetweenChecks() async throws {
        try await withLocalDA { _, client, dir in
            let chain = try TestChain(chainID: "da-test", path: dir.path + "/store")
            defer { chain.close() }
            var slow = options()
            slow.interval = .seconds(3600)
            let submitter = DASubmitter(client: client, store: chain.store, executor: chain.executor,
                                        signer: chain.signer, options: slow)
            try produce(chain, 1...1)
            let task = Task { try await submitter.run() }
            try await waitUntil("block 1 final (posted on start)") { chain.store.finalizedHeight == 1 }
            try produce(chain, 2...4)
            submitter.wake()
            try await waitUntil("blocks 2-4 final after wake()") { chain.store.finalizedHeight == 4 }
            task.cancel()
            try await task.value
        }
    }

    @Test func aWrongTokenIsFatalNotRetriedForever() async throws {
        try await withLocalDA(arguments: ["--block-time", "1h", "--auth-token", "right"],
                              clientOptions: { DAClientOptions(url: $0, authToken: "wrong", retry: .none) }) { _, client, dir in
            let chain = try TestChain(chainID: "da-test", path: dir.path + "/store")
            defer { chain.close() }
            try produce(chain, 1...2)
            let submitter = DASubmitter(client: client, store: chain.store, executor: chain.executor,
                                        signer: chain.signer, options: options())
            await #expect {
                try await submitter.run()
            } throws: { error in
                guard case .da(.httpStatus(401, _, _))? = error as? SubmitterError else { return false }
                return true
            }
            #expect(chain.store.finalizedHeight == 0)
        }
    }
    /// `da.max_submit_attempts`: a DA node that keeps refusing one batch stops the submitter
    /// with an error naming the heights and the DA node's last answer; nothing is recorded.
    @Test func maxSubmitAttemptsStopsWithTheHeightsAndTheLastDAError() async throws {
        try await withLocalDA(arguments: ["--block-time", "1h", "--min-gas-price", "1"]) { _, client, dir in
            let chain = try TestChain(chainID: "da-test", path: dir.path + "/store")
            defer { chain.close() }
            try produce(chain, 1...3)
            var opts = options(shared: true)
            opts.backoff.maxAttempts = 3
            opts.txConfig = DATxConfig(gasPrice: 0.001)
            let submitter = DASubmitter(client: client, store: chain.store, executor: chain.executor,
                                        signer: chain.signer, options: opts)
            let outcome = Mutex<Result<Void, any Error>?>(nil)
            let task = Task {
                do {
                    try await submitter.run()
                    outcome.withLock { $0 = .success(()) }
                } catch {
                    outcome.withLock { $0 = .failure(error) }
                }
            }
            defer { task.cancel() }
            try await waitUntil("the submitter gives up", timeout: .seconds(30)) { outcome.withLock { $0 != nil } }
            guard case .failure(let error)? = outcome.withLock({ $0 }),
                  case let .gaveUp(heights, attempts, lastError)? = error as? SubmitterError else {
                Issue.record("expected gaveUp, got \(String(describing: outcome.withLock { $0 }))")
                return
            }
            #expect(heights == 1...3)
            #expect(attempts == 3)
            #expect(SubmitFailure.classify(lastError) == .feeTooLow(estimatedPrice: nil), "\(lastError)")
            #expect("\(error)".contains("blocks 1-3") && "\(error)".contains("insufficient fee"), "\(error)")
            #expect(submitter.status.consecutiveFailures == 3)
            #expect(chain.store.finalizedHeight == 0)
        }
    }

    /// `da.mempool_ttl`: a submission that was not included in time may still land, so it is
    /// posted again only once the TTL (in DA block times) has passed since it was sent.
    @Test func aSubmissionNotIncludedIsResentOnlyAfterTheMempoolTTL() async throws {
        try await withLocalDA(arguments: ["--block-time", "1h", "--response-delay", "2s"],
                              clientOptions: { DAClientOptions(url: $0, requestTimeout: .milliseconds(300), retry: .none) }) { _, client, dir in
            let chain = try TestChain(chainID: "da-test", path: dir.path + "/store")
            defer { chain.close() }
            try produce(chain, 1...2)
            var opts = options(shared: true)
            opts.interval = .seconds(1)
            opts.mempoolTTL = 3
            let submitter = DASubmitter(client: client, store: chain.store, executor: chain.executor,
                                        signer: chain.signer, options: opts)
            let task = Task { try await submitter.run() }
            defer { task.cancel() }
            try await waitUntil("the first attempt timed out", timeout: .seconds(30), every: .milliseconds(5)) {
                submitter.status.consecutiveFailures >= 1
            }
            let first = ContinuousClock.now
            try await waitUntil("the second attempt timed out", timeout: .seconds(30), every: .milliseconds(5)) {
                submitter.status.consecutiveFailures >= 2
            }
            let gap = ContinuousClock.now - first
            // The resend waits 3 DA blocks (3 s) from when the first attempt was sent (~0.3 s
            // before it timed out); with the ordinary 50 ms backoff it would come after ~0.35 s.
            #expect(gap >= .milliseconds(2500), "resent after \(gap)")
        }
    }
    /// `da.batching_strategy size`: the running submitter holds blocks back until their bytes
    /// reach the threshold fraction of the blob size, then posts them all.
    @Test func theSizeStrategyWaitsForTheThreshold() async throws {
        try await withLocalDA { _, client, dir in
            let chain = try TestChain(chainID: "da-test", path: dir.path + "/store")
            defer { chain.close() }
            try produce(chain, 1...2)
            let twoBlocks = try chain.store.encodedBlocks(in: 1...2).reduce(0) { $0 + $1.header.count + $1.data.count }
            var opts = options(maxBlobSize: 100_000, shared: true)
            opts.batching.strategy = .size
            // Threshold a little above two blocks' bytes: reached after about three more.
            opts.batching.sizeThreshold = Double(twoBlocks * 2) / 100_000
            let submitter = DASubmitter(client: client, store: chain.store, executor: chain.executor,
                                        signer: chain.signer, options: opts)
            let task = Task { try await submitter.run() }
            defer { task.cancel() }
            var quiet = true
            let end = ContinuousClock.now + .seconds(1)
            while ContinuousClock.now < end {
                if chain.store.finalizedHeight != 0 || submitter.status.submissions != 0 { quiet = false }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(quiet, "posted \(submitter.status.submissions) times below the size threshold")
            try produce(chain, 3...8)
            try await waitUntil("all 8 blocks posted once the threshold is reached") { chain.store.finalizedHeight == 8 }
        }
    }
}
