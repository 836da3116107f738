// The benchmark's baselines, measured in the same run as the node figures so that ratios hold
// on a noisy machine (SPEC §11): single-core Ed25519 verification (swift-crypto), raw RocksDB
// batch writes, and the block store's commit path against raw batches of the same bytes.

import Chain
import Store
import Execution
import Production
import CRocksDB
import Config
import Crypto
import Foundation

enum Baselines {
    /// Ed25519 verifications per second on the calling thread, over a typical signed header.
    static func ed25519VerifyRate(seconds: Double) -> Double {
        let key = Curve25519.Signing.PrivateKey()
        let signer = BlockSigner(privateKey: key)
        let header = Header(height: 12_345, time: 1_700_000_000_000_000_000, lastHeaderHash: [UInt8](repeating: 1, count: 32),
                            dataHash: [UInt8](repeating: 2, count: 32), appHash: [UInt8](repeating: 3, count: 32),
                            proposerAddress: signer.address, chainID: "bench-chain")
        let message = header.encoded()
        let signature = try! key.signature(for: message)
        let publicKey = key.publicKey
        var count = 0
        let start = now()
        var elapsed = 0.0
        while elapsed < seconds {
            for _ in 0..<64 {
                guard publicKey.isValidSignature(signature, for: message) else { fail("Ed25519 baseline: a valid signature failed") }
            }
            count += 64
            elapsed = now() - start
        }
        return Double(count) / elapsed
    }

    struct RawWriteRate {
        var keysPerSecond: Double
        var megabytesPerSecond: Double
    }

    /// Raw RocksDB writes: batches of `batchKeys` keys (9-byte key, `valueBytes`-byte value),
    /// WAL on, not synced — as the store commits caught-up blocks.
    static func rawRocksDBWriteRate(path: String, keys: Int, batchKeys: Int = 1000, valueBytes: Int = 100) -> RawWriteRate {
        let db = RawRocksDB(path: path)
        defer { db.close() }
        let value = [UInt8](repeating: 0x5a, count: valueBytes)
        var written = 0
        let start = now()
        while written < keys {
            let batch = RawBatch()
            for i in written..<min(written + batchKeys, keys) {
                var key: [UInt8] = [UInt8(ascii: "k")]
                appendBigEndian64(UInt64(i) &* 0x9E37_79B9_7F4A_7C15, to: &key)
                batch.put(key, value)
            }
            db.write(batch)
            written = min(written + batchKeys, keys)
        }
        let seconds = now() - start
        return RawWriteRate(keysPerSecond: Double(keys) / seconds,
                            megabytesPerSecond: Double(keys * (9 + valueBytes)) / seconds / 1e6)
    }

    struct StoreComparison {
        var blocks: Int
        var bytes: Int
        var storeBlocksPerSecond: Double
        var storeMegabytesPerSecond: Double
        var rawBlocksPerSecond: Double
        var rawMegabytesPerSecond: Double
    }

