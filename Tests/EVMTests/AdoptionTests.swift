import Store
import Config
import Foundation
import Logging
import Testing
import TestSupport
@testable import EVM

/// When the EL already holds a block at the height being executed (it built it before a restart,
/// or synced the chain), the executor adopts it only if nothing it recorded says the block there
/// was built from other transactions (security review, minor: it adopted by timestamp alone).
@Suite(.serialized) struct AdoptionTests {
    /// The real py-evm EL holds block 1 built from transfers A; the executor is asked to execute
    /// block 1 from transfer B with the same timestamp (a block that replaced the first before it
    /// reached the store). It must not hand back A's state root: it rolls the EL back and builds B.
    @Test(.enabled(if: EVMFiles.available)) func aBlockBuiltFromOtherTransactionsIsNotAdopted() async throws {
        let dir = TempDirectory("evnode-evm-adopt")
        var taken = Set<Int>()
        let el = try TestEL(name: "el", directory: dir.path, logDirectory: dir.sub("logs"), taken: &taken)
        try await el.start()
        do {
            try await buildTwoBlocksAtOneHeight(el: el, dir: dir)
        } catch {
            await el.stop()
            throw error
        }
        await el.stop()
    }

    private func buildTwoBlocksAtOneHeight(el: TestEL, dir: TempDirectory) async throws {
        let store = try BlockStore.open(path: dir.sub("store"))
        defer { store.close() }
        let rpc = try EngineRPCClient(engineURL: el.engineURL, ethURL: el.ethURL,
                                      jwt: EngineJWT(secret: try EngineJWT.readSecret(path: el.secretFile)))
        let executor = EVMExecutor(rpc: rpc, store: store, options: .init(), logger: Logger(label: "test.evm"))
        let genesis = Genesis(chainID: "adopt", startTimeNanoseconds: 1_700_000_000_000_000_000,
                              proposerAddress: [UInt8](repeating: 1, count: 32))
        let root0 = try await executor.initChain(genesis: genesis)
        let a = try EVMFiles.transfers(count: 2, nonce: 0, value: 1000)
        let b = try EVMFiles.transfers(count: 1, nonce: 0, value: 7777)
        let time = genesis.startTimeNanoseconds

        let rootA = try await executor.executeTxs(a, height: 1, time: time, previousRoot: root0).stateRoot
        let elBlockA = try #require(try await executor.latestHeight())
        #expect(elBlockA == 1)
        // The same block again (a restart after the EL promoted it): adopted, same root.
        #expect(try await executor.executeTxs(a, height: 1, time: time, previousRoot: root0).stateRoot == rootA)
        // Another block at height 1 with the same timestamp: built anew, not adopted.
        let rootB = try await executor.executeTxs(b, height: 1, time: time, previousRoot: root0).stateRoot
        #expect(rootB != rootA, "the EL's block built from other transactions was adopted")
        #expect(try await executor.latestHeight() == 1)
        // And B stays B when asked again.
        #expect(try await executor.executeTxs(b, height: 1, time: time, previousRoot: root0).stateRoot == rootB)
        await rpc.shutdown()
    }

    @Test func adoptionConflictReadsTheRecord() {
        let block = ELBlock(number: 5, hash: [UInt8](repeating: 0xaa, count: 32), stateRoot: [UInt8](repeating: 1, count: 32),
                            timestamp: 100, gasLimit: 30_000_000)
        let mine = [UInt8](repeating: 2, count: 32), other = [UInt8](repeating: 3, count: 32)
        #expect(EVMExecutor.adoptionConflict(block, timestamp: 100, txsHash: mine, meta: nil) == nil)
        #expect(EVMExecutor.adoptionConflict(block, timestamp: 101, txsHash: mine, meta: nil)?.contains("timestamp") == true)
        let promoted = ExecMeta(stage: .promoted, payloadID: [1], timestamp: 100, txsHash: mine, blockHash: block.hash,
                                stateRoot: block.stateRoot)
        #expect(EVMExecutor.adoptionConflict(block, timestamp: 100, txsHash: mine, meta: promoted) == nil)
        #expect(EVMExecutor.adoptionConflict(block, timestamp: 100, txsHash: other, meta: promoted) != nil)
        var elsewhere = promoted
        elsewhere.blockHash = [UInt8](repeating: 0xbb, count: 32)
        #expect(EVMExecutor.adoptionConflict(block, timestamp: 100, txsHash: mine, meta: elsewhere) != nil)
        let started = ExecMeta(stage: .started, payloadID: [1], timestamp: 100, txsHash: other)
        #expect(EVMExecutor.adoptionConflict(block, timestamp: 100, txsHash: mine, meta: started) != nil)
    }
}
