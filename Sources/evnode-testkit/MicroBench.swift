import Chain
import Store
import Execution
import Production
import Config
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
        var state = try ChainExecution(store: source, executor: sourceExecutor).initialize(genesis: genesis)
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
        try ChainExecution(store: target, executor: executor).initialize(genesis: genesis)
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
        try ChainExecution(store: target2, executor: executor2).initialize(genesis: genesis)
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

