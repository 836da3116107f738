import Chain
import Execution
import Store
@testable import Sync
import Testing

/// The chain as a table: stored headers, DA's first headers, the expected proposer of the next
/// height and the keys the chain named.
struct TableChain: SyncChainView {
    var stored: [UInt64: SignedHeader] = [:]
    let authority = AuthoritativeHeaders()
    var expected: [UInt64: [UInt8]] = [:]
    var named: Set<[UInt8]> = [SyncBufferTests.proposer]

    func storedHeader(at height: UInt64) -> SignedHeader? { stored[height] }
    func authoritativeHeader(at height: UInt64) -> AuthoritativeHeaders.Entry? { authority.entry(at: height) }
    func expectedProposer(at height: UInt64) -> [UInt8]? { expected[height] }
    func isPlaceable(_ header: Header) -> Bool { named.contains(header.proposerAddress) }
}

/// The sync pipeline's reorder buffer alone: no threads, store or executor.
@Suite struct SyncBufferTests {
    static let proposer = [UInt8](repeating: 1, count: 20)
    static let stranger = [UInt8](repeating: 9, count: 20)

    /// A block at `height` (`variant` tells two blocks at one height apart), signed (or not) by
    /// `by`, from `origin`; `verified`: its supplier checked the signature.
    func block(_ height: UInt64, variant: String = "", by proposer: [UInt8] = proposer,
               from origin: BlockOrigin = .p2p(peer: "a"), verified: Bool = true) -> CandidateBlock {
        let data = BlockData(metadata: nil, txs: [Array("h\(height)\(variant)".utf8)])
        let header = Header(height: height, time: height, lastHeaderHash: [], dataHash: data.dataHash, appHash: [],
                            proposerAddress: proposer, chainID: "c")
        let signed = SignedHeader(header: header, signature: [], signer: Signer(address: proposer, pubKey: []))
        return CandidateBlock(signedHeader: signed, data: data, origin: origin, signatureVerified: verified)
    }

    func hashes(_ blocks: [CandidateBlock]) -> [[UInt8]] { blocks.map(\.signedHeader.header.hash) }

    @Test func blocksInOrderAreHandedOverAsOneRunAndLeaveOnceApplied() {
        var buffer = SyncBuffer(storeHeight: 0, capacity: 16, batchSize: 8)
        let blocks = (1...3).map { block(UInt64($0)) }
        let admission = buffer.offer(blocks, chain: TableChain())
        #expect(admission.farAhead.isEmpty && admission.contested.isEmpty && admission.unverified.isEmpty)
        #expect(buffer.hasNextRun && buffer.waiting == 3 && buffer.highestKnownHeader == 3)
        let run = buffer.nextRun()
        #expect(hashes(run) == hashes(blocks))
        #expect(buffer.waiting == 3, "a run stays held until it is reported on")
        buffer.applied(run, .init(applied: 3, highestVerified: 3))
        #expect(buffer.storeHeight == 3 && buffer.waiting == 0 && !buffer.hasNextRun)
    }

    @Test func outOfOrderBlocksWaitForTheGapAndRunsAreBoundedByTheBatchSize() {
        var buffer = SyncBuffer(storeHeight: 0, capacity: 16, batchSize: 2)
        _ = buffer.offer([block(3), block(2)], chain: TableChain())
        #expect(!buffer.hasNextRun && buffer.nextRun().isEmpty && buffer.lowestWaiting == 2)
        _ = buffer.offer([block(1)], chain: TableChain())
        let run = buffer.nextRun()
        #expect(run.map(\.height) == [1, 2])
        // Block 2 was invalid: applied up to 1, 2 dropped, 3 waits for another 2.
        buffer.applied(run, .init(applied: 1, dropped: 2, highestVerified: 2))
        #expect(buffer.storeHeight == 1 && buffer.waiting == 1 && !buffer.hasNextRun && buffer.lowestWaiting == 3)
    }

    @Test func aDuplicateIsHeldOnceAndContestsNothing() {
        var buffer = SyncBuffer(storeHeight: 0, capacity: 16, batchSize: 8)
        _ = buffer.offer([block(1)], chain: TableChain())
        let again = buffer.offer([block(1, from: .p2p(peer: "b")), block(1, from: .da(daHeight: 4))], chain: TableChain())
        #expect(again.contested.isEmpty && buffer.waiting == 1)
    }

