import DAClient
import Foundation
import Testing
import TestSupport

@Suite struct RangeRetrievalTests {
    let ns = namespace("range")
    let other = namespace("range-other")

    /// Submits blobs at `count` consecutive heights (every third in another namespace, so that
    /// those heights are empty for `ns`) and returns the heights.
    func fill(_ client: CelestiaDAClient, count: Int) async throws -> [UInt64: [UInt8]] {
        var expected: [UInt64: [UInt8]] = [:]
        for i in 0..<count {
            let payload = bytes("payload-\(i)")
            let target = i % 3 == 2 ? other : ns
            let height = try await client.submit([DABlob(namespace: target, data: payload)])
            expected[height] = target == ns ? payload : nil
        }
        return expected
    }

    @Test func yieldsHeightsInOrderAndStopsAtTheHead() async throws {
        try await withLocalDA(arguments: ["--block-time", "1h"],
                              clientOptions: { DAClientOptions(url: $0, connections: 8, retry: .none) }) { _, client, _ in
            let start = try await client.networkHead().height + 1
            let expected = try await fill(client, count: 30)
            let head = try await client.networkHead().height
            #expect(head == start + 29)

            var seen: [UInt64] = []
            var reachedAt: UInt64?
            for try await event in client.retrieve(heights: start...(head + 20), namespaces: [ns], parallelism: 6) {
                switch event {
                case .height(let h):
                    seen.append(h.height)
                    #expect(h.blobs.map(\.data) == (expected[h.height].map { [$0] } ?? []), "height \(h.height)")
                case .headReached(let next):
                    reachedAt = next
                }
            }
            #expect(seen == Array(start...head), "every height once, strictly in order")
            #expect(reachedAt == head + 1)

            // A range within the head ends without a head event.
            var events: [DARetrievalEvent] = []
            for try await e in client.retrieve(heights: start...(start + 4), namespaces: [ns, other], parallelism: 3) {
                events.append(e)
            }
            #expect(events.count == 5)
            #expect(events.allSatisfy { if case .height = $0 { true } else { false } })
        }
    }

    @Test func anErrorEndsTheWalkAfterTheHeightsBeforeIt() async throws {
        // A token the client lacks: every fetch fails with 401, the walk throws at the first height.
        try await withLocalDA(arguments: ["--block-time", "1h", "--auth-token", "t"]) { da, _, _ in
            let client = try CelestiaDAClient(options: DAClientOptions(url: da.url, retry: .none))
            var count = 0
            await #expect {
                for try await _ in client.retrieve(heights: 1...50, namespaces: [ns], parallelism: 4) { count += 1 }
            } throws: { error in
                guard case .httpStatus(401, _, _)? = error as? DAError else { return false }
                return true
            }
            #expect(count == 0)
            await client.shutdown()
        }
    }

    /// Parallel retrieval against a DA node that takes 50 ms per answer, versus one height at a
    /// time. Prints the figures; asserts only that both return the same heights in order.
    @Test func parallelRetrievalVersusOneAtATime() async throws {
        let delay = 50
        try await withLocalDA(arguments: ["--block-time", "1h", "--response-delay", "\(delay)ms"],
                              clientOptions: { DAClientOptions(url: $0, connections: 9, retry: .none) }) { _, client, _ in
            let start = try await client.networkHead().height + 1
            _ = try await fill(client, count: 40)
            let range = start...(start + 39)

            func walk(_ parallelism: Int) async throws -> (heights: [UInt64], seconds: Double) {
                let clock = ContinuousClock()
                var heights: [UInt64] = []
                let elapsed = try await clock.measure {
                    for try await event in client.retrieve(heights: range, namespaces: [ns], parallelism: parallelism) {
                        if case .height(let h) = event { heights.append(h.height) }
                    }
                }
                let (s, atto) = elapsed.components
                return (heights, Double(s) + Double(atto) / 1e18)
            }
            let sequential = try await walk(1)
            let parallel = try await walk(8)
            #expect(sequential.heights == Array(range))
            #expect(parallel.heights == Array(range))
            print(String(format: "DA range retrieval, 40 heights, %d ms per answer: one at a time %.2f s (%.0f heights/s), "
                         + "8 in parallel %.2f s (%.0f heights/s), speed-up %.1fx",
                         delay, sequential.seconds, 40 / sequential.seconds, parallel.seconds, 40 / parallel.seconds,
                         sequential.seconds / parallel.seconds))
        }
    }
}
