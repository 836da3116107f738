import Chain
import Store

/// The recovery's rollback, refused when the recovery was cancelled while the pipeline waited
/// for its batch in flight (the pipeline calls it in the recovery's task, right before the write).
struct UnlessCancelled: Rollbacker {
    let rollbacker: any Rollbacker
    let refused: CancellationFlag

    func rollback(to height: UInt64) async throws(StoreError) -> State {
        if Task.isCancelled {
            refused.set()
            // Nothing was written; the caller turns this into its cancellation.
            throw .closed
        }
        return try await rollbacker.rollback(to: height)
    }
}
