import Primitives
import Chain
import Execution
import Store
import Config
import Synchronization
import Testing
import TestSupport


/// `ChainExecution`: the executor is asked first, the store gets one batch after; an executor
/// that fails leaves the store as it was. Real RocksDB, the real KV executor.
@Suite struct ChainExecutionTests {
    @Test func initChainRunsOnFirstStartOnlyAndAnotherChainIsRefusedBeforeTheExecutorIsAsked() async throws {
        let dir = TempDirectory("evnode-chain-exec")
        let store = try BlockStore.open(path: dir.sub("data"))
        defer { store.close() }
        let lane = BlockingLane(name: "test-store", threads: 1)
        let engine = FailingEngine(KVExecutor(store: store), failing: ["initChain"])
        let genesis = Genesis(chainID: "exec-chain", startTimeNanoseconds: 1_700_000_000_000_000_000,
                              proposerAddress: BlockSigner(keyFile: KeyFile.generate()).address)
        let execution = ChainExecution(store: store, executor: engine)

        // InitChain fails: no genesis state is written.
        await #expect(throws: StoreError.self) { try await execution.initialize(genesis: genesis, on: lane) }
        #expect(store.state == nil)

        engine.fail([])
        let state = try await execution.initialize(genesis: genesis, on: lane)
        #expect(store.state == state)
        #expect(state.appHash == (try KVExecutor(store: store).initChain(genesis: genesis)))
        // Second start: the stored state, no InitChain.
        #expect(try await execution.initialize(genesis: genesis, on: lane) == state)
        #expect(engine.calls == ["initChain", "initChain"])

        let other = Genesis(chainID: "another-chain", startTimeNanoseconds: genesis.startTimeNanoseconds,
                            proposerAddress: genesis.proposerAddress)
        await #expect(throws: StoreError.genesisMismatch(storedChainID: "exec-chain", genesisChainID: "another-chain")) {
            try await execution.initialize(genesis: other, on: lane)
        }
        #expect(engine.calls.count == 2)
        await lane.shutdown()
    }

    @Test func aFailingRollbackWritesNothing() async throws {
        let chain = try TestChain()
        try chain.build(to: 6)
        let before = chain.store.state
        let engine = FailingEngine(chain.executor, failing: ["rollback"])
        let lane = BlockingLane(name: "test-store", threads: 1)
        let execution = ChainExecution(store: chain.store, executor: engine)

        await #expect(throws: StoreError.self) { try await execution.rollback(to: 3, on: lane) }
        #expect(chain.store.state == before)
        #expect(try chain.store.signedHeader(at: 6) != nil)
        #expect(try chain.value("k6") != nil)

        // Refused before the executor is asked: it is not asked at all.
        try ChainExecution(store: chain.store, executor: chain.executor).finalize(through: 2)
        let asked = engine.calls.count
        await #expect(throws: StoreError.belowFinalized(requested: 1, finalized: 2)) {
            try await execution.rollback(to: 1, on: lane)
        }
        #expect(engine.calls.count == asked)

        engine.fail([])
        let restored = try await execution.rollback(to: 3, on: lane)
        #expect(restored.lastBlockHeight == 3)
        #expect(chain.store.height == 3)
        #expect(try chain.value("k4") == nil)
        #expect(try chain.value("k3") != nil)
        await lane.shutdown()
    }

    @Test func aFailingSetFinalWritesNothing() async throws {
        let chain = try TestChain()
        try chain.build(to: 5)
        let engine = FailingEngine(chain.executor, failing: ["setFinal"])
        let lane = BlockingLane(name: "test-store", threads: 1)
        let execution = ChainExecution(store: chain.store, executor: engine)

        await #expect(throws: StoreError.self) { try await execution.finalize(through: 4, on: lane) }
        #expect(chain.store.finalizedHeight == 0)
        try chain.reopen()
        #expect(chain.store.finalizedHeight == 0)

        let reopened = ChainExecution(store: chain.store, executor: FailingEngine(chain.executor))
        try await reopened.finalize(through: 4, on: lane)
        #expect(chain.store.finalizedHeight == 4)
        await #expect(throws: StoreError.aboveHeight(requested: 9, height: 5)) {
            try await reopened.finalize(through: 9, on: lane)
        }
        await lane.shutdown()
    }

    /// The executor's undo writes were computed for the blocks above the planned head: when a
    /// block was committed meanwhile, the store refuses them and writes nothing.
    @Test func aRollbackPlannedBeforeACommitIsRefused() throws {
        let chain = try TestChain()
        try chain.build(to: 5)
        let plan = try #require(try chain.store.planRollback(to: 2))
        let writes = try chain.executor.rollback(to: plan.target, from: plan.head)
        try chain.produce(["late=1"])
        #expect(throws: StoreError.headMoved(expected: 5, found: 6)) {
            try chain.store.rollback(plan, executorWrites: writes, sync: true)
        }
        #expect(chain.store.height == 6)
        #expect(try chain.value("late") == "1")
        #expect(try chain.value("k5") != nil)
    }

    /// The async and the synchronous forms leave the same store.
    @Test func asyncAndSynchronousFormsAgree() async throws {
        let a = try TestChain()
        let b = try TestChain(signer: a.signer)
        try a.build(to: 8)
        try b.build(to: 8)
        #expect(a.store.state == b.store.state)
        let lane = BlockingLane(name: "test-store", threads: 1)
        try await ChainExecution(store: a.store, executor: a.executor).finalize(through: 3, on: lane)
        try ChainExecution(store: b.store, executor: b.executor).finalize(through: 3)
        let ra = try await ChainExecution(store: a.store, executor: a.executor).rollback(to: 5, on: lane)
        let rb = try ChainExecution(store: b.store, executor: b.executor).rollback(to: 5)
        #expect(ra == rb)
        #expect(a.store.finalizedHeight == b.store.finalizedHeight)
        #expect(try a.value("k5") == b.value("k5"))
        #expect(try a.value("k6") == nil)
        await lane.shutdown()
    }
}
