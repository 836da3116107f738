import Block
import Config
import DA
import Foundation

/// A real block store with the KV executor and a proposer key, to produce blocks the
/// submitter posts.
final class TestChainStore: @unchecked Sendable {
    let path: String
    let signer: BlockSigner
    let genesis: Genesis
    private(set) var store: BlockStore
    private(set) var executor: KVExecutor

    init(path: String, signer: BlockSigner = BlockSigner(keyFile: KeyFile.generate())) throws {
        self.path = path
        self.signer = signer
        genesis = Genesis(chainID: "da-test", startTimeNanoseconds: 1_700_000_000_000_000_000,
                          proposerAddress: signer.address)
        store = try BlockStore.open(path: path)
        executor = KVExecutor(store: store)
        try store.initialize(genesis: genesis, executor: executor)
    }

    /// Builds and commits the next block with `txs`; returns its height.
    @discardableResult
    func produce(_ txs: [String]) throws -> UInt64 {
        let state = store.state!
        let block = try BlockBuilder(signer: signer, executor: executor)
            .build(on: state, txs: txs.map { Array($0.utf8) },
                   time: genesis.startTimeNanoseconds + state.nextHeight * 1_000_000_000)
        try store.commit(block, sync: false)
        return block.height
    }

    func reopen() throws {
        store.close()
        store = try BlockStore.open(path: path)
        executor = KVExecutor(store: store)
    }

    func close() {
        store.close()
    }
}

/// Every evnode blob on the DA node: for each block height, the DA heights its header envelope
/// and its signed data were found at (a height twice in a list means it was posted twice).
struct DAContents {
    var headers: [UInt64: [UInt64]] = [:]
    var data: [UInt64: [UInt64]] = [:]
    var badSignatures = 0

    static func read(_ client: any DAClient, headerNamespace: DANamespace, dataNamespace: DANamespace) async throws -> DAContents {
        var out = DAContents()
        let head = try await client.networkHead().height
        let namespaces = headerNamespace == dataNamespace ? [headerNamespace] : [headerNamespace, dataNamespace]
        for try await event in client.retrieve(heights: 1...head, namespaces: namespaces, parallelism: 4) {
            guard case .height(let h) = event else { continue }
            for blob in h.blobs {
                // In a shared namespace the two kinds are told apart by decoding.
                if blob.namespace == headerNamespace, let envelope = try? DAHeaderEnvelope(decoding: blob.data),
                   envelope.header.height > 0 {
                    out.headers[envelope.header.height, default: []].append(h.height)
                    if !envelope.hasValidSignatures { out.badSignatures += 1 }
                } else if blob.namespace == dataNamespace, let signed = try? SignedData(decoding: blob.data),
                          let metadata = signed.data.metadata {
                    out.data[metadata.height, default: []].append(h.height)
                    if !signed.hasValidSignature { out.badSignatures += 1 }
                } else {
                    throw HarnessError("DA height \(h.height) holds a blob that is neither header nor data")
                }
            }
        }
        return out
    }
}
