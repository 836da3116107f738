import Primitives
import Sync
import Logging
import P2PSync
import Synchronization

/// The moving parts of the sync phase (SPEC §6 "syncing", and a full node forever): the DA
/// follower, blocks gossiped by peers, ranges fetched from peers that are ahead, and the sync
/// pipeline that applies them. `run()` returns when cancelled and throws what the node cannot
/// continue after — never swallowing a background failure.
final class SyncRuntime: Sendable {
    let pipeline: SyncPipeline
    let follower: DAFollower
    let p2p: P2PService
    let blockCheck: SignedBlockValidator
    let recovery: DivergenceRecovery
    let metrics: NodeMetrics
    let logger: Logger
    private let fetchError = Mutex<String?>(nil)
    /// True while `run()` runs; gossip that arrives meanwhile goes to the pipeline, else is dropped.
    private let active = Atomic<Bool>(false)
    /// Shown every block gossiped while the syncer does not run (the node aggregates).
    let secondSigner: SecondSignerWatch?

    init(pipeline: SyncPipeline, follower: DAFollower, p2p: P2PService, blockCheck: SignedBlockValidator,
         recovery: DivergenceRecovery, metrics: NodeMetrics, secondSigner: SecondSignerWatch? = nil, logger: Logger) {
        self.secondSigner = secondSigner
        self.pipeline = pipeline
        self.follower = follower
        self.p2p = p2p
        self.blockCheck = blockCheck
        self.recovery = recovery
        self.metrics = metrics
        self.logger = logger
    }

    /// Whether `run()` is running (the node follows).
    var isActive: Bool { active.load(ordering: .sequentiallyConsistent) }

    /// The last failure of a range request to peers, nil after a success.
    var lastPeerFetchError: String? { fetchError.withLock { $0 } }

    func run() async throws(NodeFailure) {
        pipeline.start()
        // Taken now: `stop()` opens the next run's stream, which a consumer that starts late
        // (this run cancelled at once) must not take and end.
        let events = pipeline.events
        active.store(true, ordering: .sequentiallyConsistent)
        // The first part to end (a failure, or cancellation) ends the phase; what the others
        // report while stopping is thrown or logged, not dropped.
        var phase = FirstChildWins<Void>([
            .init(.daFollower) {
                do {
                    try await self.follower.run()
                } catch is CancellationError {
                } catch let violation as ForcedInclusionViolation {
                    throw NodeFailure.forcedInclusion(violation)
                }
            },
            .init(.peerFetch) { await self.fetchFromPeers() },
            .init(.syncer) { try await self.watchPipeline(events) },
            .init(.divergenceRecovery) {
                do throws(DivergenceRecoveryError) {
                    try await self.recovery.run()
                } catch {
                    throw NodeFailure.divergence(error)
                }
            },
        ], logger: logger)
        phase.afterFirstEnded = { [self] in
            active.store(false, ordering: .sequentiallyConsistent)
            // Wakes whatever waits for room in the pipeline (the DA follower, gossip) so every
            // part sees the cancellation now, and waits for the batch in progress: awaited, not
            // waited for, as it may need a cooperative thread itself.
            await pipeline.stop()
        }
        do throws(NodeFailure) {
            _ = try await phase.run()
        } catch {
            // Cancelled while a part failed on its way out: the node stops, as it was told to.
            if Task.isCancelled, case .failed = error { return }
            throw error
        }
    }

    /// After `run()` ended: records what DA confirmed of the blocks applied last (see
    /// `DAFollower.settle`), so that a promoted aggregator's submitter resumes after them.
    func settle() async throws(NodeFailure) {
        do {
            try await follower.settle()
        } catch {
            throw .failed(.daFollower, underlying: InclusionSettleFailure(underlying: error))
        }
    }

