import Chain
import Execution
import Store

/// Rolls the chain back: store and execution state to a height, in one atomic step. The seam
/// through which divergence recovery and `evnode rollback` act (so a test can make it fail).
package protocol Rollbacker: Sendable {
    /// Rolls back to `height` and returns the state there. Refused below the finalized height.
    @discardableResult
    func rollback(to height: UInt64) async throws(StoreError) -> State
}

extension BlockApplier: Rollbacker {}

/// A height where the stored chain and the authoritative (DA) chain are known to differ.
package struct DivergencePoint: Sendable, Equatable {
    package var height: UInt64
    /// The authoritative header hash at `height`.
    package var authoritativeHash: [UInt8]
    /// The authoritative signed header at `height`, when known (a DA conflict carries it; a
    /// broken link only names the hash).
    package var authoritativeHeader: SignedHeader?

    package init(height: UInt64, authoritativeHash: [UInt8], authoritativeHeader: SignedHeader? = nil) {
        self.height = height
        self.authoritativeHash = authoritativeHash
        self.authoritativeHeader = authoritativeHeader
    }
}

/// Where the walk back from a divergence ended.
package enum AncestorSearchResult: Sendable, Equatable {
    /// The highest height where the stored and the authoritative chain agree (`hash` is the
    /// stored header hash there; empty for the genesis height). `exact` is false when the walk
    /// could not follow the authoritative links all the way down (a header it never saw, or the
    /// walk's bounds) and fell back to the finalized height, which is always safe: everything
    /// above it is replayed and validated again. `note` says why.
    case ancestor(height: UInt64, hash: [UInt8], exact: Bool, note: String?)
    /// The stored block at the divergence height is the authoritative one after all, or the
    /// store no longer reaches that height: nothing to roll back.
    case noDivergence
    /// The chains differ at or below the finalized height. Finality never goes back: the node
    /// must halt and an operator decide.
    case finalizedDivergence(height: UInt64, storedHash: [UInt8], authoritativeHash: [UInt8], finalized: UInt64)
    /// The authoritative source contradicts itself: its header above `height` links to `link`,
    /// but its first header at `height` has the hash `firstSeen` (the proposer double-signed and
    /// DA order does not give one chain).
    case brokenAuthority(height: UInt64, link: [UInt8], firstSeen: [UInt8])
}

/// The walk from a divergence back to the highest common ancestor (SPEC §7): compares stored
/// header hashes with the authoritative chain's links, height by height downwards, never below
/// the finalized height, bounded in lookups and time.
///
/// Reads the store (blocking): run it off Swift's cooperative pool.
package struct AncestorSearch: Sendable {
    package struct Limits: Sendable, Equatable {
        /// Most heights compared before falling back to the finalized height.
        package var maxLookups: Int
        /// Longest walk before falling back to the finalized height.
        package var maxDuration: Duration

        package init(maxLookups: Int = 100_000, maxDuration: Duration = .seconds(10)) {
            self.maxLookups = maxLookups
            self.maxDuration = maxDuration
        }
    }

    package let store: BlockStore
    package let authority: AuthoritativeHeaders
    package let limits: Limits

    package init(store: BlockStore, authority: AuthoritativeHeaders, limits: Limits = Limits()) {
        self.store = store
        self.authority = authority
        self.limits = limits
    }

    /// Walks down from `point`. `onDoubleSign` gets each pair of different signed headers met on
    /// the way (stored, authoritative) — evidence for the caller to keep.
    package func search(from point: DivergencePoint,
                       onDoubleSign: (_ stored: SignedHeader, _ authoritative: SignedHeader) -> Void = { _, _ in })
        throws(StoreError) -> AncestorSearchResult {
        guard let state = store.state else { throw .notInitialized }
        let finalized = store.finalizedHeight
        let genesisHeight = state.initialHeight == 0 ? 0 : state.initialHeight - 1
        // Finality and genesis are the floor: nothing at or below it is ever rolled back.
        let floor = max(finalized, genesisHeight)
        guard point.height <= state.lastBlockHeight else { return .noDivergence }

        let clock = ContinuousClock()
        let started = clock.now
        var height = point.height
        var authoritativeHash = point.authoritativeHash
        var authoritativeHeader = point.authoritativeHeader
        var lookups = 0
        while true {
            let stored = height <= genesisHeight ? nil : try storedHeader(at: height)
            let storedHash = stored?.header.hash ?? []
            if storedHash == authoritativeHash {
                return height == point.height ? .noDivergence
                    : .ancestor(height: height, hash: storedHash, exact: true, note: nil)
            }
            // The chains differ at `height`. DA's own header there gives its link one lower.
            if authoritativeHeader == nil, let entry = authority.entry(at: height) {
                guard entry.hash == authoritativeHash else {
                    return .brokenAuthority(height: height, link: authoritativeHash, firstSeen: entry.hash)
                }
                authoritativeHeader = entry.signedHeader
            }
            if let stored, let authoritativeHeader {
                onDoubleSign(stored, authoritativeHeader)
            }
            if height <= floor {
                return .finalizedDivergence(height: height, storedHash: storedHash,
                                            authoritativeHash: authoritativeHash, finalized: finalized)
            }
            guard let header = authoritativeHeader else {
                return try fallback(floor, genesisHeight, note: "no DA header known at height \(height) to follow its link down")
            }
            lookups += 1
            if lookups >= limits.maxLookups || clock.now - started > limits.maxDuration {
                return try fallback(floor, genesisHeight, note: "walk bounds reached at height \(height) after \(lookups) lookups")
            }
            authoritativeHash = header.header.lastHeaderHash
            authoritativeHeader = nil
            height -= 1
        }
    }

    private func storedHeader(at height: UInt64) throws(StoreError) -> SignedHeader {
        guard let header = try store.signedHeader(at: height) else {
            throw .corrupted(what: "header at height \(height)", reason: "missing below the store height \(store.height)")
        }
        return header
    }

    private func fallback(_ floor: UInt64, _ genesisHeight: UInt64, note: String) throws(StoreError)
        -> AncestorSearchResult {
        let hash = floor <= genesisHeight ? [] : try storedHeader(at: floor).header.hash
        return .ancestor(height: floor, hash: hash, exact: false, note: note)
    }
}
