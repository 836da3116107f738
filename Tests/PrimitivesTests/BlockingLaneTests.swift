import Primitives
import Foundation
import Synchronization
import Testing
@testable import Primitives

@Suite struct BlockingLaneTests {
    struct Refused: Error, Equatable { let code: Int }

    /// A count shared with the lane's threads.
    final class Counter: Sendable {
        private let atomic = Atomic<Int>(0)
        func add() { atomic.add(1, ordering: .releasing) }
        var value: Int { atomic.load(ordering: .acquiring) }
    }

    @Test func returnsWhatTheBodyReturnsOnALaneThread() async throws {
        let lane = BlockingLane(name: "lane-test", threads: 2)
        let name = try await lane.run { () throws(Refused) -> String in Thread.current.name ?? "" }
        #expect(name.hasPrefix("lane-test-"))
        await lane.shutdown()
    }

    @Test func typedErrorsComeThrough() async {
        let lane = BlockingLane(name: "lane-errors", threads: 1)
        await #expect(throws: BlockingLaneError<Refused>.failed(Refused(code: 7))) {
            try await lane.run { () throws(Refused) -> Int in throw Refused(code: 7) }
        }
        // The convenience form hands the body's own error through unwrapped.
        await #expect(throws: Refused(code: 8)) {
            try await lane.run(orIfShutDown: Refused(code: 0)) { () throws(Refused) -> Int in throw Refused(code: 8) }
        }
        await lane.shutdown()
    }

    @Test func runAfterShutdownIsRefusedAndRunsNothing() async {
        let lane = BlockingLane(name: "lane-closed", threads: 1)
        await lane.shutdown()
        let ran = Counter()
        await #expect(throws: BlockingLaneError<Refused>.shutDown(lane: "lane-closed")) {
            try await lane.run { () throws(Refused) in ran.add() }
        }
        await #expect(throws: Refused(code: -1)) {
            try await lane.run(orIfShutDown: Refused(code: -1)) { () throws(Refused) in ran.add() }
        }
        #expect(ran.value == 0)
        await lane.shutdown() // a second shutdown returns at once
    }

    @Test func shutdownWaitsForTheWorkRunning() async throws {
        let lane = BlockingLane(name: "lane-drain", threads: 1)
        let started = DispatchSemaphore(value: 0)
        let release = DispatchSemaphore(value: 0)
        let finished = Counter()
        let work = Task {
            try await lane.run { () throws(Refused) -> Int in
                started.signal()
                release.wait()
                finished.add()
                return 42
            }
        }
        // Waited for on a lane of its own: no cooperative thread blocks in this test.
        let observer = BlockingLane(name: "lane-observer", threads: 1)
        try await observer.run { () throws(Refused) in started.wait() }
        let shutdown = Task { await lane.shutdown() }
        let deadline = ContinuousClock.now + .seconds(10)
        while !lane.isShutDown {
            #expect(ContinuousClock.now < deadline, "shutdown was not requested within 10 s")
            if ContinuousClock.now >= deadline { break }
            try await Task.sleep(for: .milliseconds(5))
        }
        await #expect(throws: BlockingLaneError<Refused>.shutDown(lane: "lane-drain")) {
            try await lane.run { () throws(Refused) in }
        }
        #expect(finished.value == 0)
        release.signal()
        await shutdown.value
        // Shutdown returned only after the running body ended, and the body's caller got its value.
        #expect(finished.value == 1)
        #expect(try await work.value == 42)
        await observer.shutdown()
    }

    @Test func workHandedInBeforeShutdownStillRuns() async throws {
        let lane = BlockingLane(name: "lane-queue", threads: 1)
        let gate = DispatchSemaphore(value: 0)
        let started = DispatchSemaphore(value: 0)
        let count = Counter()
        let first = Task {
            try await lane.run { () throws(Refused) in started.signal(); gate.wait(); count.add() }
        }
        let observer = BlockingLane(name: "lane-queue-observer", threads: 1)
        try await observer.run { () throws(Refused) in started.wait() }
        await observer.shutdown()
        let queued = (0..<20).map { _ in
            Task { () async throws -> Void in try await lane.run { () throws(Refused) in count.add() } }
        }
        // Every queued job is handed in before shutdown starts (they wait behind the first).
        let deadline = ContinuousClock.now + .seconds(10)
        while lane.queuedForTesting < 20 && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(lane.queuedForTesting == 20)
        let shutdown = Task { await lane.shutdown() }
        gate.signal()
        await shutdown.value
        try await first.value
        for task in queued { try await task.value }
        #expect(count.value == 21)
    }
}
