import Primitives
import Chain
import Dispatch
import Execution
import Foundation
import Logging
import Store
import Synchronization
import Telemetry

/// Where a candidate block came from. DA is authoritative; P2P is soft (SPEC §7).
package enum BlockOrigin: Sendable, Hashable, CustomStringConvertible {
    case da(daHeight: UInt64)
    case p2p(peer: String)
    /// The latest block an HA leader committed to etcd (soft, like P2P, until DA has it).
    case replicated(leader: String)

    package var isDA: Bool {
        if case .da = self { return true }
        return false
    }

    package var description: String {
        switch self {
        case .da(let h): return "DA height \(h)"
        case .p2p(let peer): return "peer \(peer)"
        case .replicated(let leader): return "etcd (leader \(leader))"
        }
    }
}

/// A complete block (signed header and its data) offered to the sync pipeline.
package struct CandidateBlock: Sendable {
    package var signedHeader: SignedHeader
    package var data: BlockData
    package var origin: BlockOrigin
    /// True when the supplier already ran `BlockValidator.verifySignature` on this very header
    /// with the chain's validator (e.g. the DA follower, which checks headers as it decodes
    /// them). The pipeline then skips that check: one Ed25519 verification per block is the
    /// floor of a catch-up, a second one would halve it.
    package var signatureVerified: Bool

    package init(signedHeader: SignedHeader, data: BlockData, origin: BlockOrigin, signatureVerified: Bool = false) {
        self.signedHeader = signedHeader
        self.data = data
        self.origin = origin
        self.signatureVerified = signatureVerified
    }

    package var height: UInt64 { signedHeader.header.height }
}

/// Anything that takes candidate blocks: the sync pipeline, for the DA follower and P2P.
package protocol CandidateSink: Sendable {
    /// Offers blocks; suspends while the pipeline is full (backpressure).
    func submit(_ candidates: [CandidateBlock]) async
}

/// What the pipeline tells the node besides progress.
package enum SyncEvent: Sendable {
    /// A block was dropped by validation; `blamesSource` says whether its source should be
    /// penalised.
    case rejected(height: UInt64, origin: BlockOrigin, error: ApplyError)
    /// A validly signed block at a height we already hold, with another hash (SPEC §7).
    case conflict(height: UInt64, storedHash: [UInt8], candidate: CandidateBlock)
    /// The pipeline stopped because the store or executor failed; the node must halt.
    case failed(ApplyError)
}

extension SyncEvent {
    /// A block from DA (authoritative) that contradicts the stored chain: another block at a
    /// stored height, a link to another head, or another state root. Divergence recovery acts
    /// on exactly these, and the catchup gate refuses to promote from the moment one is raised.
    package var isDADivergence: Bool {
        switch self {
        case .conflict(_, _, let candidate):
            return candidate.origin.isDA
        case .rejected(let height, let origin, .invalid(let error)):
            switch error {
            case .lastHeaderHashMismatch, .appHashMismatch: return origin.isDA && height > 0
            default: return false
            }
        default:
            return false
        }
    }
}

/// A snapshot of the pipeline's progress (sampled by the failover state machine and /status).
package struct SyncProgress: Sendable, Equatable {
    package var storeHeight: UInt64
    /// Complete blocks held and not yet applied.
    package var waiting: Int
    /// Highest height of a header validly signed by the proposer seen from any source.
    package var highestKnownHeader: UInt64
    package var appliedTotal: UInt64
    /// When the last block was applied (or when the pipeline started).
    package var lastProgress: ContinuousClock.Instant
    /// The lowest height held and not applied (nil when none is): blocks held above
    /// `storeHeight + 1` wait for a gap `storeHeight + 1 ..< lowestWaiting` to be filled.
    package var lowestWaiting: UInt64? = nil
}

