import CRocksDB
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The small part of the RocksDB C API the store uses, with its memory rules kept in one place:
/// error strings and returned values are freed with `rocksdb_free`, iterator bounds live as long
/// as their iterator, and no call reaches a closed handle (a readers-writer lock guards `close`).
final class RocksDB: @unchecked Sendable {
    private var handle: OpaquePointer?
    private let guardLock = ReadWriteLock()
    private let readOptions: OpaquePointer
    private let syncWriteOptions: OpaquePointer
    private let asyncWriteOptions: OpaquePointer
    let path: String

    private init(handle: OpaquePointer, path: String) {
        self.handle = handle
        self.path = path
        readOptions = rocksdb_readoptions_create()
        syncWriteOptions = rocksdb_writeoptions_create()
        // WAL stays on for both (the default). `sync` adds an fsync of the WAL per write.
        rocksdb_writeoptions_set_sync(syncWriteOptions, 1)
        asyncWriteOptions = rocksdb_writeoptions_create()
        rocksdb_writeoptions_set_sync(asyncWriteOptions, 0)
    }

    deinit {
        close()
        rocksdb_readoptions_destroy(readOptions)
        rocksdb_writeoptions_destroy(syncWriteOptions)
        rocksdb_writeoptions_destroy(asyncWriteOptions)
    }

    /// Opens (creating if missing) the database at `path`. A "lock" in RocksDB's error means
    /// another process, or another handle in this process, has it open.
    static func open(path: String) throws(StoreError) -> RocksDB {
        let options = rocksdb_options_create()!
        defer { rocksdb_options_destroy(options) }
        rocksdb_options_set_create_if_missing(options, 1)
        rocksdb_options_increase_parallelism(options, 2)
        rocksdb_options_set_keep_log_file_num(options, 4)
        rocksdb_options_set_max_log_file_size(options, 8 << 20)
        rocksdb_options_set_info_log_level(options, 2) // WARN: keep the data directory's LOG small
        let table = rocksdb_block_based_options_create()!
        defer { rocksdb_block_based_options_destroy(table) }
        // Point lookups of absent keys (unknown hashes, empty heights) skip the disk.
        rocksdb_block_based_options_set_filter_policy(table, rocksdb_filterpolicy_create_bloom(10))
        rocksdb_options_set_block_based_table_factory(options, table)
        // The two youngest levels (RocksDB's default 256 MiB of L1, the newest blocks) stay
        // uncompressed: during a catch-up every block passes through them, and Snappy was the
        // largest part of flush and compaction in its profile; the older levels still compress.
        var perLevel: [Int32] = [Int32(rocksdb_no_compression), Int32(rocksdb_no_compression)]
            + [Int32](repeating: Int32(rocksdb_snappy_compression), count: 5)
        rocksdb_options_set_compression_per_level(options, &perLevel, perLevel.count)

        var error: UnsafeMutablePointer<CChar>?
        let db = rocksdb_open(options, path, &error)
        if let message = takeError(&error) {
            if isLockConflict(message) { throw .locked(path: path, detail: message) }
            throw .openFailed(path: path, reason: message)
        }
        guard let db else { throw .openFailed(path: path, reason: "rocksdb_open returned no handle") }
        return RocksDB(handle: db, path: path)
    }

    /// RocksDB's messages when the LOCK file is held: by another handle in this process
    /// ("lock hold by current process …") or by another process (flock fails with EAGAIN /
    /// EWOULDBLOCK: "While lock file: <dir>/LOCK: Resource temporarily unavailable").
    static func isLockConflict(_ message: String) -> Bool {
        if message.contains("lock hold by current process") { return true }
        return message.contains("/LOCK") && (message.contains("While lock")
            || message.contains("Resource temporarily unavailable") || message.contains("No locks available"))
    }

    /// Closes the handle; later calls throw `StoreError.closed`. Waits for calls in progress.
    func close() {
        guardLock.withWriteLock {
            if let handle {
                rocksdb_close(handle)
                self.handle = nil
            }
        }
    }

    var isClosed: Bool { guardLock.withReadLock { handle == nil } }

    private static func takeError(_ error: inout UnsafeMutablePointer<CChar>?) -> String? {
        guard let e = error else { return nil }
        let message = String(cString: e)
        rocksdb_free(e)
        error = nil
        return message
    }

