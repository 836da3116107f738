import Chain
import Store

/// Headers and data seen on DA, paired by data hash, and what DA confirms per block height.
struct InclusionTracker {
    struct Seen {
        var hash: [UInt8]
        var headerDAHeight: UInt64
        var dataDAHeight: UInt64?
        var needsData: Bool
        var isComplete: Bool { !needsData || dataDAHeight != nil }
    }

    /// Headers waiting for their data, by height.
    private(set) var waiting: [UInt64: (header: SignedHeader, daHeight: UInt64)] = [:]
    /// Data waiting for its header, by data hash (txs only, as in the header). `verified`: its
    /// own signature was checked; otherwise a verified header of the same DA height claims it,
    /// and its metadata is stripped when paired (see `DABlobChecker`).
    private(set) var data: [[UInt8]: (data: BlockData, daHeight: UInt64, bytes: Int, verified: Bool)] = [:]
    /// Encoded size of everything in `data`.
    private(set) var heldDataBytes = 0
    /// Complete blocks not yet handed over.
    private var complete: [UInt64: CandidateBlock] = [:]
    /// What DA holds for each height not yet finalized.
    private(set) var confirmed: [UInt64: Seen] = [:]

    var unresolved: Int { waiting.count + data.count }
    private(set) var highestHeader: UInt64 = 0

    /// The data hashes of headers waiting for their data: data blobs matching one need no
    /// signature check of their own.
    var waitingDataHashes: Set<[UInt8]> { Set(waiting.values.map(\.header.header.dataHash)) }

    /// What is paired with a header: unverified data keeps only the txs its header commits to.
    private static func trusted(_ data: BlockData, verified: Bool) -> BlockData {
        verified ? data : BlockData(metadata: nil, txs: data.txs)
    }

    private mutating func removeData(_ hash: [UInt8]) -> (data: BlockData, daHeight: UInt64, bytes: Int, verified: Bool)? {
        guard let held = data.removeValue(forKey: hash) else { return nil }
        heldDataBytes -= held.bytes
        return held
    }

    /// Pairs `header` with its data. Only the first header per height counts (the follower
    /// sorts out later different ones before they get here).
    mutating func addHeader(_ header: SignedHeader, daHeight: UInt64) {
        let height = header.height
        let hash = header.header.hash
        if confirmed[height] != nil { return }
        highestHeader = max(highestHeader, height)
        let needsData = header.header.dataHash != BlockData.emptyDataHash
        confirmed[height] = Seen(hash: hash, headerDAHeight: daHeight, dataDAHeight: nil, needsData: needsData)
        if !needsData {
            // Headers reach the tracker only after `DABlobChecker` verified their signature: the
            // pipeline need not verify them again.
            complete[height] = CandidateBlock(signedHeader: header, data: BlockData(metadata: nil, txs: []),
                                              origin: .da(daHeight: daHeight), signatureVerified: true)
        } else if let held = removeData(header.header.dataHash) {
            confirmed[height]?.dataDAHeight = held.daHeight
            complete[height] = CandidateBlock(signedHeader: header, data: Self.trusted(held.data, verified: held.verified),
                                              origin: .da(daHeight: daHeight), signatureVerified: true)
        } else {
            waiting[height] = (header, daHeight)
        }
    }

    /// `header` (of the proposer the chain expects) takes its height in place of the header of
    /// another key seen first: the other's pairing is forgotten (its data, if it was paired,
    /// is not held again: it belonged to a block that will not be applied).
    mutating func replaceHeader(_ header: SignedHeader, daHeight: UInt64) {
        let height = header.height
        confirmed.removeValue(forKey: height)
        waiting.removeValue(forKey: height)
        complete.removeValue(forKey: height)
        addHeader(header, daHeight: daHeight)
    }

    /// Pairs data with its waiting header, or holds it for a header still to come. Returns
    /// false when it is dropped instead: verified data that no header can still claim (no
    /// metadata height — ev-node never posts such data — or a height already final).
    /// `hash`: `blockData.dataHash`, computed by the checker on the blocking pool.
    mutating func addData(_ blockData: BlockData, hash: [UInt8], bytes: Int, verified: Bool, daHeight: UInt64,
                          finalized: UInt64) -> Bool {
        if let height = blockData.metadata?.height, let w = waiting[height], w.header.header.dataHash == hash {
            pair(blockData, verified: verified, daHeight: daHeight, with: w, at: height)
            return true
        }
        if let (height, w) = waiting.first(where: { $0.value.header.header.dataHash == hash }) {
            pair(blockData, verified: verified, daHeight: daHeight, with: w, at: height)
            return true
        }
        if verified {
            guard let height = blockData.metadata?.height, height > finalized else { return false }
        }
        if let held = data[hash] {
            // Keep one copy; a verified one (its metadata can be trusted) over an unverified one.
            guard verified && !held.verified else { return true }
            _ = removeData(hash)
        }
        data[hash] = (blockData, daHeight, bytes, verified)
        heldDataBytes += bytes
        return true
    }

