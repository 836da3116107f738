/// A raise of the finalized height the store has checked (`BlockStore.planFinality`), with what
/// it was planned against: a rollback or another finalization since makes the store refuse it.
package struct FinalityPlan: Sendable, Equatable {
    package let height: UInt64
    let finalizedBefore: UInt64
    let rollbacksBefore: UInt64
}
