import Primitives
import Chain
import Execution
import Logging
import Store

/// Based sequencing (`--evnode.node.aggregator --evnode.node.based_sequencer`, README "Forced
/// inclusion and based sequencing"): blocks derived from the forced-inclusion namespace alone.
/// No mempool, no signer, no DA submission; a block only when the filter included something
/// (an empty epoch makes none); its time by the formula; final at once.
///
/// Deterministic: every input is on DA or in genesis. The checkpoint starts at genesis
/// `da_start_height` on a fresh store (ev-node starts it at the node's own state DA height,
/// which differs between nodes: open question 6) and is stored in the block's own batch, and the
/// formula's end time is max(genesis start time, the epoch's DA end time) — DA time only grows, so
/// that is what ev-node's running maximum holds too, but recomputed after a restart where
/// ev-node's resets to genesis. So two based nodes on one DA build the same chain, hash for hash.
package struct BasedSequencer: Sendable {
    let store: BlockStore
    let executor: any Executor
    package let queue: ForcedInclusionQueue
    /// The header's proposer: the genesis proposer (no key signs; ev-node takes the state's
    /// next proposer, which evnode's state does not carry yet).
    let proposerAddress: [UInt8]
    /// How often DA is asked again while the next epoch has not ended.
    let pollInterval: Duration
    let maxTxsPerBlock: Int
    let logger: Logger
    let publish: @Sendable (BlockCommit) async -> Void

    package init(store: BlockStore, executor: any Executor, queue: ForcedInclusionQueue, proposerAddress: [UInt8],
                pollInterval: Duration, maxTxsPerBlock: Int = 10_000, logger: Logger,
                publish: @escaping @Sendable (BlockCommit) async -> Void = { _ in }) {
        self.store = store
        self.executor = executor
        self.queue = queue
        self.proposerAddress = proposerAddress
        self.pollInterval = pollInterval
        self.maxTxsPerBlock = maxTxsPerBlock
        self.logger = logger
        self.publish = publish
    }

    /// Derives blocks until cancelled; throws what it cannot go on after.
    package func run() async throws(ProductionError) {
        let thread = ProducerThread()
        do throws(ProductionError) {
            try await run(on: thread)
        } catch {
            await thread.shutdown()
            throw error
        }
        await thread.shutdown()
    }

    private func run(on thread: ProducerThread) async throws(ProductionError) {
        logger.notice("based sequencer: deriving blocks from the forced-inclusion namespace", metadata: [
            "next_height": "\(store.height + 1)", "checkpoint": "\(queue.checkpoint)"])
        while !Task.isCancelled {
            do throws(ForcedInclusionError) {
                try await queue.refresh(executor: executor)
            } catch {
                logger.warning("based sequencer: forced-inclusion transactions cannot be read; waiting for DA", metadata: [
                    "checkpoint": "\(queue.checkpoint)", "error": "\(error)"])
                try? await Task.sleep(for: pollInterval)
                continue
            }
            let derived: Derived?
            do throws(ProductionError) {
                derived = try await deriveOne(on: thread)
            } catch {
                guard case .build(let height, .execution(let e)) = error, e.isUnavailable else { throw error }
                logger.warning("execution layer unavailable; the based block waits for it", metadata: [
                    "height": "\(height)", "error": "\(e)"])
                try? await Task.sleep(for: .seconds(1))
                continue
            }
            switch derived {
            case .block(let block):
                await publish(block)
            case .consumedWithoutBlock:
                continue
            case .nothing, nil:
                try? await Task.sleep(for: pollInterval)
            }
        }
    }

    package enum Derived: Sendable {
        case block(BlockCommit)
        /// Forced txs were consumed but the filter removed them all: the checkpoint moved, no block.
        case consumedWithoutBlock(ForcedInclusionCheckpoint)
        /// Nothing due (the next epoch has not ended on DA, or the queue walked past empty ones).
        case nothing
    }

    /// `deriveOne(on:)` with a thread of its own for this one step (tests, tools).
    package func deriveOne() async throws(ProductionError) -> Derived {
        let thread = ProducerThread()
        let result: Result<Derived?, ProductionError>
        do throws(ProductionError) {
            result = .success(try await deriveOne(on: thread))
        } catch {
            result = .failure(error)
        }
        await thread.shutdown()
        return try result.get() ?? .nothing
    }

    /// Derives the next block from what the queue holds (call `queue.refresh()` first), commits
    /// it with the checkpoint (synced) and finalizes it. The store's work runs on the
    /// sequencer's thread; an in-process executor is called there too (one hop), one over the
    /// network is awaited between the thread's steps. Nil when the thread is shut down.
    func deriveOne(on thread: ProducerThread) async throws(ProductionError) -> Derived? {
        if let local = executor as? any SynchronousExecutor {
            return try await thread.run(at: nil) { () throws(ProductionError) in
                switch try self.pick() {
                case .derived(let derived): return derived
                case .build(let input):
                    let result: ExecutionResult
                    do throws(ExecutionError) {
                        result = try local.executeTxs(input.txs, height: input.state.nextHeight, time: input.time,
                                                      previousRoot: input.state.appHash)
                    } catch {
                        throw .build(height: input.state.nextHeight, .execution(error))
                    }
                    let block = try self.store(self.block(input, result: result), checkpoint: input.checkpoint)
                    do throws(StoreError) {
                        // SetFinal at once: a based block is final by derivation, nobody includes it on DA.
                        try ChainExecution(store: self.store, executor: local).finalize(through: block.height)
                    } catch {
                        throw .store(height: block.height, error)
                    }
                    return self.derived(block, checkpoint: input.checkpoint)
                }
            }
        }
        guard let picked = try await thread.run(at: nil, { () throws(ProductionError) in try self.pick() }) else { return nil }
        let input: BlockInput
        switch picked {
        case .derived(let derived): return derived
        case .build(let i): input = i
        }
        let result: ExecutionResult
        do throws(ExecutionError) {
            result = try await executor.executeTxs(input.txs, height: input.state.nextHeight, time: input.time,
                                                   previousRoot: input.state.appHash)
        } catch {
            throw .build(height: input.state.nextHeight, .execution(error))
        }
        let built = block(input, result: result)
        guard let block = try await thread.run(at: nil, { () throws(ProductionError) in
            try self.store(built, checkpoint: input.checkpoint)
        }) else { return nil }
        do throws(StoreError) {
            // SetFinal at once: a based block is final by derivation, nobody includes it on DA.
            try await ChainExecution(store: store, executor: executor).finalize(through: block.height, on: thread.lane)
        } catch {
            throw .store(height: block.height, error)
        }
        return derived(block, checkpoint: input.checkpoint)
    }

    /// What the next block is made of: its parent state, the forced transactions taken, its time.
    struct BlockInput: Sendable {
        let state: State
        let txs: [[UInt8]]
        let time: UInt64
        let checkpoint: ForcedInclusionCheckpoint
    }

    enum Picked: Sendable {
        case derived(Derived)
        case build(BlockInput)
    }

    /// What the queue holds for the next block; a checkpoint that moved without a block is
    /// stored here. Blocking (store reads and writes).
    private func pick() throws(ProductionError) -> Picked {
        guard let state = store.state else { throw .notInitialized }
        guard let pending = queue.pending() else {
            try persistIfMoved(queue.checkpoint(afterConsuming: 0, of: nil))
            return .derived(.nothing)
        }
        let taken = ForcedInclusionQueue.select(from: pending, executor: executor, maxTxs: maxTxsPerBlock)
        let checkpoint = queue.checkpoint(afterConsuming: taken.consumed, of: pending)
        guard !taken.txs.isEmpty, let requested = taken.time else {
            try persistIfMoved(checkpoint)
            queue.committed(checkpoint)
            return .derived(taken.consumed > 0 ? .consumedWithoutBlock(checkpoint) : .nothing)
        }
        let time = state.isGenesis ? state.lastBlockTime : max(requested, state.lastBlockTime)
        return .build(BlockInput(state: state, txs: taken.txs, time: time, checkpoint: checkpoint))
    }

    /// Commits `block` with `checkpoint` (synced). Blocking.
    private func store(_ block: BlockCommit, checkpoint: ForcedInclusionCheckpoint) throws(ProductionError) -> BlockCommit {
        var block = block
        block.forcedInclusionCheckpoint = checkpoint
        do throws(StoreError) {
            try store.commit(block, sync: true)
        } catch {
            throw .store(height: block.height, error)
        }
        queue.committed(checkpoint)
        return block
    }

    private func derived(_ block: BlockCommit, checkpoint: ForcedInclusionCheckpoint) -> Derived {
        logger.info("based block", metadata: [
            "height": "\(block.height)", "txs": "\(block.data.txs.count)", "checkpoint": "\(checkpoint)",
            "hash": "\(Hex.encode(block.signedHeader.header.hash))"])
        return .block(block)
    }

    private func persistIfMoved(_ checkpoint: ForcedInclusionCheckpoint) throws(ProductionError) {
        do throws(StoreError) {
            guard try store.forcedInclusionCheckpoint() != checkpoint else { return }
            try store.setForcedInclusionCheckpoint(checkpoint)
        } catch {
            throw .store(height: store.height + 1, error)
        }
    }

    /// The unsigned block of `input` (ev-node's based block: no signature, no signer key, empty
    /// validator hash) with the state after it, given the executor's answer.
    private func block(_ input: BlockInput, result: ExecutionResult) -> BlockCommit {
        let state = input.state
        let height = state.nextHeight
        let data = BlockData(metadata: Metadata(chainID: state.chainID, height: height, time: input.time,
                                                lastDataHash: state.lastDataHash), txs: input.txs)
        let header = Header(version: Version(), height: height, time: input.time, lastHeaderHash: state.lastHeaderHash,
                            dataHash: data.dataHash, appHash: state.appHash, proposerAddress: proposerAddress,
                            chainID: state.chainID)
        var next = state
        next.lastBlockHeight = height
        next.lastBlockTime = input.time
        next.lastHeaderHash = header.hash
        next.lastDataHash = data.fullHash
        next.appHash = result.stateRoot
        return BlockCommit(signedHeader: SignedHeader(header: header, signature: [], signer: Signer(address: [], pubKey: [])),
                           data: data, state: next, executorWrites: result.writes)
    }
}