    /// Consumes gossip until cancelled, once for the node's life: the failover driver runs it
    /// beside its phases, because cancelling a consumer would end the stream and an HA node runs
    /// the sync phase again each time it follows. While the sync phase runs the blocks go to
    /// the pipeline; otherwise the second-signer watch of an aggregator judges them.
    func relayGossip() async {
        await takeGossip()
        // P2P shut down: nothing more arrives; the relay ends with the node, not before it.
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(3600))
        }
    }

    /// Blocks gossiped by peers (already signature-checked by P2P) go to the pipeline while the
    /// sync phase runs, their data without its unverified metadata (`SignedBlockValidator`).
    /// Ends when P2P shuts down.
    private func takeGossip() async {
        for await received in p2p.receivedBlocks {
            guard case .success(let block) = blockCheck.check(received.block) else { continue }
            guard active.load(ordering: .sequentiallyConsistent) else {
                // Not taken, but known: the catchup gate's re-check after the sync phase
                // stopped counts headers that arrived meanwhile (equivocation fence), and an
                // aggregator is told of a validly signed block above its store: a second signer.
                pipeline.noteKnownHeader(block.signedHeader.height)
                secondSigner?.saw(height: block.signedHeader.height, hash: block.signedHeader.header.hash,
                                  proposer: block.signedHeader.header.proposerAddress, source: "peer \(received.from) (a gossiped block)")
                continue
            }
            await pipeline.submit([CandidateBlock(signedHeader: block.signedHeader, data: block.data,
                                                  origin: .p2p(peer: received.from.description), signatureVerified: true)])
        }
    }

    /// Ranges from peers that announce more than the store holds. While DA is still delivering
    /// (head not reached and the store advancing), DA is left to do the work.
    private func fetchFromPeers() async {
        var idle: Duration = .milliseconds(100)
        // Once peers deliver, keep asking them: the store's progress is then their doing, not DA's.
        var peersDelivering = false
        while !Task.isCancelled {
            let progress = pipeline.progress
            let stalled = ContinuousClock.now - progress.lastProgress > .seconds(2)
            guard let peerMax = p2p.fetchTargetHeight, peerMax > progress.storeHeight,
                  follower.status.headReached || stalled || peersDelivering else {
                peersDelivering = false
                try? await Task.sleep(for: idle)
                continue
            }
            let from = progress.storeHeight + 1
            let to = min(peerMax, from + UInt64(P2PProtocol.maxBlocksPerRequest * 4) - 1)
            do {
                let blocks = try await p2p.requestRange(from: from, to: to)
                var candidates: [CandidateBlock] = []
                candidates.reserveCapacity(blocks.count)
                for b in blocks {
                    if case .success(let decoded) = blockCheck.check(b.block) {
                        // Only from blocks that verify: a hint is advisory, and bounded in the follower.
                        follower.hint(daHeight: b.headerDAHeightHint)
                        if b.dataDAHeightHint != b.headerDAHeightHint { follower.hint(daHeight: b.dataDAHeightHint) }
                        candidates.append(CandidateBlock(signedHeader: decoded.signedHeader, data: decoded.data,
                                                         origin: .p2p(peer: b.from.description), signatureVerified: true))
                    }
                }
                if candidates.isEmpty {
                    throw P2PFetchFailure.empty(from: from, to: to)
                }
                fetchError.withLock { $0 = nil }
                idle = .milliseconds(100)
                peersDelivering = true
                await pipeline.submit(candidates)
                // Let the pipeline apply before asking again for the same heights.
                while !Task.isCancelled, pipeline.progress.storeHeight < candidates.last!.height,
                      pipeline.progress.waiting > 0 {
                    try? await Task.sleep(for: .milliseconds(20))
                    if ContinuousClock.now - pipeline.progress.lastProgress > .seconds(2) { break }
                }
            } catch {
                let first = fetchError.withLock { e -> Bool in
                    defer { e = "heights \(from)…\(to): \(error)" }
                    return e == nil
                }
                if first {
                    logger.warning("could not fetch blocks from peers", metadata: [
                        "from": "\(from)", "to": "\(to)", "peer_max": "\(peerMax)", "error": "\(error)"])
                }
                peersDelivering = false
                idle = min(idle * 2, .seconds(2))
                try? await Task.sleep(for: idle)
            }
        }
    }

    /// Pipeline events: count rejected blocks, hand divergences from DA to the recovery, stop on
    /// failure.
    ///
    /// A block rejected here never gets a peer penalised. What a peer can be blamed for was
    /// checked before the block reached the pipeline, against the peer that sent that part: a
    /// header's decoding, chain and proposer signature, data's decoding and chain, txs against
    /// `data_hash` (range answers: the whole pair, one peer). The metadata, which nothing
    /// verified covers, was dropped. What is left for the pipeline to reject is what the
    /// proposer signed (a time before the previous block's, a header that does not extend our
    /// chain), and a relayer that forwarded a validly signed header did nothing wrong.
    private func watchPipeline(_ events: AsyncStream<SyncEvent>) async throws {
        for await event in events {
            switch event {
            case .rejected:
                metrics.blocksRejected.increment()
                // DA divergences reach the recovery from the pipeline directly, when raised.
            case .conflict(let height, let stored, let candidate):
                // From DA this is a divergence (recovered); from a peer only evidence (P2P is soft).
                logger.log(level: candidate.origin.isDA ? .error : .warning,
                           "a validly signed block differs from the stored one", metadata: [
                    "height": "\(height)", "stored": "\(Hex.encode(stored))",
                    "received": "\(Hex.encode(candidate.signedHeader.header.hash))", "from": "\(candidate.origin)"])
            case .failed(let error):
                throw NodeFailure.syncer(error)
            }
        }
    }
}

/// The DA follower could not record what DA confirmed of the blocks applied last (`settle`).
struct InclusionSettleFailure: Error, CustomStringConvertible {
    let underlying: any Error
    var description: String { "recording the DA inclusion of caught-up blocks: \(underlying)" }
}

enum P2PFetchFailure: Error, CustomStringConvertible {
    case empty(from: UInt64, to: UInt64)
    var description: String {
        switch self {
        case let .empty(from, to): return "no peer served heights \(from)…\(to)"
        }
    }
}
