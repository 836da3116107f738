@testable import Primitives
@testable import DAClient
import Foundation
import ProcessKit
import Synchronization
import Testing
import TestSupport

/// Attempts per height, as a retrieval's fetches report them.
final class AttemptLog: DAFetchObserver {
    let failures = Mutex<[UInt64: Int]>([:])
    let answers = Mutex<Int>(0)
    func fetchAnswered(height: UInt64) { answers.withLock { $0 += 1 } }
    func fetchFailed(height: UInt64, error: DAError, attempt: Int, retryIn: Duration) {
        failures.withLock { $0[height, default: 0] += 1 }
    }
    var byHeight: [UInt64: Int] { failures.withLock { $0 } }
}

/// The paced retrieval (`DAFetchPacer`) against a real `evnode local-da` with a response delay,
/// and behind `faulty-da` failing every request.
@Suite struct PacedRetrievalTests {
    let ns = DANamespace(name: "paced")

    /// A DA node answering every request 50 ms late, with 400 heights (empty ones are created
    /// every 5 ms, a few hold blobs): the window grows past the 8 a fixed retrieval keeps in
    /// flight, every height comes once, in order, with its blobs, each prepared in its fetch.
    @Test func theWindowGrowsOverASlowDAAndEveryHeightComesInOrder() async throws {
        try await withLocalDA(arguments: ["--block-time", "5ms"],
                              clientOptions: { DAClientOptions(url: $0, connections: 65, retry: .none) }) { da, client, dir in
            var expected: [UInt64: [UInt8]] = [:]
            for i in 0..<10 {
                let payload = bytes("paced-\(i)")
                expected[try await client.submit([DABlob(namespace: ns, data: payload)])] = payload
            }
            try await waitUntil("400 DA heights", timeout: .seconds(30)) { try await client.networkHead().height >= 400 }
            await da.stop()
            let slow = try await LocalDAProcess.start(home: dir.path + "/da", port: da.port,
                                                      arguments: ["--block-time", "1h", "--response-delay", "50ms"])
            defer { slow.child.signal(SIGKILL) }
            let head = try await client.networkHead().height
            let pacer = DAFetchPacer(maximum: 64)
            pacer.headKnown(head)
            let retry = DAFetchRetry(policy: RetryPolicy(maxAttempts: .max, initialDelay: .milliseconds(20),
                                                         maxDelay: .milliseconds(200)))
            var seen: [UInt64] = []
            var reachedAt: UInt64?
            let walk = client.retrieve(heights: 1...(head + 100), namespaces: [ns], pacer: pacer, retry: retry) { height, blobs in
                (height, blobs.map(\.data))
            }
            for try await event in walk {
                switch event {
                case .height(let height, let prepared):
                    #expect(prepared.0 == height, "prepared in the fetch of its own height")
                    #expect(prepared.1 == (expected[height].map { [$0] } ?? []), "height \(height)")
                    seen.append(height)
                case .headReached(let next):
                    reachedAt = next
                }
            }
            #expect(seen == Array(1...head))
            #expect(reachedAt == head + 1)
            #expect(pacer.peak >= 32, "the window grew past 8 while the answers per second grew (peak \(pacer.peak))")
            await slow.stop()
        }
    }

    /// Walks `heights` behind a proxy failing every `blob.GetAll` until the first height has
    /// failed `attempts` times; returns the failures per height.
    func failuresBehindAFailingDA(pacer: DAFetchPacer, attempts: Int) async throws -> [UInt64: Int] {
        try await withLocalDA { da, _, dir in
            let proxy = try await FaultyDAProxy.start(upstream: da.url, faultRate: 1, seed: 3, logDirectory: dir.sub("logs"),
                                                      extra: ["--faults", "500"])
            let url = proxy.url
            defer { proxy.child.kill9() }
            let client = try CelestiaDAClient(options: DAClientOptions(url: url, connections: 9, retry: .none))
            let log = AttemptLog()
            let retry = DAFetchRetry(policy: RetryPolicy(maxAttempts: .max, initialDelay: .milliseconds(10),
                                                         maxDelay: .milliseconds(40)), observer: log, hedge: false)
            let walk = Task {
                let heights = client.retrieve(heights: 1...40, namespaces: [ns], pacer: pacer, retry: retry) { _, blobs in blobs }
                for try await _ in heights {}
            }
            try await waitUntil("height 1 to fail \(attempts) times", timeout: .seconds(30)) {
                (log.byHeight[1] ?? 0) >= attempts
            }
            walk.cancel()
            _ = await walk.result
            await client.shutdown()
            return log.byHeight
        }
    }

    /// A DA node failing every request: the adaptive window shrinks to the height the walk waits
    /// for, so only that height is retried (with its own backoff) and the DA node sees a fraction
    /// of the requests a fixed window of 8 sends over the same number of retries.
    @Test func aFailingDASeesFewerRequestsNotMore() async throws {
        let adaptive = try await failuresBehindAFailingDA(pacer: DAFetchPacer(maximum: 64, initial: 8), attempts: 12)
        let fixed = try await failuresBehindAFailingDA(pacer: .fixed(8), attempts: 12)
        let others = adaptive.filter { $0.key != 1 }
        #expect(others.values.allSatisfy { $0 <= 2 }, "only the awaited height is retried: \(adaptive.sorted { $0.key < $1.key })")
        let adaptiveTotal = adaptive.values.reduce(0, +), fixedTotal = fixed.values.reduce(0, +)
        #expect(adaptiveTotal * 2 < fixedTotal, "adaptive \(adaptiveTotal) requests vs fixed-8 \(fixedTotal)")
        print("failing DA, 12 retries of the awaited height: adaptive window \(adaptiveTotal) requests, fixed 8 \(fixedTotal)")
    }
}