    private mutating func pair(_ blockData: BlockData, verified: Bool, daHeight: UInt64,
                               with w: (header: SignedHeader, daHeight: UInt64), at height: UInt64) {
        waiting.removeValue(forKey: height)
        confirmed[height]?.dataDAHeight = daHeight
        complete[height] = CandidateBlock(signedHeader: w.header, data: Self.trusted(blockData, verified: verified),
                                          origin: .da(daHeight: w.daHeight), signatureVerified: true)
    }

    /// Every complete block, in height order, and forgets them. Those at or below the store
    /// height are handed over too: the pipeline compares them with what it stored (a different
    /// one is a divergence), so there is no height to filter by here.
    mutating func takeAllComplete() -> [CandidateBlock] {
        let out = complete.values.sorted { $0.height < $1.height }
        complete.removeAll(keepingCapacity: true)
        return out
    }

    /// Keeps memory bounded: at most `max` data blobs and waiting headers, and at most
    /// `maxDataBytes` of held data (the earliest on DA goes first). Returns how many data blobs
    /// were dropped.
    mutating func trim(max: Int, maxDataBytes: Int) -> Int {
        var dropped = 0
        if data.count > max || heldDataBytes > maxDataBytes {
            for (k, _) in data.sorted(by: { $0.value.daHeight < $1.value.daHeight }) {
                guard data.count > max || heldDataBytes > maxDataBytes else { break }
                _ = removeData(k)
                dropped += 1
            }
        }
        if waiting.count > max {
            for h in waiting.keys.sorted().suffix(waiting.count - max) { waiting.removeValue(forKey: h) }
        }
        return dropped
    }

    /// What DA's confirmations make final, after the DA heights through `daHeight` were
    /// processed: the stored blocks from `finalized + 1` on, consecutive and at most
    /// `storeHeight`, whose header and data DA holds and whose stored hash (`storedHash`) is
    /// the one DA holds; and the DA height a restart resumes reading from (the lowest one still
    /// holding a part of a block above the new finalized height, else the next one).
    /// Nothing is written: the sync side records the result (`DAFinalityRecorder`), then the
    /// follower calls `forget(through:)`.
    func finality(finalized: UInt64, storeHeight: UInt64, processedThrough daHeight: UInt64,
                  storedHash: (UInt64) throws(StoreError) -> [UInt8]?) throws(StoreError) -> DAFinality {
        var inclusions: [(height: UInt64, inclusion: DAInclusion)] = []
        var f = finalized
        while f < storeHeight, let seen = confirmed[f + 1], seen.isComplete,
              let stored = try storedHash(f + 1), stored == seen.hash {
            inclusions.append((f + 1, DAInclusion(headerDAHeight: seen.headerDAHeight, dataDAHeight: seen.dataDAHeight)))
            f += 1
        }
        let resume = lowestUnresolvedDAHeight(after: f) ?? (daHeight + 1)
        return DAFinality(inclusions: inclusions, finalizedHeight: f, resumeDAHeight: resume)
    }

    func lowestUnresolvedDAHeight(after finalized: UInt64) -> UInt64? {
        var lowest: UInt64?
        for (h, seen) in confirmed where h > finalized {
            lowest = min(lowest ?? .max, seen.headerDAHeight, seen.dataDAHeight ?? .max)
        }
        for (_, d) in data { lowest = min(lowest ?? .max, d.daHeight) }
        return lowest
    }

    /// Forgets every block above `height` (they were rolled back and will be read again) and
    /// returns the lowest DA height that held any part of them.
    mutating func rewind(after height: UInt64) -> UInt64? {
        var lowest: UInt64?
        for (h, seen) in confirmed where h > height {
            lowest = min(lowest ?? .max, seen.headerDAHeight, seen.dataDAHeight ?? .max)
            confirmed.removeValue(forKey: h)
        }
        for (h, w) in waiting where h > height {
            lowest = min(lowest ?? .max, w.daHeight)
            waiting.removeValue(forKey: h)
        }
        for (h, c) in complete where h > height {
            if case .da(let d) = c.origin { lowest = min(lowest ?? .max, d) }
            complete.removeValue(forKey: h)
        }
        return lowest
    }

    /// Forgets what DA confirmed through the finalized `height`, and data held for those heights
    /// that no header claimed. Returns how many such data blobs were dropped.
    mutating func forget(through height: UInt64) -> Int {
        for h in confirmed.keys where h <= height { confirmed.removeValue(forKey: h) }
        // Unverified data without a claim has no trustworthy height: it goes too (it was
        // claimed by a header that went elsewhere, e.g. double-sign evidence).
        let unclaimed = data.filter { !$0.value.verified || ($0.value.data.metadata?.height ?? .max) <= height }.map(\.key)
        for key in unclaimed { _ = removeData(key) }
        return unclaimed.count
    }
}
