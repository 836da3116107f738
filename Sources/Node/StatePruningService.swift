import Primitives
import Chain
import Execution
import Logging
import Config
import ServiceLifecycle

/// Prunes the KV state behind finality for the node's life (`KVExecutor.prune`), one chunk at a
/// time on the blocking pool, so that neither a catch-up's finalization nor block production waits
/// for housekeeping. A failure stops the node: the store could not be read or written.
struct StatePruningService: Service {
    let executor: KVExecutor
    let logger: Logger
    /// True while the node is far behind: pruning waits for the head, so a catch-up's cores
    /// verify and apply blocks instead of seeking through superseded state (it is pruned later
    /// in one go, chunk by chunk).
    var deferWhile: @Sendable () -> Bool = { false }
    /// Pause once nothing is left to prune; finality moves at the DA's pace.
    var interval: Duration = .seconds(1)
    /// Between two chunks the service rests this many times as long as the chunk took, and a
    /// chunk handles `chunkRecords` undo records: a backlog (the first minute after a recovery)
    /// then takes at most a quarter of a core and of the disk in short bursts, and 10 ms block
    /// production keeps its slots. Measured in the first 20 s of 10 ms blocks after a
    /// 100,000-block recovery: 32–37% of the slots missed with back-to-back chunks of 1,024,
    /// 5.4% resting 2× per chunk, 2.1% with this.
    var restFactor = 3
    var chunkRecords = 256

    func run() async throws {
        try await BlockingLane.with(name: "state-pruning", threads: 1) { (lane) async throws(NodeFailure) in
            try await run(on: lane)
        }
    }

    private func run(on lane: BlockingLane) async throws(NodeFailure) {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            var chunks = 0
            var more = !deferWhile()
            while more, !Task.isCancelled, !Task.isShuttingDownGracefully, !deferWhile() {
                let started = ContinuousClock.now
                let (executor, chunkRecords) = (self.executor, self.chunkRecords)
                do throws(ExecutionError) {
                    more = try await lane.run(orIfShutDown: ExecutionError(height: nil, reason: "the pruning lane is shut down")) {
                        () throws(ExecutionError) in try executor.prune(maxRecords: chunkRecords)
                    }
                } catch {
                    throw NodeFailure.pruning(error)
                }
                chunks += 1
                if more {
                    let rest = min((ContinuousClock.now - started) * restFactor, .seconds(1))
                    try? await cancelWhenGracefulShutdown { try await Task.sleep(for: rest) }
                }
            }
            if chunks > 1 {
                logger.info("pruned superseded KV state behind finality", metadata: [
                    "finalized": "\(executor.store.finalizedHeight)", "chunks": "\(chunks)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
