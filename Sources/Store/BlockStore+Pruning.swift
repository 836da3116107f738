import Chain

/// What pruning removed so far: every height at or below these is gone.
package struct PrunedHeights: Sendable, Equatable {
    /// Highest height whose block (header, data, hash index entry, DA inclusion records) was deleted.
    package var blocks: UInt64
    /// Highest height whose DA inclusion records were deleted (≥ `blocks`).
    package var metadata: UInt64

    package init(blocks: UInt64 = 0, metadata: UInt64 = 0) {
        self.blocks = blocks
        self.metadata = metadata
    }
}

/// ev-node's `pruning_mode`, as far as the store is concerned.
package enum PruneScope: Sendable, Equatable {
    /// Blocks and their per-height records (`all`).
    case blocks
    /// Only the per-height DA inclusion records (`metadata`); blocks stay.
    case metadata
}

extension BlockStore {
    package func prunedHeights() throws(StoreError) -> PrunedHeights {
        let blocks = try BlockStore.readHeightValue(db, StoreKeys.prunedBlocks, what: "pruned block height") ?? 0
        let metadata = try BlockStore.readHeightValue(db, StoreKeys.prunedMetadata, what: "pruned metadata height") ?? 0
        return PrunedHeights(blocks: blocks, metadata: max(blocks, metadata))
    }

    /// Deletes the next heights above what `scope` pruned so far, at most `maxHeights` of them
    /// and none above `target`, in one write batch that also records the new floor (a crash
    /// leaves either all of it or none). Returns what is pruned now.
    ///
    /// `target` must not be above the finalized height: everything above it may still be rolled
    /// back or compared by divergence recovery (SPEC §7), and finality never goes back, so what
    /// is deleted here is never read by them. Heights the store never held (below a chain's
    /// initial height) are skipped.
    @discardableResult
    package func prune(_ scope: PruneScope, through target: UInt64, maxHeights: Int) throws(StoreError) -> PrunedHeights {
        precondition(maxHeights > 0, "prune at least one height per batch")
        return try writer.withLock { () throws(StoreError) -> PrunedHeights in
            let finalized = finalizedHeight
            guard target <= finalized else { throw .pruneAboveFinalized(requested: target, finalized: finalized) }
            var pruned = try prunedHeights()
            let floor = scope == .blocks ? pruned.blocks : pruned.metadata
            guard target > floor else { return pruned }
            let end = min(target, floor + UInt64(maxHeights))
            let batch = WriteBatch()
            if scope == .blocks {
                for h in (floor + 1)...end {
                    guard let bytes = try encodedSignedHeader(at: h) else { continue }
                    let header: SignedHeader
                    do throws(WireError) {
                        header = try SignedHeader(decoding: bytes)
                    } catch {
                        throw .corrupted(what: "header at height \(h)", reason: error.description)
                    }
                    batch.delete(StoreKeys.hashIndex(header.header.hash))
                    batch.delete(StoreKeys.header(h))
                    batch.delete(StoreKeys.data(h))
                }
                pruned.blocks = end
                batch.put(StoreKeys.prunedBlocks, bigEndianBytes(end))
            }
            // Both scopes: the DA inclusion records of the pruned heights, as ranges.
            if end > pruned.metadata {
                for prefix in [StoreKeys.headerInclusionPrefix, StoreKeys.dataInclusionPrefix] {
                    batch.deleteRange(StoreKeys.height(prefix, pruned.metadata + 1), StoreKeys.height(prefix, end + 1))
                }
                pruned.metadata = end
                batch.put(StoreKeys.prunedMetadata, bigEndianBytes(end))
            }
            // Not synced: a crash that loses this batch leaves the heights in place, and the
            // next pass deletes them again.
            try db.write(batch, sync: false)
            return pruned
        }
    }
}
