import Execution
import Primitives
import Chain
import Config
import Store

/// The store writes that need the executor's answer first: the genesis state (InitChain), a
/// rollback (the executor undoes the blocks) and finality (SetFinal). Each asks the store
/// whether the write may happen, asks the executor, then hands the store ONE synced batch with
/// the executor's `WriteSet` in it — so a crash, or an executor that fails, between the answer
/// and the batch leaves the store exactly as it was. The store itself never calls the executor
/// (ev-node: `pkg/store` knows no executor; the syncer executes, then writes a batch).
///
/// Two forms of each call:
/// - `async`, for any executor: the executor is awaited, and the store's blocking write runs on
///   the caller's `BlockingLane`, never on the cooperative pool;
/// - synchronous, for callers already on a thread that may block (the sync pipeline's apply
///   thread, a lane's thread, the offline `rollback` command), with an in-process executor
///   (`SynchronousExecutor`) only: any other makes them throw `.execution(.notInProcess)`
///   rather than have a thread wait for a task.
package struct ChainExecution: Sendable {
    package let store: BlockStore
    package let executor: any Executor
    /// The executor when it runs in-process: what the synchronous forms call.
    private let local: (any SynchronousExecutor)?

    package init(store: BlockStore, executor: any Executor) {
        self.store = store
        self.executor = executor
        self.local = executor as? any SynchronousExecutor
    }

    /// Whether the synchronous forms can run: the executor is in-process.
    package var isInProcess: Bool { local != nil }

    // MARK: Genesis

    /// The stored state, or on first start the executor's InitChain and the genesis state it
    /// roots. Refuses a store of another chain (before asking the executor anything).
    @discardableResult
    package func initialize(genesis: Genesis, on lane: BlockingLane) async throws(StoreError) -> State {
        let store = self.store
        if let state = try await lane.run(orIfShutDown: StoreError.closed, { () throws(StoreError) in
            try store.storedState(for: genesis)
        }) {
            return state
        }
        let root: [UInt8]
        do throws(ExecutionError) {
            root = try await executor.initChain(genesis: genesis)
        } catch {
            throw .execution(error)
        }
        return try await lane.run(orIfShutDown: StoreError.closed) { () throws(StoreError) in
            try store.initialize(genesis: genesis, appHash: root)
        }
    }

    /// `initialize(genesis:on:)` on a thread that may block.
    @discardableResult
    package func initialize(genesis: Genesis) throws(StoreError) -> State {
        if let state = try store.storedState(for: genesis) { return state }
        let root: [UInt8]
        do throws(ExecutionError) {
            guard let local else { throw .notInProcess(method: "initChain", height: nil) }
            root = try local.initChain(genesis: genesis)
        } catch {
            throw .execution(error)
        }
        return try store.initialize(genesis: genesis, appHash: root)
    }

    // MARK: Rollback

    /// Rolls store and executor back to `target`: refused below the finalized height or above
    /// the head before the executor is asked; the executor's undo writes and the removal of the
    /// blocks are one batch. At `target` already: nothing happens.
    @discardableResult
    package func rollback(to target: UInt64, sync: Bool = true, on lane: BlockingLane) async throws(StoreError) -> State {
        let store = self.store
        guard let plan = try await lane.run(orIfShutDown: StoreError.closed, { () throws(StoreError) in
            try store.planRollback(to: target)
        }) else {
            return try current()
        }
        let writes: WriteSet
        do throws(ExecutionError) {
            writes = try await executor.rollback(to: plan.target, from: plan.head)
        } catch {
            throw .execution(error)
        }
        return try await lane.run(orIfShutDown: StoreError.closed) { () throws(StoreError) in
            try store.rollback(plan, executorWrites: writes, sync: sync)
        }
    }

    /// `rollback(to:sync:on:)` on a thread that may block.
    @discardableResult
    package func rollback(to target: UInt64, sync: Bool = true) throws(StoreError) -> State {
        guard let plan = try store.planRollback(to: target) else { return try current() }
        let writes: WriteSet
        do throws(ExecutionError) {
            guard let local else { throw .notInProcess(method: "rollback", height: plan.target) }
            writes = try local.rollback(to: plan.target, from: plan.head)
        } catch {
            throw .execution(error)
        }
        return try store.rollback(plan, executorWrites: writes, sync: sync)
    }

    private func current() throws(StoreError) -> State {
        guard let state = store.state else { throw .notInitialized }
        return state
    }

    // MARK: Finality

    /// Raises the finalized (DA-included) height to `height` with the executor's SetFinal writes
    /// in the same batch. At `height` already: nothing happens. Lower: `.belowFinalized`;
    /// above the head: `.aboveHeight`. A rollback or another finalization between the
    /// executor's answer and the batch makes it ask again.
    package func finalize(through height: UInt64, sync: Bool = true, on lane: BlockingLane) async throws(StoreError) {
        let store = self.store
        while let plan = try await lane.run(orIfShutDown: StoreError.closed, { () throws(StoreError) in
            try store.planFinality(height)
        }) {
            let writes: WriteSet
            do throws(ExecutionError) {
                writes = try await executor.setFinal(height: plan.height)
            } catch {
                throw .execution(error)
            }
            let written = try await lane.run(orIfShutDown: StoreError.closed) { () throws(StoreError) in
                try store.finalize(plan, executorWrites: writes, sync: sync)
            }
            if written { return }
        }
    }

    /// `finalize(through:sync:on:)` on a thread that may block.
    package func finalize(through height: UInt64, sync: Bool = true) throws(StoreError) {
        while let plan = try store.planFinality(height) {
            let writes: WriteSet
            do throws(ExecutionError) {
                guard let local else { throw .notInProcess(method: "setFinal", height: plan.height) }
                writes = try local.setFinal(height: plan.height)
            } catch {
                throw .execution(error)
            }
            if try store.finalize(plan, executorWrites: writes, sync: sync) { return }
        }
    }
}
