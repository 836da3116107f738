import Chain
import Execution
import Store
@testable import Sync
import Testing

/// The DA inclusion tracker alone: headers and data as DA delivers them, in any order, paired
/// into blocks; what DA confirms per height and what that makes final. No threads, store or DA.
@Suite struct InclusionTrackerTests {
    static let proposer = Signer(address: [UInt8](repeating: 1, count: 20), pubKey: [])

    /// Block `height`'s parts: its data (metadata naming the height) and a header committing to
    /// it (`empty`: a header of a block without txs, which needs no data blob).
    func block(_ height: UInt64, empty: Bool = false, variant: String = "") -> (header: SignedHeader, data: BlockData) {
        let data = BlockData(metadata: Metadata(chainID: "c", height: height, time: height, lastDataHash: []),
                             txs: empty ? [] : [Array("k\(height)=v\(variant)".utf8)])
        let header = Header(height: height, time: height, lastHeaderHash: [], dataHash: empty ? BlockData.emptyDataHash : data.dataHash,
                            appHash: [], proposerAddress: Self.proposer.address, chainID: "c")
        return (SignedHeader(header: header, signature: [], signer: Self.proposer), data)
    }

    func add(_ data: BlockData, at daHeight: UInt64, to tracker: inout InclusionTracker, finalized: UInt64 = 0) -> Bool {
        tracker.addData(data, hash: data.dataHash, bytes: 100, verified: true, daHeight: daHeight, finalized: finalized)
    }

    /// Hashes of what a store holds, by height (what `finality` compares DA's headers with).
    func storedHashes(_ headers: [SignedHeader]) -> [UInt64: [UInt8]] {
        Dictionary(uniqueKeysWithValues: headers.map { ($0.height, $0.header.hash) })
    }

    @Test func aHeaderIsPairedWithItsDataWhicheverComesFirstOnDA() {
        var tracker = InclusionTracker()
        let one = block(1), two = block(2)
        tracker.addHeader(one.header, daHeight: 5)
        #expect(tracker.unresolved == 1 && tracker.waitingDataHashes == [one.header.header.dataHash])
        #expect(add(one.data, at: 6, to: &tracker))
        // Data before its header: held, then claimed.
        #expect(add(two.data, at: 7, to: &tracker))
        #expect(tracker.unresolved == 1 && tracker.heldDataBytes == 100)
        tracker.addHeader(two.header, daHeight: 8)
        #expect(tracker.unresolved == 0 && tracker.heldDataBytes == 0)

        let complete = tracker.takeAllComplete()
        #expect(complete.map(\.height) == [1, 2])
        #expect(complete.map(\.origin) == [.da(daHeight: 5), .da(daHeight: 8)], "a block's origin is its header's DA height")
        #expect(complete.allSatisfy { $0.signatureVerified })
        #expect(complete.map(\.data) == [one.data, two.data])
        #expect(tracker.confirmed[1]?.dataDAHeight == 6 && tracker.confirmed[2]?.dataDAHeight == 7)
    }

