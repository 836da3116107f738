@testable import Primitives
@testable import DAClient
@testable import Sync
import Chain
import Foundation
import Logging
import Synchronization
import Testing
import TestSupport

/// Counts what a retrieval's fetches report.
final class CountingObserver: DAFetchObserver {
    let counts = Mutex<(answered: Int, failed: Int)>((0, 0))
    func fetchAnswered(height: UInt64) { counts.withLock { $0.answered += 1 } }
    func fetchFailed(height: UInt64, error: DAError, attempt: Int, retryIn: Duration) { counts.withLock { $0.failed += 1 } }
}

/// The follower's behaviour against a DA that fails (issue 14, "Liveness under a flaky DA").
@Suite struct FlakyDATests {
    let ns = DANamespace(name: "flaky")

    /// Behind a proxy that answers half of the `blob.GetAll` calls with faults (500, truncated,
    /// malformed, 50,000-deep, wrong types, stalls, resets, 429), a retrieval with per-height
    /// retry yields every height in order with exactly the blobs DA holds, and the faults reach
    /// the observer; the walk never ends early.
    @Test func retrievalRetriesTheFailingHeightAloneAndYieldsEverything() async throws {
        try await withLocalDA { da, direct, dir in
            var expected: [UInt64: [DABlob]] = [:]
            for i in 0..<25 {
                let blob = DABlob(namespace: ns, data: Array("blob \(i)".utf8))
                let h = try await direct.submit([blob])
                expected[h] = try await direct.getAll(height: h, namespaces: [ns])
            }
            let head = try await direct.networkHead().height
            let proxy = try await FaultyDAProxy.start(upstream: da.url, faultRate: 0.5, seed: 5,
                                                      logDirectory: dir.sub("logs"), extra: ["--stall-ms", "1500"])
            let url = proxy.url
            // Killed here, not in a task the test process may not live to run (it leaked one).
            defer { proxy.child.kill9() }
            let client = try CelestiaDAClient(options: DAClientOptions(url: url, requestTimeout: .seconds(5), retry: .none))
            let observer = CountingObserver()
            let retry = DAFetchRetry(policy: RetryPolicy(maxAttempts: .max, initialDelay: .milliseconds(10),
                                                         maxDelay: .milliseconds(100)), observer: observer)
            var seen: [UInt64] = []
            var reachedAt: UInt64?
            for try await event in client.retrieve(heights: 1...(head + 10), namespaces: [ns], parallelism: 6, retry: retry) {
                switch event {
                case .height(let blobs):
                    seen.append(blobs.height)
                    if let want = expected[blobs.height] { #expect(blobs.blobs == want, "height \(blobs.height)") }
                    else { #expect(blobs.blobs.isEmpty) }
                case .headReached(let next):
                    reachedAt = next
                }
            }
            await client.shutdown()
            #expect(seen == Array(1...head))
            #expect(reachedAt == head + 1)
            let counts = observer.counts.withLock { $0 }
            #expect(counts.failed >= 5, "the proxy's faults reached the observer (\(counts))")
            #expect(counts.answered >= Int(head))
        }
    }

    /// One WARNING when DA starts failing, a summary every 30 s, one INFO once it has answered
    /// cleanly for the quiet period — whatever the number of failed attempts. 401 is said once at
    /// ERROR level and stays in the snapshot until DA answers.
    @Test func availabilityLogsEpisodesNotRetries() {
        let capture = LogCapture()
        let availability = DAAvailability(logger: capture.logger)
        let t0 = ContinuousClock.now
        let fault = DAError.httpStatus(status: 500, body: "", url: "http://da/")
        for i in 0...300 {
            availability.failed(fault, context: "blob.GetAll at DA height \(i)", at: t0 + .milliseconds(100 * i))
            if i % 3 == 0 { availability.answered(at: t0 + .milliseconds(100 * i + 50)) }
        }
        // 0…29.9 s: the first WARNING only; at 30 s one summary.
        var lines = capture.all
        #expect(lines.count == 2, "\(lines.map(\.1))")
        #expect(lines.first?.0 == .warning && lines.first?.1.contains("DA is failing") == true)
        #expect(lines.last?.0 == .warning && lines.last?.1.contains("DA unavailable for 30s, 301 failed attempts") == true,
                "\(lines.last?.1 ?? "")")
        #expect(availability.snapshot.failedAttempts == 301)
        // Answers within the quiet period say nothing; after it, one INFO.
        availability.answered(at: t0 + .seconds(35))
        #expect(capture.all.count == 2)
        availability.answered(at: t0 + .seconds(41))
        lines = capture.all
        #expect(lines.count == 3)
        #expect(lines.last?.0 == .info && lines.last?.1.contains("answering again") == true, "\(lines.last?.1 ?? "")")
        #expect(availability.snapshot.failingSince == nil && availability.snapshot.failedAttempts == 0)

        // 401: a configuration problem, said once.
        let refused = DAError.httpStatus(status: 401, body: "missing or wrong bearer token", url: "http://da/")
        for i in 0..<20 { availability.failed(refused, context: "blob.GetAll", at: t0 + .seconds(50) + .milliseconds(100 * i)) }
        let errors = capture.all.filter { $0.0 == .error }
        #expect(errors.count == 1)
        #expect(errors.first?.1.contains("credentials") == true)
        #expect(availability.snapshot.authError?.contains("401") == true)
        availability.answered(at: t0 + .seconds(60))
        #expect(availability.snapshot.authError == nil)
    }

    /// `header.NetworkHead` answers of 2^64−1 and of 2^53 (issue 27, M4), over real HTTP from a
    /// lying proxy: a malformed response naming the height, never a head the follower does
    /// arithmetic on; 2^53−1, the largest plausible height, is accepted.
    @Test func anImplausibleNetworkHeadIsAMalformedResponse() async throws {
        try await withLocalDA { da, _, dir in
            for (head, accepted) in [("18446744073709551615", false), ("9007199254740992", false), ("9007199254740991", true)] {
                let proxy = try await FaultyDAProxy.start(upstream: da.url, faultRate: 0, seed: 1,
                                                          logDirectory: dir.sub("logs"), name: "liar-\(head)", extra: ["--head", head])
                defer { proxy.child.kill9() }
                let client = try CelestiaDAClient(options: DAClientOptions(url: proxy.url, retry: .none))
                do throws(DAError) {
                    let answer = try await client.networkHead()
                    #expect(accepted, "head \(head) was taken as \(answer.height)")
                    #expect(String(answer.height) == head)
                } catch {
                    #expect(!accepted, "head \(head): \(error)")
                    guard case .malformedResponse(let method, let reason) = error else {
                        Issue.record("head \(head): \(error)")
                        continue
                    }
                    #expect(method == "header.NetworkHead")
                    #expect(reason.contains("height \(head) is implausible"), "\(reason)")
                }
                await client.shutdown()
            }
        }
    }

    /// A DA height that fails while its neighbours answer (issue 27): the answers clear the
    /// "DA is failing" state, so without a count per height the follower would retry it in
    /// silence. After 5 failed attempts over at least 10 s it is stalled: one ERROR naming the
    /// height and the error, again every summary interval, the lowest such height in the
    /// snapshot; its answer ends the stall with a NOTICE.
    @Test func aHeightThatKeepsFailingAmongAnsweringNeighboursIsStalled() {
        let capture = LogCapture()
        let availability = DAAvailability(logger: capture.logger)
        let t0 = ContinuousClock.now
        let fault = DAError.malformedResponse(method: "blob.GetAll", reason: "unexpected character at offset 1")
        var stalledErrors: [String] { capture.all.filter { $0.0 == .error }.map(\.1) }
        for i in 0..<4 {
            availability.fetchFailed(height: 7, error: fault, at: t0 + .seconds(4 * i))
            availability.fetchAnswered(height: 8 + UInt64(i), at: t0 + .seconds(4 * i) + .milliseconds(500))
        }
        // 4 attempts over 12 s: not yet (5 are needed), and the answers cleared "failing".
        #expect(availability.snapshot.stalled == nil)
        #expect(availability.snapshot.failingSince == nil)
        availability.fetchFailed(height: 7, error: fault, at: t0 + .seconds(16))
        let stalled = availability.snapshot.stalled
        #expect(stalled?.daHeight == 7)
        #expect(stalled?.attempts == 5)
        #expect(stalled?.lastError.contains("DA height 7") == true)
        #expect(stalled?.lastError.contains("unexpected character") == true)
        #expect(stalledErrors.count == 1)
        #expect(stalledErrors.first?.contains("DA height 7 cannot be read: 5 failed attempts over 16s") == true,
                "\(stalledErrors)")
        // A higher height failing too does not hide the one the follower waits for.
        for i in 0..<6 { availability.fetchFailed(height: 9, error: fault, at: t0 + .seconds(17 + i)) }
        #expect(availability.snapshot.stalled?.daHeight == 7)
        // Repeated every 30 s while it lasts, not per attempt.
        for i in 1...20 { availability.fetchFailed(height: 7, error: fault, at: t0 + .seconds(16 + 2 * i)) }
        #expect(stalledErrors.count == 2, "\(stalledErrors)")
        // Read at last: the stall moves to the next stalled height (9), then ends.
        availability.fetchAnswered(height: 7, at: t0 + .seconds(60))
        #expect(availability.snapshot.stalled?.daHeight == 9)
        #expect(capture.all.contains { $0.0 == .notice && $0.1.contains("DA height 7 read after 25 failed attempts") })
        availability.fetchAnswered(height: 9, at: t0 + .seconds(61))
        #expect(availability.snapshot.stalled == nil)
    }

