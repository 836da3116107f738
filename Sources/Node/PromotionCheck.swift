import Chain
import Sync
import Config
import P2PSync

/// SPEC §6's five promotion conditions, sampled from the running node and decided by
/// `CatchupGate`: the one path by which a catching-up aggregator promotes itself and by which
/// the first leader of an HA group (etcd holds no block yet) makes its store the chain's head.
/// Whatever holds one of them back holds the other back the same way.
struct PromotionCheck: Sendable {
    let gate: CatchupGate
    let sync: SyncRuntime
    let p2p: P2PService
    let state: NodeState
    let peersConfigured: Bool
    let signerMark: (any SignerMark)?
    /// Where the peer wait and the stall deadlines count from.
    let startedAt: ContinuousClock.Instant
    /// Whether the block signed at the mark's height is kept where the node will commit exactly
    /// it, rather than sign another (HA: the store's unpublished block, offered again when this
    /// node leads). The block kept beside the mark in `signer.state` is always recognised.
    var holdsSignedBlock: @Sendable (UInt64) -> Bool = { _ in false }

    /// The highest height this key signed that the node cannot supply itself: the mark, less
    /// one when the block signed at the mark is kept (the producer commits that very block).
    /// Nil without a mark. An unreadable or impossible mark fails closed: which heights this
    /// key signed cannot be told, so the fence cannot be cleared. With the remote signer the mark
    /// is the signer's, asked over the network (issue 29).
    func unrecoverableMark() async throws(NodeFailure) -> UInt64? {
        let record: SignerHighWaterMark.Record?
        do throws(ConfigError) {
            record = try await signerMark?.currentRecord()
        } catch {
            throw unreadable(error)
        }
        return unrecoverable(record)
    }

    private func unreadable(_ error: ConfigError) -> NodeFailure {
        .failClosed("the signer's high-water mark cannot be read (\(error)); refusing to produce without knowing which heights were signed (\(gate.reset(to: "N")) rewrites it)")
    }

    private func unrecoverable(_ record: SignerHighWaterMark.Record?) -> UInt64? {
        guard let record else { return nil }
        // Height 0 is never signed (blocks start at 1); the parser refuses a block kept there.
        guard record.height > 0 else { return 0 }
        if let bytes = record.block, let kept = try? SignedBlockBytes.decode(bytes), kept.signedHeader.height == record.height {
            return record.height - 1
        }
        if holdsSignedBlock(record.height) { return record.height - 1 }
        return record.height
    }

    /// One consistent-enough look at everything the gate needs.
    func sample(mark: UInt64?, follower: DAFollowerStatus, now: ContinuousClock.Instant) -> CatchupSnapshot {
        let progress = sync.pipeline.progress
        return CatchupSnapshot(
            daHeadReached: follower.headReached,
            storeHeight: progress.storeHeight,
            p2pMaxHeight: p2p.maxPeerHeight,
            peersConfigured: peersConfigured,
            peersAnswered: p2p.provenHeights.configuredPeerAnswered,
            silentPeers: p2p.silentConfiguredPeers,
            waitingToApply: progress.waiting,
            lowestWaiting: progress.lowestWaiting,
            // A divergence recovery rewrites the store: from the moment the conflict is raised
            // until DA's chain is replayed (the phase says `recovering` only once it rolls back).
            recoveryPending: sync.recovery.isPending || state.phase == .recovering,
            highestKnownHeader: max(progress.highestKnownHeader, follower.highestHeader),
            lastUnrecoverableSigned: mark,
            elapsed: now - startedAt,
            sinceLastProgress: now - max(progress.lastProgress, startedAt),
            // A DA height that keeps failing among answering neighbours clears `lastError`
            // with every answer; it holds the head back all the same.
            daError: follower.lastError ?? follower.stalled.map { "stalled at DA height \($0.daHeight): \($0.lastError)" })
    }

    /// Samples and decides in one step, reading the mark afresh (the HA bootstrap: this node,
    /// or another member sharing its remote signer, may have signed in an earlier term).
    func decide() async -> (CatchupSnapshot?, CatchupDecision) {
        let mark: UInt64?
        do throws(NodeFailure) {
            mark = try await unrecoverableMark()
        } catch {
            if case .failClosed(let why) = error { return (nil, .failClosed(why)) }
            return (nil, .failClosed(error.description))
        }
        let snapshot = sample(mark: mark, follower: sync.follower.status, now: .now)
        return (snapshot, gate.evaluate(snapshot))
    }
}
