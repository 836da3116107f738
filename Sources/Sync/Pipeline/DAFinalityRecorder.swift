import Chain
import Execution
import Primitives
import Store

/// Where what the DA follower finds becomes sync state: the DA inclusions of final blocks, the
/// finalized height (the executor told, in the same store write), and the DA height a restart
/// resumes reading from. The follower reads DA and works out `DAFinality`; it writes nothing
/// itself.
///
/// The store's writes run on the caller's `BlockingLane`; an in-process executor's `setFinal`
/// runs there with them (one hop), one over the network is awaited between them.
package struct DAFinalityRecorder: Sendable {
    /// The store metadata key of the resume height (8 bytes, big-endian).
    static let resumeKey = "da_follower_resume_height"

    let store: BlockStore
    let executor: any Executor

    package init(store: BlockStore, executor: any Executor) {
        self.store = store
        self.executor = executor
    }

    /// Records `finality`. A finalized height above the store's (a rollback ran since it was
    /// worked out) is left for the replay to reach; any other store failure is thrown.
    package func record(_ finality: DAFinality, on lane: BlockingLane) async throws(StoreError) {
        let store = self.store
        if let local = executor as? any SynchronousExecutor {
            try await lane.run(orIfShutDown: StoreError.closed) { () throws(StoreError) in
                try store.recordDAInclusions(finality.inclusions, sync: false)
                try Self.finalize(finality, in: store) { () throws(StoreError) in
                    try ChainExecution(store: store, executor: local).finalize(through: finality.finalizedHeight)
                }
                try Self.recordResume(finality, in: store)
            }
            return
        }
        try await lane.run(orIfShutDown: StoreError.closed) { () throws(StoreError) in
            try store.recordDAInclusions(finality.inclusions, sync: false)
        }
        if finality.finalizedHeight > store.finalizedHeight {
            do throws(StoreError) {
                try await ChainExecution(store: store, executor: executor).finalize(through: finality.finalizedHeight, on: lane)
            } catch {
                // A rollback ran since the heights were read: finality waits for the replay.
                guard case .aboveHeight = error else { throw error }
            }
        }
        try await lane.run(orIfShutDown: StoreError.closed) { () throws(StoreError) in
            try Self.recordResume(finality, in: store)
        }
    }

    /// Runs `finalize` when `finality` moves the finalized height; a finalized height above the
    /// store's (a rollback ran since the heights were read) waits for the replay.
    private static func finalize(_ finality: DAFinality, in store: BlockStore,
                                 _ finalize: () throws(StoreError) -> Void) throws(StoreError) {
        guard finality.finalizedHeight > store.finalizedHeight else { return }
        do throws(StoreError) {
            try finalize()
        } catch {
            guard case .aboveHeight = error else { throw error }
        }
    }

    private static func recordResume(_ finality: DAFinality, in store: BlockStore) throws(StoreError) {
        let resume = finality.resumeDAHeight
        try store.setMetadata(Self.resumeKey, (0..<8).map { UInt8(truncatingIfNeeded: resume >> (56 - 8 * UInt64($0))) })
    }

    /// The DA height recorded last to resume reading from, if any.
    package func resumeDAHeight() -> UInt64? {
        guard let bytes = try? store.metadata(Self.resumeKey), bytes.count == 8 else { return nil }
        return bytes.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
    }
}
