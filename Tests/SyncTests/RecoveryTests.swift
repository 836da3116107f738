import Execution
import Chain
import Store
import Sync
import Config
import Logging
import ProcessKit
import Testing
import TestSupport

/// Two branches signed by one key (a double-signing proposer): a common prefix, then blocks that
/// differ from `forkAt` on. Built with the real builder and KV executor (which executes without
/// reading the store, so blocks can be chained in memory).
struct Fork {
    let prefix: [BlockCommit]
    let authoritative: [BlockCommit]
    let soft: [BlockCommit]

    var authoritativeChain: [BlockCommit] { prefix + authoritative }
    var softChain: [BlockCommit] { prefix + soft }

    static func make(on chain: TestChain, prefix: Int, authoritative: Int, soft: Int) throws -> Fork {
        var shared: [BlockCommit] = []
        for h in 1...prefix { shared.append(try chain.produce(["p\(h)=\(h)", "k=p\(h)"])) }
        let base = chain.store.state!
        func branch(_ tag: String, _ count: Int) throws -> [BlockCommit] {
            var state = base
            var out: [BlockCommit] = []
            for _ in 0..<count {
                let h = state.nextHeight
                let block = try chain.builder.build(on: state, txs: [Array("\(tag)\(h)=1".utf8), Array("k=\(tag)\(h)".utf8)],
                                                    time: chain.genesis.startTimeNanoseconds + h * 1_000_000_000)
                out.append(block)
                state = block.state
            }
            return out
        }
        return Fork(prefix: shared, authoritative: try branch("x", authoritative), soft: try branch("y", soft))
    }
}

func candidates(_ blocks: some Sequence<BlockCommit>, _ origin: BlockOrigin) -> [CandidateBlock] {
    blocks.map { CandidateBlock(signedHeader: $0.signedHeader, data: $0.data, origin: origin) }
}

@Suite struct AuthoritativeHeadersTests {
    @Test func firstHeaderPerHeightWinsAndFinalizedHeightsAreForgotten() throws {
        let chain = try TestChain()
        let fork = try Fork.make(on: chain, prefix: 2, authoritative: 3, soft: 3)
        let ledger = AuthoritativeHeaders()
        let x3 = fork.authoritative[0].signedHeader, y3 = fork.soft[0].signedHeader
        #expect(ledger.record(x3, daHeight: 10) == .recorded)
        #expect(ledger.record(x3, daHeight: 12) == .alreadyKnown)
        guard case .conflicts(let first) = ledger.record(y3, daHeight: 11) else {
            Issue.record("a second header at height 3 must conflict")
            return
        }
        #expect(first.hash == x3.header.hash && first.daHeight == 10)
        #expect(ledger.hash(at: 3) == x3.header.hash, "the first stays authoritative")
        #expect(ledger.record(fork.authoritative[1].signedHeader, daHeight: 14) == .recorded)
        #expect(ledger.record(fork.authoritative[2].signedHeader, daHeight: 13) == .recorded)
        #expect(ledger.lowestDAHeight(above: 3) == 13)
        #expect(ledger.lowestDAHeight(above: 2) == 10)
        ledger.forget(through: 3)
        #expect(ledger.entry(at: 3) == nil && ledger.count == 2)
        #expect(ledger.record(y3, daHeight: 20) == .final)
    }

    @Test func capacityBoundsTheLedger() throws {
        let chain = try TestChain()
        let fork = try Fork.make(on: chain, prefix: 1, authoritative: 3, soft: 1)
        let ledger = AuthoritativeHeaders(capacity: 2)
        #expect(ledger.record(fork.authoritative[0].signedHeader, daHeight: 1) == .recorded)
        #expect(ledger.record(fork.authoritative[1].signedHeader, daHeight: 1) == .recorded)
        #expect(ledger.record(fork.authoritative[2].signedHeader, daHeight: 1) == .full)
        #expect(ledger.count == 2)
    }
}

