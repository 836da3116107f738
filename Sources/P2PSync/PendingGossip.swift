import Chain
import Libp2p
/// Gossiped headers and data waiting for their other half, bounded against strangers (issue 27
/// §2 "Gossiped data", review C4).
///
/// ev-node gossips a block as two messages on two topics: the signed header, then the data. The
/// header authenticates itself with the genesis proposer's signature; the data does not. Only a
/// verified header's `data_hash` vouches for the data's txs, and nothing verified vouches for its
/// metadata. Hence:
/// - A header is kept only after its signature verified (the caller's job). Header records — the
///   headers waiting for their data and the hashes of those already delivered, which let a
///   replayed header be dropped without another signature check — are bounded in number; beyond
///   the bound the highest heights go first, because the lowest are the ones the node needs next.
/// - Data pairs with a kept header at its height when its txs hash to the header's `data_hash` and
///   its metadata repeats the header's time. Only such a pair is delivered and relayed.
/// - Data with no kept header at its height is held, never relayed, only within `dataWindow`
///   heights above the store and under `dataBytes`, again evicting the highest heights first. A
///   header that arrives later pairs with it.
/// - Data that does not match the kept header at its height is dropped and blames nobody: an
///   equivocating proposer can sign two headers at one height, and an honest relayer may have
///   paired the data with the other one. For the same reason up to `headersPerHeight` different
///   verified headers are kept per height.
///
/// A value under the service's lock. Each operation is O(heights held), a few hundred at most.
struct PendingGossip {
    struct Limits: Sendable {
        /// Header records (waiting headers plus delivered hashes) kept at most.
        var headerRecords: Int
        /// Distinct verified headers kept at one height (more than one only under equivocation).
        var headersPerHeight: Int = 2
        /// Data without its header is held only at heights `store + 1 ... store + dataWindow`.
        var dataWindow: UInt64
        /// Bytes of data without its header held at most.
        var dataBytes: Int
        /// Data messages without their header held at one height.
        var dataPerHeight: Int = 2
    }

    struct HeldHeader: Sendable {
        let signed: SignedHeader
        let hash: [UInt8]
        let from: PeerID
    }

    struct HeldData: Sendable {
        /// The encoded `Data` as received (the envelope's hint stripped).
        let body: [UInt8]
        /// `BlockData.dataHash` of its txs: what a header's `data_hash` must be.
        let txsHash: [UInt8]
        /// Its metadata's time, which must be the header's.
        let time: UInt64
        let from: PeerID

        func matches(_ header: SignedHeader) -> Bool {
            time == header.header.time && txsHash == header.header.dataHash
        }

        /// Pairs with exactly the headers `other` pairs with.
        func isCopy(of other: HeldData) -> Bool {
            time == other.time && txsHash == other.txsHash
        }
    }

    /// A verified header and data whose txs it commits to: a block to deliver.
    struct Pair: Sendable {
        let header: HeldHeader
        let data: HeldData
    }

    enum HeaderOutcome: Sendable {
        /// Paired with data held at its height.
        case paired(Pair)
        /// Kept, waiting for its data.
        case held
        /// Not kept: known already, a third header at its height, or beyond the bound.
        case notKept
    }

    enum DataOutcome: Sendable, Equatable {
        /// Paired with a kept header (see `HeaderOutcome.paired`; the pair is returned separately).
        case paired
        /// Held until its header comes (never relayed).
        case held
        /// Neither paired nor held, and why.
        case dropped(String)
    }

    private struct Slot {
        var headers: [HeldHeader] = []
        /// Hashes of this height's headers already delivered with their data.
        var delivered: [[UInt8]] = []
        var data: [HeldData] = []

        var headerRecords: Int { headers.count + delivered.count }
        var isEmpty: Bool { headers.isEmpty && delivered.isEmpty && data.isEmpty }
    }

    let limits: Limits
    private var slots: [UInt64: Slot] = [:]
    private(set) var headerRecordCount = 0
    private(set) var dataByteCount = 0
    /// Every slot at or below this height is gone.
    private var prunedThrough: UInt64 = 0

    init(limits: Limits) {
        self.limits = limits
    }

    // MARK: Queries

    /// Headers waiting for their data.
    var waitingHeaderCount: Int { slots.values.reduce(0) { $0 + $1.headers.count } }
    /// Data messages waiting for their header.
    var heldDataCount: Int { slots.values.reduce(0) { $0 + $1.data.count } }
    /// Heights at which data waits for its header, ascending.
    var heldDataHeights: [UInt64] { slots.filter { !$0.value.data.isEmpty }.keys.sorted() }
    /// Heights at which a header waits for its data, ascending.
    var waitingHeaderHeights: [UInt64] { slots.filter { !$0.value.headers.isEmpty }.keys.sorted() }

