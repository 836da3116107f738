import Chain
import Store
import Execution
import Foundation
import ProcessKit
import Testing
import TestSupport

@Suite struct VectorChainStoreTests {
    let vectors = ChainVectors.shared

    /// The acceptance path: the 24 vector blocks through validation, the KV executor and a real
    /// RocksDB store end at the vector's final root, with every block and value readable.
    @Test func appliesTheVectorChainToItsFinalRoot() throws {
        let dir = TempDirectory()
        var store = try BlockStore.open(path: dir.sub("data"))
        var executor = KVExecutor(store: store)
        let genesisState = try ChainExecution(store: store, executor: executor).initialize(genesis: vectors.genesis)
        #expect(genesisState.appHash == [UInt8](repeating: 0, count: 32))
        #expect(store.height == 0)
        let applier = BlockApplier(store: store, executor: executor, validator: BlockValidator(genesis: vectors.genesis))
        let blocks = vectors.decodedBlocks

        // The first half one by one (as produced / gossiped), the rest in one catch-up batch.
        for (b, block) in zip(vectors.blocks.prefix(12), blocks.prefix(12)) {
            let state = try applier.apply(block.signedHeader, block.data, now: vectors.now, sync: true)
            #expect(state.appHash == b.appHashAfter)
            #expect(store.height == b.height)
        }
        let result = try applier.apply(Array(blocks.suffix(12)), now: vectors.now)
        #expect(result.failure == nil)
        #expect(result.applied == 12)
        #expect(result.state.appHash == vectors.blocks.last!.appHashAfter)
        #expect(store.state == result.state)

        try checkContents(store, executor)
        store.close()
        #expect(throws: StoreError.closed) { try store.signedHeader(at: 1) }

        // Everything is still there after reopening.
        store = try BlockStore.open(path: dir.sub("data"))
        executor = KVExecutor(store: store)
        #expect(store.height == 24)
        #expect(store.state?.appHash == vectors.blocks.last!.appHashAfter)
        #expect(try ChainExecution(store: store, executor: executor).initialize(genesis: vectors.genesis) == result.state)
        try checkContents(store, executor)
        store.close()
    }

    private func checkContents(_ store: BlockStore, _ executor: KVExecutor) throws {
        for b in vectors.blocks {
            #expect(try store.encodedSignedHeader(at: b.height) == b.signedHeaderBytes)
            #expect(try store.encodedBlockData(at: b.height) == b.dataBytes)
            #expect(try store.height(forHash: b.headerHash) == b.height)
            #expect(try store.headerHash(at: b.height) == b.headerHash)
            let block = try #require(try store.block(at: b.height))
            #expect(block.data.txs == b.txs)
            for tx in b.txs {
                let text = String(decoding: tx, as: UTF8.self)
                if let eq = text.firstIndex(of: "=") {
                    #expect(try executor.value(forKey: String(text[..<eq])) == Array(text[text.index(after: eq)...].utf8))
                }
            }
        }
        let range = try store.encodedBlocks(in: 20...30)
        #expect(range.count == 5)
        #expect(range.map(\.header) == vectors.blocks[19...].map(\.signedHeaderBytes))
        #expect(range.map(\.data) == vectors.blocks[19...].map(\.dataBytes))
        #expect(try store.block(at: 25) == nil)
        #expect(try store.height(forHash: [UInt8](repeating: 0, count: 32)) == nil)
        #expect(try executor.value(forKey: "not-a-kv-tx") == nil)
        #expect(try executor.value(forKey: "key1-0") == Array("value1-0".utf8))
    }
}

