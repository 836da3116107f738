import Block
@testable import Config
import Foundation
import NIOConcurrencyHelpers
@testable import P2PSync

/// A real chain: blocks built by the Block module's `BlockBuilder` with the genesis proposer's
/// key, executed by the KV executor and committed to a RocksDB `BlockStore` in a temp directory.
/// Blocks are built on demand, in order, and read back from the store as `P2PBlock`s.
final class TestChain {
    let dir: TempDirectory
    let genesis: Genesis
    let signer: BlockSigner
    let store: BlockStore
    let executor: KVExecutor
    /// Bytes of tx payload per block (one `key=value` tx).
    let txBytes: Int

    init(chainID: String = "p2p-test", txBytes: Int = 16) throws {
        dir = try TempDirectory("evnode-p2p-chain")
        signer = BlockSigner(keyFile: .generate())
        genesis = Genesis(chainID: chainID, startTimeNanoseconds: 1_700_000_000_000_000_000,
                          proposerAddress: signer.address)
        store = try BlockStore.open(path: dir.sub("data"))
        executor = KVExecutor(store: store)
        self.txBytes = txBytes
        try store.initialize(genesis: genesis, executor: executor)
    }

    deinit {
        store.close()
    }

    var chainID: String { genesis.chainID }
    var validator: SignedBlockValidator { SignedBlockValidator(genesis: genesis) }
    /// Serves this chain's store, as a node serves its own.
    var source: StoreBlockSource { StoreBlockSource(store: store) }

    /// Builds and commits blocks until the store reaches `height`.
    func build(to height: UInt64) throws {
        let builder = BlockBuilder(signer: signer, executor: executor)
        while store.height < height {
            let state = store.state!
            let h = state.nextHeight
            let value = String(repeating: "v", count: max(1, txBytes - 8))
            let commit = try builder.build(on: state, txs: [Array("k\(h)=\(value)".utf8)],
                                           time: genesis.startTimeNanoseconds + h * 1_000_000_000)
            try store.commit(commit, sync: false)
        }
    }

    func block(height: UInt64) throws -> P2PBlock {
        try build(to: height)
        let (signed, data) = try store.block(at: height)!
        return P2PBlock(signedHeader: signed, data: data)
    }

    func blocks(_ range: ClosedRange<UInt64>) throws -> [P2PBlock] {
        try range.map { try block(height: $0) }
    }

    /// Block `height` with its header signed by a key that is not the genesis proposer.
    func forged(height: UInt64) throws -> P2PBlock {
        try build(to: height)
        let (signed, data) = try store.block(at: height)!
        let impostor = BlockSigner(keyFile: .generate())
        var header = signed.header
        header.proposerAddress = impostor.address
        let forged = try impostor.sign(header: header)
        return P2PBlock(signedHeader: forged, data: data)
    }
}

/// A fresh directory under the temp dir, removed when released.
final class TempDirectory {
    let path: String

    struct Failure: Error {}

    init(_ name: String) throws {
        var template = Array((NSTemporaryDirectory() + "\(name)-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else { throw Failure() }
        path = String(cString: made)
    }

    func sub(_ name: String) -> String { path + "/" + name }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// A `BlockSource` wrapper that records the requests it served (to check the 64-block bound).
final class RecordingSource: BlockSource {
    private let inner: any BlockSource
    private let counts = NIOLockedValueBox<(requests: Int, largest: Int)>((0, 0))

    init(_ inner: any BlockSource) {
        self.inner = inner
    }

    var requests: Int { counts.withLockedValue { $0.requests } }
    var largestRequest: Int { counts.withLockedValue { $0.largest } }

    func currentHeight() -> UInt64 { inner.currentHeight() }

    func blocks(from: UInt64, count: Int) async throws -> [P2PBlock] {
        counts.withLockedValue { c in
            c.requests += 1
            c.largest = max(c.largest, count)
        }
        return try await inner.blocks(from: from, count: count)
    }
}

/// An in-memory `BlockSource` for the store states RocksDB cannot be made to show on demand: a
/// store that fails to read, or one that claims a height whose blocks it does not have.
final class MemoryBlockSource: BlockSource {
    private struct State {
        var blocks: [UInt64: P2PBlock] = [:]
        var height: UInt64 = 0
        var failing = false
    }

    private let state = NIOLockedValueBox(State())

    init(_ blocks: [P2PBlock] = []) {
        add(blocks)
    }

    func add(_ blocks: [P2PBlock]) {
        state.withLockedValue { s in
            for b in blocks {
                s.blocks[b.height] = b
                s.height = max(s.height, b.height)
            }
        }
    }

    /// Makes `currentHeight` claim `height` regardless of what is held (a store that lost blocks).
    func claim(height: UInt64) {
        state.withLockedValue { $0.height = height }
    }

    /// Makes reads throw, like a failing disk.
    func setFailing(_ failing: Bool) {
        state.withLockedValue { $0.failing = failing }
    }

    func currentHeight() -> UInt64 { state.withLockedValue { $0.height } }

    struct ReadFailure: Error {}

    func blocks(from: UInt64, count: Int) async throws -> [P2PBlock] {
        try state.withLockedValue { s in
            if s.failing { throw ReadFailure() }
            var out: [P2PBlock] = []
            var h = from
            while out.count < count, let b = s.blocks[h] {
                out.append(b)
                h += 1
            }
            return out
        }
    }
}
