@testable import EVM
import Synchronization
import Testing
import ProcessKit

/// The EVM executor's gate: one holder at a time, waiters let in in arrival order.
@Suite struct SerialGateTests {
    @Test(.timeLimit(.minutes(1)))
    func oneHolderAtATimeInArrivalOrder() async throws {
        let gate = SerialGate()
        await gate.acquire()
        let order = Entered()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<3 {
                // One at a time, so that the arrival order is known.
                group.addTask {
                    await gate.acquire()
                    order.append(i)
                    gate.release()
                }
                try await waitUntil("waiter \(i) to queue") { gate.waiting == i + 1 }
            }
            #expect(order.all.isEmpty, "nobody enters while the gate is held")
            gate.release()
            try await group.waitForAll()
        }
        #expect(order.all == [0, 1, 2])
        // Free again: taken at once.
        await gate.acquire()
        gate.release()
    }
}

/// Who got through the gate, in order.
private final class Entered: Sendable {
    private let list = Mutex<[Int]>([])
    var all: [Int] { list.withLock { $0 } }
    func append(_ i: Int) { list.withLock { $0.append(i) } }
}