    /// Defect 9: the hand-over takes every complete block, also those at or below the store's
    /// height (the pipeline compares them with what it stored), and leaves none behind.
    @Test func takeAllCompleteHandsOverEveryCompleteBlockInHeightOrderOnce() {
        var tracker = InclusionTracker()
        for h in [UInt64(3), 1, 2] {
            let b = block(h, empty: h == 2)
            tracker.addHeader(b.header, daHeight: 10 + h)
            if h != 2 { #expect(add(b.data, at: 10 + h, to: &tracker)) }
        }
        #expect(tracker.takeAllComplete().map(\.height) == [1, 2, 3])
        #expect(tracker.takeAllComplete().isEmpty, "handed over once")
        // A block at a height already handed over (a re-read after a restart) is handed over again.
        var reread = InclusionTracker()
        let one = block(1)
        reread.addHeader(one.header, daHeight: 4)
        #expect(add(one.data, at: 4, to: &reread))
        #expect(reread.takeAllComplete().map(\.height) == [1])
    }

    @Test func aHeaderWithoutTxsIsCompleteAtOnceAndFinalWithoutADataInclusion() throws {
        var tracker = InclusionTracker()
        let empty = block(1, empty: true)
        tracker.addHeader(empty.header, daHeight: 3)
        #expect(tracker.unresolved == 0)
        let finality = try tracker.finality(finalized: 0, storeHeight: 1, processedThrough: 3) { _ in empty.header.header.hash }
        #expect(finality.finalizedHeight == 1)
        #expect(finality.inclusions.map(\.height) == [1])
        #expect(finality.inclusions.first?.inclusion == DAInclusion(headerDAHeight: 3, dataDAHeight: nil))
        #expect(finality.resumeDAHeight == 4, "nothing unresolved: the next DA height")
    }

    /// Finality is contiguous: it stops below a height whose block DA has not (fully) confirmed,
    /// and the resume height stays at the lowest DA height holding a part of a later block.
    @Test func finalityIsContiguousAndTheResumeHeightWaitsForTheGap() throws {
        var tracker = InclusionTracker()
        let blocks = (1...4).map { block(UInt64($0)) }
        let stored = storedHashes(blocks.map(\.header))
        // DA answers out of order relative to block heights: 3 at DA 20, 1 at DA 21, 2's header
        // at DA 22 with its data still to come, 4 not at all yet.
        tracker.addHeader(blocks[2].header, daHeight: 20)
        #expect(add(blocks[2].data, at: 20, to: &tracker))
        tracker.addHeader(blocks[0].header, daHeight: 21)
        #expect(add(blocks[0].data, at: 21, to: &tracker))
        tracker.addHeader(blocks[1].header, daHeight: 22)

        var finality = try tracker.finality(finalized: 0, storeHeight: 4, processedThrough: 22) { stored[$0] }
        #expect(finality.finalizedHeight == 1, "2 waits for its data, so 3 waits too")
        #expect(finality.resumeDAHeight == 20, "3's parts are at DA 20 and not final yet")
        #expect(tracker.forget(through: finality.finalizedHeight) == 0)

        #expect(add(blocks[1].data, at: 23, to: &tracker))
        finality = try tracker.finality(finalized: 1, storeHeight: 4, processedThrough: 23) { stored[$0] }
        #expect(finality.finalizedHeight == 3)
        #expect(finality.inclusions.map(\.height) == [2, 3])
        #expect(finality.inclusions.map(\.inclusion) == [DAInclusion(headerDAHeight: 22, dataDAHeight: 23),
                                                         DAInclusion(headerDAHeight: 20, dataDAHeight: 20)])
        #expect(finality.resumeDAHeight == 24)
    }

    /// Only blocks the store holds, with the hash DA holds, become final.
    @Test func finalityStopsAtTheStoreHeightAndAtAStoredBlockDAContradicts() throws {
        var tracker = InclusionTracker()
        let blocks = (1...3).map { block(UInt64($0)) }
        for (i, b) in blocks.enumerated() {
            tracker.addHeader(b.header, daHeight: 5 + UInt64(i))
            #expect(add(b.data, at: 5 + UInt64(i), to: &tracker))
        }
        var stored = storedHashes(blocks.map(\.header))
        let unapplied = try tracker.finality(finalized: 0, storeHeight: 2, processedThrough: 7) { stored[$0] }
        #expect(unapplied.finalizedHeight == 2, "3 is not stored yet")
        #expect(unapplied.resumeDAHeight == 7)

        stored[2] = block(2, variant: "fork").header.header.hash
        let diverged = try tracker.finality(finalized: 0, storeHeight: 3, processedThrough: 7) { stored[$0] }
        #expect(diverged.finalizedHeight == 1, "the stored 2 is not the block DA holds")
        #expect(diverged.resumeDAHeight == 6)

        let failing = try? tracker.finality(finalized: 0, storeHeight: 3, processedThrough: 7) { h throws(StoreError) in
            throw .io(operation: "read header \(h)", reason: "injected")
        }
        #expect(failing == nil, "a store failure is thrown, not read as 'not stored'")
    }

    /// The first header for a height is DA's; a later one does not displace it unless the
    /// follower says so (`replaceHeader`: the expected proposer's header over another key's).
    @Test func theFirstHeaderPerHeightCountsUntilReplaced() {
        var tracker = InclusionTracker()
        let first = block(1), second = block(1, variant: "other")
        tracker.addHeader(first.header, daHeight: 3)
        tracker.addHeader(second.header, daHeight: 4)
        #expect(tracker.confirmed[1]?.hash == first.header.header.hash)
        tracker.replaceHeader(second.header, daHeight: 4)
        #expect(tracker.confirmed[1]?.hash == second.header.header.hash)
        #expect(tracker.waitingDataHashes == [second.header.header.dataHash])
        #expect(add(second.data, at: 5, to: &tracker))
        #expect(tracker.takeAllComplete().map { $0.signedHeader.header.hash } == [second.header.header.hash])
    }

    /// After a rollback to 1, what DA confirmed above it is forgotten, and DA is read again from
    /// the lowest DA height that held any part of it.
    @Test func rewindForgetsTheBlocksAboveTheAncestorAndNamesWhereToReadAgain() throws {
        var tracker = InclusionTracker()
        let blocks = (1...3).map { block(UInt64($0)) }
        tracker.addHeader(blocks[0].header, daHeight: 10)
        #expect(add(blocks[0].data, at: 10, to: &tracker))
        #expect(add(blocks[1].data, at: 11, to: &tracker))
        tracker.addHeader(blocks[1].header, daHeight: 12)
        tracker.addHeader(blocks[2].header, daHeight: 13)
        #expect(tracker.rewind(after: 1) == 11)
        #expect(tracker.confirmed.keys.sorted() == [1])
        #expect(tracker.takeAllComplete().map(\.height) == [1])
        #expect(tracker.rewind(after: 5) == nil, "nothing above 5")
    }
}