    /// Commits `blocks` prepared blocks through `BlockStore.commit` (batches of `batch`, not
    /// synced, as the sync pipeline does) and writes the very same keys and values as raw
    /// RocksDB batches of the same grouping into a second database.
    static func storeVersusRaw(directory: String, blocks count: Int, txs: Int, batch: Int = 512) -> StoreComparison {
        let signer = try! BlockSigner(seed: [UInt8](repeating: 9, count: 32))
        let genesis = Genesis(chainID: "bench-store", startTimeNanoseconds: 1_700_000_000_000_000_000,
                              proposerAddress: signer.address)
        // Build the blocks in memory (a scratch store only gives the executor its genesis).
        let scratch = try! BlockStore.open(path: directory + "/scratch")
        let scratchExecutor = KVExecutor(store: scratch)
        var state = try! ChainExecution(store: scratch, executor: scratchExecutor).initialize(genesis: genesis)
        let builder = BlockBuilder(signer: signer, executor: scratchExecutor)
        var commits: [BlockCommit] = []
        commits.reserveCapacity(count)
        for _ in 0..<count {
            let h = state.nextHeight
            let commit = try! builder.build(on: state, txs: BenchTransactions.txs(height: h, count: txs),
                                            time: genesis.startTimeNanoseconds + h * 1_000_000)
            commits.append(commit)
            state = commit.state
        }
        scratch.close()

        // The bytes the store writes for each block (its key layout), encoded ahead of time.
        var rawBatches: [[(key: [UInt8], value: [UInt8])]] = []
        var bytes = 0
        var index = 0
        while index < commits.count {
            var entries: [(key: [UInt8], value: [UInt8])] = []
            for commit in commits[index..<min(index + batch, commits.count)] {
                let h = commit.height
                entries.append((heightKey("h", h), commit.signedHeader.encoded()))
                entries.append((heightKey("d", h), commit.data.encoded()))
                entries.append(([UInt8(ascii: "i")] + commit.state.lastHeaderHash, bigEndian(h)))
                for op in commit.executorWrites.operations {
                    if case .put(let key, let value) = op { entries.append(([UInt8(ascii: "x")] + key, value)) }
                }
            }
            entries.append(([UInt8(ascii: "s")], commits[min(index + batch, commits.count) - 1].state.encoded()))
            bytes += entries.reduce(0) { $0 + $1.key.count + $1.value.count }
            rawBatches.append(entries)
            index += batch
        }

        let store = try! BlockStore.open(path: directory + "/store")
        let executor = KVExecutor(store: store)
        try! ChainExecution(store: store, executor: executor).initialize(genesis: genesis)
        var start = now()
        index = 0
        while index < commits.count {
            try! store.commit(Array(commits[index..<min(index + batch, commits.count)]), sync: false)
            index += batch
        }
        let storeSeconds = now() - start
        store.close()

        let raw = RawRocksDB(path: directory + "/raw")
        start = now()
        for entries in rawBatches {
            let b = RawBatch()
            for entry in entries { b.put(entry.key, entry.value) }
            raw.write(b)
        }
        let rawSeconds = now() - start
        raw.close()
        return StoreComparison(blocks: count, bytes: bytes,
                               storeBlocksPerSecond: Double(count) / storeSeconds,
                               storeMegabytesPerSecond: Double(bytes) / storeSeconds / 1e6,
                               rawBlocksPerSecond: Double(count) / rawSeconds,
                               rawMegabytesPerSecond: Double(bytes) / rawSeconds / 1e6)
    }

    private static func heightKey(_ prefix: Character, _ h: UInt64) -> [UInt8] {
        var key = [prefix.asciiValue!]
        appendBigEndian64(h, to: &key)
        return key
    }

    private static func bigEndian(_ v: UInt64) -> [UInt8] {
        var out: [UInt8] = []
        appendBigEndian64(v, to: &out)
        return out
    }
}

func appendBigEndian64(_ value: UInt64, to bytes: inout [UInt8]) {
    for shift in stride(from: 56, through: 0, by: -8) {
        bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift)))
    }
}

/// A plain RocksDB database opened with the block store's options (bloom filter, two
/// background threads, WAL on, no sync), for the raw baselines.
final class RawRocksDB {
    private let db: OpaquePointer
    private let writeOptions: OpaquePointer

    init(path: String) {
        let options = rocksdb_options_create()!
        defer { rocksdb_options_destroy(options) }
        rocksdb_options_set_create_if_missing(options, 1)
        rocksdb_options_increase_parallelism(options, 2)
        rocksdb_options_set_info_log_level(options, 2)
        let table = rocksdb_block_based_options_create()!
        defer { rocksdb_block_based_options_destroy(table) }
        rocksdb_block_based_options_set_filter_policy(table, rocksdb_filterpolicy_create_bloom(10))
        rocksdb_options_set_block_based_table_factory(options, table)
        var error: UnsafeMutablePointer<CChar>?
        let handle = rocksdb_open(options, path, &error)
        if let error { fail("RocksDB at \(path): \(String(cString: error))") }
        db = handle!
        writeOptions = rocksdb_writeoptions_create()
    }

    func write(_ batch: RawBatch) {
        var error: UnsafeMutablePointer<CChar>?
        rocksdb_write(db, writeOptions, batch.pointer, &error)
        if let error { fail("RocksDB write: \(String(cString: error))") }
    }

    func close() {
        rocksdb_writeoptions_destroy(writeOptions)
        rocksdb_close(db)
    }
}

/// A RocksDB write batch for the raw baselines.
final class RawBatch {
    let pointer: OpaquePointer

    init() { pointer = rocksdb_writebatch_create() }

    deinit { rocksdb_writebatch_destroy(pointer) }

    func put(_ key: [UInt8], _ value: [UInt8]) {
        key.withUnsafeBytes { k in
            value.withUnsafeBytes { v in
                rocksdb_writebatch_put(pointer, k.baseAddress?.assumingMemoryBound(to: CChar.self), k.count,
                                       v.baseAddress?.assumingMemoryBound(to: CChar.self), v.count)
            }
        }
    }
}