    @inline(__always)
    private func withHandle<T>(_ body: (OpaquePointer) throws(StoreError) -> T) throws(StoreError) -> T {
        try guardLock.withReadLock { () throws(StoreError) -> T in
            guard let handle else { throw .closed }
            return try body(handle)
        }
    }

    func get(_ key: [UInt8]) throws(StoreError) -> [UInt8]? {
        try withHandle { (db) throws(StoreError) -> [UInt8]? in
            var length = 0
            var error: UnsafeMutablePointer<CChar>?
            let value = key.withUnsafeBufferPointer { k in
                rocksdb_get(db, readOptions, charPointer(k), k.count, &length, &error)
            }
            if let message = RocksDB.takeError(&error) { throw .io(operation: "get", reason: message) }
            guard let value else { return nil }
            defer { rocksdb_free(value) }
            return Array(UnsafeRawBufferPointer(start: value, count: length))
        }
    }

    func write(_ batch: WriteBatch, sync: Bool) throws(StoreError) {
        try write(batch, options: sync ? syncWriteOptions : asyncWriteOptions)
    }

    private func write(_ batch: WriteBatch, options: OpaquePointer) throws(StoreError) {
        try withHandle { (db) throws(StoreError) in
            var error: UnsafeMutablePointer<CChar>?
            rocksdb_write(db, options, batch.pointer, &error)
            if let message = RocksDB.takeError(&error) { throw .io(operation: "write", reason: message) }
        }
    }

    /// An integer property of the database (`rocksdb.estimate-table-readers-mem`, …); nil when
    /// RocksDB does not know it or the database is closed.
    func intProperty(_ name: String) -> UInt64? {
        try? withHandle { (db) throws(StoreError) -> UInt64? in
            var value: UInt64 = 0
            return rocksdb_property_int(db, name, &value) == 0 ? value : nil
        }
    }

    /// Runs `body` with an iterator over keys in `[lower, upper)`. The iterator is destroyed
    /// when `body` returns and must not escape it.
    func withIterator<T>(lower: [UInt8], upper: [UInt8],
                         _ body: (RocksIterator) throws(StoreError) -> T) throws(StoreError) -> T {
        try withHandle { (db) throws(StoreError) -> T in
            let iterator = RocksIterator(db: db, lower: lower, upper: upper)
            defer { iterator.destroy() }
            let result = try body(iterator)
            try iterator.checkError()
            return result
        }
    }
}

@inline(__always)
private func charPointer(_ buffer: UnsafeBufferPointer<UInt8>) -> UnsafePointer<CChar> {
    // RocksDB takes (pointer, length); an empty value still needs a valid pointer.
    guard let base = buffer.baseAddress else { return emptyByte }
    return UnsafeRawPointer(base).assumingMemoryBound(to: CChar.self)
}

nonisolated(unsafe) private let emptyByte: UnsafePointer<CChar> = {
    let p = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
    p.initialize(to: 0)
    return UnsafePointer(p)
}()

/// A RocksDB write batch: everything in it is applied atomically by `RocksDB.write`.
/// Where the store puts the operations of one write.
protocol BatchSink: AnyObject {
    func put(_ key: [UInt8], _ value: [UInt8])
    func delete(_ key: [UInt8])
}

/// Operations collected and then written in key order: RocksDB's memtable inserts keys in
/// order far faster than keys in random order (a catch-up batch mixes heights, hashes and
/// executor keys; measured 1.6× on 100,000 blocks). Operations on one key keep their order.
final class SortedWriteBatch: BatchSink {
    private var keys: [[UInt8]] = []
    private var values: [[UInt8]?] = []

    func put(_ key: [UInt8], _ value: [UInt8]) {
        keys.append(key)
        values.append(value)
    }

    func delete(_ key: [UInt8]) {
        keys.append(key)
        values.append(nil)
    }

    /// The RocksDB batch, operations sorted by key (stable).
    func batch() -> WriteBatch {
        let order = keys.indices.sorted { a, b in
            let c = compareBytes(keys[a], keys[b])
            return c < 0 || (c == 0 && a < b)
        }
        let batch = WriteBatch()
        for i in order {
            if let value = values[i] { batch.put(keys[i], value) } else { batch.delete(keys[i]) }
        }
        return batch
    }
}

