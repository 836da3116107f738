import Primitives
import Chain
import Store
import Logging
import NIOPosix
import Synchronization

/// Divergence recovery (SPEC §7). P2P blocks are soft and DA blocks authoritative: when DA's
/// block at a height differs from the stored one, the node
///
/// 1. halts if the height is at or below the finalized height (finality never goes back; the
///    evidence is kept, nothing is changed, the process exits with status 3);
/// 2. otherwise walks back to the highest common ancestor (`AncestorSearch`, bounded, never below
///    the finalized height), rolls store and executor back to it in one atomic step between two
///    applied batches (`SyncPipeline.rollback`), confirms the rollback by reading the head back,
///    and has the DA follower deliver the authoritative blocks above it again;
/// 3. stays in phase `recovering` (`/health/ready` answers 503) until the replay has put DA's
///    block in place at the height that diverged.
///
/// A failed or unconfirmed rollback is logged as an error naming heights and hashes, reported
/// (the node shows it as the phase's reason and counts it in `evnode_rollback_failures_total`),
/// and retried with backoff — from a fresh walk, since finality or the store may have moved
/// meanwhile. Signals are
/// coalesced: the lowest height waiting is handled next, and signals made stale by a rollback
/// are dropped after a look at the store.
///
/// What it does is told to a `RecoveryObserver` (`RecoveryReport`): the node keeps its phase and
/// metrics, so that this module needs neither.
package final class DivergenceRecovery: Sendable {
    package struct Options: Sendable {
        package var limits = AncestorSearch.Limits()
        /// Backoff between failed attempts (retried for as long as it takes).
        package var retry = RetryPolicy(maxAttempts: .max, initialDelay: .milliseconds(200), maxDelay: .seconds(30))
        /// How often the replay is checked, and how often its progress is logged.
        package var pollInterval: Duration = .milliseconds(50)
        package var progressLogInterval: Duration = .seconds(5)

        package init() {}
    }

    let store: BlockStore
    let pipeline: SyncPipeline
    let authority: AuthoritativeHeaders
    let replay: any AuthoritativeReplay
    let rollbacker: any Rollbacker
    let evidence: EvidenceLog?
    let observer: any RecoveryObserver
    let options: Options
    let blockingPool: NIOThreadPool
    let logger: Logger

    private let waiting = Mutex<DivergenceSignal?>(nil)
    /// A signal taken from `waiting` is being handled (search, rollback, replay).
    private let inFlight = Atomic<Bool>(false)
    /// `.recovering` was reported and `.recovered` not yet (kept while several recoveries follow
    /// each other).
    private let reportedRecovering = Atomic<Bool>(false)
    /// Survives a cancelled `run()`: an HA node runs recovery again each time it follows.
    private let wake = WakeUpSignal()

    package init(store: BlockStore, pipeline: SyncPipeline, authority: AuthoritativeHeaders,
                 replay: any AuthoritativeReplay, rollbacker: any Rollbacker, evidence: EvidenceLog?,
                 observer: any RecoveryObserver, options: Options = Options(),
                 blockingPool: NIOThreadPool = .singleton, logger: Logger) {
        self.store = store
        self.pipeline = pipeline
        self.authority = authority
        self.replay = replay
        self.rollbacker = rollbacker
        self.evidence = evidence
        self.observer = observer
        self.options = options
        self.blockingPool = blockingPool
        self.logger = logger
        pipeline.observeDivergences { [weak self] event in self?.observe(event) }
    }

    /// Takes a pipeline event; returns at once. Events that are not a DA divergence are ignored.
    /// The pipeline calls it at the moment it raises one (`SyncPipeline.observeDivergences`).
    package func observe(_ event: SyncEvent) {
        guard let signal = DivergenceSignal(event) else { return }
        report(signal)
    }

    /// Whether a divergence was raised and its recovery has not finished: waiting, or being
    /// handled (search, rollback, replay). The catchup gate refuses to promote while this holds
    /// (SPEC §6 condition 5).
    package var isPending: Bool {
        // In this order: a signal moves waiting → in flight with inFlight set first.
        if waiting.withLock({ $0 != nil }) { return true }
        return inFlight.load(ordering: .sequentiallyConsistent)
    }

    package func report(_ signal: DivergenceSignal) {
        let isNew = waiting.withLock { w -> Bool in
            if let current = w, current.point.height <= signal.point.height { return false }
            w = signal
            return true
        }
        if isNew { wake.signal() }
    }

    /// Handles divergences until cancelled. Throws when the node must halt.
    package func run() async throws(DivergenceRecoveryError) {
        while !Task.isCancelled {
            // What was reported while no run was waiting (an HA node between roles) is handled first.
            while true {
                inFlight.store(true, ordering: .sequentiallyConsistent)
                guard let signal = waiting.withLock({ w -> DivergenceSignal? in defer { w = nil }; return w }) else {
                    inFlight.store(false, ordering: .sequentiallyConsistent)
                    break
                }
                do throws(DivergenceRecoveryError) {
                    if isCurrent(signal) {
                        try await handle(signal)
                    } else {
                        finishIfIdle()
                    }
                } catch {
                    inFlight.store(false, ordering: .sequentiallyConsistent)
                    throw error
                }
                if Task.isCancelled {
                    // Stopped in the middle (the sync phase ends): the divergence is not known
                    // to be recovered, so it stays pending for the next run to check.
                    report(signal)
                    inFlight.store(false, ordering: .sequentiallyConsistent)
                    return
                }
                inFlight.store(false, ordering: .sequentiallyConsistent)
            }
            do {
                try await wake.wait(atMost: .seconds(3600))
            } catch {
                return
            }
        }
    }

    /// Whether the store still differs from DA where `signal` says. Signals from before a
    /// rollback are stale: heights above the store are delivered again (and re-reported if they
    /// still differ), and heights where DA's block now stands are healed.
    private func isCurrent(_ signal: DivergenceSignal) -> Bool {
        let height = signal.point.height
        guard height <= store.height else { return false }
        if case .stateRoot = signal.kind { return height == store.height }
        let stored: [UInt8]
        if let hash = (try? store.headerHash(at: height)) ?? nil {
            stored = hash
        } else {
            stored = store.state?.lastBlockHeight == height ? store.state?.lastHeaderHash ?? [] : []
        }
        return stored != signal.point.authoritativeHash
    }

    // MARK: one divergence

    private func handle(_ signal: DivergenceSignal) async throws(DivergenceRecoveryError) {
        var backoff = Backoff(policy: options.retry)
        var attempt = 0
        while !Task.isCancelled {
            attempt += 1
            let plan: AncestorSearchResult
            do throws(RecoveryAttemptFailure) {
                plan = try await searchAncestor(from: signal)
            } catch {
                await failed(attempt, error, signal: signal, backoff: &backoff)
                continue
            }
            switch plan {
            case .noDivergence:
                // Healed already (a rollback for a lower height covered it), or stale.
                finishIfIdle()
                return
            case let .finalizedDivergence(height, stored, authoritative, finalized):
                try halt(.finalizedDivergence(height: height, stored: stored, authoritative: authoritative,
                                              finalized: finalized, origin: signal.origin))
            case let .brokenAuthority(height, link, firstSeen):
                try halt(.brokenAuthority(height: height, link: link, firstSeen: firstSeen))
            case let .ancestor(ancestor, ancestorHash, exact, note):
                if case let .stateRoot(stored, authoritative) = signal.kind {
                    try halt(.stateRootMismatch(height: signal.point.height, stored: stored,
                                                authoritative: authoritative))
                }
                let head = store.height
                let headHash = (try? store.headerHash(at: head)) ?? nil
                if attempt == 1 {
                    enterRecovering(signal, head: head, ancestor: ancestor)
                }
                logger.warning("divergence: rolling back to the common ancestor", metadata: [
                    "diverged_at": "\(signal.point.height)", "da_hash": "\(Hex.encode(signal.point.authoritativeHash))",
                    "head": "\(head)", "head_hash": "\(Hex.encode(headHash ?? []))", "ancestor": "\(ancestor)",
                    "ancestor_hash": "\(Hex.encode(ancestorHash))", "exact": "\(exact)",
                    "note": "\(note ?? "")", "attempt": "\(attempt)", "finalized": "\(store.finalizedHeight)"])
                do throws(RecoveryAttemptFailure) {
                    try await rollBack(to: ancestor, expecting: ancestorHash, head: head, headHash: headHash ?? [])
                } catch {
                    if Task.isCancelled { return }
                    await failed(attempt, error, signal: signal, backoff: &backoff)
                    continue
                }
                observer.report(.rolledBack(from: head, to: ancestor))
                logger.notice("rolled back to the common ancestor; replaying the DA chain", metadata: [
                    "ancestor": "\(ancestor)", "ancestor_hash": "\(Hex.encode(ancestorHash))",
                    "removed": "\(head - ancestor)", "from_height": "\(head)"])
                observer.report(.progress("replaying DA's chain from the common ancestor \(ancestor) (diverged at \(signal.point.height))"))
                replay.rewind(after: ancestor)
                await waitForReplay(signal, ancestor: ancestor)
                finishIfIdle()
                return
            }
        }
    }

    private func searchAncestor(from signal: DivergenceSignal) async throws(RecoveryAttemptFailure)
        -> AncestorSearchResult {
        let search = AncestorSearch(store: store, authority: authority, limits: options.limits)
        let evidence = self.evidence
        let logger = self.logger
        let point = signal.point
        let origin = signal.origin
        guard case .stateRoot = signal.kind else {
            return try await onPool { () throws(RecoveryAttemptFailure) -> AncestorSearchResult in
                do throws(StoreError) {
                    return try search.search(from: point) { stored, authoritative in
                        do throws(StoreError) {
                            try evidence?.record(first: stored, firstSeen: "store", second: authoritative,
                                                 secondSeen: "\(origin)")
                        } catch {
                            logger.error("could not record double-sign evidence", metadata: [
                                "height": "\(stored.height)", "error": "\(error)"])
                        }
                    }
                } catch {
                    throw .search(error)
                }
            }
        }
        // The chains agree at the height below DA's block: nothing to walk.
        let head = store.height
        guard head == point.height else { return .noDivergence }
        let hash = (try? store.headerHash(at: head)) ?? nil
        return .ancestor(height: head, hash: hash ?? [], exact: true, note: nil)
    }

    /// One atomic rollback between two applied batches, then the head read back from the store.
    /// Never written once the recovery is cancelled (the sync phase stops, perhaps to promote):
    /// cancellation is checked right before the rollback is asked for.
    private func rollBack(to ancestor: UInt64, expecting hash: [UInt8], head: UInt64, headHash: [UInt8])
        async throws(RecoveryAttemptFailure) {
        let store = self.store
        guard !Task.isCancelled else { throw .stopped }
        let refused = CancellationFlag()
        do throws(StoreError) {
            try await pipeline.rollback(to: ancestor, using: UnlessCancelled(rollbacker: rollbacker, refused: refused))
        } catch {
            if refused.isSet { throw .stopped }
            throw .rollback(from: head, fromHash: headHash, to: ancestor, toHash: hash, error)
        }
        try await onPool { () throws(RecoveryAttemptFailure) in
            try Self.confirm(store: store, to: ancestor, expecting: hash, head: head, headHash: headHash)
        }
    }

    private static func confirm(store: BlockStore, to ancestor: UInt64, expecting hash: [UInt8], head: UInt64,
                                headHash: [UInt8]) throws(RecoveryAttemptFailure) {
        // Confirm from the database itself, not from what the rollback returned.
        let height = store.height
        let readBack: [UInt8]
        let above: Bool
        do throws(StoreError) {
            readBack = try store.headerHash(at: height) ?? store.state?.lastHeaderHash ?? []
            above = try store.signedHeader(at: ancestor + 1) != nil
        } catch {
            throw .rollback(from: head, fromHash: headHash, to: ancestor, toHash: hash, error)
        }
        guard height == ancestor, readBack == hash, !above else {
            throw .unconfirmed(to: ancestor, toHash: hash, headHeight: height, headHash: readBack, above: above)
        }
    }

    /// Until DA's block stands at the height that diverged. Logs progress; returns early when a
    /// new divergence waits (it is handled next, still in phase `recovering`) or on cancellation.
    private func waitForReplay(_ signal: DivergenceSignal, ancestor: UInt64) async {
        let clock = ContinuousClock()
        let started = clock.now
        var lastLog = started
        let target = signal.point.height
        while !Task.isCancelled {
            if store.height >= target, (try? store.headerHash(at: target)) == signal.point.authoritativeHash {
                logger.notice("recovered: the store follows DA's chain again", metadata: [
                    "height": "\(store.height)", "diverged_at": "\(target)", "ancestor": "\(ancestor)",
                    "hash": "\(Hex.encode(signal.point.authoritativeHash))"])
                return
            }
            // Another divergence: handled next (still recovering). Stale ones are dropped here.
            if let next = waiting.withLock({ $0 }) {
                if isCurrent(next) { return }
                waiting.withLock { w in if w == next { w = nil } }
            }
            if clock.now - lastLog >= options.progressLogInterval {
                lastLog = clock.now
                logger.warning("recovering: waiting for DA's blocks to be replayed", metadata: [
                    "height": "\(store.height)", "target": "\(target)", "ancestor": "\(ancestor)",
                    "elapsed_s": "\(Int((clock.now - started).components.seconds))"])
            }
            try? await Task.sleep(for: options.pollInterval)
        }
    }

    // MARK: reports, failures, halting

    private func enterRecovering(_ signal: DivergenceSignal, head: UInt64, ancestor: UInt64) {
        reportedRecovering.store(true, ordering: .sequentiallyConsistent)
        observer.report(.recovering(divergedAt: signal.point.height, reason: "DA's block \(signal.point.height) (\(Hex.encode(signal.point.authoritativeHash))) differs from the stored chain; rolling back from \(head) to the common ancestor \(ancestor)"))
    }

    /// Reports the recovery finished, unless another divergence waits.
    private func finishIfIdle() {
        guard waiting.withLock({ $0 == nil }) else { return }
        guard reportedRecovering.exchange(false, ordering: .sequentiallyConsistent) else { return }
        observer.report(.recovered)
    }

    private func failed(_ attempt: Int, _ error: RecoveryAttemptFailure, signal: DivergenceSignal,
                        backoff: inout Backoff) async {
        let delay = backoff.nextDelay()
        observer.report(.attemptFailed(attempt: attempt, divergedAt: signal.point.height, failure: error,
                                       retryIn: delay))
        let message = "recovery attempt \(attempt) for the divergence at \(signal.point.height) failed: \(error); retrying in \(DurationParser.format(delay))"
        logger.error("divergence recovery failed; retrying", metadata: [
            "attempt": "\(attempt)", "diverged_at": "\(signal.point.height)",
            "da_hash": "\(Hex.encode(signal.point.authoritativeHash))", "error": "\(error)",
            "retry_in": "\(DurationParser.format(delay))"])
        if !observer.isRecovering {
            enterRecovering(signal, head: store.height, ancestor: store.finalizedHeight)
        }
        observer.report(.progress(message))
        try? await Task.sleep(for: delay)
    }

    private func halt(_ error: DivergenceRecoveryError) throws(DivergenceRecoveryError) -> Never {
        logger.critical("halting: \(error)")
        observer.report(.halted(error))
        throw error
    }

    private func onPool<T: Sendable>(_ body: @escaping @Sendable () throws(RecoveryAttemptFailure) -> T)
        async throws(RecoveryAttemptFailure) -> T {
        let result: Result<T, RecoveryAttemptFailure>
        do {
            result = try await blockingPool.runIfActive { () -> Result<T, RecoveryAttemptFailure> in
                do throws(RecoveryAttemptFailure) {
                    return .success(try body())
                } catch {
                    return .failure(error)
                }
            }
        } catch {
            throw .stopped
        }
        return try result.get()
    }
}
