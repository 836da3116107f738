import Primitives
import Chain
import Store
import Execution
import Production
import CRocksDB
import Config
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The crash writer's chain: everything is derived from these, so a test can rebuild it.
enum CrashChain {
    static let chainID = "crash-test"
    static let startTime: UInt64 = 1_700_000_000_000_000_000
    static let seed = [UInt8](repeating: 7, count: 32)

    /// Size of the batch that starts at `height` (varied so kills land in batches of all sizes).
    static func batchSize(startingAt height: UInt64) -> Int {
        [1, 5, 16, 1, 32, 2][Int(height % 6)]
    }

    static func txs(at height: UInt64) -> [[UInt8]] {
        if height % 4 == 0 { return [] }
        var txs = [Array("k\(height % 37)=v\(height)".utf8), Array("k\((height * 7) % 53)=w\(height)".utf8)]
        if height % 5 == 0 { txs.append(Array("not a kv tx \(height)".utf8)) }
        return txs
    }

    static func time(at height: UInt64) -> UInt64 { startTime + height * 1_000_000 }
}

func crashWriter(_ args: [String]) {
    guard let path = option("--store", in: args) else { fail("crash-writer needs --store DIR") }
    let maxHeight = option("--max-height", in: args).flatMap { UInt64($0) } ?? UInt64.max
    let signer: BlockSigner
    do { signer = try BlockSigner(seed: CrashChain.seed) } catch { fail("\(error)") }
    let genesis = Genesis(chainID: CrashChain.chainID, startTimeNanoseconds: CrashChain.startTime,
                          proposerAddress: signer.address)
    FileHandleOut.line("genesis \(genesis.chainID) \(genesis.startTimeNanoseconds) \(Hex.encode(signer.address))")
    do {
        let store = try BlockStore.open(path: path)
        let executor = KVExecutor(store: store)
        var state = try ChainExecution(store: store, executor: executor).initialize(genesis: genesis)
        let builder = BlockBuilder(signer: signer, executor: executor)
        var batchIndex = 0
        while state.lastBlockHeight < maxHeight {
            let size = CrashChain.batchSize(startingAt: state.nextHeight)
            var commits: [BlockCommit] = []
            for _ in 0..<size {
                let height = state.nextHeight
                let commit = try builder.build(on: state, txs: CrashChain.txs(at: height), time: CrashChain.time(at: height))
                commits.append(commit)
                state = commit.state
            }
            // Mostly unsynced (kill -9 must not lose WAL writes the OS already has), some synced.
            try store.commit(commits, sync: batchIndex % 4 == 3)
            FileHandleOut.line("committed \(state.lastBlockHeight)")
            batchIndex += 1
        }
        store.close()
    } catch {
        fail("\(error)")
    }
}

func foreignRocksDB(_ args: [String]) {
    guard let path = option("--path", in: args) else { fail("foreign-rocksdb needs --path DIR") }
    let options = rocksdb_options_create()
    defer { rocksdb_options_destroy(options) }
    rocksdb_options_set_create_if_missing(options, 1)
    var error: UnsafeMutablePointer<CChar>?
    let db = rocksdb_open(options, path, &error)
    if let error { fail(String(cString: error)) }
    let writeOptions = rocksdb_writeoptions_create()
    defer { rocksdb_writeoptions_destroy(writeOptions) }
    rocksdb_put(db, writeOptions, "some-key", 8, "some-value", 10, &error)
    if let error { fail(String(cString: error)) }
    rocksdb_close(db)
    FileHandleOut.line("created")
}