    final class Calls: Sendable {
        let count = Mutex(0)
        func next() -> Int { count.withLock { $0 += 1; return $0 } }
    }

    /// A stalled request is sent again after the hedge delay and the first answer wins; a
    /// request that fails before the hedge goes out is reported at once, without a second one.
    @Test func aStalledRequestIsHedgedAndAFastFailureIsNot() async throws {
        let calls = Calls()
        let answered = await HedgedRequest.run(delay: .milliseconds(50), latency: AnswerLatency()) {
            if calls.next() == 1 {
                try? await Task.sleep(for: .seconds(60))
                return .success([])
            }
            return .success([DABlob(namespace: DANamespace(name: "h"), data: [1])])
        }
        #expect(try answered.get().count == 1, "the hedge's answer won")
        #expect(calls.count.withLock { $0 } == 2)

        let failing = Calls()
        let failed = await HedgedRequest.run(delay: .seconds(30), latency: AnswerLatency()) {
            _ = failing.next()
            return .failure(.httpStatus(status: 500, body: "", url: "u"))
        }
        #expect(throws: DAError.self) { try failed.get() }
        #expect(failing.count.withLock { $0 } == 1)
    }

    @Test func retryAfterTakesSecondsOrAnHTTPDate() {
        #expect(RetryAfter.delay("3") == .seconds(3))
        #expect(RetryAfter.delay(" 0 ") == .zero)
        #expect(RetryAfter.delay("99999999") == RetryAfter.longest)
        #expect(RetryAfter.delay("soon") == nil)
        let now = Date(timeIntervalSince1970: 1_445_412_470)  // 10 s before the date below
        #expect(RetryAfter.delay("Wed, 21 Oct 2015 07:28:00 GMT", now: now) == .seconds(10))
        #expect(RetryAfter.delay("Wed, 21 Oct 2015 07:28:00 GMT", now: now + 60) == .zero)
    }
}

