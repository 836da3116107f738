import Execution
import Primitives
import Chain
import Store

/// Why a block could not be applied.
package enum ApplyError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The block broke a rule of SPEC §3 (see `ValidationError.isDivergence`, `.blamesSource`).
    case invalid(ValidationError)
    /// The executor failed on the block.
    case execution(ExecutionError)
    /// The store failed (nothing of the failed batch was written).
    case store(StoreError)

    package var description: String {
        switch self {
        case .invalid(let e): return e.description
        case .execution(let e): return e.description
        case .store(let e): return e.description
        }
    }
}

/// The outcome of `BlockApplier.apply(_:…)` for a run of blocks.
package struct BatchApplyResult: Sendable {
    /// The state after the last committed block.
    package var state: State
    /// How many blocks from the front of the run were validated, executed and committed.
    package var applied: Int
    /// Why the block after those was not applied (nil when all were).
    package var failure: ApplyError?
}

/// Validation, execution and storage of received blocks, in that order, with the executor's
/// writes committed in the block's batch. The one place that turns a validated block into the
/// next state (`BlockValidator.validate` leaves `appHash` to the executor).
///
/// A value type without state of its own: the store's state is the truth. Apply blocks from
/// one task at a time (the store rejects commits that do not extend its head).
package struct BlockApplier: Sendable {
    package let store: BlockStore
    package let executor: any Executor
    package let validator: BlockValidator
    /// The executor when it runs in-process (the KV application): the blocking forms (`prepare`,
    /// `apply`, `rollback`) call it on their caller's thread. Nil for an engine over the network,
    /// which only `prepareAwaitingExecutor` reaches: no thread ever waits for a task here.
    package let local: (any SynchronousExecutor)?

    package init(store: BlockStore, executor: any Executor, validator: BlockValidator) {
        self.store = store
        self.executor = executor
        self.validator = validator
        self.local = executor as? any SynchronousExecutor
    }

    /// Validates and executes one block on top of `state` without storing it. On a thread that
    /// may block, with an in-process executor (`local`); any other is `.notInProcess`.
    package func prepare(_ signedHeader: SignedHeader, _ data: BlockData, state: State, now: UInt64,
                        signatureVerified: Bool = false) throws(ApplyError) -> BlockCommit {
        let next = try validated(signedHeader, data, state: state, now: now, signatureVerified: signatureVerified)
        let header = signedHeader.header
        let result: ExecutionResult
        do throws(ExecutionError) {
            guard let local else { throw .notInProcess(method: "executeTxs", height: header.height) }
            result = try local.executeTxs(data.txs, height: header.height, time: header.time,
                                          previousRoot: state.appHash)
        } catch {
            throw .execution(error)
        }
        return commit(signedHeader, data, on: state, next: next, result: result)
    }

    /// `prepare` for any executor: validates here (CPU only, one signature at most) and awaits
    /// the executor's answer — the form for an engine over the network.
    package func prepareAwaitingExecutor(_ signedHeader: SignedHeader, _ data: BlockData, state: State, now: UInt64,
                                        signatureVerified: Bool = false) async throws(ApplyError) -> BlockCommit {
        let next = try validated(signedHeader, data, state: state, now: now, signatureVerified: signatureVerified)
        let header = signedHeader.header
        let result: ExecutionResult
        do throws(ExecutionError) {
            result = try await executor.executeTxs(data.txs, height: header.height, time: header.time,
                                                   previousRoot: state.appHash)
        } catch {
            throw .execution(error)
        }
        return commit(signedHeader, data, on: state, next: next, result: result)
    }

    private func validated(_ signedHeader: SignedHeader, _ data: BlockData, state: State, now: UInt64,
                           signatureVerified: Bool) throws(ApplyError) -> State {
        do throws(ValidationError) {
            return try validator.validate(signedHeader, data: data, state: state, now: now,
                                          signatureVerified: signatureVerified)
        } catch {
            throw .invalid(error)
        }
    }

    /// The block with the state after it, given the executor's answer for it.
    private func commit(_ signedHeader: SignedHeader, _ data: BlockData, on state: State, next validated: State,
                        result: ExecutionResult) -> BlockCommit {
        var next = validated
        let header = signedHeader.header
        next.appHash = result.stateRoot
        next.nextProposerAddress = State.nextProposer(previous: validator.expectedProposer(after: state),
                                                      executorNamed: result.nextProposerAddress,
                                                      blockProposer: header.proposerAddress)
        // Store data with its metadata so the chained data hash can always be recomputed.
        let stored = data.metadata != nil ? data
            : BlockData(metadata: Metadata(chainID: header.chainID, height: header.height, time: header.time,
                                           lastDataHash: state.lastDataHash),
                        txs: data.txs)
        return BlockCommit(signedHeader: signedHeader, data: stored, state: next, executorWrites: result.writes)
    }

    /// Validates, executes and commits one block; returns the new state.
    @discardableResult
    package func apply(_ signedHeader: SignedHeader, _ data: BlockData, now: UInt64,
                      signatureVerified: Bool = false, sync: Bool = false) throws(ApplyError) -> State {
        guard let state = store.state else { throw .store(.notInitialized) }
        let commit = try prepare(signedHeader, data, state: state, now: now, signatureVerified: signatureVerified)
        do throws(StoreError) {
            try store.commit(commit, sync: sync)
        } catch {
            throw .store(error)
        }
        return commit.state
    }

    /// The catch-up hot path: validates and executes consecutive blocks and commits them in ONE
    /// batch. Stops at the first block that fails; the blocks before it are still committed.
    /// Only a store failure throws (then nothing of this run was written).
    package func apply(_ blocks: [(signedHeader: SignedHeader, data: BlockData)], now: UInt64,
                      signaturesVerified: Bool = false, sync: Bool = false) throws(ApplyError) -> BatchApplyResult {
        guard var state = store.state else { throw .store(.notInitialized) }
        var commits: [BlockCommit] = []
        commits.reserveCapacity(blocks.count)
        var failure: ApplyError?
        for block in blocks {
            do throws(ApplyError) {
                let commit = try prepare(block.signedHeader, block.data, state: state, now: now,
                                         signatureVerified: signaturesVerified)
                state = commit.state
                commits.append(commit)
            } catch {
                failure = error
                break
            }
        }
        do throws(StoreError) {
            try store.commit(commits, sync: sync)
        } catch {
            throw .store(error)
        }
        return BatchApplyResult(state: state, applied: commits.count, failure: failure)
    }

    /// Rolls store and executor back to `height` (refused below the finalized height), the
    /// store's work on a lane of this one rollback (rare: a divergence, an operator's command).
    /// An in-process executor runs on the lane with it; one over the network is awaited.
    @discardableResult
    package func rollback(to height: UInt64) async throws(StoreError) -> State {
        let execution = ChainExecution(store: store, executor: executor)
        return try await BlockingLane.with(name: "rollback", threads: 1) { lane throws(StoreError) in
            guard execution.isInProcess else { return try await execution.rollback(to: height, on: lane) }
            return try await lane.run(orIfShutDown: StoreError.closed) { () throws(StoreError) in
                try execution.rollback(to: height)
            }
        }
    }
}
