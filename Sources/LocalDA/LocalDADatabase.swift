import Store
import CRocksDB

#if canImport(Glibc)
import Glibc
#endif

/// The few RocksDB operations the local DA needs: open, synced put, get, last key under a prefix.
///
/// Internal to the local DA (the node's block store has its own wrapper). RocksDB's C handles
/// are thread-safe for these operations, hence the unchecked conformance.
///
/// `close()` must be called before the process exits: closing RocksDB from a deinit that runs on
/// some thread while `exit` destroys RocksDB's static objects crashes the process (seen when the
/// local DA stopped on SIGINT).
final class LocalDADatabase: @unchecked Sendable {
    package struct Failure: Error, CustomStringConvertible {
        package let description: String
    }

    /// Nil once closed; read under `guardLock`'s read side for every call, so `close` (write side)
    /// waits for calls in progress and no call reaches a closed handle.
    private var handle: OpaquePointer?
    private let guardLock = ReadWriteLock()
    private let options: OpaquePointer
    private let syncedWrite: OpaquePointer
    private let read: OpaquePointer
    package let path: String

    init(path: String) throws(Failure) {
        guard let options = rocksdb_options_create(),
              let syncedWrite = rocksdb_writeoptions_create(),
              let read = rocksdb_readoptions_create() else {
            throw Failure(description: "\(path): RocksDB option allocation failed")
        }
        rocksdb_options_set_create_if_missing(options, 1)
        // Every write is fsynced: a height returned to a client must survive a crash.
        rocksdb_writeoptions_set_sync(syncedWrite, 1)
        var error: UnsafeMutablePointer<CChar>? = nil
        let db = rocksdb_open(options, path, &error)
        if let error {
            let message = String(cString: error)
            rocksdb_free(error)
            rocksdb_options_destroy(options)
            rocksdb_writeoptions_destroy(syncedWrite)
            rocksdb_readoptions_destroy(read)
            throw Failure(description: "cannot open RocksDB at \(path): \(message)")
        }
        self.handle = db!
        self.options = options
        self.syncedWrite = syncedWrite
        self.read = read
        self.path = path
    }

    deinit {
        close()
    }

    /// Closes the database once every call in progress has returned; later calls fail.
    package func close() {
        guardLock.withWriteLock {
            guard let db = handle else { return }
            rocksdb_close(db)
            rocksdb_options_destroy(options)
            rocksdb_writeoptions_destroy(syncedWrite)
            rocksdb_readoptions_destroy(read)
            handle = nil
        }
    }

    private func withHandle<T>(_ body: (OpaquePointer) throws(Failure) -> T) throws(Failure) -> T {
        try guardLock.withReadLock { () throws(Failure) -> T in
            guard let db = handle else { throw Failure(description: "\(path): the database is closed") }
            return try body(db)
        }
    }

    /// Blocks until the write is on disk.
    func putSynced(key: [UInt8], value: [UInt8]) throws(Failure) {
        try withHandle { (db) throws(Failure) in try put(db, key: key, value: value) }
    }

    private func put(_ db: OpaquePointer, key: [UInt8], value: [UInt8]) throws(Failure) {
        var error: UnsafeMutablePointer<CChar>? = nil
        key.withUnsafeBufferPointer { k in
            value.withUnsafeBufferPointer { v in
                k.withMemoryRebound(to: CChar.self) { k in
                    v.withMemoryRebound(to: CChar.self) { v in
                        rocksdb_put(db, syncedWrite, k.baseAddress, k.count, v.baseAddress, v.count, &error)
                    }
                }
            }
        }
        try Self.check(error, "put")
    }

    package func get(key: [UInt8]) throws(Failure) -> [UInt8]? {
        try withHandle { (db) throws(Failure) in try get(db, key: key) }
    }

    private func get(_ db: OpaquePointer, key: [UInt8]) throws(Failure) -> [UInt8]? {
        var error: UnsafeMutablePointer<CChar>? = nil
        var length = 0
        let value = key.withUnsafeBufferPointer { k in
            k.withMemoryRebound(to: CChar.self) { k in
                rocksdb_get(db, read, k.baseAddress, k.count, &length, &error)
            }
        }
        try Self.check(error, "get")
        guard let value else { return nil }
        defer { rocksdb_free(value) }
        return value.withMemoryRebound(to: UInt8.self, capacity: length) {
            Array(UnsafeBufferPointer(start: $0, count: length))
        }
    }

    /// The greatest key that is ≤ `bound` and starts with `prefix`.
    func lastKey(prefix: [UInt8], atMost bound: [UInt8]) throws(Failure) -> [UInt8]? {
        try withHandle { (db) throws(Failure) in try lastKey(db, prefix: prefix, atMost: bound) }
    }

    private func lastKey(_ db: OpaquePointer, prefix: [UInt8], atMost bound: [UInt8]) throws(Failure) -> [UInt8]? {
        guard let iterator = rocksdb_create_iterator(db, read) else {
            throw Failure(description: "\(path): cannot create a RocksDB iterator")
        }
        defer { rocksdb_iter_destroy(iterator) }
        bound.withUnsafeBufferPointer { b in
            b.withMemoryRebound(to: CChar.self) { b in
                rocksdb_iter_seek_for_prev(iterator, b.baseAddress, b.count)
            }
        }
        var error: UnsafeMutablePointer<CChar>? = nil
        rocksdb_iter_get_error(iterator, &error)
        try Self.check(error, "seek")
        guard rocksdb_iter_valid(iterator) != 0 else { return nil }
        var length = 0
        guard let raw = rocksdb_iter_key(iterator, &length) else { return nil }
        let key = raw.withMemoryRebound(to: UInt8.self, capacity: length) {
            Array(UnsafeBufferPointer(start: $0, count: length))
        }
        return key.starts(with: prefix) ? key : nil
    }

    private static func check(_ error: UnsafeMutablePointer<CChar>?, _ what: String) throws(Failure) {
        guard let error else { return }
        let message = String(cString: error)
        rocksdb_free(error)
        throw Failure(description: "RocksDB \(what) failed: \(message)")
    }
}
