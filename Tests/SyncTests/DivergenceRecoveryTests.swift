import Execution
import Store
import Sync
import Primitives
import Config
import ProcessKit
import Testing
import TestSupport

/// Divergence recovery (SPEC §7) with the real parts in one process: RocksDB store, KV executor,
/// sync pipeline, DA follower reading a local DA server, and the recovery. The proposer key
/// signs two branches; a node first applies the soft one from "P2P", then DA delivers the other.
/// What the recovery reports (the seam the node's phase and metrics hang on) is recorded and
/// checked in order; `NodeRecoveryObserverTests` checks how the node shows each report.
@Suite(.serialized) struct DivergenceRecoveryTests {
    /// prefix 1…3, DA's branch 4…9, the P2P branch 4…7.
    func makeChain(_ dir: TempDirectory) throws -> ForkedChain {
        try ForkedChain(prefix: 3, authoritative: 6, soft: 4, scratch: dir.sub("scratch"))
    }

    /// A node that only ever saw DA's branch: the reference the recovered node must equal.
    func reference(_ chain: ForkedChain, _ da: RecoveryDA) async throws -> SyncingNode {
        let node = try SyncingNode(chain: chain, da: da)
        node.followDA()
        let top = UInt64(chain.authoritativeChain.count)
        try await waitUntil("the DA-only node at \(top)") { node.store.height == top }
        return node
    }

