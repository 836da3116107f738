@testable import Chain
import Foundation
@testable import P2PSync
import Testing
import TestSupport
@testable import Libp2p

/// `PendingGossip` on its own: the pairing rules and the bounds, with real signed headers of
/// the test chain.
@Suite struct PendingGossipTests {
    let chain: TestChain
    let peer = PeerID(key: .generate())

    init() throws {
        chain = try TestChain(chainID: "pending-test")
        try chain.build(to: 40)
    }

    func header(_ height: UInt64) throws -> PendingGossip.HeldHeader {
        let signed = try #require(try chain.store.signedHeader(at: height))
        return .init(signed: signed, hash: signed.header.hash, from: peer)
    }

    func realData(_ height: UInt64) throws -> PendingGossip.HeldData {
        let (signed, data) = try #require(try chain.store.block(at: height))
        return .init(body: data.encoded(), txsHash: data.dataHash, time: signed.header.time, from: peer)
    }

    func junk(size: Int, tag: UInt8 = 1, time: UInt64 = 1) -> PendingGossip.HeldData {
        let data = BlockData(metadata: nil, txs: [[UInt8](repeating: tag, count: size)])
        return .init(body: [UInt8](repeating: 0, count: size), txsHash: data.dataHash, time: time, from: peer)
    }

    static func pending(headers: Int = 8, window: UInt64 = 4, bytes: Int = 1_000) -> PendingGossip {
        PendingGossip(limits: .init(headerRecords: headers, dataWindow: window, dataBytes: bytes))
    }

    @Test func headerThenDataPairsAndDataThenHeaderToo() throws {
        var p = Self.pending()
        let header1 = try header(1), data2 = try realData(2)
        guard case .held = p.add(header: header1) else { Issue.record("header 1 not held"); return }
        let (outcome, pair) = p.add(data: try realData(1), height: 1, storeHeight: 0)
        #expect(outcome == .paired && pair?.header.hash == header1.hash)
        #expect(p.knows(height: 1, hash: header1.hash), "delivered: a replay needs no signature check")
        #expect(!p.wants(dataAt: 1, storeHeight: 0), "another copy of delivered data is not even hashed")

        #expect(p.add(data: data2, height: 2, storeHeight: 0).0 == .held)
        guard case .paired(let pair2) = p.add(header: try header(2)) else { Issue.record("2 not paired"); return }
        #expect(pair2.data.txsHash == data2.txsHash)
        #expect(p.heldDataCount == 0 && p.dataByteCount == 0 && p.waitingHeaderCount == 0)
    }

    @Test func dataThatDoesNotMatchItsHeaderIsDroppedNotPaired() throws {
        var p = Self.pending()
        let h3 = try header(3)
        _ = p.add(header: h3)
        // Txs of another block, and the right txs with a time that is not the header's.
        let data3 = try realData(3), data4 = try realData(4)
        #expect(p.add(data: data4, height: 3, storeHeight: 0).1 == nil)
        let wrongTime = PendingGossip.HeldData(body: data3.body, txsHash: data3.txsHash, time: data3.time + 1, from: peer)
        #expect(p.add(data: wrongTime, height: 3, storeHeight: 0).1 == nil)
        #expect(p.heldDataCount == 0, "data at a height with a verified header is never held")
        // Data held before its header, not matching it: dropped when the header comes.
        #expect(p.add(data: junk(size: 10), height: 4, storeHeight: 0).0 == .held)
        guard case .held = p.add(header: try header(4)) else { Issue.record("header 4 not held"); return }
        #expect(p.heldDataCount == 0 && p.dataByteCount == 0)
        #expect(p.add(data: data3, height: 3, storeHeight: 0).0 == .paired)
    }

