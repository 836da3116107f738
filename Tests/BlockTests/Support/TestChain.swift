import Block
import Config

/// A store with a KV executor in a temp directory, and a proposer to build blocks for it.
final class TestChain {
    let dir: TempDirectory
    let signer: BlockSigner
    let genesis: Genesis
    private(set) var store: BlockStore
    private(set) var executor: KVExecutor

    init(chainID: String = "test-chain", signer: BlockSigner = BlockSigner(keyFile: KeyFile.generate())) throws {
        dir = TempDirectory("evnode-store")
        self.signer = signer
        genesis = Genesis(chainID: chainID, startTimeNanoseconds: 1_700_000_000_000_000_000,
                          proposerAddress: signer.address)
        store = try BlockStore.open(path: dir.sub("data"))
        executor = KVExecutor(store: store)
        try store.initialize(genesis: genesis, executor: executor)
    }

    var validator: BlockValidator { BlockValidator(genesis: genesis) }
    var applier: BlockApplier { BlockApplier(store: store, executor: executor, validator: validator) }
    var builder: BlockBuilder { BlockBuilder(signer: signer, executor: executor) }

    /// Builds the next block with `txs` (time: one second per height after genesis).
    func next(_ txs: [String]) throws -> BlockCommit {
        let state = store.state!
        return try builder.build(on: state, txs: txs.map { Array($0.utf8) },
                                 time: genesis.startTimeNanoseconds + state.nextHeight * 1_000_000_000)
    }

    /// Builds and commits the next block.
    @discardableResult
    func produce(_ txs: [String], sync: Bool = false) throws -> BlockCommit {
        let block = try next(txs)
        try store.commit(block, sync: sync)
        return block
    }

    func reopen() throws {
        store.close()
        store = try BlockStore.open(path: dir.sub("data"))
        executor = KVExecutor(store: store)
    }

    func value(_ key: String) throws -> String? {
        try executor.value(forKey: key).map { String(decoding: $0, as: UTF8.self) }
    }
}
