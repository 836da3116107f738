import Chain

/// The sync pipeline's rules without its I/O: the blocks held by height until they can be
/// applied in order (the reorder buffer, bounded), the store height they wait above, the highest
/// known header (the equivocation fence), and the epoch every rollback starts. Candidates go in
/// through `offer`, which says what else to do with them (contests to report, blocks too far
/// ahead, signatures still to check); the apply loop takes `nextRun()` and reports back with
/// `applied(_:)`. It reads the chain only through a `SyncChainView` and does nothing itself:
/// `SyncPipeline` holds it under its lock and acts on what it returns outside it.
package struct SyncBuffer: Sendable {
    /// Two different blocks offered for one height: a conflict with a stored block, or a
    /// contest between blocks not yet applied (or with the header DA holds there).
    package struct Contest: Sendable {
        /// The stored block (`isStored`), the block already held, or DA's known header.
        package var incumbent: SignedHeader
        package var incumbentSeen: String
        package var isStored: Bool
        package var candidate: CandidateBlock
    }

    /// What to do with the candidates of one `offer` besides holding them.
    package struct Admission: Sendable {
        /// Beyond the window (`capacity` above the store): not held. DA's wait for room; P2P's
        /// are dropped, to be fetched by range when their turn comes.
        package var farAhead: [CandidateBlock] = []
        /// Candidates that contest a stored, held or DA-known block at their height: reported
        /// (conflict events, double-sign evidence) once their signature is checked.
        package var contested: [Contest] = []
        /// Blocks now held whose signature nobody verified yet: they count as known headers
        /// only once it is (`markVerified`).
        package var unverified: [CandidateBlock] = []
    }

    /// What an applied run came to, as the apply loop reports it.
    package struct RunResult: Sendable {
        /// How many blocks of the run, from its first, were stored.
        package var applied: Int
        /// The height of a block removed because it is invalid.
        package var dropped: UInt64?
        /// The highest height of the run whose header was validly signed by a key the chain named.
        package var highestVerified: UInt64

        package init(applied: Int, dropped: UInt64? = nil, highestVerified: UInt64 = 0) {
            self.applied = applied
            self.dropped = dropped
            self.highestVerified = highestVerified
        }
    }

    /// Most blocks held; a candidate more than this above the store is not held.
    package let capacity: Int
    /// Most blocks in one run handed to the apply loop.
    package let batchSize: Int
    private var pending: [UInt64: CandidateBlock] = [:]
    package private(set) var storeHeight: UInt64
    /// Highest height of a header validly signed by a key the chain named, from any source.
    package private(set) var highestKnownHeader: UInt64
    /// Bumped by every rollback: a submitter waiting from before it gives its blocks up.
    package private(set) var epoch: UInt64 = 0

    package init(storeHeight: UInt64, capacity: Int, batchSize: Int) {
        precondition(capacity > 0 && batchSize > 0, "a sync buffer holds at least one block per run")
        self.storeHeight = storeHeight
        self.highestKnownHeader = storeHeight
        self.capacity = capacity
        self.batchSize = batchSize
    }

    /// Blocks held and not yet applied.
    package var waiting: Int { pending.count }
    /// The lowest height held (nil when none is).
    package var lowestWaiting: UInt64? { pending.keys.min() }
    /// No room for another block: a submitter waits for an applied run.
    package var isFull: Bool { pending.count >= capacity }
    /// The block at the next height is held: a run can be applied.
    package var hasNextRun: Bool { pending[storeHeight + 1] != nil }
    /// The block held at `height`, if any.
    package func held(at height: UInt64) -> CandidateBlock? { pending[height] }

    /// The store is at `height` (a new run of the pipeline reads it from the store).
    package mutating func resume(at height: UInt64) {
        storeHeight = height
    }

    /// Holds what extends the chain and says what to do with the rest (see `Admission`).
    ///
    /// Every block held counts as a known header (the equivocation fence, SPEC §6 condition 4)
    /// from the moment it is held, not only once applied: `stop()` drops what is held, and the
    /// catchup gate's re-check after the syncer stopped must still see that a header for the
    /// next height exists. Verified blocks count here; the others once `markVerified`.
    package mutating func offer(_ candidates: [CandidateBlock], chain: some SyncChainView) -> Admission {
        var admission = Admission()
        for candidate in candidates {
            let height = candidate.height
            if height <= storeHeight {
                // Already applied: only a different block matters (a possible divergence).
                if let stored = chain.storedHeader(at: height), stored.header.hash != candidate.signedHeader.header.hash {
                    admission.contested.append(Contest(incumbent: stored, incumbentSeen: "store", isStored: true,
                                                       candidate: candidate))
                }
                continue
            }
            if !candidate.origin.isDA, let known = chain.authoritativeHeader(at: height),
               known.hash != candidate.signedHeader.header.hash {
                // DA already holds another block at this height: a soft block contradicting the
                // authoritative one is never held (after a rollback it must not come back).
                admission.contested.append(Contest(incumbent: known.signedHeader, incumbentSeen: "DA height \(known.daHeight)",
                                                   isStored: false, candidate: candidate))
                continue
            }
            if height > storeHeight + UInt64(capacity) {
                admission.farAhead.append(candidate)
                continue
            }
            if let held = pending[height] {
                if held.signedHeader.header.hash != candidate.signedHeader.header.hash {
                    admission.contested.append(Contest(incumbent: held.signedHeader, incumbentSeen: held.origin.description,
                                                       isStored: false, candidate: candidate))
                    if prefersProposer(of: candidate, over: held, height: height, chain: chain) {
                        // ev-node's replacement (reference §1): a header of the expected
                        // proposer replaces one of another key that waits for the same height.
                        hold(candidate, chain: chain, &admission)
                    } else if candidate.origin.isDA && !held.origin.isDA
                                && !prefersProposer(of: held, over: candidate, height: height, chain: chain) {
                        // DA is authoritative: it replaces a different P2P block that is not applied yet.
                        hold(candidate, chain: chain, &admission)
                    }
                }
                continue
            }
            hold(candidate, chain: chain, &admission)
        }
        return admission
    }

    /// True when `candidate`'s proposer has the better claim on `height` than `held`'s: at the
    /// next height the state says who signs, so the expected proposer wins; further ahead only a
    /// key the chain has named beats one it never named.
    private func prefersProposer(of candidate: CandidateBlock, over held: CandidateBlock, height: UInt64,
                                 chain: some SyncChainView) -> Bool {
        let mine = candidate.signedHeader.header.proposerAddress
        let theirs = held.signedHeader.header.proposerAddress
        guard mine != theirs else { return false }
        if height == storeHeight + 1, let expected = chain.expectedProposer(at: height) {
            return mine == expected
        }
        return chain.isPlaceable(candidate.signedHeader.header) && !chain.isPlaceable(held.signedHeader.header)
    }

    private mutating func hold(_ candidate: CandidateBlock, chain: some SyncChainView, _ admission: inout Admission) {
        pending[candidate.height] = candidate
        if candidate.signatureVerified && chain.isPlaceable(candidate.signedHeader.header) {
            highestKnownHeader = max(highestKnownHeader, candidate.height)
        } else {
            admission.unverified.append(candidate)
        }
    }

    /// A header validly signed by a key the chain named exists at `height` (the caller checked
    /// it); the block held there with hash `hash`, if any, need not be verified again.
    package mutating func markVerified(height: UInt64, hash: [UInt8]) {
        noteKnownHeader(height)
        if let held = pending[height], held.signedHeader.header.hash == hash {
            pending[height]?.signatureVerified = true
        }
    }

    /// A header validly signed by the proposer exists at `height`, its block not held.
    package mutating func noteKnownHeader(_ height: UInt64) {
        highestKnownHeader = max(highestKnownHeader, height)
    }

    /// The next run to apply, in order: the consecutive blocks held from the next height on, at
    /// most `batchSize`. They stay held until `applied(_:)` reports on them.
    package func nextRun() -> [CandidateBlock] {
        var run: [CandidateBlock] = []
        var h = storeHeight + 1
        while run.count < batchSize, let block = pending[h] {
            run.append(block)
            h += 1
        }
        return run
    }

    /// What became of `run` (from `nextRun()`): the blocks stored leave the buffer and the
    /// store height moves past them; an invalid block is dropped.
    package mutating func applied(_ run: [CandidateBlock], _ result: RunResult) {
        for block in run.prefix(result.applied) {
            pending.removeValue(forKey: block.height)
        }
        if let dropped = result.dropped {
            pending.removeValue(forKey: dropped)
        }
        storeHeight += UInt64(result.applied)
        highestKnownHeader = max(highestKnownHeader, result.highestVerified)
    }

    /// Store and executor were rolled back to `height`: every block held is dropped (the
    /// authoritative source delivers what is needed again) and a new epoch begins.
    package mutating func rolledBack(to height: UInt64) {
        storeHeight = height
        pending.removeAll()
        epoch &+= 1
    }

    /// The pipeline stopped: what it held is dropped (known headers stay known).
    package mutating func dropAll() {
        pending.removeAll()
    }
}
