import Synchronization

/// Set once when the recovery's rollback was refused because the recovery was cancelled, so the
/// recovery tells that refusal from a store failure.
final class CancellationFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .sequentiallyConsistent) }
    func set() { value.store(true, ordering: .sequentiallyConsistent) }
}