@Suite struct EvidenceLogTests {
    @Test func recordsRealDoubleSignsOncePersistentlyAndThroughRollbacks() throws {
        let chain = try TestChain()
        let fork = try Fork.make(on: chain, prefix: 2, authoritative: 2, soft: 2)
        let log = try EvidenceLog(store: chain.store, validator: chain.validator, logger: Logger(label: "test"))
        let x3 = fork.authoritative[0].signedHeader, y3 = fork.soft[0].signedHeader
        #expect(try log.record(first: x3, firstSeen: "DA height 7", second: y3, secondSeen: "peer a"))
        #expect(try !log.record(first: y3, firstSeen: "peer b", second: x3, secondSeen: "DA height 9"), "same pair")
        #expect(try !log.record(first: x3, firstSeen: "a", second: x3, secondSeen: "b"), "one header is no evidence")
        #expect(try !log.record(first: x3, firstSeen: "a", second: fork.soft[1].signedHeader, secondSeen: "b"),
                "different heights are no evidence")
        var forged = fork.soft[1].signedHeader
        forged.signature[5] ^= 1
        #expect(try !log.record(first: fork.authoritative[1].signedHeader, firstSeen: "a", second: forged, secondSeen: "b"),
                "a header the proposer did not sign is no evidence")
        let stranger = BlockSigner(keyFile: KeyFile.generate())
        let foreign = try stranger.sign(header: fork.soft[1].signedHeader.header)
        #expect(try !log.record(first: fork.authoritative[1].signedHeader, firstSeen: "a", second: foreign, secondSeen: "b"))
        #expect(log.count == 1)

        // Kept across a rollback of the blocks and a reopen of the store.
        try ChainExecution(store: chain.store, executor: chain.executor).rollback(to: 1)
        try chain.reopen()
        let reopened = try EvidenceLog(store: chain.store, validator: chain.validator, logger: Logger(label: "test"))
        #expect(reopened.count == 1)
        let all = try reopened.all()
        #expect(all.count == 1)
        #expect(all.first?.height == 3)
        #expect(all.first?.first == x3 && all.first?.second == y3)
        #expect(all.first?.firstSeen == "DA height 7" && all.first?.secondSeen == "peer a")
    }
}

@Suite struct AncestorSearchTests {
    /// A node that applied the soft branch; the ledger knows the authoritative branch from DA.
    func setUp(prefix: Int = 4, authoritative: Int = 5, soft: Int = 4) throws
        -> (node: TestChain, fork: Fork, ledger: AuthoritativeHeaders) {
        let signer = BlockSigner(keyFile: KeyFile.generate())
        let source = try TestChain(signer: signer)
        let fork = try Fork.make(on: source, prefix: prefix, authoritative: authoritative, soft: soft)
        let node = try TestChain(signer: signer)
        try node.store.commit(fork.softChain, sync: false)
        let ledger = AuthoritativeHeaders()
        for (i, block) in fork.authoritative.enumerated() {
            _ = ledger.record(block.signedHeader, daHeight: 100 + UInt64(i))
        }
        return (node, fork, ledger)
    }

    func point(_ block: BlockCommit, withHeader: Bool = true) -> DivergencePoint {
        DivergencePoint(height: block.height, authoritativeHash: block.signedHeader.header.hash,
                        authoritativeHeader: withHeader ? block.signedHeader : nil)
    }

    @Test func walksDAsLinksDownToTheHighestCommonAncestor() throws {
        let (node, fork, ledger) = try setUp()
        let search = AncestorSearch(store: node.store, authority: ledger)
        var pairs: [UInt64] = []
        // A conflict at the soft branch's top (8) and a broken link found at 8 from DA's block 9.
        let fromConflict = try search.search(from: point(fork.authoritative[3])) { stored, da in
            #expect(stored.height == da.height)
            pairs.append(stored.height)
        }
        #expect(fromConflict == .ancestor(height: 4, hash: fork.prefix[3].signedHeader.header.hash, exact: true, note: nil))
        #expect(pairs == [8, 7, 6, 5], "every differing height is double-sign evidence")
        let link = fork.authoritative[4].signedHeader.header.lastHeaderHash
        let fromLink = try search.search(from: DivergencePoint(height: 8, authoritativeHash: link))
        #expect(fromLink == fromConflict)
        // The stored block is the authoritative one: nothing to do; nor above the store height.
        #expect(try search.search(from: point(fork.prefix[2])) == .noDivergence)
        #expect(try search.search(from: point(fork.authoritative[4])) == .noDivergence)
    }