/// What the follower holds of data waiting for its header (issue 14, hole 7).
@Suite struct HeldDataTests {
    func data(_ height: UInt64?, _ tx: String) -> BlockData {
        BlockData(metadata: height.map { Metadata(chainID: "c", height: $0, time: 1, lastDataHash: []) }, txs: [Array(tx.utf8)])
    }

    /// Verified data without a metadata height, or for a final height, is dropped at once and
    /// never pins the resume height; the held bytes are bounded, the earliest on DA going first.
    @Test func heldDataIsBoundedByBytesAndJunkNeverPinsTheResumeHeight() {
        var tracker = InclusionTracker()
        let noHeight = tracker.addData(data(nil, "a=1"), hash: data(nil, "a=1").dataHash, bytes: 100, verified: true, daHeight: 5, finalized: 0)
        let final = tracker.addData(data(3, "a=2"), hash: data(3, "a=2").dataHash, bytes: 100, verified: true, daHeight: 6, finalized: 3)
        #expect(!noHeight && !final)
        #expect(tracker.unresolved == 0 && tracker.heldDataBytes == 0)
        #expect(tracker.lowestUnresolvedDAHeight(after: 0) == nil, "nothing pins the resume height")

        for i in 0..<5 {
            let held = tracker.addData(data(UInt64(10 + i), "k=\(i)"), hash: data(UInt64(10 + i), "k=\(i)").dataHash, bytes: 100, verified: true, daHeight: UInt64(20 + i), finalized: 3)
            #expect(held)
        }
        #expect(tracker.heldDataBytes == 500)
        let dropped = tracker.trim(max: 100_000, maxDataBytes: 250)
        #expect(dropped == 3)
        #expect(tracker.heldDataBytes == 200)
        #expect(tracker.lowestUnresolvedDAHeight(after: 3) == 23, "the earliest on DA went first")
    }

    /// Data a waiting header claims, unsigned and with forged metadata (a copy of gossiped txs
    /// posted ahead of the real blob): paired with the header's txs only, its metadata dropped,
    /// so the block is the one the proposer signed.
    @Test func claimedUnverifiedDataIsPairedWithoutItsMetadata() throws {
        let dir = TempDirectory("evnode-held")
        let source = try TestChain(chainID: "da-test", path: dir.path + "/source")
        defer { source.close() }
        try source.produce(["a=1"])
        let block = try source.store.block(at: 1)!
        var tracker = InclusionTracker()
        tracker.addHeader(block.signedHeader, daHeight: 3)
        #expect(tracker.waitingDataHashes == [block.signedHeader.header.dataHash])
        let forged = BlockData(metadata: Metadata(chainID: "forged", height: 1, time: 7, lastDataHash: [9]), txs: block.data.txs)
        let paired = tracker.addData(forged, hash: forged.dataHash, bytes: 50, verified: false, daHeight: 4, finalized: 0)
        #expect(paired)
        let complete = tracker.takeAllComplete()
        #expect(complete.count == 1)
        #expect(complete.first?.data.metadata == nil)
        #expect(complete.first?.data.txs == block.data.txs)
        #expect(tracker.unresolved == 0 && tracker.heldDataBytes == 0)
    }
}
