import Primitives
import Store
import Config
import Logging
import ServiceLifecycle

/// ev-node's `pruning.*`: every `interval`, deletes old blocks (`all`) or only their per-height
/// DA records (`metadata`) from the store, keeping the `keep_recent` heights below the finalized
/// (= DA-included) height. Not to be confused with `StatePruningService`, which drops superseded
/// KV state behind finality whatever this says.
///
/// Never deletes at or above `finalized − keep_recent + 1` (`keep_recent` > 0): divergence
/// recovery and `evnode rollback` never go below the finalized height (SPEC §7), the submitter
/// and the DA follower only read above it, so nothing that may still be needed is deleted.
/// A pruned height is absent: `/blocks/N` says it was pruned, a header-ex request for it is
/// answered NOT_FOUND.
///
/// The deletes run in write batches of `chunkHeights` heights on the blocking pool (as the KV
/// pruning does); between two batches the service rests `restFactor` times as long as the batch
/// took, so a first pass over a long history takes at most about a quarter of a core and of the
/// disk, and production keeps its slots. A store failure stops the node (`NodeFailure.blockPruning`).
struct BlockPruningService: Service {
    let store: BlockStore
    let config: PruningConfig
    let logger: Logger
    var chunkHeights = 1_000
    var restFactor = 3

    /// The highest height that may be pruned now: `keep_recent` heights below the finalized
    /// height stay (0: nothing may go).
    static func target(finalized: UInt64, storeHeight: UInt64, keepRecent: UInt64) -> UInt64 {
        let included = min(finalized, storeHeight)
        return included > keepRecent ? included - keepRecent : 0
    }

    var scope: PruneScope? {
        switch config.mode {
        case .disabled: return nil
        case .all: return .blocks
        case .metadata: return .metadata
        }
    }

    func run() async throws {
        guard scope != nil else { return }
        logger.info("pruning on", metadata: [
            "mode": "\(config.mode.rawValue)", "keep_recent": "\(config.keepRecent)",
            "interval": "\(DurationParser.format(config.interval))"])
        try await BlockingLane.with(name: "block-pruning", threads: 1) { (lane) async throws(NodeFailure) in
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                try await pruneNow(on: lane)
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: config.interval) }
            }
        }
    }

    /// Prunes everything that may go now, batch by batch, on a lane of its own; returns what is
    /// pruned.
    @discardableResult
    func pruneNow() async throws(NodeFailure) -> PrunedHeights? {
        try await BlockingLane.with(name: "block-pruning", threads: 1) { (lane) async throws(NodeFailure) in
            try await pruneNow(on: lane)
        }
    }

    /// Prunes everything that may go now, batch by batch on `lane`; returns what is pruned.
    @discardableResult
    func pruneNow(on lane: BlockingLane) async throws(NodeFailure) -> PrunedHeights? {
        guard let scope else { return nil }
        let target = Self.target(finalized: store.finalizedHeight, storeHeight: store.height,
                                 keepRecent: max(1, config.keepRecent))
        var pruned: PrunedHeights?
        var batches = 0
        let chunk = chunkHeights
        let store = self.store
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            let started = ContinuousClock.now
            let before = pruned
            do throws(StoreError) {
                pruned = try await lane.run(orIfShutDown: StoreError.closed) { () throws(StoreError) in
                    try store.prune(scope, through: target, maxHeights: chunk)
                }
            } catch {
                throw .blockPruning(error)
            }
            guard pruned != before, let now = pruned else { break }
            batches += 1
            let floor = scope == .blocks ? now.blocks : now.metadata
            if floor >= target { break }
            let rest = min((ContinuousClock.now - started) * restFactor, .seconds(1))
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: rest) }
        }
        if batches > 0, let now = pruned {
            logger.info("pruned old heights", metadata: [
                "mode": "\(config.mode.rawValue)", "through": "\(scope == .blocks ? now.blocks : now.metadata)",
                "finalized": "\(store.finalizedHeight)", "batches": "\(batches)"])
        }
        return pruned
    }
}