/// The full node's sync pipeline: takes candidate blocks from DA and P2P in any order, holds them
/// by height (bounded), verifies signatures in parallel ahead of the in-order apply, and applies
/// consecutive runs through `BlockApplier` in one store batch per run.
///
/// With an in-process executor (KV) the apply loop runs on a thread of its own: it is CPU and
/// disk work that would otherwise take a whole core of Swift's two-thread cooperative pool away
/// from networking, and a run of blocks is executed and stored in one batch there. With an
/// executor over the network (an EL) the loop is a task: each block's execution is awaited and
/// its store commit runs on a lane of the pipeline's — no thread waits for a task.
package final class SyncPipeline: CandidateSink, @unchecked Sendable {
    // @unchecked: every mutable field below is guarded by `condition`.
    private let applier: BlockApplier
    private let validator: BlockValidator
    /// What DA says each unfinalized height is: soft blocks that contradict it are not held.
    private let authority: AuthoritativeHeaders?
    /// Where two different signed headers at one height are recorded.
    private let evidence: EvidenceLog?
    private let logger: Logger
    /// Most blocks held waiting; `submit` suspends beyond it.
    package let capacity: Int
    /// Most blocks applied in one store batch.
    package let batchSize: Int

    private let condition = NSCondition()
    /// The held blocks, store height, known headers and epoch, and the rules over them.
    private var buffer: SyncBuffer
    private let chain: StoreChainView
    private var appliedTotal: UInt64 = 0
    private var lastProgress = ContinuousClock.now
    private var retryAfter: ContinuousClock.Instant?
    private var stopping = false
    private var running = false
    /// A batch is being applied (the apply loop works outside the lock meanwhile).
    private var applying = false
    /// A rollback is in progress: the apply loop takes nothing.
    private var paused = false
    private var failure: ApplyError?
    /// Told of every DA divergence synchronously, before the event is yielded: the event stream
    /// of a run ends with the run, a divergence must not end with it.
    private let divergenceObserver = Mutex<(@Sendable (SyncEvent) -> Void)?>(nil)
    private var spaceWaiters: [CheckedContinuation<Bool, Never>] = []
    private var thread: Thread?
    /// The apply thread has not ended yet (set by `start()`, cleared by the thread itself).
    private var threadAlive = false
    /// `stop()` calls waiting for the apply thread to end: resumed by the thread as it ends, so
    /// that nothing waits blocked on the cooperative pool for a batch in progress (which may
    /// itself need a cooperative thread, for a remote executor's call).
    private var threadEndWaiters: [CheckedContinuation<Void, Never>] = []
    /// The awaiting apply loop (executor over the network), parked until a run is ready or the
    /// pipeline stops; resumed by whoever would signal the apply thread.
    private var loopWaiter: CheckedContinuation<Void, Never>?
    /// Rollbacks waiting for the batch in flight (or another rollback) to end; the first one is
    /// handed the pause when the pipeline goes idle.
    private var idleWaiters: [CheckedContinuation<Void, Never>] = []

    /// The current run's events. `stop()` finishes them and opens the next run's, so a pipeline
    /// stopped and started again (an HA node that leads, then follows again) reports to a new consumer.
    private let eventStream = Mutex(AsyncStream<SyncEvent>.makeStream(of: SyncEvent.self,
                                                                      bufferingPolicy: .bufferingOldest(4096)))
    private var eventContinuation: AsyncStream<SyncEvent>.Continuation { eventStream.withLock { $0.continuation } }
    /// Events of the current run (single consumer); finished by `stop()`.
    package var events: AsyncStream<SyncEvent> { eventStream.withLock { $0.stream } }

    /// ev-node's `blocks_synchronized_total{source}`, `height` and `state_update`, counted as each
    /// run of blocks is stored (on the apply thread).
    private let metrics: EvNodeMetrics?

    package init(applier: BlockApplier, capacity: Int = 8192, batchSize: Int = 512,
                authority: AuthoritativeHeaders? = nil, evidence: EvidenceLog? = nil,
                metrics: EvNodeMetrics? = nil, logger: Logger) {
        self.metrics = metrics
        self.applier = applier
        self.validator = applier.validator
        self.authority = authority
        self.evidence = evidence
        self.capacity = capacity
        self.batchSize = batchSize
        self.logger = logger
        buffer = SyncBuffer(storeHeight: applier.store.height, capacity: capacity, batchSize: batchSize)
        chain = StoreChainView(store: applier.store, authority: authority, genesisProposer: applier.validator.proposerAddress)
    }

    package var progress: SyncProgress {
        condition.lock()
        defer { condition.unlock() }
        return SyncProgress(storeHeight: buffer.storeHeight, waiting: buffer.waiting,
                            highestKnownHeader: buffer.highestKnownHeader, appliedTotal: appliedTotal,
                            lastProgress: lastProgress, lowestWaiting: buffer.lowestWaiting)
    }

    package func start() {
        condition.lock()
        defer { condition.unlock() }
        guard !running else { return }
        running = true
        stopping = false
        buffer.resume(at: applier.store.height)
        lastProgress = .now
        threadAlive = true
        if applier.local != nil {
            let thread = Thread { [self] in self.applyLoop() }
            thread.name = "evnode-sync-apply"
            self.thread = thread
            thread.start()
        } else {
            // Ends with the run (stop() awaits it through `threadAlive`, as for the thread).
            let lane = BlockingLane(name: "evnode-sync-store", threads: 1)
            Task { [self] in await self.applyLoopAwaitingExecutor(on: lane) }
        }
    }

    /// Stops the apply loop after the batch in progress and waits (suspended, not blocked) for
    /// it. Blocks held are dropped, and the run's event stream ends.
    package func stop() async {
        requestStop()
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            if !parkUntilThreadEnds(c) { c.resume() }
        }
        guard endRun() else { return }
        let finished = eventStream.withLock { current in
            defer { current = AsyncStream.makeStream(of: SyncEvent.self, bufferingPolicy: .bufferingOldest(4096)) }
            return current.continuation
        }
        finished.finish()
    }

    /// Keeps `c` to be resumed when the apply thread ends; false when it has ended already.
    private func parkUntilThreadEnds(_ c: CheckedContinuation<Void, Never>) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard threadAlive else { return false }
        threadEndWaiters.append(c)
        return true
    }

    /// Marks the run ended and drops what it held, once its thread has ended; false when another
    /// `stop()` did so first (two at once: the first one back ends the run).
    private func endRun() -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard running, !threadAlive else { return false }
        running = false
        buffer.dropAll()
        return true
    }

    /// Tells the apply loop to stop after the batch in progress and releases every submitter
    /// waiting for room, without waiting for anything: what `stop()` then awaits. For a caller
    /// that wants the pipeline's waiters to see the end now (cancelling the tasks that feed it).
    package func requestStop() {
        condition.lock()
        guard running else {
            condition.unlock()
            return
        }
        stopping = true
        let waiters = spaceWaiters
        spaceWaiters = []
        wakeApplyLoop()
        condition.unlock()
        for w in waiters { w.resume(returning: true) }
    }

    /// Blocks from DA beyond the window wait (DA delivers in order; dropping them would lose
    /// them); blocks from P2P beyond it are dropped, to be fetched by range when their turn comes.
    /// A rollback (`rollback(to:using:)`) releases every waiting submitter: what it still held is
    /// dropped, since the authoritative source delivers it again.
    package func submit(_ candidates: [CandidateBlock]) async {
        let epoch = currentEpoch
        var (farAhead, contested, unverified) = enqueue(candidates)
        report(contested)
        noteKnownIfSigned(unverified, markHeld: true)
        var waitingDA = farAhead.filter { $0.origin.isDA }
        // Too far ahead to hold; still, a validly signed header there is known (equivocation fence).
        noteKnownIfSigned(farAhead.filter { !$0.origin.isDA }, markHeld: false)
        while !waitingDA.isEmpty {
            let seen = progress.storeHeight
            (farAhead, contested, unverified) = enqueue(waitingDA)
            report(contested)
            noteKnownIfSigned(unverified, markHeld: true)
            waitingDA = farAhead
            if waitingDA.isEmpty { break }
            guard await waitForProgress(beyond: seen, epoch: epoch) else { break }
        }
        while await waitForRoom(epoch: epoch) {}
    }

    /// Whether the chain has ever named `header`'s proposer (see `StoreChainView.isPlaceable`).
    private func isPlaceable(_ header: Header) -> Bool { chain.isPlaceable(header) }

    /// Counts the headers of `candidates` their supplier did not verify as known once their
    /// signature holds (cheap checks first: chain, a proposer the chain named, a height above the store). With
    /// `markHeld`, a held block whose signature was verified here is not verified again.
    /// Suppliers in the node verify before submitting; this is the rare path.
    private func noteKnownIfSigned(_ candidates: [CandidateBlock], markHeld: Bool) {
        for candidate in candidates {
            let header = candidate.signedHeader.header
            guard isPlaceable(header), candidate.signatureVerified || (header.chainID == validator.chainID
                && candidate.height > progress.storeHeight
                && (try? validator.verifySignature(candidate.signedHeader)) != nil) else { continue }
            condition.lock()
            if markHeld {
                buffer.markVerified(height: candidate.height, hash: header.hash)
            } else {
                buffer.noteKnownHeader(candidate.height)
            }
            condition.unlock()
        }
    }


    /// Conflicts with stored blocks become `.conflict` events when the candidate is validly
    /// signed by the key that signed the stored block (the proposer the chain expected at that
    /// height); a pair validly signed by one key the chain named is double-sign evidence.
    private func report(_ contests: [SyncBuffer.Contest]) {
        for contest in contests {
            // Only a block the expected proposer really signed matters; anything else is noise.
            // Two headers of two different keys are not a double sign: at most one of them is
            // the height's proposer, and the pipeline's validation decides which.
            let proposer = contest.incumbent.header.proposerAddress
            guard contest.candidate.signedHeader.header.proposerAddress == proposer,
                  isPlaceable(contest.incumbent.header),
                  contest.candidate.signatureVerified
                    || (try? validator.verifySignature(contest.candidate.signedHeader)) != nil else { continue }
            if contest.isStored {
                emit(.conflict(height: contest.candidate.height, storedHash: contest.incumbent.header.hash,
                               candidate: contest.candidate))
            }
            guard let evidence else { continue }
            do throws(StoreError) {
                try evidence.record(first: contest.incumbent, firstSeen: contest.incumbentSeen,
                                    second: contest.candidate.signedHeader,
                                    secondSeen: contest.candidate.origin.description)
            } catch {
                logger.error("could not record double-sign evidence", metadata: [
                    "height": "\(contest.candidate.height)", "error": "\(error)"])
            }
        }
    }

    /// Offers `candidates` to the buffer (see `SyncBuffer.offer`) and wakes the apply loop.
    private func enqueue(_ candidates: [CandidateBlock])
        -> (farAhead: [CandidateBlock], contested: [SyncBuffer.Contest], unverified: [CandidateBlock]) {
        condition.lock()
        defer {
            wakeApplyLoop()
            condition.unlock()
        }
        let admission = buffer.offer(candidates, chain: chain)
        return (admission.farAhead, admission.contested, admission.unverified)
    }

    private var currentEpoch: UInt64 {
        condition.lock()
        defer { condition.unlock() }
        return buffer.epoch
    }

    /// Records that a header validly signed by the proposer exists at `height` (the caller
    /// verified it), without holding its block: the equivocation fence counts it. For blocks that
    /// arrive while the pipeline does not take any (gossip while the sync phase stops).
    package func noteKnownHeader(_ height: UInt64) {
        condition.lock()
        buffer.noteKnownHeader(height)
        condition.unlock()
    }

    /// Who is told of each DA divergence (`SyncEvent.isDADivergence`) at the moment it is
    /// raised, on the thread that raised it; it must return at once.
    package func observeDivergences(_ observer: @escaping @Sendable (SyncEvent) -> Void) {
        divergenceObserver.withLock { $0 = observer }
    }

    /// Yields an event; a DA divergence goes to the divergence observer first.
    private func emit(_ event: SyncEvent) {
        if event.isDADivergence, let observer = divergenceObserver.withLock({ $0 }) {
            observer(event)
        }
        eventContinuation.yield(event)
    }

    /// Waits for one applied batch while the pipeline is full; false once there is room (or the
    /// pipeline stopped), true when the caller should check again.
    private func waitForRoom(epoch: UInt64) async -> Bool {
        await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            if !park(c, epoch: epoch, unless: { !self.buffer.isFull }) { c.resume(returning: false) }
        }
    }

    /// Waits until the store height moves past `height`; false when the pipeline stopped or
    /// rolled back since `epoch`.
    private func waitForProgress(beyond height: UInt64, epoch: UInt64) async -> Bool {
        _ = await withCheckedContinuation { (c: CheckedContinuation<Bool, Never>) in
            if !park(c, epoch: epoch, unless: { self.buffer.storeHeight > height }) { c.resume(returning: true) }
        }
        return isLive(since: epoch)
    }

    /// Not stopping, not failed and not rolled back since `epoch`.
    private func isLive(since epoch: UInt64) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        return !stopping && failure == nil && buffer.epoch == epoch
    }

    /// Keeps `c` to be resumed (with true) after the next applied batch, unless `satisfied`
    /// already holds, the pipeline is stopping or it rolled back since `epoch`; checked under the
    /// lock so no wake-up is missed.
    private func park(_ c: CheckedContinuation<Bool, Never>, epoch: UInt64, unless satisfied: () -> Bool) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if stopping || failure != nil || buffer.epoch != epoch || satisfied() { return false }
        spaceWaiters.append(c)
        return true
    }

    // MARK: rollback

    /// Rolls store and executor back to `height` through `rollbacker`, between two applied
    /// batches: waits (suspended) for the batch in flight, holds the apply loop, rolls back, then
    /// drops every held block (the authoritative source delivers what is needed again) and
    /// releases waiting submitters. On failure nothing changes here and the error is thrown.
    @discardableResult
    package func rollback(to height: UInt64, using rollbacker: any Rollbacker) async throws(StoreError) -> State {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            if !parkUntilIdle(c) { c.resume() }
        }
        let result: Result<State, StoreError>
        do throws(StoreError) {
            result = .success(try await rollbacker.rollback(to: height))
        } catch {
            result = .failure(error)
        }
        endRollback(succeeded: (try? result.get()) != nil)
        return try result.get()
    }

    /// Releases the pause a rollback held; after a rollback that happened, drops what was held
    /// and releases waiting submitters.
    private func endRollback(succeeded: Bool) {
        condition.lock()
        paused = false
        var waiters: [CheckedContinuation<Bool, Never>] = []
        if succeeded {
            buffer.rolledBack(to: applier.store.height)
            retryAfter = nil
            lastProgress = .now
            waiters = spaceWaiters
            spaceWaiters = []
        }
        handOffPause()
        wakeApplyLoop()
        condition.unlock()
        for w in waiters { w.resume(returning: true) }
    }

    /// Takes the pause now when no batch is in flight and no rollback holds it (false); else
    /// keeps `c` to be handed the pause later.
    private func parkUntilIdle(_ c: CheckedContinuation<Void, Never>) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if !applying && !paused && idleWaiters.isEmpty {
            paused = true
            return false
        }
        idleWaiters.append(c)
        return true
    }

    /// Called with the lock held: hands the pause to the first waiting rollback once idle.
    private func handOffPause() {
        guard !applying, !paused, !idleWaiters.isEmpty else { return }
        paused = true
        idleWaiters.removeFirst().resume()
    }

    /// Called with the lock held: wakes the apply thread, or the awaiting apply loop.
    private func wakeApplyLoop() {
        condition.broadcast()
        if let waiter = loopWaiter {
            loopWaiter = nil
            waiter.resume()
        }
    }

    // MARK: apply loop (own thread)

    private func applyLoop() {
        defer { applyLoopEnded() }
        while true {
            condition.lock()
            while !stopping && !hasNextBlockReady() {
                if let until = retryAfter {
                    let remaining = ContinuousClock.now.duration(to: until)
                    if remaining <= .zero {
                        retryAfter = nil
                        continue
                    }
                    let (s, atto) = remaining.components
                    _ = condition.wait(until: Date(timeIntervalSinceNow: Double(s) + Double(atto) / 1e18))
                } else {
                    condition.wait()
                }
            }
            if stopping {
                condition.unlock()
                return
            }
            let run = buffer.nextRun()
            applying = true
            condition.unlock()

            let outcome = applyRun(run)
            guard finished(run, outcome) else { return }
        }
    }

    /// The apply loop for an executor over the network: the same runs, taken in the same order,
    /// each block's execution awaited (`applyRunAwaitingExecutor`).
    private func applyLoopAwaitingExecutor(on lane: BlockingLane) async {
        while let run = await nextRunAwaited() {
            let outcome = await applyRunAwaitingExecutor(run, on: lane)
            guard finished(run, outcome) else { break }
        }
        await lane.shutdown()
        applyLoopEnded()
    }

    /// The next run to apply (marked in flight), or nil once the pipeline stops. A block held
    /// back for a retry is looked at again within 50 ms of its time.
    private func nextRunAwaited() async -> [CandidateBlock]? {
        while true {
            switch nextStep() {
            case .run(let run): return run
            case .stop: return nil
            case .sleep(let until): try? await Task.sleep(until: until, clock: .continuous)
            case .park:
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    if !parkApplyLoop(c) { c.resume() }
                }
            }
        }
    }

    private enum LoopStep { case run([CandidateBlock]), stop, park, sleep(ContinuousClock.Instant) }

    /// What the awaiting loop does next; a run it takes is marked in flight.
    private func nextStep() -> LoopStep {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if stopping { return .stop }
            if hasNextBlockReady() {
                applying = true
                return .run(buffer.nextRun())
            }
            guard let until = retryAfter, !paused else { return .park }
            guard until <= .now else { return .sleep(min(until, .now + .milliseconds(50))) }
            retryAfter = nil
        }
    }

    /// Keeps `c` until the awaiting loop has something to do; false when it has already.
    private func parkApplyLoop(_ c: CheckedContinuation<Void, Never>) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        if stopping || hasNextBlockReady() || (retryAfter != nil && !paused) { return false }
        loopWaiter = c
        return true
    }

    /// Books a run's outcome (under the lock) and wakes whoever waits on it; false when the
    /// pipeline failed and the loop must end.
    private func finished(_ run: [CandidateBlock], _ outcome: RunOutcome) -> Bool {
        condition.lock()
        buffer.applied(run, SyncBuffer.RunResult(applied: outcome.applied, dropped: outcome.dropped,
                                                 highestVerified: outcome.highestVerified))
        if outcome.applied > 0 {
            appliedTotal += UInt64(outcome.applied)
            lastProgress = .now
        }
        if outcome.retryLater {
            retryAfter = .now + .seconds(1)
        }
        if let fatal = outcome.fatal {
            failure = fatal
            stopping = true
        }
        applying = false
        // A rollback may be waiting for this batch to end.
        handOffPause()
        condition.broadcast()
        // Every waiter re-checks for itself: cheaper than tracking what each one waits for.
        let waiters = spaceWaiters
        spaceWaiters = []
        condition.unlock()
        for w in waiters { w.resume(returning: true) }
        if let fatal = outcome.fatal {
            logger.critical("sync pipeline stopped: \(fatal)")
            eventContinuation.yield(.failed(fatal))
            return false
        }
        return true
    }

    /// The apply loop has ended: `stop()` calls waiting for it go on.
    private func applyLoopEnded() {
        condition.lock()
        threadAlive = false
        let waiters = threadEndWaiters
        threadEndWaiters = []
        condition.unlock()
        for w in waiters { w.resume() }
    }

    /// Called with the lock held.
    private func hasNextBlockReady() -> Bool {
        if paused || retryAfter != nil { return false }
        return buffer.hasNextRun
    }

    private struct RunOutcome {
        var applied = 0
        /// Height of a block removed because it is invalid.
        var dropped: UInt64?
        var highestVerified: UInt64 = 0
        var retryLater = false
        var fatal: ApplyError?
    }

    private func applyRun(_ run: [CandidateBlock]) -> RunOutcome {
        var outcome = RunOutcome()
        // Signatures first, in parallel: the one CPU cost per block that does not depend on order.
        let verifyStarted = ContinuousClock.now
        let verified = verifySignatures(run)
        metrics?.chain.operationDuration(.blockValidation).observe(.now - verifyStarted)
        var usable = run.count
        if let firstBad = verified.firstIndex(where: { $0 != nil }) {
            usable = firstBad
        }
        let blocks = run.prefix(usable).map { (signedHeader: $0.signedHeader, data: $0.data) }
        if !blocks.isEmpty {
            do throws(ApplyError) {
                let started = ContinuousClock.now
                let result = try applier.apply(Array(blocks), now: BlockValidator.currentTime(),
                                               signaturesVerified: true)
                outcome.applied = result.applied
                count(run.prefix(result.applied), took: .now - started)
                if let failure = result.failure {
                    handle(failure, block: run[result.applied], outcome: &outcome)
                }
            } catch {
                outcome.fatal = error
            }
            // Known headers (the equivocation fence): validly signed by a key the chain named,
            // counting the rotations the blocks just applied may have added.
            if let last = run.prefix(usable).last(where: { isPlaceable($0.signedHeader.header) }) {
                outcome.highestVerified = last.height
            }
            if outcome.dropped != nil || outcome.retryLater || outcome.fatal != nil { return outcome }
        }
        if usable < run.count, let error = verified[usable] {
            handle(.invalid(error), block: run[usable], outcome: &outcome)
        }
        return outcome
    }

    /// `applyRun` for an executor over the network: signatures checked on the lane, then block
    /// by block the executor awaited and the block committed on the lane (the engine's state
    /// moved with each block: each is stored as soon as it is executed).
    private func applyRunAwaitingExecutor(_ run: [CandidateBlock], on lane: BlockingLane) async -> RunOutcome {
        var outcome = RunOutcome()
        let verifyStarted = ContinuousClock.now
        guard let verified = try? await lane.run({ [self] in self.verifySignatures(run) }) else {
            outcome.fatal = .store(.closed)
            return outcome
        }
        metrics?.chain.operationDuration(.blockValidation).observe(.now - verifyStarted)
        let usable = verified.firstIndex(where: { $0 != nil }) ?? run.count
        if usable > 0 {
            let started = ContinuousClock.now
            let store = applier.store
            for block in run.prefix(usable) {
                do throws(ApplyError) {
                    guard let state = store.state else { throw .store(.notInitialized) }
                    let commit = try await applier.prepareAwaitingExecutor(block.signedHeader, block.data, state: state,
                                                                           now: BlockValidator.currentTime(),
                                                                           signatureVerified: true)
                    try await lane.run(orIfShutDown: ApplyError.store(.closed)) { () throws(ApplyError) in
                        do throws(StoreError) {
                            try store.commit(commit, sync: false)
                        } catch {
                            throw .store(error)
                        }
                    }
                    outcome.applied += 1
                } catch {
                    // A store failure is fatal there, as in the batch path.
                    handle(error, block: block, outcome: &outcome)
                    break
                }
            }
            count(run.prefix(outcome.applied), took: .now - started)
            if let last = run.prefix(usable).last(where: { isPlaceable($0.signedHeader.header) }) {
                outcome.highestVerified = last.height
            }
            if outcome.dropped != nil || outcome.retryLater || outcome.fatal != nil { return outcome }
        }
        if usable < run.count, let error = verified[usable] {
            handle(.invalid(error), block: run[usable], outcome: &outcome)
        }
        return outcome
    }

    private func count(_ applied: ArraySlice<CandidateBlock>, took: Duration) {
        guard let metrics, let last = applied.last else { return }
        var da: UInt64 = 0, p2p: UInt64 = 0, raft: UInt64 = 0
        for block in applied {
            switch block.origin {
            case .da: da += 1
            case .p2p: p2p += 1
            case .replicated: raft += 1
            }
        }
        if da > 0 { metrics.sync.blocksSynchronized(.da).add(da) }
        if p2p > 0 { metrics.sync.blocksSynchronized(.p2p).add(p2p) }
        if raft > 0 { metrics.sync.blocksSynchronized(.raft).add(raft) }
        metrics.chain.height.set(last.height)
        metrics.chain.operationDuration(.stateUpdate).observe(took)
    }

    private func handle(_ error: ApplyError, block: CandidateBlock, outcome: inout RunOutcome) {
        switch error {
        case .invalid(let v):
            if case .timeInFuture(_, let time, let now) = v {
                // Our clock may be behind; the block is not applied now and is tried again
                // shortly (never a halt). Dropping it would lose it: DA hands a block over once.
                outcome.retryLater = true
                logger.warning("block is ahead of the local clock; not applied, retrying", metadata: [
                    "height": "\(block.height)", "hash": "\(Hex.encode(block.signedHeader.header.hash))",
                    "time_ns": "\(time)", "now_ns": "\(now)", "max_ahead_ns": "\(validator.maxFutureDrift)",
                    "source": "\(block.origin)"])
                return
            }
            outcome.dropped = block.height
            logger.warning("dropped invalid block", metadata: [
                "height": "\(block.height)", "hash": "\(Hex.encode(block.signedHeader.header.hash))",
                "source": "\(block.origin)", "rule": "\(v.rule)", "error": "\(v)"])
            emit(.rejected(height: block.height, origin: block.origin, error: error))
        case .execution(let e) where e.isUnavailable:
            // The execution layer cannot be reached: the block stays held and is tried again.
            outcome.retryLater = true
            logger.warning("execution layer unavailable; retrying the block", metadata: [
                "height": "\(block.height)", "error": "\(e)"])
        case .execution, .store:
            outcome.fatal = error
        }
    }

    /// One result per block: nil when its signature checks out (or was checked by its supplier).
    private func verifySignatures(_ run: [CandidateBlock]) -> [ValidationError?] {
        var results = [ValidationError?](repeating: nil, count: run.count)
        let unverified = run.indices.filter { !run[$0].signatureVerified }
        guard !unverified.isEmpty else { return results }
        let validator = self.validator
        let chunks = max(1, min(ProcessInfo.processInfo.activeProcessorCount * 2, unverified.count / 32))
        results.withUnsafeMutableBufferPointer { out in
            let base = out.baseAddress!
            nonisolated(unsafe) let slots = base
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                let lo = unverified.count * chunk / chunks
                let hi = unverified.count * (chunk + 1) / chunks
                for i in unverified[lo..<hi] {
                    do throws(ValidationError) {
                        try validator.verifySignature(run[i].signedHeader)
                    } catch {
                        slots[i] = error
                    }
                }
            }
        }
        return results
    }
}