    @Test func neverGoesBelowTheFinalizedHeight() throws {
        let (node, fork, ledger) = try setUp()
        try ChainExecution(store: node.store, executor: node.executor).finalize(through: 6)
        let search = AncestorSearch(store: node.store, authority: ledger)
        let result = try search.search(from: point(fork.authoritative[3]))
        #expect(result == .finalizedDivergence(height: 6, storedHash: fork.soft[1].signedHeader.header.hash,
                                               authoritativeHash: fork.authoritative[1].signedHeader.header.hash,
                                               finalized: 6))
        // Finalized exactly at the ancestor is fine.
        let (other, otherFork, otherLedger) = try setUp()
        try ChainExecution(store: other.store, executor: other.executor).finalize(through: 4)
        #expect(try AncestorSearch(store: other.store, authority: otherLedger).search(from: point(otherFork.authoritative[3]))
                == .ancestor(height: 4, hash: otherFork.prefix[3].signedHeader.header.hash, exact: true, note: nil))
    }

    @Test func unknownLinksAndBoundsFallBackToTheFinalizedHeight() throws {
        let (node, fork, _) = try setUp()
        try ChainExecution(store: node.store, executor: node.executor).finalize(through: 2)
        // DA's header at 7 was never seen: the walk cannot follow DA's chain below 8.
        let partial = AuthoritativeHeaders()
        _ = partial.record(fork.authoritative[3].signedHeader, daHeight: 9)
        guard case let .ancestor(height, hash, exact, note) = try AncestorSearch(store: node.store, authority: partial)
            .search(from: point(fork.authoritative[3])) else {
            Issue.record("expected a fallback ancestor")
            return
        }
        #expect(height == 2 && hash == fork.prefix[1].signedHeader.header.hash && !exact)
        #expect(note?.contains("height 7") == true)

        let full = AuthoritativeHeaders()
        for block in fork.authoritative { _ = full.record(block.signedHeader, daHeight: 1) }
        let bounded = AncestorSearch(store: node.store, authority: full, limits: .init(maxLookups: 2))
        guard case let .ancestor(h2, _, exact2, note2) = try bounded.search(from: point(fork.authoritative[3])) else {
            Issue.record("expected a bounded fallback")
            return
        }
        #expect(h2 == 2 && !exact2 && note2?.contains("bounds") == true)
    }

    @Test func aContradictoryDAIsReportedNotFollowed() throws {
        let (node, fork, _) = try setUp()
        // DA's first header at 7 is the soft branch's, yet its block 8 links to another 7.
        let ledger = AuthoritativeHeaders()
        _ = ledger.record(fork.soft[2].signedHeader, daHeight: 1)
        _ = ledger.record(fork.authoritative[3].signedHeader, daHeight: 2)
        let result = try AncestorSearch(store: node.store, authority: ledger).search(
            from: DivergencePoint(height: 7, authoritativeHash: fork.authoritative[3].signedHeader.header.lastHeaderHash))
        #expect(result == .brokenAuthority(height: 7, link: fork.authoritative[2].signedHeader.header.hash,
                                           firstSeen: fork.soft[2].signedHeader.header.hash))
    }
}

@Suite struct PipelineRollbackTests {
    let logger = Logger(label: "test.rollback")