    /// Two different blocks for one height: the first held stays unless DA (authoritative) or
    /// the expected proposer offers the other; every such pair is a contest to report.
    @Test func conflictingBlocksAtOneHeightAreContestsAndDAOrTheExpectedProposerWins() {
        var buffer = SyncBuffer(storeHeight: 0, capacity: 16, batchSize: 8)
        var chain = TableChain()
        let first = block(1), second = block(1, variant: "b", from: .p2p(peer: "b"))
        _ = buffer.offer([first], chain: chain)
        var admission = buffer.offer([second], chain: chain)
        #expect(admission.contested.count == 1)
        #expect(admission.contested.first.map { hashes([$0.candidate]) } == hashes([second]))
        #expect(admission.contested.first?.incumbentSeen == "peer a" && admission.contested.first?.isStored == false)
        #expect(hashes([buffer.held(at: 1)!]) == hashes([first]), "a soft block does not replace a soft one")

        let fromDA = block(1, variant: "da", from: .da(daHeight: 3))
        admission = buffer.offer([fromDA], chain: chain)
        #expect(admission.contested.count == 1 && hashes([buffer.held(at: 1)!]) == hashes([fromDA]))
        _ = buffer.offer([block(1, variant: "c")], chain: chain)
        #expect(hashes([buffer.held(at: 1)!]) == hashes([fromDA]), "nothing soft replaces DA's block")

        // At the next height the state names its signer: the expected proposer's block wins,
        // even from P2P over DA.
        let rotated = [UInt8](repeating: 2, count: 20)
        chain.expected[1] = rotated
        chain.named.insert(rotated)
        let expected = block(1, variant: "rotated", by: rotated)
        _ = buffer.offer([expected], chain: chain)
        #expect(hashes([buffer.held(at: 1)!]) == hashes([expected]))
        _ = buffer.offer([block(1, variant: "da2", from: .da(daHeight: 5))], chain: chain)
        #expect(hashes([buffer.held(at: 1)!]) == hashes([expected]), "DA's block of a key the state does not expect loses")
    }

    @Test func aSoftBlockContradictingDAsHeaderIsNeverHeld() {
        var buffer = SyncBuffer(storeHeight: 0, capacity: 16, batchSize: 8)
        let chain = TableChain()
        let authoritative = block(2, variant: "da", from: .da(daHeight: 7))
        _ = chain.authority.record(authoritative.signedHeader, daHeight: 7)
        let admission = buffer.offer([block(2)], chain: chain)
        #expect(buffer.waiting == 0 && admission.contested.first?.incumbentSeen == "DA height 7")
        _ = buffer.offer([authoritative], chain: chain)
        #expect(buffer.waiting == 1)
    }

    /// A rollback starts an epoch and drops what was held: the authoritative source delivers
    /// again what is needed.
    @Test func aRollbackDropsWhatWasHeldAndStartsANewEpoch() {
        var buffer = SyncBuffer(storeHeight: 0, capacity: 16, batchSize: 2)
        _ = buffer.offer((1...6).map { block(UInt64($0)) }, chain: TableChain())
        buffer.applied(buffer.nextRun(), .init(applied: 2, highestVerified: 2))
        #expect(buffer.epoch == 0 && buffer.waiting == 4)
        buffer.rolledBack(to: 1)
        #expect(buffer.epoch == 1 && buffer.storeHeight == 1 && buffer.waiting == 0 && !buffer.hasNextRun)
        #expect(buffer.highestKnownHeader == 6, "headers that were known stay known (the equivocation fence)")
        buffer.dropAll()
        #expect(buffer.waiting == 0)
    }

    /// At most `capacity` above the store is held; the rest is handed back (DA's to wait, P2P's
    /// to be dropped by the pipeline), and a full buffer says so.
    @Test func blocksBeyondTheWindowAreNotHeld() {
        var buffer = SyncBuffer(storeHeight: 10, capacity: 4, batchSize: 8)
        let admission = buffer.offer((11...16).map { block(UInt64($0)) }, chain: TableChain())
        #expect(admission.farAhead.map(\.height) == [15, 16])
        #expect(buffer.waiting == 4 && buffer.isFull)
        #expect(buffer.highestKnownHeader == 14, "a header not held is not counted here (the pipeline checks it)")
    }

    /// Heights at or below the store: the same block is nothing, another one a conflict with
    /// the stored block.
    @Test func staleHeightsAreIgnoredUnlessTheyContradictTheStore() {
        var chain = TableChain()
        let stored = block(3)
        chain.stored[3] = stored.signedHeader
        var buffer = SyncBuffer(storeHeight: 3, capacity: 16, batchSize: 8)
        #expect(buffer.offer([stored], chain: chain).contested.isEmpty)
        let fork = block(3, variant: "fork", from: .da(daHeight: 9))
        let admission = buffer.offer([fork], chain: chain)
        #expect(admission.contested.count == 1 && admission.contested.first?.isStored == true)
        #expect(admission.contested.first?.incumbentSeen == "store")
        #expect(buffer.waiting == 0)
    }

    /// A held block counts as a known header once its signature was checked, by its supplier or
    /// later; a key the chain never named never counts.
    @Test func heldBlocksCountAsKnownHeadersOnceVerified() {
        var buffer = SyncBuffer(storeHeight: 0, capacity: 16, batchSize: 8)
        let unverified = block(2, verified: false)
        let admission = buffer.offer([unverified, block(3, by: Self.stranger)], chain: TableChain())
        #expect(admission.unverified.map(\.height) == [2, 3])
        #expect(buffer.highestKnownHeader == 0)
        buffer.markVerified(height: 2, hash: unverified.signedHeader.header.hash)
        #expect(buffer.highestKnownHeader == 2 && buffer.held(at: 2)?.signatureVerified == true)
    }
}