    /// Whether this header (by height and hash) is kept or was delivered: nothing to verify.
    func knows(height: UInt64, hash: [UInt8]) -> Bool {
        guard let slot = slots[height] else { return false }
        return slot.delivered.contains(hash) || slot.headers.contains { $0.hash == hash }
    }

    /// Whether data at `height` could be paired or held, decided before its txs are hashed.
    func wants(dataAt height: UInt64, storeHeight: UInt64) -> Bool {
        guard height > storeHeight else { return false }
        if let slot = slots[height] {
            if !slot.headers.isEmpty { return true }
            // The block at this height was delivered: the data is a copy, or junk.
            if !slot.delivered.isEmpty { return false }
        }
        return height - storeHeight <= limits.dataWindow
    }

    // MARK: Changes

    /// Drops everything at or below the store height: the node has those blocks. (After a
    /// rollback the store height goes down; nothing is dropped then.)
    mutating func prune(through storeHeight: UInt64) {
        guard storeHeight > prunedThrough else {
            prunedThrough = storeHeight
            return
        }
        prunedThrough = storeHeight
        for height in slots.keys.filter({ $0 <= storeHeight }) {
            guard let slot = slots.removeValue(forKey: height) else { continue }
            headerRecordCount -= slot.headerRecords
            dataByteCount -= slot.data.reduce(0) { $0 + $1.body.count }
        }
    }

    /// A header whose signature verified. Data held at its height either pairs with it or, not
    /// being its data, is dropped.
    mutating func add(header: HeldHeader) -> HeaderOutcome {
        let height = header.signed.header.height
        guard height > prunedThrough else { return .notKept }
        var slot = slots[height] ?? Slot()
        guard !slot.delivered.contains(header.hash), !slot.headers.contains(where: { $0.hash == header.hash }),
              slot.headerRecords < limits.headersPerHeight else { return .notKept }
        let match = slot.data.first { $0.matches(header.signed) }
        dataByteCount -= slot.data.reduce(0) { $0 + $1.body.count }
        slot.data = []
        headerRecordCount += 1
        if let match {
            slot.delivered.append(header.hash)
            slots[height] = slot
            evictHeaderRecords()
            return .paired(Pair(header: header, data: match))
        }
        slot.headers.append(header)
        slots[height] = slot
        evictHeaderRecords()
        return knows(height: height, hash: header.hash) ? .held : .notKept
    }

    /// Data that decoded, is for this chain and has its metadata; `height` is its metadata's.
    mutating func add(data: HeldData, height: UInt64, storeHeight: UInt64) -> (DataOutcome, Pair?) {
        guard height > storeHeight, height > prunedThrough else { return (.dropped("at or below the store height"), nil) }
        var slot = slots[height] ?? Slot()
        if !slot.headers.isEmpty {
            guard let i = slot.headers.firstIndex(where: { data.matches($0.signed) }) else {
                return (.dropped("does not match the verified header at its height"), nil)
            }
            let header = slot.headers.remove(at: i)
            slot.delivered.append(header.hash)
            slots[height] = slot
            return (.paired, Pair(header: header, data: data))
        }
        if !slot.delivered.isEmpty { return (.dropped("its height's block was delivered already"), nil) }
        guard height - storeHeight <= limits.dataWindow else {
            return (.dropped("more than \(limits.dataWindow) heights above the store and no header"), nil)
        }
        guard !slot.data.contains(where: { $0.isCopy(of: data) }) else {
            return (.dropped("the same txs and time wait at its height already"), nil)
        }
        guard slot.data.count < limits.dataPerHeight else {
            return (.dropped("\(limits.dataPerHeight) data messages wait at its height already"), nil)
        }
        slot.data.append(data)
        slots[height] = slot
        dataByteCount += data.body.count
        evictData()
        let kept = slots[height]?.data.contains { $0.isCopy(of: data) } ?? false
        return kept ? (.held, nil) : (.dropped("the held-data budget keeps lower heights"), nil)
    }

    private mutating func evictHeaderRecords() {
        while headerRecordCount > limits.headerRecords,
              let height = slots.filter({ $0.value.headerRecords > 0 }).keys.max() {
            var slot = slots[height]!
            if slot.headers.isEmpty { slot.delivered.removeLast() } else { slot.headers.removeLast() }
            headerRecordCount -= 1
            slots[height] = slot.isEmpty ? nil : slot
        }
    }

    private mutating func evictData() {
        while dataByteCount > limits.dataBytes, let height = slots.filter({ !$0.value.data.isEmpty }).keys.max() {
            var slot = slots[height]!
            let dropped = slot.data.removeLast()
            dataByteCount -= dropped.body.count
            slots[height] = slot.isEmpty ? nil : slot
        }
    }
}