    @Test func aNodeOnTheSoftBranchReplaysDAsBranchAndEndsInTheSameState() async throws {
        let dir = TempDirectory()
        let chain = try makeChain(dir)
        let da = try await RecoveryDA.start(home: dir.sub("da"))
        let node = try SyncingNode(chain: chain, da: da)
        try await node.applyFromPeer(chain.candidates(chain.softChain, .p2p(peer: "a")))
        #expect(try node.executor.value(forKey: "y7") != nil)

        try await da.post(chain.authoritativeChain, signer: chain.signer)
        node.followDA()
        let top = UInt64(chain.authoritativeChain.count)
        let topHash = chain.authoritativeChain.last!.signedHeader.header.hash
        try await waitUntil("the recovered node on DA's branch at \(top)") {
            try node.store.height == top && node.store.headerHash(at: top) == topHash
        }
        try await waitUntil("recovery finished") { node.observer.reports.last == .recovered }
        let only = try await reference(chain, da)

        #expect(node.observer.kinds == ["recovering", "rolledBack", "progress", "recovered"], "\(node.observer.reports)")
        let reports = node.observer.reports
        guard case .recovering(let divergedAt, let reason) = reports[0] else { Issue.record("\(reports)"); return }
        #expect(divergedAt == 4)
        #expect(reason.contains("DA's block 4 (\(Hex.encode(chain.authoritative[0].signedHeader.header.hash)))")
                && reason.contains("rolling back from 7 to the common ancestor 3"), "\(reason)")
        #expect(reports[1] == .rolledBack(from: 7, to: 3))
        #expect(reports[2] == .progress("replaying DA's chain from the common ancestor 3 (diverged at 4)"))
        #expect(!node.observer.isRecovering)
        #expect(node.store.state == only.store.state, "same height, hashes and state root")
        #expect(try node.hashes(through: top) == only.hashes(through: top))
        #expect(try node.hashes(through: top) == chain.authoritativeChain.map { $0.signedHeader.header.hash })
        for key in ["k", "x9", "y5", "y7", "p2"] {
            #expect(try node.executor.value(forKey: key) == only.executor.value(forKey: key), "key \(key)")
        }
        #expect(try node.executor.value(forKey: "y5") == nil, "the soft branch's state is gone")
        // At least the pair where the branches split is kept (later heights too when DA delivered
        // them before the rollback).
        #expect(try node.evidence.all().contains { $0.height == 4 && $0.first == chain.soft[0].signedHeader
            && $0.second == chain.authoritative[0].signedHeader })
        #expect(node.failure == nil)
        #expect(node.store.finalizedHeight >= 3)

        await only.stop()
        await node.stop()
        await da.stop()
    }

    /// SPEC §6 condition 5: the catchup gate must refuse from the moment DA contradicts the
    /// store, not only once the ancestor search has finished and the phase says `recovering`.
    @Test func aDivergenceIsPendingFromTheMomentItIsRaisedUntilTheReplayIsDone() async throws {
        let dir = TempDirectory()
        let chain = try makeChain(dir)
        let da = try await RecoveryDA.start(home: dir.sub("da"))
        let node = try SyncingNode(chain: chain, da: da)
        try await node.applyFromPeer(chain.candidates(chain.softChain, .p2p(peer: "a")))
        #expect(!node.recovery.isPending)

        // DA's block 4 reaches the pipeline, as the follower hands it over; no recovery runs yet.
        await node.pipeline.submit(chain.candidates([chain.authoritative[0]], .da(daHeight: 1)))
        #expect(node.recovery.isPending, "pending from the moment the conflict is raised")
        #expect(node.observer.reports.isEmpty, "nothing reported yet: the phase alone says nothing")

        try await da.post(chain.authoritativeChain, signer: chain.signer)
        node.followDA()
        let top = UInt64(chain.authoritativeChain.count)
        let topHash = chain.authoritativeChain.last!.signedHeader.header.hash
        try await waitUntil("the recovered node on DA's branch at \(top)") {
            try node.store.height == top && node.store.headerHash(at: top) == topHash
        }
        try await waitUntil("nothing pending once DA's chain is replayed") { !node.recovery.isPending }
        #expect(node.failure == nil)
        await node.stop()
        await da.stop()
    }

    @Test func daOrderDecidesTheFirstSignedHeaderPerHeightIsAuthoritative() async throws {
        let dir = TempDirectory()
        let chain = try makeChain(dir)
        let da = try await RecoveryDA.start(home: dir.sub("da"))
        // DA holds DA's branch first, then the other branch's blocks 4…7 (a later double sign).
        try await da.post(chain.authoritativeChain, signer: chain.signer)
        try await da.post(chain.soft, signer: chain.signer)
        let node = try SyncingNode(chain: chain, da: da)
        node.followDA()
        let top = UInt64(chain.authoritativeChain.count)
        try await waitUntil("the node on the first-posted branch, with the later headers as evidence") {
            node.store.height == top && node.follower.status.headReached && node.evidence.count == 4
        }
        #expect(try node.hashes(through: top) == chain.authoritativeChain.map { $0.signedHeader.header.hash })
        let records = try node.evidence.all()
        #expect(records.map(\.height) == [4, 5, 6, 7])
        for record in records {
            #expect(record.first == chain.authoritative[Int(record.height) - 4].signedHeader)
            #expect(record.second == chain.soft[Int(record.height) - 4].signedHeader)
            #expect(record.firstSeen.contains("DA height") && record.secondSeen.contains("DA height"))
        }
        #expect(node.observer.reports.isEmpty, "no divergence, no rollback: \(node.observer.reports)")
        #expect(!node.observer.isRecovering && node.failure == nil)

        await node.stop()
        await da.stop()
    }

    @Test func aDivergenceAtOrBelowTheFinalizedHeightHaltsAndChangesNothing() async throws {
        let dir = TempDirectory()
        let chain = try makeChain(dir)
        let da = try await RecoveryDA.start(home: dir.sub("da"))
        let node = try SyncingNode(chain: chain, da: da)
        try await node.applyFromPeer(chain.candidates(chain.softChain, .p2p(peer: "a")))
        // The soft branch got finalized up to 5 (say, this store was once an aggregator's).
        try ChainExecution(store: node.store, executor: node.executor).finalize(through: 5)
        let before = node.store.state
        let hashesBefore = try node.hashes(through: 7)
        let kBefore = try node.executor.value(forKey: "k")

        try await da.post(chain.authoritativeChain, signer: chain.signer)
        node.followDA()
        try await waitUntil("the recovery halts the node") { node.recoveryHasEnded }
        guard let failure = node.failure else {
            Issue.record("expected a divergence failure")
            await node.stop()
            await da.stop()
            return
        }
        if case let .finalizedDivergence(height, stored, authoritative, finalized, origin) = failure {
            #expect(height == 4 && finalized == 5 && origin.isDA)
            #expect(stored == chain.soft[0].signedHeader.header.hash)
            #expect(authoritative == chain.authoritative[0].signedHeader.header.hash)
        } else {
            Issue.record("expected a divergence at or below the finalized height, got \(failure)")
        }
        let reason = failure.description
        #expect(reason.contains("finalized height 5"), "\(reason)")
        #expect(reason.contains(Hex.encode(chain.authoritative[0].signedHeader.header.hash)), "names DA's hash: \(reason)")
        #expect(reason.contains(Hex.encode(chain.soft[0].signedHeader.header.hash)), "names the stored hash: \(reason)")
        #expect(node.observer.reports == [.halted(failure)], "halted at once, never recovering")
        #expect(node.observer.shown.reason == reason)
        #expect(node.evidence.count >= 1)
        #expect(try node.evidence.all().contains { $0.height == 4 })
        #expect(node.store.state == before)
        #expect(try node.hashes(through: 7) == hashesBefore)
        #expect(node.store.finalizedHeight == 5)
        #expect(try node.executor.value(forKey: "k") == kBefore)

        await node.stop()
        await da.stop()
    }

    @Test func aFailedOrUnconfirmedRollbackIsRetriedAndChangesNothingUntilItSucceeds() async throws {
        let dir = TempDirectory()
        let chain = try makeChain(dir)
        let da = try await RecoveryDA.start(home: dir.sub("da"))
        var flaky: FlakyRollbacker?
        let node = try SyncingNode(chain: chain, da: da) { applier, observer in
            let f = FlakyRollbacker(real: applier, observer: observer)
            flaky = f
            return f
        }
        try await node.applyFromPeer(chain.candidates(chain.softChain, .p2p(peer: "a")))
        let before = node.store.state

        try await da.post(chain.authoritativeChain, signer: chain.signer)
        node.followDA()
        let top = UInt64(chain.authoritativeChain.count)
        try await waitUntil("the node on DA's branch after the retries") {
            try node.store.height == top && node.store.headerHash(at: top) == chain.authoritativeChain.last!.signedHeader.header.hash
        }
        let calls = flaky!.calls
        #expect(calls.count == 3)
        // Until the rollback really happened, the store held the soft branch untouched.
        #expect(calls.allSatisfy { $0.state == before })
        #expect(calls.allSatisfy { $0.recovering }, "not ready while recovering")
        // The failures were surfaced with heights and hashes.
        let second = calls[1].reason ?? ""
        #expect(second.contains("attempt 1") && second.contains("injected failure"), "\(second)")
        #expect(second.contains("rollback from height 7") && second.contains("to the common ancestor 3"), "\(second)")
        #expect(second.contains(Hex.encode(chain.soft.last!.signedHeader.header.hash)), "\(second)")
        let third = calls[2].reason ?? ""
        #expect(third.contains("attempt 2") && third.contains("not confirmed") && third.contains("reads back height 7"), "\(third)")
        try await waitUntil("recovery finished") { node.observer.reports.last == .recovered }
        // One divergence; each failed attempt reported, then shown as the reason; one rollback.
        #expect(node.observer.kinds == ["recovering", "attemptFailed", "progress", "attemptFailed", "progress",
                                        "rolledBack", "progress", "recovered"], "\(node.observer.reports)")
        let failures = node.observer.reports.compactMap { report -> (Int, UInt64, RecoveryAttemptFailure)? in
            guard case let .attemptFailed(attempt, divergedAt, failure, _) = report else { return nil }
            return (attempt, divergedAt, failure)
        }
        #expect(failures.map(\.0) == [1, 2] && failures.allSatisfy { $0.1 == 4 })
        if case .rollback(let from, _, let to, _, .io(_, let why)) = failures.first?.2 {
            #expect(from == 7 && to == 3 && why == "injected failure")
        } else {
            Issue.record("first failure: \(String(describing: failures.first?.2))")
        }
        if case .unconfirmed(let to, _, let headHeight, _, _) = failures.last?.2 {
            #expect(to == 3 && headHeight == 7)
        } else {
            Issue.record("second failure: \(String(describing: failures.last?.2))")
        }

        let only = try await reference(chain, da)
        #expect(node.store.state == only.store.state)
        #expect(try node.hashes(through: top) == only.hashes(through: top))

        await only.stop()
        await node.stop()
        await da.stop()
    }
}