    @Test func dataIsHeldOnlyInTheWindowUnderTheBudgetLowestKept() throws {
        var p = Self.pending(window: 4, bytes: 300)
        #expect(p.wants(dataAt: 14, storeHeight: 10) && !p.wants(dataAt: 15, storeHeight: 10))
        #expect(p.add(data: junk(size: 100), height: 15, storeHeight: 10).0 != .held)
        #expect(p.add(data: junk(size: 100), height: 10, storeHeight: 10).0 != .held)
        for height in UInt64(11)...14 { _ = p.add(data: junk(size: 100, tag: UInt8(height)), height: height, storeHeight: 10) }
        #expect(p.heldDataHeights == [11, 12, 13], "the highest evicted first")
        #expect(p.dataByteCount == 300)
        // A lower height arriving later evicts the highest held.
        p.prune(through: 5)
        #expect(p.add(data: junk(size: 100, tag: 99), height: 9, storeHeight: 5).0 == .held)
        #expect(p.heldDataHeights == [9, 11, 12])
        // A copy (same txs and time) is not held twice.
        #expect(p.add(data: junk(size: 100, tag: 99), height: 9, storeHeight: 5).0 != .held)
        #expect(p.heldDataCount == 3)
        // The store passing a height drops what waits there.
        p.prune(through: 11)
        #expect(p.heldDataHeights == [12] && p.dataByteCount == 100)
        // At most two data messages wait at one height.
        #expect(p.add(data: junk(size: 10, tag: 1), height: 13, storeHeight: 11).0 == .held)
        #expect(p.add(data: junk(size: 10, tag: 2), height: 13, storeHeight: 11).0 == .held)
        #expect(p.add(data: junk(size: 10, tag: 3), height: 13, storeHeight: 11).0 != .held)
        #expect(p.heldDataCount == 3 && p.dataByteCount == 120)
    }

    @Test func headerRecordsAreBoundedHighestEvictedFirst() throws {
        var p = Self.pending(headers: 3)
        for height in UInt64(10)...12 { _ = p.add(header: try header(height)) }
        guard case .notKept = p.add(header: try header(13)) else { Issue.record("13 kept beyond the bound"); return }
        guard case .held = p.add(header: try header(2)) else { Issue.record("2 not held"); return }
        #expect(p.waitingHeaderHeights == [2, 10, 11])
        guard case .notKept = p.add(header: try header(2)) else { Issue.record("2 twice"); return }
        #expect(p.headerRecordCount == 3)
        p.prune(through: 10)
        #expect(p.waitingHeaderHeights == [11] && p.headerRecordCount == 1)
        // After a rollback (the store height went down) gossip above it is taken again.
        p.prune(through: 1)
        guard case .held = p.add(header: try header(2)) else { Issue.record("2 not held after a rollback"); return }
    }

    @Test func anEquivocatingSecondHeaderIsKeptAndPairsWithItsOwnData() throws {
        var p = Self.pending()
        let real = try header(6)
        // The proposer signs a second header at 6 with other txs.
        var twin = real.signed.header
        let otherTxs = BlockData(metadata: nil, txs: [Array("twin=1".utf8)])
        twin.dataHash = otherTxs.dataHash
        let signedTwin = try chain.signer.sign(header: twin)
        let twinHeld = PendingGossip.HeldHeader(signed: signedTwin, hash: twin.hash, from: peer)
        _ = p.add(header: real)
        guard case .held = p.add(header: twinHeld) else { Issue.record("twin not kept"); return }
        let third = PendingGossip.HeldHeader(signed: signedTwin, hash: [UInt8](repeating: 9, count: 32), from: peer)
        guard case .notKept = p.add(header: third) else { Issue.record("a third header kept"); return }
        let twinData = PendingGossip.HeldData(body: otherTxs.encoded(), txsHash: otherTxs.dataHash, time: twin.time, from: peer)
        let (outcome, pair) = p.add(data: twinData, height: 6, storeHeight: 0)
        #expect(outcome == .paired && pair?.header.hash == twin.hash)
        let realData6 = try realData(6)
        #expect(p.add(data: realData6, height: 6, storeHeight: 0).1?.header.hash == real.hash)
    }
}
