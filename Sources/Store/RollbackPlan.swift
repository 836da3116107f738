/// A rollback the store has checked: from head `head` down to `target` (`BlockStore.planRollback`).
/// The executor undoes exactly these blocks before the store writes the rollback's batch.
package struct RollbackPlan: Sendable, Equatable {
    package let target: UInt64
    package let head: UInt64
}