@Suite struct BlockStoreTests {
    @Test func rollbackRestoresBlocksStateAndValuesExactly() throws {
        let chain = try TestChain()
        var states: [State] = [chain.store.state!]
        for h in 1...12 {
            // `a` changes every block, `b` every third, `c` only at 1; one non-KV tx.
            var txs = ["a=\(h)", "junk"]
            if h % 3 == 0 { txs.append("b=\(h)") }
            if h == 1 { txs.append("c=first") }
            if h == 5 { txs += ["a=overwritten-in-block", "a=5"] }
            states.append(try chain.produce(txs).state)
        }
        let hash9 = try #require(try chain.store.headerHash(at: 9))
        try ChainExecution(store: chain.store, executor: chain.executor).finalize(through: 4)

        #expect(throws: StoreError.belowFinalized(requested: 3, finalized: 4)) {
            try ChainExecution(store: chain.store, executor: chain.executor).rollback(to: 3)
        }
        #expect(throws: StoreError.aboveHeight(requested: 13, height: 12)) {
            try ChainExecution(store: chain.store, executor: chain.executor).rollback(to: 13)
        }
        #expect(chain.store.height == 12)

        let restored = try ChainExecution(store: chain.store, executor: chain.executor).rollback(to: 7)
        #expect(restored == states[7])
        #expect(chain.store.state == states[7])
        #expect(chain.store.height == 7)
        #expect(try chain.store.signedHeader(at: 8) == nil)
        #expect(try chain.store.blockData(at: 12) == nil)
        #expect(try chain.store.height(forHash: hash9) == nil)
        #expect(try chain.store.signedHeader(at: 7) != nil)
        #expect(try chain.value("a") == "7")
        #expect(try chain.value("b") == "6")
        #expect(try chain.value("c") == "first")

        // Down to the finalized height; then to the current height is a no-op.
        #expect(try ChainExecution(store: chain.store, executor: chain.executor).rollback(to: 4) == states[4])
        #expect(try chain.value("a") == "4")
        #expect(try chain.value("b") == "3")
        #expect(try ChainExecution(store: chain.store, executor: chain.executor).rollback(to: 4) == states[4])

        // The chain continues from there, and the state survives a reopen.
        let block5 = try chain.produce(["a=again"])
        #expect(block5.signedHeader.header.lastHeaderHash == states[4].lastHeaderHash)
        try chain.reopen()
        #expect(chain.store.state == block5.state)
        #expect(try chain.value("a") == "again")
        #expect(chain.store.finalizedHeight == 4)
    }

    @Test func rollbackToGenesisWhenNothingIsFinal() throws {
        let chain = try TestChain()
        let genesis = chain.store.state!
        try chain.produce(["x=1"])
        try chain.produce(["x=2", "y=1"])
        #expect(try ChainExecution(store: chain.store, executor: chain.executor).rollback(to: 0) == genesis)
        #expect(try chain.value("x") == nil)
        #expect(try chain.value("y") == nil)
        #expect(chain.store.height == 0)
        let again = try chain.produce(["x=3"])
        #expect(again.height == 1)
        #expect(try chain.value("x") == "3")
    }

    @Test func finalityIsMonotonicBoundedAndPrunesUndoData() throws {
        let chain = try TestChain()
        for h in 1...20 { try chain.produce(["hot=\(h)", "cold\(h)=x"]) }
        #expect(throws: StoreError.aboveHeight(requested: 21, height: 20)) {
            try ChainExecution(store: chain.store, executor: chain.executor).finalize(through: 21)
        }
        try ChainExecution(store: chain.store, executor: chain.executor).finalize(through: 15)
        #expect(throws: StoreError.belowFinalized(requested: 14, finalized: 15)) {
            try ChainExecution(store: chain.store, executor: chain.executor).finalize(through: 14)
        }
        try ChainExecution(store: chain.store, executor: chain.executor).finalize(through: 15) // same: no-op

        // Finality alone prunes nothing; `prune` then does, in chunks of `maxRecords` undo records.
        let hotPrefix = [UInt8(ascii: "v"), 0, 0, 0, 3] + Array("hot".utf8)
        #expect(try chain.store.executorEntries(withPrefix: hotPrefix, limit: 100).count == 20)
        #expect(try chain.executor.prune(maxRecords: 10) == true)
        #expect(try chain.store.executorEntries(withPrefix: hotPrefix, limit: 100).count == 11)
        #expect(try chain.executor.prune(maxRecords: 10) == false)
        #expect(try chain.executor.prune(maxRecords: 10) == false, "nothing left")

        // Versions of `hot` below 15 are gone; 15…20 remain for rollback.
        let hotVersions = try chain.store.executorEntries(withPrefix: hotPrefix, limit: 100)
        #expect(hotVersions.count == 6)
        #expect(try chain.store.executorEntries(withPrefix: [UInt8(ascii: "u")], limit: 100).count == 5,
                "undo records at or below the finalized height are gone")
        #expect(try chain.value("hot") == "20")
        try ChainExecution(store: chain.store, executor: chain.executor).rollback(to: 15)
        #expect(try chain.value("hot") == "15")
        #expect(try chain.value("cold3") == "x")
        #expect(try chain.value("cold16") == nil)
        try chain.reopen()
        #expect(chain.store.finalizedHeight == 15)
        #expect(throws: StoreError.belowFinalized(requested: 10, finalized: 15)) {
            try ChainExecution(store: chain.store, executor: chain.executor).rollback(to: 10)
        }
    }

    @Test func daInclusionSubmitterProgressAndMetadata() throws {
        let chain = try TestChain()
        for h in 1...6 { try chain.produce(["k=\(h)"]) }
        try chain.store.recordDAInclusions((UInt64(1)...5).map { h in
            (h, DAInclusion(headerDAHeight: 70, dataDAHeight: h % 2 == 1 ? 71 : nil))
        })
        try chain.store.setSubmitterProgress(SubmitterProgress(lastHeaderHeight: 5, lastDataHeight: 5))
        try chain.store.setMetadata("da-follower", [1, 2, 3])
        #expect(try chain.store.daInclusion(at: 1) == DAInclusion(headerDAHeight: 70, dataDAHeight: 71))
        #expect(try chain.store.daInclusion(at: 2) == DAInclusion(headerDAHeight: 70, dataDAHeight: nil))
        #expect(try chain.store.daInclusion(at: 6) == DAInclusion())
        // Several blocks in one write; a nil part leaves what is recorded.
        try chain.store.recordDAInclusions([(2, DAInclusion(headerDAHeight: nil, dataDAHeight: 72)),
                                            (6, DAInclusion(headerDAHeight: 73, dataDAHeight: 74))])
        #expect(try chain.store.daInclusion(at: 2) == DAInclusion(headerDAHeight: 70, dataDAHeight: 72))
        #expect(try chain.store.daInclusion(at: 6) == DAInclusion(headerDAHeight: 73, dataDAHeight: 74))

        try chain.reopen()
        #expect(try chain.store.daInclusion(at: 5) == DAInclusion(headerDAHeight: 70, dataDAHeight: 71))
        #expect(try chain.store.metadata("da-follower") == [1, 2, 3])
        #expect(try chain.store.metadata("missing") == nil)

        // Rolling back drops what DA held of the removed blocks and clamps the submitter.
        try ChainExecution(store: chain.store, executor: chain.executor).rollback(to: 2)
        #expect(try chain.store.daInclusion(at: 2) == DAInclusion(headerDAHeight: 70, dataDAHeight: 72))
        #expect(try chain.store.daInclusion(at: 3) == DAInclusion())
        #expect(try chain.store.daInclusion(at: 5) == DAInclusion())
        #expect(try chain.store.submitterProgress() == SubmitterProgress(lastHeaderHeight: 2, lastDataHeight: 2))

        try chain.store.setMetadata("da-follower", nil)
        #expect(try chain.store.metadata("da-follower") == nil)
    }

    @Test func commitsThatDoNotFitAreRefusedAndWriteNothing() throws {
        let chain = try TestChain()
        let first = try chain.next(["a=1"])

        var skipped = first
        skipped.signedHeader.header.height = 2
        #expect(throws: StoreError.invalidCommit(height: 2, reason: "expected height 1")) {
            try chain.store.commit(skipped, sync: false)
        }
        var wrongHash = first
        wrongHash.state.lastHeaderHash = [UInt8](repeating: 0, count: 32)
        #expect(throws: StoreError.invalidCommit(height: 1, reason: "state.lastHeaderHash is not this header's hash")) {
            try chain.store.commit(wrongHash, sync: false)
        }
        var wrongData = first
        wrongData.data.txs.append([1])
        #expect(throws: StoreError.invalidCommit(height: 1, reason: "state.lastDataHash is not this data's hash")) {
            try chain.store.commit(wrongData, sync: false)
        }
        var bare = first
        bare.data.metadata = nil
        #expect(throws: StoreError.invalidCommit(height: 1, reason: "data must carry metadata for this height")) {
            try chain.store.commit(bare, sync: false)
        }
        // A batch whose second block is bad writes none of the batch.
        try chain.store.commit(first, sync: false)
        let second = try chain.next(["a=2"])
        var third = second
        third.signedHeader.header.height = 9
        #expect(throws: StoreError.self) { try chain.store.commit([second, third], sync: false) }
        #expect(chain.store.height == 1)
        #expect(try chain.store.signedHeader(at: 2) == nil)
        #expect(try chain.value("a") == "1")
    }

    @Test func initializeRefusesAnotherChain() throws {
        let chain = try TestChain(chainID: "chain-a")
        var other = chain.genesis
        other.chainID = "chain-b"
        #expect(throws: StoreError.genesisMismatch(storedChainID: "chain-a", genesisChainID: "chain-b")) {
            try ChainExecution(store: chain.store, executor: chain.executor).initialize(genesis: other)
        }
    }

    @Test func commitBeforeInitializeIsRefused() throws {
        let dir = TempDirectory()
        let store = try BlockStore.open(path: dir.sub("data"))
        #expect(store.state == nil)
        #expect(store.height == 0)
        let chain = try TestChain()
        #expect(throws: StoreError.notInitialized) { try store.commit(try chain.next(["a=1"]), sync: false) }
        store.close()
    }

    @Test func batchApplyStopsAtTheFirstBadBlockAndKeepsThoseBefore() throws {
        let source = try TestChain()
        var blocks: [(signedHeader: SignedHeader, data: BlockData)] = []
        for h in 1...10 {
            let commit = try source.produce(["k=\(h)"])
            blocks.append((commit.signedHeader, commit.data))
        }
        blocks[6].data.txs = [Array("k=forged".utf8)] // block 7: data does not match its header

        let target = try TestChain(signer: source.signer)
        let result = try target.applier.apply(blocks, now: BlockValidator.currentTime())
        #expect(result.applied == 6)
        guard case .invalid(let error) = result.failure else {
            Issue.record("expected a validation failure, got \(String(describing: result.failure))")
            return
        }
        #expect(error.rule == "data_hash")
        #expect(error.height == 7)
        #expect(target.store.height == 6)
        #expect(target.store.state?.lastHeaderHash == (try source.store.headerHash(at: 6)))
        #expect(try target.value("k") == "6")
    }

    /// The store writes a batch in key order (faster memtable inserts): writes to one key
    /// within a block and across the blocks of one batch must still land last-one-wins.
    @Test func laterWritesToAKeyWinWithinABatch() throws {
        let chain = try TestChain()
        let first = try chain.next(["a=1", "b=1", "a=2"])
        try chain.store.commit(first, sync: false)
        var blocks: [BlockCommit] = []
        var state = chain.store.state!
        for h in 2...5 {
            let block = try chain.builder.build(on: state, txs: [Array("a=\(h)".utf8), Array("c\(h)=x".utf8)],
                                                time: chain.genesis.startTimeNanoseconds + UInt64(h) * 1_000_000_000)
            blocks.append(block)
            state = block.state
        }
        try chain.store.commit(blocks, sync: false)
        #expect(try chain.value("a") == "5")
        #expect(try chain.value("b") == "1")
        try ChainExecution(store: chain.store, executor: chain.executor).rollback(to: 1)
        #expect(try chain.value("a") == "2")
        #expect(try chain.value("c3") == nil)
    }

    @Test func openingTheSameDirectoryTwiceIsALockError() throws {
        let dir = TempDirectory()
        let store = try BlockStore.open(path: dir.sub("data"))
        do {
            _ = try BlockStore.open(path: dir.sub("data"))
            Issue.record("second open succeeded")
        } catch {
            guard case .locked(let path, let detail) = error else {
                Issue.record("expected .locked, got \(error)")
                return
            }
            #expect(path == dir.sub("data"))
            #expect(detail.lowercased().contains("lock"))
            #expect(error.description.contains("in use"))
        }
        store.close()
        // Once closed it opens again.
        try BlockStore.open(path: dir.sub("data")).close()
    }

    @Test func aDirectoryThatIsNotAStoreIsRefused() throws {
        let dir = TempDirectory()
        let foreign = dir.sub("config")
        try FileManager.default.createDirectory(atPath: foreign, withIntermediateDirectories: true)
        _ = FileManager.default.createFile(atPath: foreign + "/config.yaml", contents: Data("x: 1".utf8))
        #expect {
            try BlockStore.open(path: foreign)
        } throws: { error in
            guard case StoreError.notAStore(let path, let reason) = error else { return false }
            return path == foreign && reason.contains("config.yaml")
        }
        // Nothing was created among the foreign files.
        #expect(try FileManager.default.contentsOfDirectory(atPath: foreign) == ["config.yaml"])

        let file = dir.sub("file")
        _ = FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        #expect(throws: StoreError.notAStore(path: file, reason: "exists and is not a directory")) {
            try BlockStore.open(path: file)
        }

        // A damaged store (CURRENT pointing nowhere) is an open error, not a crash.
        let damaged = dir.sub("damaged")
        try BlockStore.open(path: damaged).close()
        try Data("MANIFEST-999999\n".utf8).write(to: URL(fileURLWithPath: damaged + "/CURRENT"))
        #expect {
            try BlockStore.open(path: damaged)
        } throws: { error in
            if case StoreError.openFailed = error { return true }
            return false
        }
    }

    @Test func anotherRocksDBDatabaseIsNotAStore() throws {
        let dir = TempDirectory()
        let path = dir.sub("other-db")
        let maker = try ChildProcess(name: "foreign-rocksdb", executable: BuiltProducts.testkit,
                                     arguments: ["foreign-rocksdb", "--path", path], logDirectory: dir.sub("logs"),
                                     separateStderr: true)
        #expect(try maker.nextLine() == "created")
        #expect(try maker.nextLine() == nil)
        #expect(throws: StoreError.notAStore(path: path, reason: "a RocksDB database without the evnode block store marker")) {
            try BlockStore.open(path: path)
        }
        // The refusal released the database: a second attempt gives the same answer, not a lock error.
        #expect(throws: StoreError.notAStore(path: path, reason: "a RocksDB database without the evnode block store marker")) {
            try BlockStore.open(path: path)
        }
    }

    @Test func anInterruptedCreationIsNotForeign() throws {
        let dir = TempDirectory()
        let path = dir.sub("data")
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        for name in ["LOCK", "LOG", "IDENTITY"] {
            _ = FileManager.default.createFile(atPath: path + "/" + name, contents: Data())
        }
        let store = try BlockStore.open(path: path)
        #expect(store.height == 0)
        store.close()
    }

    @Test func createsMissingParentDirectories() throws {
        let dir = TempDirectory()
        let path = dir.sub("a/b/data")
        let store = try BlockStore.open(path: path)
        #expect(FileManager.default.fileExists(atPath: path + "/CURRENT"))
        store.close()
    }
}

