import Primitives
import Chain
import Config
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// The executor named `nextProposer` while executing block `height`: it signs `height + 1` on.
package struct ProposerRotation: Sendable, Equatable {
    package var height: UInt64
    package var nextProposer: [UInt8]

    package init(height: UInt64, nextProposer: [UInt8]) {
        self.height = height
        self.nextProposer = nextProposer
    }
}

/// One block ready to be stored: the block, the chain state after it and the executor's
/// changes, all written in one batch.
package struct BlockCommit: Sendable {
    package var signedHeader: SignedHeader
    /// Must carry metadata (so the chained data hash can be recomputed from the store alone).
    package var data: BlockData
    /// The state after this block (its `lastHeaderHash` is this header's hash, its `appHash` the
    /// root after executing it).
    package var state: State
    package var executorWrites: WriteSet
    /// The producer's forced-inclusion checkpoint after this block (nil: unchanged), written in
    /// the block's own batch so that a crash never separates the two.
    package var forcedInclusionCheckpoint: ForcedInclusionCheckpoint?

    package init(signedHeader: SignedHeader, data: BlockData, state: State, executorWrites: WriteSet,
                forcedInclusionCheckpoint: ForcedInclusionCheckpoint? = nil) {
        self.signedHeader = signedHeader
        self.data = data
        self.state = state
        self.executorWrites = executorWrites
        self.forcedInclusionCheckpoint = forcedInclusionCheckpoint
    }

    package var height: UInt64 { signedHeader.header.height }
}

/// Where the parts of a block were included on the DA layer.
package struct DAInclusion: Sendable, Hashable {
    package var headerDAHeight: UInt64?
    package var dataDAHeight: UInt64?

    package init(headerDAHeight: UInt64? = nil, dataDAHeight: UInt64? = nil) {
        self.headerDAHeight = headerDAHeight
        self.dataDAHeight = dataDAHeight
    }
}

/// The two kinds of DA blobs a block is posted as.
package enum DABlobKind: Sendable, Hashable {
    case header
    case data
}

/// How far the DA submitter got: the highest heights whose header / data it has posted.
package struct SubmitterProgress: Sendable, Hashable {
    package var lastHeaderHeight: UInt64
    package var lastDataHeight: UInt64

    package init(lastHeaderHeight: UInt64 = 0, lastDataHeight: UInt64 = 0) {
        self.lastHeaderHeight = lastHeaderHeight
        self.lastDataHeight = lastDataHeight
    }
}

