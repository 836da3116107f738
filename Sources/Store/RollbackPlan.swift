/// A rollback the store has checked: from head `head` down to `target` (`BlockStore.planRollback`).
/// The executor undoes exactly these blocks before the store writes the rollback's batch.
public struct RollbackPlan: Sendable, Equatable {
    public let target: UInt64
    public let head: UInt64
}