@Suite struct KVExecutorTests {
    @Test func parsesKeyValueTxs() {
        func parse(_ s: String) -> [String]? {
            KVExecutor.parse(Array(s.utf8)).map { [String(decoding: $0.key, as: UTF8.self), String(decoding: $0.value, as: UTF8.self)] }
        }
        #expect(parse("a=b") == ["a", "b"])
        #expect(parse("a=b=c") == ["a", "b=c"])
        #expect(parse("k=") == ["k", ""])
        #expect(parse("ключ=значение") == ["ключ", "значение"])
        #expect(parse("=v") == nil)
        #expect(parse("novalue") == nil)
        #expect(parse("") == nil)
        #expect(KVExecutor.parse([0x61, 0x3d, 0xff]) == nil) // not UTF-8
    }

    @Test func rootRuleAndEmptyValues() throws {
        let chain = try TestChain()
        #expect(try chain.executor.initChain(genesis: chain.genesis) == [UInt8](repeating: 0, count: 32))
        let root = [UInt8](repeating: 9, count: 32)
        let txs: [[UInt8]] = [Array("k=".utf8), Array("junk".utf8)]
        let result = try chain.executor.executeTxs(txs, height: 1, time: 0, previousRoot: root)
        #expect(result.stateRoot == Crypto256.hash(root + BlockData.dataHash(of: txs)))
        let empty = try chain.executor.executeTxs([], height: 1, time: 0, previousRoot: root)
        #expect(empty.stateRoot == Crypto256.hash(root + BlockData.emptyDataHash))
        #expect(empty.writes.isEmpty)
        try chain.produce(["k="])
        #expect(try chain.executor.value(forKey: "k") == [])
        #expect(try chain.executor.value(forKey: "k2") == nil)
        // A key that is a prefix of another key does not see its values.
        try chain.produce(["ab=1"])
        #expect(try chain.executor.value(forKey: "a") == nil)
    }