/// The node's persistent chain: blocks by height and by header hash, the chain state, DA
/// bookkeeping and the executor's state, in one RocksDB database (SPEC §3-§5, §7).
///
/// Every write is one RocksDB write batch through the write-ahead log, so a crash (even
/// `kill -9`) leaves the store at the last complete batch. `sync: true` fsyncs the WAL before
/// returning, which also survives power loss / OS crash: blocks this node produced and signed,
/// rollbacks and finality. Catch-up once skipped the WAL and flushed the memtable at
/// checkpoints instead; with the DA follower's synced finality once per DA height that meant a
/// flush, and a small L0 file to compact, every DA height, which cost more CPU than the WAL
/// writes it saved (issue 18: 203–204 against 228–236 µs per block over 100,000 blocks).
///
/// Thread-safe: reads run concurrently; writers are serialised. Only one writer should apply
/// blocks (the store rejects commits that do not extend its current height).
package final class BlockStore: Sendable, ProposerPlacement {
    package let path: String
    let db: RocksDB
    let writer = WriterLock()
    private let cache: Mutex<Cache>

    private struct Cache {
        var state: State?
        var finalized: UInt64
        /// Rollbacks since open: work prepared outside the writer lock checks it is unchanged.
        var rollbacks: UInt64 = 0
        /// Header hashes of the latest commits: finalizing compares them with DA's, block by
        /// block, right behind the commits (a store read and a header decode each otherwise).
        var recentHashes = HeaderHashRing(capacity: 16_384)
        /// Every change of the expected proposer, in height order (a handful per chain).
        var rotations: [ProposerRotation]
        /// The proposer before any rotation: the genesis state's (or, for a store written
        /// before rotation existed, the genesis file's, from `initialize`). Empty until known.
        var genesisProposer: [UInt8]
    }

    private init(db: RocksDB, path: String, state: State?, finalized: UInt64,
                 rotations: [ProposerRotation], genesisProposer: [UInt8]) {
        self.db = db
        self.path = path
        cache = Mutex(Cache(state: state, finalized: finalized, rotations: rotations, genesisProposer: genesisProposer))
    }

    // MARK: Open / close

    /// Opens the store at `path`, creating it (and missing parent directories) when the path
    /// does not exist or is an empty directory.
    ///
    /// - Throws: `.locked` when another process or handle has it open; `.notAStore` when the
    ///   path is a file, a non-empty directory without a database, or another RocksDB database;
    ///   `.openFailed` / `.corrupted` otherwise.
    package static func open(path: String) throws(StoreError) -> BlockStore {
        try prepareDirectory(path)
        let db = try RocksDB.open(path: path)
        do throws(StoreError) {
            try checkMarker(db, path: path)
            let state: State?
            if let bytes = try db.get(StoreKeys.state) {
                do throws(WireError) {
                    state = try State(decoding: bytes)
                } catch {
                    throw .corrupted(what: "state", reason: error.description)
                }
            } else {
                state = nil
            }
            let finalized = try readHeightValue(db, StoreKeys.finalized, what: "finalized height") ?? 0
            let rotations = try readRotations(db)
            var genesisProposer: [UInt8] = []
            if let bytes = try db.get(StoreKeys.genesisState) {
                do throws(WireError) {
                    genesisProposer = try State(decoding: bytes).nextProposerAddress
                } catch {
                    throw .corrupted(what: "genesis state", reason: error.description)
                }
            }
            return BlockStore(db: db, path: path, state: state, finalized: finalized, rotations: rotations,
                              genesisProposer: genesisProposer)
        } catch {
            db.close()
            throw error
        }
    }

    /// Closes the database. Later calls throw `StoreError.closed`.
    package func close() {
        writer.withLock { db.close() }
    }

    private static func prepareDirectory(_ path: String) throws(StoreError) {
        if FileIO.exists(path) {
            guard FileIO.isDirectory(path) else { throw .notAStore(path: path, reason: "exists and is not a directory") }
            guard let entries = directoryEntries(path) else {
                throw .openFailed(path: path, reason: "cannot list directory: \(FileIO.errnoText())")
            }
            // With create_if_missing RocksDB would happily start a database among foreign
            // files; refuse instead of mixing a store into, say, a config directory.
            // Only RocksDB's own files without CURRENT: a creation that was interrupted (e.g. kill
            // -9 during the very first open); RocksDB starts over.
            let foreign = entries.filter { !isRocksDBFile($0) }
            if !entries.contains("CURRENT") && !foreign.isEmpty {
                let sample = foreign.sorted().prefix(3).joined(separator: ", ")
                throw .notAStore(path: path, reason: "directory is not empty and holds no database (found \(sample))")
            }
        } else {
            do throws(FileIO.Failure) {
                try FileIO.makeDirectories(path)
            } catch {
                throw .openFailed(path: path, reason: "cannot create directory: \(error.description)")
            }
        }
    }

    private static func isRocksDBFile(_ name: String) -> Bool {
        name == "LOCK" || name == "IDENTITY" || name.hasPrefix("LOG") || name.hasPrefix("MANIFEST-")
            || name.hasPrefix("OPTIONS-") || name.hasSuffix(".log") || name.hasSuffix(".dbtmp")
    }

    private static func directoryEntries(_ path: String) -> [String]? {
        guard let dir = opendir(path) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafePointer(to: entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    private static func checkMarker(_ db: RocksDB, path: String) throws(StoreError) {
        if let marker = try db.get(StoreKeys.marker) {
            guard marker == StoreKeys.markerValue else {
                throw .notAStore(path: path, reason: "store format \"\(String(decoding: marker, as: UTF8.self))\" is not supported by this build")
            }
            return
        }
        let empty = try db.withIterator(lower: [], upper: [0xff, 0xff]) { (it) throws(StoreError) -> Bool in
            it.seekToFirst()
            return !it.isValid
        }
        guard empty else {
            throw .notAStore(path: path, reason: "a RocksDB database without the evnode block store marker")
        }
        let batch = WriteBatch()
        batch.put(StoreKeys.marker, StoreKeys.markerValue)
        try db.write(batch, sync: true) // a new store is marked durably before anything is written
    }

    static func readHeightValue(_ db: RocksDB, _ key: [UInt8], what: String) throws(StoreError) -> UInt64? {
        guard let bytes = try db.get(key) else { return nil }
        guard let value = readBigEndian(bytes) else {
            throw .corrupted(what: what, reason: "expected 8 bytes, found \(bytes.count)")
        }
        return value
    }

    // MARK: Chain state

    /// The chain state after the last stored block; nil before `initialize`.
    package var state: State? { cache.withLock { $0.state } }

    /// Height of the last stored block; 0 when there is none (or `initialHeight - 1`).
    package var height: UInt64 { cache.withLock { $0.state?.lastBlockHeight ?? 0 } }

    /// The finalized (DA-included) height: never decreases, rollback never goes below it.
    package var finalizedHeight: UInt64 { cache.withLock { $0.finalized } }

    /// The stored state when the store holds `genesis`'s chain; nil before the first start.
    /// Refuses a store of another chain. Execution asks this before it runs InitChain.
    package func storedState(for genesis: Genesis) throws(StoreError) -> State? {
        guard let state = self.state else { return nil }
        guard state.chainID == genesis.chainID, state.initialHeight == genesis.initialHeight else {
            throw .genesisMismatch(storedChainID: state.chainID, genesisChainID: genesis.chainID)
        }
        // A state stored before rotation existed names no proposer: the genesis one signs.
        cache.withLock { if $0.genesisProposer.isEmpty { $0.genesisProposer = genesis.proposerAddress } }
        return state
    }

    /// Stores the genesis state with the executor's InitChain root `appHash`, in one synced
    /// batch. A store already initialised keeps its state (checked against `genesis`), whatever
    /// `appHash` says: the root of the first start is the one the chain was built on.
    @discardableResult
    package func initialize(genesis: Genesis, appHash root: [UInt8]) throws(StoreError) -> State {
        try writer.withLock { () throws(StoreError) -> State in
            if let state = try storedState(for: genesis) { return state }
            let state = State(genesis: genesis, appHash: root)
            let batch = WriteBatch()
            let encoded = state.encoded()
            batch.put(StoreKeys.genesisState, encoded)
            batch.put(StoreKeys.state, encoded)
            try db.write(batch, sync: true)
            cache.withLock {
                $0.state = state
                $0.genesisProposer = genesis.proposerAddress
            }
            return state
        }
    }

    // MARK: Proposer rotation

    /// The proposer expected to sign block `state.nextHeight` (ev-node's
    /// `State.next_proposer_address`, what GetState reports): the state's, or the genesis
    /// proposer for a store written before rotation existed. Empty before `initialize`.
    package var expectedNextProposer: [UInt8] {
        cache.withLock { c in
            let named = c.state?.nextProposerAddress ?? []
            return named.isEmpty ? c.genesisProposer : named
        }
    }

    /// Every change of the expected proposer the chain recorded, in height order.
    package var proposerRotations: [ProposerRotation] { cache.withLock { $0.rotations } }

    /// Who was (or is) expected to sign block `height`, for heights up to the next one to be
    /// stored; nil above it (the chain has not yet said) or before the genesis proposer is known.
    package func expectedProposer(at height: UInt64) -> [UInt8]? {
        cache.withLock { c -> [UInt8]? in
            guard let state = c.state, height <= state.nextHeight else { return nil }
            let named = c.rotations.last(where: { $0.height < height })?.nextProposer ?? c.genesisProposer
            return named.isEmpty ? nil : named
        }
    }

    /// Every key the chain has named as a proposer so far: the genesis proposer and each
    /// rotation's. A signature by one of them is a signature the chain can place.
    package var namedProposers: Set<[UInt8]> {
        cache.withLock { c in
            var keys = Set(c.rotations.map(\.nextProposer))
            if !c.genesisProposer.isEmpty { keys.insert(c.genesisProposer) }
            return keys
        }
    }

    private static func readRotations(_ db: RocksDB) throws(StoreError) -> [ProposerRotation] {
        try db.withIterator(lower: [StoreKeys.rotationPrefix], upper: [StoreKeys.rotationPrefix + 1]) {
            (it) throws(StoreError) -> [ProposerRotation] in
            var out: [ProposerRotation] = []
            it.seekToFirst()
            while it.isValid {
                let key = it.key
                guard key.count == 9 else {
                    throw .corrupted(what: "proposer rotation record", reason: "key of \(key.count) bytes")
                }
                let height = key[1...].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
                out.append(ProposerRotation(height: height, nextProposer: it.value))
                it.next()
            }
            return out
        }
    }

    // MARK: Reading blocks

    /// The stored encoding of the signed header at `height` (for serving without re-encoding).
    package func encodedSignedHeader(at height: UInt64) throws(StoreError) -> [UInt8]? {
        try db.get(StoreKeys.header(height))
    }

    /// The stored encoding of the data at `height` (always with metadata).
    package func encodedBlockData(at height: UInt64) throws(StoreError) -> [UInt8]? {
        try db.get(StoreKeys.data(height))
    }

    package func signedHeader(at height: UInt64) throws(StoreError) -> SignedHeader? {
        guard let bytes = try encodedSignedHeader(at: height) else { return nil }
        do throws(WireError) {
            return try SignedHeader(decoding: bytes)
        } catch {
            throw .corrupted(what: "header at height \(height)", reason: error.description)
        }
    }

    package func blockData(at height: UInt64) throws(StoreError) -> BlockData? {
        guard let bytes = try encodedBlockData(at: height) else { return nil }
        do throws(WireError) {
            return try BlockData(decoding: bytes)
        } catch {
            throw .corrupted(what: "data at height \(height)", reason: error.description)
        }
    }

    package func block(at height: UInt64) throws(StoreError) -> (signedHeader: SignedHeader, data: BlockData)? {
        guard let header = try signedHeader(at: height) else { return nil }
        guard let data = try blockData(at: height) else {
            throw .corrupted(what: "block at height \(height)", reason: "header stored without data")
        }
        return (header, data)
    }

    /// The stored encodings of consecutive blocks in `range`, stopping at the first height the
    /// store does not have (for serving range requests without decoding).
    package func encodedBlocks(in range: ClosedRange<UInt64>) throws(StoreError) -> [(header: [UInt8], data: [UInt8])] {
        var out: [(header: [UInt8], data: [UInt8])] = []
        out.reserveCapacity(min(range.count, 1024))
        for h in range {
            guard let header = try encodedSignedHeader(at: h) else { break }
            guard let data = try encodedBlockData(at: h) else {
                throw .corrupted(what: "block at height \(h)", reason: "header stored without data")
            }
            out.append((header, data))
        }
        return out
    }

    /// Header hash of the stored block at `height`.
    package func headerHash(at height: UInt64) throws(StoreError) -> [UInt8]? {
        if let hash = cache.withLock({ $0.recentHashes.hash(at: height) }) { return hash }
        return try signedHeader(at: height)?.header.hash
    }

    /// The height of the stored block whose header hash is `hash`.
    package func height(forHash hash: [UInt8]) throws(StoreError) -> UInt64? {
        try BlockStore.readHeightValue(db, StoreKeys.hashIndex(hash), what: "hash index entry")
    }

    // MARK: Committing blocks

    /// Stores one block (see `commit(_:sync:)` for many).
    package func commit(_ block: BlockCommit, sync: Bool) throws(StoreError) {
        try commit([block], sync: sync)
    }

    /// Stores consecutive blocks, the first at the current height + 1, in ONE write batch:
    /// headers, data, hash index, executor writes and the final state. Checks that each commit
    /// is self-consistent (heights agree, the state's header and data hashes are this block's).
    /// `sync`: fsynced before returning (survives power loss), for blocks this node produced and
    /// signed, which may exist nowhere else; otherwise in the WAL, which survives `kill -9`.
    package func commit(_ blocks: [BlockCommit], sync: Bool) throws(StoreError) {
        guard let last = blocks.last else { return }
        try writer.withLock { () throws(StoreError) in
            guard let current = self.state else { throw .notInitialized }
            let batch = SortedWriteBatch()
            var expected = current.nextHeight
            var hashes: [[UInt8]] = []
            hashes.reserveCapacity(blocks.count)
            var rotations: [ProposerRotation] = []
            var proposer = current.nextProposerAddress.isEmpty ? cache.withLock { $0.genesisProposer }
                : current.nextProposerAddress
            for block in blocks {
                hashes.append(try add(block, expected: expected, chainID: current.chainID, to: batch))
                // Kept per height, in the block's batch, so that a rollback restores the
                // expectation at its target and a restart finds it.
                let next = block.state.nextProposerAddress
                if !next.isEmpty, next != proposer {
                    rotations.append(ProposerRotation(height: block.height, nextProposer: next))
                    batch.put(StoreKeys.rotation(block.height), next)
                }
                proposer = next
                expected += 1
            }
            batch.put(StoreKeys.state, last.state.encoded())
            try db.write(batch.batch(), sync: sync)
            cache.withLock {
                $0.state = last.state
                $0.rotations.append(contentsOf: rotations)
                for (block, hash) in zip(blocks, hashes) { $0.recentHashes.record(block.height, hash) }
            }
        }
    }

    /// Adds the block's records to `batch`; returns its header hash.
    private func add(_ block: BlockCommit, expected: UInt64, chainID: String,
                     to batch: some BatchSink) throws(StoreError) -> [UInt8] {
        let height = block.signedHeader.header.height
        guard height == expected else {
            throw .invalidCommit(height: height, reason: "expected height \(expected)")
        }
        guard block.state.lastBlockHeight == height, block.state.chainID == chainID else {
            throw .invalidCommit(height: height, reason: "state is for height \(block.state.lastBlockHeight) of chain \"\(block.state.chainID)\"")
        }
        guard let metadata = block.data.metadata, metadata.height == height else {
            throw .invalidCommit(height: height, reason: "data must carry metadata for this height")
        }
        let (headerBytes, headerRange) = block.signedHeader.encodedWithHeaderRange()
        let hash = Hashing.sha256(headerBytes[headerRange])
        guard hash == block.state.lastHeaderHash else {
            throw .invalidCommit(height: height, reason: "state.lastHeaderHash is not this header's hash")
        }
        let dataBytes = block.data.encoded()
        guard Hashing.sha256(prefix: 0, dataBytes) == block.state.lastDataHash else {
            throw .invalidCommit(height: height, reason: "state.lastDataHash is not this data's hash")
        }
        batch.put(StoreKeys.header(height), headerBytes)
        batch.put(StoreKeys.data(height), dataBytes)
        batch.put(StoreKeys.hashIndex(hash), bigEndianBytes(height))
        BlockStore.add(block.executorWrites, to: batch)
        if let checkpoint = block.forcedInclusionCheckpoint {
            batch.put(StoreKeys.forcedInclusionCheckpoint,
                      ForcedInclusionCheckpointRecord(checkpoint: checkpoint, height: height).encoded)
        }
        return hash
    }

    private static func add(_ writes: WriteSet, to batch: some BatchSink) {
        for op in writes.operations {
            switch op {
            case .put(let key, let value): batch.put(StoreKeys.executor(key), value)
            case .delete(let key): batch.delete(StoreKeys.executor(key))
            }
        }
    }

    // MARK: Rollback

    /// Checks that the store may roll back to `target` and says from which head: nil when the
    /// store is at `target` already (nothing to do). Execution asks the executor to undo the
    /// blocks above `target` between this and `rollback(_:executorWrites:sync:)`.
    package func planRollback(to target: UInt64) throws(StoreError) -> RollbackPlan? {
        guard let current = self.state else { throw .notInitialized }
        let head = current.lastBlockHeight
        try checkRollback(to: target, current: current, finalized: finalizedHeight)
        return target == head ? nil : RollbackPlan(target: target, head: head)
    }

    private func checkRollback(to target: UInt64, current: State, finalized: UInt64) throws(StoreError) {
        let genesisHeight = current.initialHeight == 0 ? 0 : current.initialHeight - 1
        guard target >= finalized else { throw .belowFinalized(requested: target, finalized: finalized) }
        guard target >= genesisHeight else { throw .belowFinalized(requested: target, finalized: genesisHeight) }
        guard target <= current.lastBlockHeight else {
            throw .aboveHeight(requested: target, height: current.lastBlockHeight)
        }
    }

    /// Removes blocks `plan.target + 1 … plan.head` with the executor's undo writes, in one
    /// batch, and returns the state at the target. The checks of `planRollback` are made again
    /// under the writer lock, and the head must still be `plan.head` (the executor undid exactly
    /// those blocks): otherwise `.headMoved` and nothing is written. DA inclusion records above
    /// the target are dropped and the submitter progress is clamped to it.
    @discardableResult
    package func rollback(_ plan: RollbackPlan, executorWrites: WriteSet, sync: Bool = true) throws(StoreError) -> State {
        let target = plan.target
        return try writer.withLock { () throws(StoreError) -> State in
            guard let current = self.state else { throw .notInitialized }
            let head = current.lastBlockHeight
            try checkRollback(to: target, current: current, finalized: finalizedHeight)
            guard head == plan.head else { throw .headMoved(expected: plan.head, found: head) }
            let genesisHeight = current.initialHeight == 0 ? 0 : current.initialHeight - 1

            let batch = WriteBatch()
            var rootAfterTarget: [UInt8] = []
            for h in (target + 1)...head {
                guard let header = try signedHeader(at: h)?.header else {
                    throw .corrupted(what: "header at height \(h)", reason: "missing below the store height \(head)")
                }
                if h == target + 1 { rootAfterTarget = header.appHash }
                batch.delete(StoreKeys.hashIndex(header.hash))
                batch.delete(StoreKeys.header(h))
                batch.delete(StoreKeys.data(h))
            }
            batch.deleteRange(StoreKeys.height(StoreKeys.headerInclusionPrefix, target + 1),
                              [StoreKeys.headerInclusionPrefix + 1])
            batch.deleteRange(StoreKeys.height(StoreKeys.dataInclusionPrefix, target + 1),
                              [StoreKeys.dataInclusionPrefix + 1])
            // The checkpoint is valid after the block it was recorded with: one recorded above
            // the target describes blocks that are gone. Without it, the next producer derives
            // the checkpoint again from da_start_height and the blocks kept (README).
            if let record = try forcedInclusionCheckpointRecord(), record.height > target {
                batch.delete(StoreKeys.forcedInclusionCheckpoint)
            }
            var progress = try submitterProgress()
            if progress.lastHeaderHeight > target || progress.lastDataHeight > target {
                progress.lastHeaderHeight = min(progress.lastHeaderHeight, target)
                progress.lastDataHeight = min(progress.lastDataHeight, target)
                batch.put(StoreKeys.submitterProgress, BlockStore.encode(progress))
            }

            var restored: State
            let (rotations, genesisProposer) = cache.withLock { ($0.rotations, $0.genesisProposer) }
            let keptRotations = rotations.filter { $0.height <= target }
            batch.deleteRange(StoreKeys.rotation(target + 1), [StoreKeys.rotationPrefix + 1])
            if target == genesisHeight {
                guard let bytes = try db.get(StoreKeys.genesisState) else {
                    throw .corrupted(what: "genesis state", reason: "missing")
                }
                do throws(WireError) {
                    restored = try State(decoding: bytes)
                } catch {
                    throw .corrupted(what: "genesis state", reason: error.description)
                }
                if restored.nextProposerAddress.isEmpty { restored.nextProposerAddress = genesisProposer }
            } else {
                guard let (signed, data) = try block(at: target) else {
                    throw .corrupted(what: "block at height \(target)", reason: "missing below the store height \(head)")
                }
                restored = State(chainID: current.chainID, initialHeight: current.initialHeight,
                                 lastBlockHeight: target, lastBlockTime: signed.header.time,
                                 lastHeaderHash: signed.header.hash, lastDataHash: data.fullHash,
                                 // Block target+1 was validated against our root after target.
                                 appHash: rootAfterTarget,
                                 nextProposerAddress: keptRotations.last?.nextProposer ?? genesisProposer)
            }
            BlockStore.add(executorWrites, to: batch)
            batch.put(StoreKeys.state, restored.encoded())
            try db.write(batch, sync: sync)
            cache.withLock {
                $0.state = restored
                $0.rotations = keptRotations
                $0.rollbacks += 1
                $0.recentHashes.forget(above: target)
            }
            return restored
        }
    }

    // MARK: Finality and DA bookkeeping

    /// What raising the finalized height to `height` starts from; nil when it is there already.
    /// Lower than the current value: refused (`.belowFinalized`), finality never goes back.
    /// Above the store height: refused.
    ///
    /// Execution prepares the executor's `setFinal` writes between this and `finalize`, outside
    /// the writer lock, so block commits go on meanwhile: the executor only reads state at or
    /// below `height`, which commits never change.
    package func planFinality(_ height: UInt64) throws(StoreError) -> FinalityPlan? {
        let (state, finalized, rollbacks) = cache.withLock { ($0.state, $0.finalized, $0.rollbacks) }
        if height == finalized { return nil }
        guard height > finalized else { throw .belowFinalized(requested: height, finalized: finalized) }
        let head = state?.lastBlockHeight ?? 0
        guard height <= head else { throw .aboveHeight(requested: height, height: head) }
        return FinalityPlan(height: height, finalizedBefore: finalized, rollbacksBefore: rollbacks)
    }

    /// Raises the finalized height as planned and commits the executor's writes in the same
    /// batch. False, with nothing written, when a rollback or another finalization ran since the
    /// plan: the writes may be stale, the caller plans again.
    package func finalize(_ plan: FinalityPlan, executorWrites: WriteSet, sync: Bool = true) throws(StoreError) -> Bool {
        try writer.withLock { () throws(StoreError) -> Bool in
            let unchanged = cache.withLock {
                $0.finalized == plan.finalizedBefore && $0.rollbacks == plan.rollbacksBefore
            }
            guard unchanged else { return false }
            let head = self.state?.lastBlockHeight ?? 0
            guard plan.height <= head else { throw .aboveHeight(requested: plan.height, height: head) }
            let batch = SortedWriteBatch()
            batch.put(StoreKeys.finalized, bigEndianBytes(plan.height))
            BlockStore.add(executorWrites, to: batch)
            try db.write(batch.batch(), sync: sync)
            cache.withLock { $0.finalized = plan.height }
            return true
        }
    }

    /// Records where each block's header and data were included on DA (nil parts are left as
    /// they are) and, when given, the submitter's progress past them: all in one write.
    package func recordDAInclusions(_ inclusions: [(height: UInt64, inclusion: DAInclusion)],
                                   submitterProgress: SubmitterProgress? = nil, sync: Bool = true) throws(StoreError) {
        let batch = WriteBatch()
        if let submitterProgress {
            batch.put(StoreKeys.submitterProgress, BlockStore.encode(submitterProgress))
        }
        for (height, inclusion) in inclusions {
            if let h = inclusion.headerDAHeight {
                batch.put(StoreKeys.height(StoreKeys.headerInclusionPrefix, height), bigEndianBytes(h))
            }
            if let d = inclusion.dataDAHeight {
                batch.put(StoreKeys.height(StoreKeys.dataInclusionPrefix, height), bigEndianBytes(d))
            }
        }
        guard batch.count > 0 else { return }
        try writer.withLock { () throws(StoreError) in try db.write(batch, sync: sync) }
    }

    /// Where block `height`'s header and data were included on DA (nil parts: not recorded).
    package func daInclusion(at height: UInt64) throws(StoreError) -> DAInclusion {
        DAInclusion(
            headerDAHeight: try BlockStore.readHeightValue(db, StoreKeys.height(StoreKeys.headerInclusionPrefix, height),
                                                           what: "header DA inclusion at \(height)"),
            dataDAHeight: try BlockStore.readHeightValue(db, StoreKeys.height(StoreKeys.dataInclusionPrefix, height),
                                                         what: "data DA inclusion at \(height)"))
    }

    /// The producer's forced-inclusion checkpoint; nil when it never consumed an epoch. A
    /// damaged record is an error, never nil (nil would mean "start again at da_start_height").
    package func forcedInclusionCheckpoint() throws(StoreError) -> ForcedInclusionCheckpoint? {
        try forcedInclusionCheckpointRecord()?.checkpoint
    }

    /// The checkpoint with the store height it is valid after. Blocks above that height were
    /// applied by syncing (or committed from beside the signer's mark) and not yet matched
    /// against the forced transactions: a producer derives the checkpoint past them before it
    /// builds (`BlockProducer`). A 16-byte record of an older build carries no height; it was
    /// written only by a producer with its blocks, so it counts as valid after the store head.
    package func forcedInclusionCheckpointRecord() throws(StoreError) -> ForcedInclusionCheckpointRecord? {
        guard let bytes = try db.get(StoreKeys.forcedInclusionCheckpoint) else { return nil }
        if bytes.count == 16, let checkpoint = ForcedInclusionCheckpoint(encoded: bytes) {
            return ForcedInclusionCheckpointRecord(checkpoint: checkpoint, height: height)
        }
        guard let record = ForcedInclusionCheckpointRecord(encoded: bytes) else {
            throw .corrupted(what: "forced-inclusion checkpoint", reason: "\(bytes.count) bytes, expected 24")
        }
        return record
    }

    /// Records the checkpoint on its own, as valid after the current store head (a block-less
    /// step: an epoch whose transactions were all removed by the filter, an empty one, or the
    /// checkpoint derived from blocks applied by syncing). Synced: it may be the only record of it.
    package func setForcedInclusionCheckpoint(_ checkpoint: ForcedInclusionCheckpoint) throws(StoreError) {
        try writer.withLock { () throws(StoreError) in
            let batch = WriteBatch()
            batch.put(StoreKeys.forcedInclusionCheckpoint,
                      ForcedInclusionCheckpointRecord(checkpoint: checkpoint, height: height).encoded)
            try db.write(batch, sync: true)
        }
    }

    package func submitterProgress() throws(StoreError) -> SubmitterProgress {
        guard let bytes = try db.get(StoreKeys.submitterProgress) else { return SubmitterProgress() }
        guard bytes.count == 16, let headers = readBigEndian(bytes[0..<8]), let data = readBigEndian(bytes[8..<16]) else {
            throw .corrupted(what: "submitter progress", reason: "expected 16 bytes, found \(bytes.count)")
        }
        return SubmitterProgress(lastHeaderHeight: headers, lastDataHeight: data)
    }

    package func setSubmitterProgress(_ progress: SubmitterProgress, sync: Bool = true) throws(StoreError) {
        let batch = WriteBatch()
        batch.put(StoreKeys.submitterProgress, BlockStore.encode(progress))
        try writer.withLock { () throws(StoreError) in try db.write(batch, sync: sync) }
    }

    private static func encode(_ progress: SubmitterProgress) -> [UInt8] {
        var out = bigEndianBytes(progress.lastHeaderHeight)
        appendBigEndian(progress.lastDataHeight, to: &out)
        return out
    }

    /// Free-form small metadata of other components (e.g. the DA follower's position).
    package func metadata(_ key: String) throws(StoreError) -> [UInt8]? {
        try db.get(StoreKeys.userMeta(key))
    }

    /// Sets (or with nil, removes) a free-form metadata value.
    package func setMetadata(_ key: String, _ value: [UInt8]?, sync: Bool = false) throws(StoreError) {
        let batch = WriteBatch()
        if let value { batch.put(StoreKeys.userMeta(key), value) } else { batch.delete(StoreKeys.userMeta(key)) }
        try db.write(batch, sync: sync)
    }

    // MARK: Executor state

    /// A committed executor value (key relative to the executor namespace).
    package func executorValue(forKey key: [UInt8]) throws(StoreError) -> [UInt8]? {
        try db.get(StoreKeys.executor(key))
    }

    /// The executor entry with the greatest key that starts with `prefix` and is ≤ `key`.
    package func executorLastEntry(withPrefix prefix: [UInt8], atOrBefore key: [UInt8]) throws(StoreError)
        -> (key: [UInt8], value: [UInt8])? {
        let lower = StoreKeys.executor(prefix)
        let upper = StoreKeys.successor(ofPrefix: lower) ?? [StoreKeys.executorPrefix + 1]
        return try db.withIterator(lower: lower, upper: upper) { (it) throws(StoreError) -> (key: [UInt8], value: [UInt8])? in
            it.seekForPrev(StoreKeys.executor(key))
            guard it.isValid else { return nil }
            return (Array(it.key.dropFirst()), it.value)
        }
    }

    /// Writes executor housekeeping (such as pruning) in one batch; nothing else changes.
    package func writeExecutorState(_ writes: WriteSet, sync: Bool = false) throws(StoreError) {
        let batch = SortedWriteBatch()
        BlockStore.add(writes, to: batch)
        try writer.withLock { () throws(StoreError) in try db.write(batch.batch(), sync: sync) }
    }

    /// Runs `body` with one cursor over the executor entries that start with `prefix`: many
    /// seeks on one cursor cost less than a fresh iterator for each.
    package func withExecutorCursor<T>(prefix: [UInt8], _ body: (ExecutorCursor) throws(StoreError) -> T) throws(StoreError) -> T {
        let lower = StoreKeys.executor(prefix)
        let upper = StoreKeys.successor(ofPrefix: lower) ?? [StoreKeys.executorPrefix + 1]
        return try db.withIterator(lower: lower, upper: upper) { (it) throws(StoreError) -> T in
            try body(ExecutorCursor(iterator: it))
        }
    }

    /// Executor entries whose keys start with `prefix`, from `start` (inclusive, default the
    /// prefix itself) in key order, at most `limit`.
    package func executorEntries(withPrefix prefix: [UInt8], from start: [UInt8]? = nil,
                                limit: Int) throws(StoreError) -> [(key: [UInt8], value: [UInt8])] {
        let lower = StoreKeys.executor(prefix)
        let upper = StoreKeys.successor(ofPrefix: lower) ?? [StoreKeys.executorPrefix + 1]
        return try db.withIterator(lower: lower, upper: upper) { (it) throws(StoreError) -> [(key: [UInt8], value: [UInt8])] in
            it.seek(StoreKeys.executor(start ?? prefix))
            var out: [(key: [UInt8], value: [UInt8])] = []
            while it.isValid, out.count < limit {
                out.append((Array(it.key.dropFirst()), it.value))
                it.next()
            }
            return out
        }
    }
}

/// An iterator over executor entries, with keys as the executor sees them (without the store's
/// namespace byte).
package struct ExecutorCursor {
    fileprivate let iterator: RocksIterator

    /// Positions at the first entry whose key is ≥ `key`.
    package func seek(_ key: [UInt8]) { iterator.seek(StoreKeys.executor(key)) }
    package func next() { iterator.next() }
    package var isValid: Bool { iterator.isValid }
    package var key: [UInt8] { Array(iterator.key.dropFirst()) }
}

/// The header hashes of the last `capacity` committed heights, in one flat buffer (no
/// allocation per block).
struct HeaderHashRing {
    private var heights: [UInt64]
    private var hashes: [UInt8]
    private let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
        heights = [UInt64](repeating: .max, count: capacity)
        hashes = [UInt8](repeating: 0, count: capacity * 32)
    }

    mutating func record(_ height: UInt64, _ hash: [UInt8]) {
        guard hash.count == 32 else { return }
        let slot = Int(height % UInt64(capacity))
        heights[slot] = height
        hashes.replaceSubrange((slot * 32)..<(slot * 32 + 32), with: hash)
    }

    func hash(at height: UInt64) -> [UInt8]? {
        let slot = Int(height % UInt64(capacity))
        guard heights[slot] == height else { return nil }
        return Array(hashes[(slot * 32)..<(slot * 32 + 32)])
    }

    mutating func forget(above height: UInt64) {
        for i in heights.indices where heights[i] != .max && heights[i] > height { heights[i] = .max }
    }
}

/// The forced-inclusion checkpoint as stored: valid after block `height`.
package struct ForcedInclusionCheckpointRecord: Sendable, Hashable {
    package var checkpoint: ForcedInclusionCheckpoint
    package var height: UInt64

    package init(checkpoint: ForcedInclusionCheckpoint, height: UInt64) {
        self.checkpoint = checkpoint
        self.height = height
    }

    /// 24 bytes: the checkpoint's 16, then the height big-endian.
    var encoded: [UInt8] { checkpoint.encoded + bigEndianBytes(height) }

    init?(encoded bytes: [UInt8]) {
        guard bytes.count == 24, let checkpoint = ForcedInclusionCheckpoint(encoded: Array(bytes[0..<16])),
              let height = readBigEndian(bytes[16..<24]) else { return nil }
        self.init(checkpoint: checkpoint, height: height)
    }
}
