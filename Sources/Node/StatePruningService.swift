import Block
import Logging
import NIOPosix
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

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            var chunks = 0
            var more = !deferWhile()
            while more, !Task.isCancelled, !Task.isShuttingDownGracefully, !deferWhile() {
                do {
                    more = try await NIOThreadPool.singleton.runIfActive { try executor.prune() }
                } catch let error as ExecutionError {
                    throw NodeFailure.pruning(error)
                }
                chunks += 1
            }
            if chunks > 1 {
                logger.info("pruned superseded KV state behind finality", metadata: [
                    "finalized": "\(executor.store.finalizedHeight)", "chunks": "\(chunks)"])
            }
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
        }
    }
}
