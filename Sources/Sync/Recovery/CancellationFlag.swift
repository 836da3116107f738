import Synchronization

/// Set once by a task's cancellation handler, read by work that runs off the task (on a pool
/// thread, where `Task.isCancelled` says nothing).
final class CancellationFlag: Sendable {
    private let value = Atomic<Bool>(false)
    var isSet: Bool { value.load(ordering: .sequentiallyConsistent) }
    func set() { value.store(true, ordering: .sequentiallyConsistent) }
}
