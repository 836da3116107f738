/// What RocksDB holds in memory for the store, from its own properties: the figures that tell
/// whether a node's resident memory is the database's (and which part) or the node's own.
package struct StoreMemoryUsage: Sendable, Equatable, Codable {
    /// Index and filter blocks of open SST files held outside the block cache
    /// (`rocksdb.estimate-table-readers-mem`): grows with the data on disk.
    package var tableReadersBytes: UInt64 = 0
    /// The active and unflushed immutable memtables (`rocksdb.cur-size-all-mem-tables`).
    package var memtablesBytes: UInt64 = 0
    /// Memtables including those pinned by iterators or snapshots (`rocksdb.size-all-mem-tables`).
    package var memtablesPinnedBytes: UInt64 = 0
    /// Entries in the block cache (`rocksdb.block-cache-usage`) and its capacity.
    package var blockCacheBytes: UInt64 = 0
    package var blockCachePinnedBytes: UInt64 = 0
    package var blockCacheCapacityBytes: UInt64 = 0
    /// Versions of the LSM tree kept alive (by iterators, compactions); should stay small.
    package var liveVersions: UInt64 = 0
    package var sstFilesBytes: UInt64 = 0
    package var estimatedKeys: UInt64 = 0

    package init() {}

    /// Everything RocksDB says it holds in memory.
    package var totalBytes: UInt64 { tableReadersBytes + memtablesPinnedBytes + blockCacheBytes }
}

extension BlockStore {
    /// RocksDB's memory properties now (zeros once the store is closed).
    package func memoryUsage() -> StoreMemoryUsage {
        var u = StoreMemoryUsage()
        func read(_ name: String) -> UInt64 { db.intProperty("rocksdb." + name) ?? 0 }
        u.tableReadersBytes = read("estimate-table-readers-mem")
        u.memtablesBytes = read("cur-size-all-mem-tables")
        u.memtablesPinnedBytes = read("size-all-mem-tables")
        u.blockCacheBytes = read("block-cache-usage")
        u.blockCachePinnedBytes = read("block-cache-pinned-usage")
        u.blockCacheCapacityBytes = read("block-cache-capacity")
        u.liveVersions = read("num-live-versions")
        u.sstFilesBytes = read("total-sst-files-size")
        u.estimatedKeys = read("estimate-num-keys")
        return u
    }
}
