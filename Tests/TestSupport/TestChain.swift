import Chain
import Store
import Execution
import Production
import Config

/// A real chain for tests: blocks built by `BlockBuilder` with a proposer key of its own,
/// executed by the KV executor and committed to a RocksDB `BlockStore` in a temp directory.
/// Block `h` is timed one second per height after genesis.
package final class TestChain: @unchecked Sendable {
    package let dir: TempDirectory
    package let signer: BlockSigner
    package let genesis: Genesis
    package private(set) var store: BlockStore
    package private(set) var executor: KVExecutor
    /// Height executed → the proposer the chain names for the blocks after it (see
    /// `RotatingExecutor`); empty: the chain never rotates.
    package let rotations: [UInt64: [UInt8]]
    /// Signers by address: the proposer the state names signs each block `next` builds.
    package private(set) var signers: [[UInt8]: BlockSigner]

    /// The store's directory: `path` when given (inside a test's own directory), else a fresh
    /// temp directory's `data`.
    package let path: String

    package init(chainID: String = "test-chain", signer: BlockSigner = BlockSigner(keyFile: KeyFile.generate()),
                path: String? = nil, rotations: [UInt64: BlockSigner] = [:]) throws {
        dir = TempDirectory("evnode-chain")
        self.path = path ?? dir.sub("data")
        self.signer = signer
        self.rotations = rotations.mapValues(\.address)
        var signers = [signer.address: signer]
        for s in rotations.values { signers[s.address] = s }
        self.signers = signers
        genesis = Genesis(chainID: chainID, startTimeNanoseconds: 1_700_000_000_000_000_000,
                          proposerAddress: signer.address)
        store = try BlockStore.open(path: self.path)
        executor = KVExecutor(store: store)
        try ChainExecution(store: store, executor: executor).initialize(genesis: genesis)
    }

    deinit { store.close() }

    package var chainID: String { genesis.chainID }
    package var validator: BlockValidator { BlockValidator(genesis: genesis) }
    /// The executor blocks run on: the KV application, behind the rotation schedule if any.
    package var chainExecutor: any SynchronousExecutor {
        rotations.isEmpty ? executor : RotatingExecutor(kv: executor, schedule: rotations)
    }
    package var applier: BlockApplier { BlockApplier(store: store, executor: chainExecutor, validator: validator) }
    /// A builder signing with the proposer the state names now.
    package var builder: BlockBuilder { builder(for: store.expectedNextProposer) }

    package func builder(for proposer: [UInt8]) -> BlockBuilder {
        BlockBuilder(signer: signers[proposer] ?? signer, executor: chainExecutor)
    }

    /// Builds (does not commit) the next block with `txs`.
    package func next(_ txs: [String]) throws -> BlockCommit {
        let state = store.state!
        return try builder.build(on: state, txs: txs.map { Array($0.utf8) },
                                 time: genesis.startTimeNanoseconds + state.nextHeight * 1_000_000_000)
    }

    /// Builds and commits the next block.
    @discardableResult
    package func produce(_ txs: [String], sync: Bool = false) throws -> BlockCommit {
        let block = try next(txs)
        try store.commit(block, sync: sync)
        return block
    }

    /// Builds and commits blocks until the store reaches `height`, each with one `k<h>=v…` tx of
    /// about `txBytes` bytes.
    package func build(to height: UInt64, txBytes: Int = 16) throws {
        let value = String(repeating: "v", count: max(1, txBytes - 8))
        while store.height < height {
            try produce(["k\(store.height + 1)=\(value)"])
        }
    }

    /// Closes the store and opens it again (what a restart sees).
    package func reopen() throws {
        store.close()
        store = try BlockStore.open(path: path)
        executor = KVExecutor(store: store)
    }

    /// Closes the store (a second close, as at deinit, does nothing).
    package func close() { store.close() }

    /// The KV executor's value of `key`, as text.
    package func value(_ key: String) throws -> String? {
        try executor.value(forKey: key).map { String(decoding: $0, as: UTF8.self) }
    }
}
