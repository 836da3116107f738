import Primitives
import Chain
import Logging
import Store

/// Puts an engine that keeps its own state back in line with the store at start (after a crash,
/// a lost EL disk, or an operator's rollback):
/// - engine ahead of the store → roll the engine back to the store's height;
/// - engine behind → replay the stored blocks on it, in order, from their transactions, and
///   check every resulting state root against the chain (the next header's `app_hash`, or the
///   stored state's for the last block). A mismatch is an error naming the height: the engine
///   computes another chain than the one stored, and nothing is built on it.
///
/// An embedded executor (`latestHeight() == nil`) is always in line: nothing happens.
package struct ExecutionReconciler: Sendable {
    package enum Outcome: Sendable, Equatable {
        case inLine
        case rolledBack(from: UInt64, to: UInt64)
        case replayed(from: UInt64, to: UInt64)
    }

    package let store: BlockStore
    package let executor: any Executor
    package let logger: Logger

    package init(store: BlockStore, executor: any Executor, logger: Logger) {
        self.store = store
        self.executor = executor
        self.logger = logger
    }

    package func reconcile() async throws(ExecutionError) -> Outcome {
        guard let engineHeight = try await executor.latestHeight() else { return .inLine }
        guard let state = store.state else {
            throw ExecutionError(height: nil, reason: "the store has no genesis state to reconcile the engine with")
        }
        let storeHeight = state.lastBlockHeight
        if engineHeight == storeHeight { return .inLine }
        if engineHeight > storeHeight {
            logger.notice("the execution layer is ahead of the store; rolling it back", metadata: [
                "engine_height": "\(engineHeight)", "store_height": "\(storeHeight)"])
            let writes = try await executor.rollback(to: storeHeight, from: engineHeight)
            try commit(writes, height: storeHeight)
            return .rolledBack(from: engineHeight, to: storeHeight)
        }
        logger.notice("the execution layer is behind the store; replaying stored blocks", metadata: [
            "engine_height": "\(engineHeight)", "store_height": "\(storeHeight)"])
        let clock = ContinuousClock()
        var lastLog = clock.now
        for height in (engineHeight + 1)...storeHeight {
            let block: (signedHeader: SignedHeader, data: BlockData)?
            do throws(StoreError) {
                block = try store.block(at: height)
            } catch {
                throw ExecutionError(height: height, reason: "reading the stored block to replay: \(error)")
            }
            guard let (signed, data) = block else {
                throw ExecutionError(height: height, reason: "the store has no block at this height below its head \(storeHeight)")
            }
            let header = signed.header
            let result = try await executor.executeTxs(data.txs, height: height, time: header.time,
                                                       previousRoot: header.appHash)
            let expected: [UInt8]
            if height == storeHeight {
                expected = state.appHash
            } else {
                let next: SignedHeader?
                do throws(StoreError) {
                    next = try store.signedHeader(at: height + 1)
                } catch {
                    throw ExecutionError(height: height + 1, reason: "reading the stored header: \(error)")
                }
                guard let next else {
                    throw ExecutionError(height: height + 1, reason: "the store has no header at this height below its head")
                }
                expected = next.header.appHash
            }
            guard result.stateRoot == expected else {
                throw ExecutionError(height: height,
                                     reason: "replay gave state root \(Hex.encode(result.stateRoot)) but the chain says \(Hex.encode(expected)): the engine computes another chain than the one stored")
            }
            try commit(result.writes, height: height)
            if clock.now - lastLog >= .seconds(5) {
                lastLog = clock.now
                logger.info("replaying stored blocks on the execution layer", metadata: [
                    "height": "\(height)", "target": "\(storeHeight)"])
            }
        }
        return .replayed(from: engineHeight + 1, to: storeHeight)
    }

    private func commit(_ writes: WriteSet, height: UInt64) throws(ExecutionError) {
        guard !writes.isEmpty else { return }
        do throws(StoreError) {
            try store.writeExecutorState(writes, sync: true)
        } catch {
            throw ExecutionError(height: height, reason: "recording the engine's state: \(error)")
        }
    }
}
