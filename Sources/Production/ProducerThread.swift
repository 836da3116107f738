import Primitives
import Config
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The block producer's own thread, for as long as it produces. Each block's wait for its slot
/// and its blocking steps (execution, the signer's mark and the store commit, each synced) run
/// there in one go, so a block starts on time however busy the rest of the node is: a timer on
/// Swift's two-thread cooperative pool fires only when one of those threads is free (RPC handlers
/// of 2,000 tx/s and networking share them), and the shared blocking pool may be busy pruning or
/// checking DA blobs.
final class ProducerThread: Sendable {
    /// A lane of one thread: the producer's steps run in order, and nothing else runs there
    /// (the producer's own store writes between awaited executor calls go here too).
    let lane = BlockingLane(name: "producer", threads: 1)
    /// Set when the producing task is cancelled: a wait for a slot ends early and the block of
    /// that slot is not made.
    private let cancelled = Atomic<Bool>(false)

    /// Waits on the producer's thread until `slot` (if given), then runs `work` there. Nil when
    /// the task was cancelled during that wait: the slot's block is not made. Without a slot,
    /// `work` runs even when cancelled (a commit after the fence admitted the block).
    func run<T: Sendable>(at slot: ContinuousClock.Instant?,
                          _ work: @escaping @Sendable () throws(ProductionError) -> T) async throws(ProductionError) -> T? {
        let result = await withTaskCancellationHandler { () async -> Result<T?, ProductionError> in
            do throws(ProductionError) {
                return .success(try await lane.run(orIfShutDown: ProductionError.stopped) {
                    [self] () throws(ProductionError) -> T? in
                    if let slot {
                        sleep(until: slot)
                        if cancelled.load(ordering: .acquiring) { return nil }
                    }
                    return try work()
                })
            } catch {
                return .failure(error)
            }
        } onCancel: {
            cancelled.store(true, ordering: .releasing)
        }
        return try result.get()
    }

    /// Ends the thread once the work in progress is done.
    func shutdown() async {
        await lane.shutdown()
    }

    /// Sleeps until `deadline` in steps of at most 1 ms, so that cancellation is seen quickly
    /// even with a long block time.
    private func sleep(until deadline: ContinuousClock.Instant) {
        let clock = ContinuousClock()
        while !cancelled.load(ordering: .relaxed) {
            let remaining = clock.now.duration(to: deadline)
            guard remaining > .zero else { return }
            let (seconds, attoseconds) = min(remaining, .milliseconds(1)).components
            var ts = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
            _ = nanosleep(&ts, nil)
        }
    }
}