    @Test func rollsBackBetweenBatchesAndReplaysTheAuthoritativeBranch() async throws {
        let signer = BlockSigner(keyFile: KeyFile.generate())
        let source = try TestChain(signer: signer)
        let fork = try Fork.make(on: source, prefix: 3, authoritative: 6, soft: 4)
        let expected = fork.authoritative.last!.state
        let node = try TestChain(signer: signer)
        let ledger = AuthoritativeHeaders()
        let evidence = try EvidenceLog(store: node.store, validator: node.validator, logger: logger)
        let pipeline = SyncPipeline(applier: node.applier, batchSize: 2, authority: ledger, evidence: evidence, logger: logger)
        pipeline.start()
        try await pipeline.stop(after: {
            await pipeline.submit(candidates(fork.softChain, .p2p(peer: "a")))
            try await pipeline.waitForStoreHeight(7, exactly: true)
            #expect(try node.value("y7") == "1")

            for (i, block) in fork.authoritative.enumerated() { _ = ledger.record(block.signedHeader, daHeight: 50 + UInt64(i)) }
            let state = try await pipeline.rollback(to: 3, using: node.applier)
            #expect(state == fork.prefix[2].state && node.store.state == state)
            #expect(pipeline.progress.storeHeight == 3)
            #expect(try node.value("y4") == nil && node.value("k") == "p3", "the executor state is back at height 3")

            // The soft branch cannot come back: DA knows other blocks at those heights.
            await pipeline.submit(candidates(fork.soft, .p2p(peer: "a")))
            #expect(pipeline.progress.waiting == 0)
            #expect(evidence.count == 4, "each soft block against DA's is evidence")
            await pipeline.submit(candidates(fork.authoritative, .da(daHeight: 50)))
            try await pipeline.waitForStoreHeight(9, exactly: true)
            #expect(node.store.state == expected)
            #expect(try node.value("k") == "x9" && node.value("y5") == nil)
        })
    }

    @Test(.timeLimit(.minutes(1)))
    func aRollbackReleasesSubmittersWaitingForHeightsThatAreGone() async throws {
        let signer = BlockSigner(keyFile: KeyFile.generate())
        let source = try TestChain(signer: signer)
        let fork = try Fork.make(on: source, prefix: 2, authoritative: 8, soft: 1)
        let node = try TestChain(signer: signer)
        // Not started: nothing applies, so DA blocks beyond the window wait for progress.
        let pipeline = SyncPipeline(applier: node.applier, capacity: 4, logger: logger)
        let blocked = Task { await pipeline.submit(candidates(fork.authoritativeChain, .da(daHeight: 1))) }
        try await waitUntil("the pipeline to hold the 4 blocks it has room for") { pipeline.progress.waiting >= 4 }
        try await pipeline.rollback(to: 0, using: node.applier)
        await blocked.value
        #expect(pipeline.progress.waiting == 0, "held blocks are dropped: DA delivers them again")
    }

    @Test func aFailedRollbackChangesNothing() async throws {
        struct Refusing: Rollbacker {
            func rollback(to height: UInt64) throws(StoreError) -> State {
                throw .io(operation: "write", reason: "injected")
            }
        }
        let signer = BlockSigner(keyFile: KeyFile.generate())
        let source = try TestChain(signer: signer)
        let fork = try Fork.make(on: source, prefix: 3, authoritative: 1, soft: 2)
        let node = try TestChain(signer: signer)
        let pipeline = SyncPipeline(applier: node.applier, logger: logger)
        pipeline.start()
        try await pipeline.stop(after: {
            await pipeline.submit(candidates(fork.softChain.prefix(4), .p2p(peer: "a")))
            try await pipeline.waitForStoreHeight(4, exactly: true)
            let before = node.store.state
            await #expect(throws: StoreError.io(operation: "write", reason: "injected")) {
                try await pipeline.rollback(to: 3, using: Refusing())
            }
            #expect(node.store.state == before && pipeline.progress.storeHeight == 4)
            // The pipeline still applies afterwards.
            await pipeline.submit(candidates(fork.soft.suffix(1), .p2p(peer: "a")))
            try await pipeline.waitForStoreHeight(5, exactly: true)
        })
    }
}
