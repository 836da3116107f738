import Chain
import Config
import Store

/// The built-in key/value application (SPEC §4).
///
/// - A tx is UTF-8 `key=value`, split at the first `=`, with a non-empty key. Any other tx stays
///   in the block and changes nothing.
/// - State root: 32 zero bytes after InitChain; after block h, SHA-256(root(h-1) ‖ data_hash(h)).
/// - State lives in the block store's executor namespace and is committed in the block's batch.
///
/// Values are versioned by height, so executing a block needs no reads (catch-up executes many
/// blocks before committing them together) and rollback is exact:
///
/// | key (in the executor namespace)        | value                                 |
/// |----------------------------------------|---------------------------------------|
/// | `v` ‖ len(key) u32 ‖ key ‖ height u64  | the value `key` got at `height`       |
/// | `u` ‖ height u64                       | undo record: the keys written at height|
/// | `p`                                    | undo records pruned through this height|
///
/// Reading a key takes its latest version. Rolling back to `a` deletes the versions listed in the
/// undo records above `a`. Finality prunes superseded versions and the undo records at or below
/// the finalized height (rollback never goes there).
package final class KVExecutor: SynchronousExecutor {
    package let store: BlockStore
    package let mempool: Mempool

    /// Undo records handled per `prune` call by default; the rest follow on later calls.
    package static let maxPrunePerCall = 1024

    package init(store: BlockStore, mempool: Mempool = Mempool()) {
        self.store = store
        self.mempool = mempool
    }

    // MARK: Executor

    package func initChain(genesis: Genesis) throws(ExecutionError) -> [UInt8] {
        [UInt8](repeating: 0, count: 32)
    }

    package func getTxs(max: Int, maxBytes: Int) -> [[UInt8]] {
        mempool.take(max: max, maxBytes: maxBytes)
    }

    /// Up to `max` txs, bounded by the bytes a block can carry.
    package func getTxs(max: Int) -> [[UInt8]] {
        getTxs(max: max, maxBytes: WireLimits.maxTxBytesPerBlock)
    }

    package func hasPendingTransactions() -> Bool { mempool.count > 0 }

    /// The KV state is committed in the block's own batch: always at the store's height.
    package func latestHeight() -> UInt64? { nil }

    /// ev-node's testapp rule: with forced transactions in the list, a tx without `=` or whose
    /// key is only whitespace is removed (the chain would carry it for nothing); then the size
    /// rule. KV has no gas.
    package func filterTxs(_ txs: [[UInt8]], maxBytes: UInt64, maxGas: UInt64, hasForced: Bool) -> [TxFilterStatus] {
        TxSizeFilter.filter(txs, maxBytes: maxBytes) { tx in !hasForced || Self.isWellFormedForForcedInclusion(tx) }
    }

    /// `key=value` with a key that is not blank (Unicode whitespace, as Go's `strings.TrimSpace`).
    package static func isWellFormedForForcedInclusion(_ tx: [UInt8]) -> Bool {
        guard let eq = tx.firstIndex(of: UInt8(ascii: "=")) else { return false }
        return String(decoding: tx[..<eq], as: UTF8.self).contains { !$0.isWhitespace }
    }

    package func executeTxs(_ txs: [[UInt8]], height: UInt64, time: UInt64,
                           previousRoot: [UInt8]) throws(ExecutionError) -> ExecutionResult {
        var writes = WriteSet()
        var undo: [UInt8] = []
        for tx in txs {
            guard let (key, value) = KVExecutor.parse(tx) else { continue }
            writes.put(KVExecutor.versionKey(key, height), value)
            appendBigEndian32(UInt32(key.count), to: &undo)
            undo.append(contentsOf: key)
        }
        if !undo.isEmpty { writes.put(KVExecutor.undoKey(height), undo) }
        let root = Hashing.sha256(previousRoot, BlockData.dataHash(of: txs))
        return ExecutionResult(stateRoot: root, writes: writes)
    }

    /// Finality changes nothing in the KV state by itself: superseded versions are pruned behind
    /// it by `prune(maxRecords:)`, off the path that finalizes (a catch-up finalizes thousands of
    /// blocks per DA height, and production's submitter must not wait for housekeeping).
    package func setFinal(height: UInt64) throws(ExecutionError) -> WriteSet {
        WriteSet()
    }

    /// Prunes behind the store's finalized height: the versions a later final write superseded,
    /// and the undo records (rollback never goes below finality). Handles at most `maxRecords`
    /// undo records; returns true when more are left for the next call.
    ///
    /// Safe while blocks are committed, finalized or rolled back: everything it deletes is at or
    /// below the finalized height, which only grows, and rollback and new blocks touch only what
    /// is above it.
    @discardableResult
    package func prune(maxRecords: Int = KVExecutor.maxPrunePerCall) throws(ExecutionError) -> Bool {
        let height = store.finalizedHeight
        var writes = WriteSet()
        let prunedThrough = try readPrunedThrough()
        guard height > prunedThrough else { return false }
        let records = try storeCall(height) { () throws(StoreError) in
            try store.executorEntries(withPrefix: [KVExecutor.undoPrefix],
                                      from: KVExecutor.undoKey(prunedThrough + 1),
                                      limit: maxRecords + 1)
        }
        var done = height
        var more = false
        // For each key written at or below `done`: the height of its newest such write.
        var newest: [[UInt8]: UInt64] = [:]
        for (index, record) in records.enumerated() {
            guard let recordHeight = readBigEndian(record.key.dropFirst()) else {
                throw ExecutionError(height: nil, reason: "KV undo record with a malformed key")
            }
            if recordHeight > height { break }
            if index == maxRecords {
                done = recordHeight - 1 // handled next time
                more = true
                break
            }
            for key in try KVExecutor.decodeUndo(record.value, height: recordHeight) {
                newest[key] = max(newest[key] ?? 0, recordHeight)
            }
            writes.delete(record.key)
        }
        // Versions older than a key's newest final one can never be read again. One cursor, keys
        // in order: seeks move forward through the store.
        let superseded = try storeCall(height) { () throws(StoreError) -> [[UInt8]] in
            try store.withExecutorCursor(prefix: [KVExecutor.versionTag]) { (cursor) throws(StoreError) -> [[UInt8]] in
                var out: [[UInt8]] = []
                let ordered = newest.map { (prefix: KVExecutor.versionPrefix($0.key), keep: $0.value) }
                    .sorted { $0.prefix.lexicographicallyPrecedes($1.prefix) }
                for (prefix, keep) in ordered {
                    cursor.seek(prefix)
                    while cursor.isValid {
                        let entry = cursor.key
                        guard entry.starts(with: prefix), let v = readBigEndian(entry.suffix(8)), v < keep else { break }
                        out.append(entry)
                        cursor.next()
                    }
                }
                return out
            }
        }
        for key in superseded { writes.delete(key) }
        writes.put(KVExecutor.prunedKey, bigEndianBytes(done))
        try storeCall(height) { () throws(StoreError) in try store.writeExecutorState(writes) }
        return more
    }

    package func rollback(to height: UInt64, from currentHeight: UInt64) throws(ExecutionError) -> WriteSet {
        var writes = WriteSet()
        guard currentHeight > height else { return writes }
        var next = KVExecutor.undoKey(height + 1)
        while true {
            let start = next
            let records = try storeCall(height) { () throws(StoreError) in
                try store.executorEntries(withPrefix: [KVExecutor.undoPrefix], from: start, limit: 1024)
            }
            for record in records {
                guard let recordHeight = readBigEndian(record.key.dropFirst()) else {
                    throw ExecutionError(height: nil, reason: "KV undo record with a malformed key")
                }
                if recordHeight > currentHeight { return writes }
                for key in try KVExecutor.decodeUndo(record.value, height: recordHeight) {
                    writes.delete(KVExecutor.versionKey(key, recordHeight))
                }
                writes.delete(record.key)
            }
            guard records.count == 1024, let last = records.last else { return writes }
            next = last.key + [0]
        }
    }

    // MARK: Mempool and queries

    /// Queues a tx for the next block (`POST /tx`).
    package func submit(_ tx: [UInt8]) throws(MempoolError) {
        try mempool.submit(tx)
    }

    /// The committed value of `key` (`GET /kv`), nil when never set.
    package func value(forKey key: [UInt8]) throws(StoreError) -> [UInt8]? {
        let prefix = KVExecutor.versionPrefix(key)
        return try store.executorLastEntry(withPrefix: prefix,
                                           atOrBefore: prefix + [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])?.value
    }

    package func value(forKey key: String) throws(StoreError) -> [UInt8]? {
        try value(forKey: Array(key.utf8))
    }

    /// Splits a `key=value` tx; nil for anything that is not one (no `=`, empty key, not UTF-8).
    package static func parse(_ tx: [UInt8]) -> (key: [UInt8], value: [UInt8])? {
        guard let eq = tx.firstIndex(of: UInt8(ascii: "=")), eq > 0,
              String(validating: tx, as: UTF8.self) != nil else { return nil }
        return (Array(tx[..<eq]), Array(tx[(eq + 1)...]))
    }

    // MARK: Keys

    static let versionTag = UInt8(ascii: "v")
    static let undoPrefix = UInt8(ascii: "u")
    static let prunedKey: [UInt8] = [UInt8(ascii: "p")]

    static func versionPrefix(_ key: [UInt8]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(13 + key.count)
        out.append(versionTag)
        appendBigEndian32(UInt32(key.count), to: &out)
        out.append(contentsOf: key)
        return out
    }

    static func versionKey(_ key: [UInt8], _ height: UInt64) -> [UInt8] {
        var out = versionPrefix(key)
        appendBigEndian(height, to: &out)
        return out
    }

    static func undoKey(_ height: UInt64) -> [UInt8] {
        var out: [UInt8] = [undoPrefix]
        out.reserveCapacity(9)
        appendBigEndian(height, to: &out)
        return out
    }

    static func decodeUndo(_ bytes: [UInt8], height: UInt64) throws(ExecutionError) -> [[UInt8]] {
        var keys: [[UInt8]] = []
        var i = 0
        while i < bytes.count {
            guard bytes.count - i >= 4 else {
                throw ExecutionError(height: height, reason: "KV undo record truncated")
            }
            let length = Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
            i += 4
            guard bytes.count - i >= length else {
                throw ExecutionError(height: height, reason: "KV undo record truncated")
            }
            keys.append(Array(bytes[i..<(i + length)]))
            i += length
        }
        return keys
    }

    private func readPrunedThrough() throws(ExecutionError) -> UInt64 {
        guard let bytes = try storeCall(nil, { () throws(StoreError) in try store.executorValue(forKey: KVExecutor.prunedKey) }) else {
            return 0
        }
        guard let value = readBigEndian(bytes) else {
            throw ExecutionError(height: nil, reason: "KV pruning marker is corrupted")
        }
        return value
    }

    private func storeCall<T>(_ height: UInt64?, _ body: () throws(StoreError) -> T) throws(ExecutionError) -> T {
        do throws(StoreError) {
            return try body()
        } catch {
            throw ExecutionError(height: height, reason: "KV state: \(error.description)")
        }
    }
}

@inline(__always)
func appendBigEndian32(_ value: UInt32, to bytes: inout [UInt8]) {
    bytes.append(UInt8(truncatingIfNeeded: value >> 24))
    bytes.append(UInt8(truncatingIfNeeded: value >> 16))
    bytes.append(UInt8(truncatingIfNeeded: value >> 8))
    bytes.append(UInt8(truncatingIfNeeded: value))
}
