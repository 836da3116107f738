import Chain
import Config
import Execution
import Primitives
import Store
@testable import Sync
import Testing
import TestSupport

/// The sync side's write of what the DA follower found final, on a real store.
@Suite struct DAFinalityRecorderTests {
    @Test func recordsInclusionsFinalityAndTheResumeHeight() async throws {
        let chain = try TestChain()
        try chain.build(to: 3)
        let recorder = DAFinalityRecorder(store: chain.store, executor: chain.executor)
        let lane = BlockingLane(name: "test-recorder", threads: 1)
        #expect(recorder.resumeDAHeight() == nil)
        try await recorder.record(DAFinality(inclusions: [(1, DAInclusion(headerDAHeight: 7, dataDAHeight: 8)),
                                                          (2, DAInclusion(headerDAHeight: 9))],
                                             finalizedHeight: 2, resumeDAHeight: 10), on: lane)
        #expect(chain.store.finalizedHeight == 2)
        #expect(try chain.store.daInclusion(at: 1) == DAInclusion(headerDAHeight: 7, dataDAHeight: 8))
        #expect(try chain.store.daInclusion(at: 2) == DAInclusion(headerDAHeight: 9))
        #expect(recorder.resumeDAHeight() == 10)
        #expect(try chain.store.metadata("da_follower_resume_height") == [0, 0, 0, 0, 0, 0, 0, 10],
                "the key and encoding a node of an earlier version resumes from")

        // Worked out before a rollback took the store below it: finality waits for the replay.
        try await recorder.record(DAFinality(inclusions: [], finalizedHeight: 5, resumeDAHeight: 12), on: lane)
        #expect(chain.store.finalizedHeight == 2 && recorder.resumeDAHeight() == 12)
        await lane.shutdown()
    }

    /// An executor over the network is awaited between the lane's writes, not waited for on the
    /// lane's thread: this one's `setFinal` needs the very lane the recorder writes on (as an
    /// engine that keeps bookkeeping in the store would), which a lane thread blocked waiting
    /// for it could never run — the old blocking bridge hung here.
    @Test(.timeLimit(.minutes(1)))
    func aRemoteExecutorIsAwaitedOffTheLane() async throws {
        let chain = try TestChain()
        try chain.build(to: 3)
        let lane = BlockingLane(name: "test-recorder", threads: 1)
        let engine = LaneBoundEngine(FailingEngine(chain.executor), lane: lane)
        let recorder = DAFinalityRecorder(store: chain.store, executor: engine)
        try await recorder.record(DAFinality(inclusions: [(1, DAInclusion(headerDAHeight: 7))],
                                             finalizedHeight: 3, resumeDAHeight: 9), on: lane)
        #expect(chain.store.finalizedHeight == 3 && recorder.resumeDAHeight() == 9)
        #expect(engine.engine.calls == ["setFinal"])
        await lane.shutdown()
    }
}

/// An async-only engine whose `setFinal` first runs a step on `lane`.
final class LaneBoundEngine: Executor {
    let engine: FailingEngine
    let lane: BlockingLane

    init(_ engine: FailingEngine, lane: BlockingLane) {
        self.engine = engine
        self.lane = lane
    }

    func initChain(genesis: Genesis) async throws(ExecutionError) -> [UInt8] { try await engine.initChain(genesis: genesis) }
    func getTxs(max: Int, maxBytes: Int) async throws(ExecutionError) -> [[UInt8]] { try await engine.getTxs(max: max, maxBytes: maxBytes) }
    func hasPendingTransactions() async -> Bool { await engine.hasPendingTransactions() }
    func latestHeight() async throws(ExecutionError) -> UInt64? { nil }
    func executeTxs(_ txs: [[UInt8]], height: UInt64, time: UInt64,
                    previousRoot: [UInt8]) async throws(ExecutionError) -> ExecutionResult {
        try await engine.executeTxs(txs, height: height, time: time, previousRoot: previousRoot)
    }
    func setFinal(height: UInt64) async throws(ExecutionError) -> WriteSet {
        do throws(BlockingLaneError<Never>) {
            try await lane.run { () -> Void in }
        } catch {
            throw ExecutionError(height: height, reason: "\(error)")
        }
        return try await engine.setFinal(height: height)
    }
    func rollback(to height: UInt64, from currentHeight: UInt64) async throws(ExecutionError) -> WriteSet {
        try await engine.rollback(to: height, from: currentHeight)
    }
}