/// memcmp order, shorter first on a common prefix (RocksDB's default comparator).
@inline(__always)
func compareBytes(_ a: [UInt8], _ b: [UInt8]) -> Int32 {
    a.withUnsafeBytes { pa in
        b.withUnsafeBytes { pb in
            let n = min(pa.count, pb.count)
            let c = n == 0 ? 0 : memcmp(pa.baseAddress!, pb.baseAddress!, n)
            if c != 0 { return c }
            return pa.count < pb.count ? -1 : (pa.count > pb.count ? 1 : 0)
        }
    }
}

final class WriteBatch: BatchSink {
    let pointer: OpaquePointer

    init() { pointer = rocksdb_writebatch_create() }

    deinit { rocksdb_writebatch_destroy(pointer) }

    var count: Int { Int(rocksdb_writebatch_count(pointer)) }

    func put(_ key: [UInt8], _ value: [UInt8]) {
        key.withUnsafeBufferPointer { k in
            value.withUnsafeBufferPointer { v in
                rocksdb_writebatch_put(pointer, charPointer(k), k.count, charPointer(v), v.count)
            }
        }
    }

    func delete(_ key: [UInt8]) {
        key.withUnsafeBufferPointer { k in
            rocksdb_writebatch_delete(pointer, charPointer(k), k.count)
        }
    }

    /// Deletes every key in `[start, end)`.
    func deleteRange(_ start: [UInt8], _ end: [UInt8]) {
        start.withUnsafeBufferPointer { s in
            end.withUnsafeBufferPointer { e in
                rocksdb_writebatch_delete_range(pointer, charPointer(s), s.count, charPointer(e), e.count)
            }
        }
    }
}

/// An iterator limited to `[lower, upper)`. The bounds are copied into memory owned by the
/// iterator, because RocksDB keeps pointers to them for the iterator's whole life.
final class RocksIterator {
    private let iterator: OpaquePointer
    private let options: OpaquePointer
    private let bounds: UnsafeMutableBufferPointer<UInt8>
    private var destroyed = false

    init(db: OpaquePointer, lower: [UInt8], upper: [UInt8]) {
        bounds = .allocate(capacity: max(1, lower.count + upper.count))
        _ = bounds.initialize(from: lower + upper)
        options = rocksdb_readoptions_create()
        let base = UnsafeRawPointer(bounds.baseAddress!).assumingMemoryBound(to: CChar.self)
        rocksdb_readoptions_set_iterate_lower_bound(options, base, lower.count)
        rocksdb_readoptions_set_iterate_upper_bound(options, base + lower.count, upper.count)
        iterator = rocksdb_create_iterator(db, options)
    }

    func destroy() {
        guard !destroyed else { return }
        destroyed = true
        rocksdb_iter_destroy(iterator)
        rocksdb_readoptions_destroy(options)
        bounds.deallocate()
    }

    deinit { destroy() }

    var isValid: Bool { rocksdb_iter_valid(iterator) != 0 }

    func seekToFirst() { rocksdb_iter_seek_to_first(iterator) }
    func seekToLast() { rocksdb_iter_seek_to_last(iterator) }

    func seek(_ key: [UInt8]) {
        key.withUnsafeBufferPointer { k in rocksdb_iter_seek(iterator, charPointer(k), k.count) }
    }

    /// Positions at the last key ≤ `key`.
    func seekForPrev(_ key: [UInt8]) {
        key.withUnsafeBufferPointer { k in rocksdb_iter_seek_for_prev(iterator, charPointer(k), k.count) }
    }

    func next() { rocksdb_iter_next(iterator) }
    func previous() { rocksdb_iter_prev(iterator) }

    var key: [UInt8] {
        var length = 0
        let p = rocksdb_iter_key(iterator, &length)
        return Array(UnsafeRawBufferPointer(start: p, count: length))
    }

    var value: [UInt8] {
        var length = 0
        let p = rocksdb_iter_value(iterator, &length)
        return Array(UnsafeRawBufferPointer(start: p, count: length))
    }

    func checkError() throws(StoreError) {
        var error: UnsafeMutablePointer<CChar>?
        rocksdb_iter_get_error(iterator, &error)
        if let e = error {
            let message = String(cString: e)
            rocksdb_free(e)
            throw .io(operation: "iterate", reason: message)
        }
    }
}
