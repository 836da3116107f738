// Helper processes for tests and quick local measurements. Not part of the node.
//
//   evnode-testkit crash-writer --store DIR [--max-height N]
//       Opens (or creates) a block store for a fixed test chain and commits blocks in batches
//       forever (or up to N), printing "committed <height>" after each batch is durable in the
//       WAL. The crash test SIGKILLs it mid-stream. The first line is
//       "genesis <chain-id> <start-ns> <proposer-address-hex>".
//
//   evnode-testkit foreign-rocksdb --path DIR
//       Creates a plain RocksDB database holding one key: a database that is not a block store.
//
//   evnode-testkit bench --dir DIR [--blocks N] [--txs K] [--batch B]
//       Builds N signed blocks, then applies them (verify, validate, execute, commit in batches
//       of B) to a fresh store and prints the rates. A rough local check, not a test.

import Block
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

func fail(_ message: String) -> Never {
    FileHandleOut.error("evnode-testkit: \(message)\n")
    exit(1)
}

enum FileHandleOut {
    static func line(_ text: String) {
        var bytes = Array((text + "\n").utf8)
        writeAll(1, &bytes)
    }

    static func error(_ text: String) {
        var bytes = Array(text.utf8)
        writeAll(2, &bytes)
    }

    private static func writeAll(_ fd: Int32, _ bytes: inout [UInt8]) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n <= 0 {
                if errno == EINTR { continue }
                exit(2)
            }
            offset += n
        }
    }
}

func option(_ name: String, in args: [String]) -> String? {
    guard let i = args.firstIndex(of: name), i + 1 < args.count else { return nil }
    return args[i + 1]
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
        var state = try store.initialize(genesis: genesis, executor: executor)
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
            batchIndex += 1
            FileHandleOut.line("committed \(state.lastBlockHeight)")
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

func bench(_ args: [String]) {
    guard let dir = option("--dir", in: args) else { fail("bench needs --dir DIR") }
    let count = option("--blocks", in: args).flatMap { Int($0) } ?? 20_000
    let txsPerBlock = option("--txs", in: args).flatMap { Int($0) } ?? 2
    let batch = option("--batch", in: args).flatMap { Int($0) } ?? 256
    do {
        let signer = try BlockSigner(seed: CrashChain.seed)
        let genesis = Genesis(chainID: "bench", startTimeNanoseconds: CrashChain.startTime, proposerAddress: signer.address)

        // 1. Produce the chain (sign + execute + commit synced in batches) into a source store.
        let source = try BlockStore.open(path: dir + "/source")
        let sourceExecutor = KVExecutor(store: source)
        var state = try source.initialize(genesis: genesis, executor: sourceExecutor)
        let builder = BlockBuilder(signer: signer, executor: sourceExecutor)
        var t0 = now()
        var pending: [BlockCommit] = []
        for _ in 0..<count {
            let h = state.nextHeight
            let txs = (0..<txsPerBlock).map { Array("key\(h % 1000)-\($0)=value\(h)".utf8) }
            let commit = try builder.build(on: state, txs: txs, time: CrashChain.startTime + h * 1_000_000)
            pending.append(commit)
            state = commit.state
            if pending.count == batch {
                try source.commit(pending, sync: false)
                pending.removeAll(keepingCapacity: true)
            }
        }
        try source.commit(pending, sync: false)
        report("build+sign+commit", count, since: t0)

        // 2. Read back and decode (what a range server / DA follower does).
        t0 = now()
        var wire: [(header: [UInt8], data: [UInt8])] = []
        wire.reserveCapacity(count)
        for h in 1...UInt64(count) {
            guard let header = try source.encodedSignedHeader(at: h), let data = try source.encodedBlockData(at: h) else {
                fail("block \(h) missing")
            }
            wire.append((header, data))
        }
        report("read encoded blocks", count, since: t0)
        t0 = now()
        var blocks: [(signedHeader: SignedHeader, data: BlockData)] = []
        blocks.reserveCapacity(count)
        for w in wire { blocks.append((try SignedHeader(decoding: w.header), try BlockData(decoding: w.data))) }
        report("decode", count, since: t0)

        // 3. Signature verification alone (the physical floor).
        let validator = BlockValidator(genesis: genesis)
        t0 = now()
        for b in blocks { try validator.verifySignature(b.signedHeader) }
        report("verify signatures", count, since: t0)

        // 4. Apply to a fresh store: verify + validate + execute + commit, batches of `batch`.
        let target = try BlockStore.open(path: dir + "/target")
        let executor = KVExecutor(store: target)
        try target.initialize(genesis: genesis, executor: executor)
        let applier = BlockApplier(store: target, executor: executor, validator: validator)
        let clock = BlockValidator.currentTime()
        t0 = now()
        var i = 0
        while i < blocks.count {
            let slice = Array(blocks[i..<min(i + batch, blocks.count)])
            let result = try applier.apply(slice, now: clock)
            if let failure = result.failure { fail("apply: \(failure)") }
            i += slice.count
        }
        report("apply (verify+validate+execute+commit)", count, since: t0)
        guard target.state == source.state else { fail("replayed state differs from the source") }

        // 5. Same without signature checks (as after parallel verification).
        let target2 = try BlockStore.open(path: dir + "/target2")
        let executor2 = KVExecutor(store: target2)
        try target2.initialize(genesis: genesis, executor: executor2)
        let applier2 = BlockApplier(store: target2, executor: executor2, validator: validator)
        t0 = now()
        i = 0
        while i < blocks.count {
            let slice = Array(blocks[i..<min(i + batch, blocks.count)])
            let result = try applier2.apply(slice, now: clock, signaturesVerified: true)
            if let failure = result.failure { fail("apply: \(failure)") }
            i += slice.count
        }
        report("apply, signatures pre-verified", count, since: t0)

        // 6. Producer path: one block per synced commit (what an aggregator does per block).
        let produced = min(count, 1_000)
        t0 = now()
        for _ in 0..<produced {
            let h = state.nextHeight
            let commit = try builder.build(on: state, txs: [Array("key\(h % 1000)=value\(h)".utf8)],
                                           time: CrashChain.startTime + h * 1_000_000)
            try source.commit(commit, sync: true)
            state = commit.state
        }
        report("produce with one synced commit per block", produced, since: t0)
        source.close()
        target.close()
        target2.close()
    } catch {
        fail("\(error)")
    }
}

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func report(_ what: String, _ count: Int, since start: Double) {
    let seconds = now() - start
    let rate = Double(count) / max(seconds, 1e-9)
    FileHandleOut.line("\(what): \(count) blocks in \(String(format3(seconds))) s = \(Int(rate)) blocks/s")
}

func format3(_ x: Double) -> String {
    let scaled = Int((x * 1000).rounded())
    let frac = String(scaled % 1000)
    return "\(scaled / 1000)." + String(repeating: "0", count: 3 - frac.count) + frac
}

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "crash-writer": crashWriter(arguments)
case "bench": bench(arguments)
case "foreign-rocksdb": foreignRocksDB(arguments)
default: fail("usage: evnode-testkit crash-writer --store DIR [--max-height N] | bench --dir DIR [--blocks N] [--txs K] [--batch B]")
}