    @Test func mempoolFeedsBlocksInOrderWithinBounds() throws {
        let dir = TempDirectory()
        let store = try BlockStore.open(path: dir.sub("data"))
        defer { store.close() }
        let executor = KVExecutor(store: store, mempool: Mempool(maxTxs: 5, maxBytes: 100, maxTxBytes: 40))
        #expect(throws: MempoolError.emptyTx) { try executor.submit([]) }
        #expect(throws: MempoolError.txTooLarge(size: 41, limit: 40)) { try executor.submit([UInt8](repeating: 1, count: 41)) }
        for i in 0..<5 { try executor.submit(Array("k\(i)=v".utf8)) }
        #expect(throws: MempoolError.full(txs: 5, bytes: 20)) { try executor.submit(Array("x=y".utf8)) }
        #expect(executor.getTxs(max: 2).map { String(decoding: $0, as: UTF8.self) } == ["k0=v", "k1=v"])
        // Byte bound: 8 bytes fit two 4-byte txs; the third waits for the next block.
        #expect(executor.getTxs(max: 10, maxBytes: 9).count == 2)
        #expect(executor.getTxs(max: 10).map { String(decoding: $0, as: UTF8.self) } == ["k4=v"])
        #expect(executor.getTxs(max: 10).isEmpty)
        #expect(executor.mempool.byteCount == 0)
    }

    @Test func mempoolIsSafeUnderConcurrentSubmitAndTake() async throws {
        let pool = Mempool(maxTxs: 1_000_000)
        let taken = Locked2<[[UInt8]]>([])
        await withTaskGroup(of: Void.self) { group in
            for t in 0..<4 {
                group.addTask {
                    for i in 0..<2_000 { try? pool.submit(Array("t\(t)-\(i)=x".utf8)) }
                }
            }
            group.addTask {
                for _ in 0..<200 {
                    let txs = pool.take(max: 50, maxBytes: 1 << 20)
                    taken.mutate { $0 += txs }
                    await Task.yield()
                }
            }
        }
        let rest = pool.take(max: .max, maxBytes: .max)
        let all = taken.value + rest
        #expect(all.count == 8_000)
        #expect(Set(all).count == 8_000)
        #expect(pool.count == 0)
    }
}

/// Minimal lock box for test bookkeeping across tasks.
final class Locked2<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ value: T) { stored = value }
    var value: T { lock.withLock { stored } }
    func mutate(_ body: (inout T) -> Void) { lock.withLock { body(&stored) } }
}
