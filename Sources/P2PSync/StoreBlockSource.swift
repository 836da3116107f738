import Chain
import Store
import NIOPosix

/// Serves peers from the node's `BlockStore`: the stored encodings go out as they are; only the
/// header hash is computed (the header is decoded for it). Reads run on a thread pool, never on
/// the event loop or the cooperative pool.
package struct StoreBlockSource: BlockSource {
    package let store: BlockStore
    private let threadPool: NIOThreadPool

    package init(store: BlockStore, threadPool: NIOThreadPool = .singleton) {
        self.store = store
        self.threadPool = threadPool
    }

    package func currentHeight() -> UInt64 { store.height }

    package func blocks(from: UInt64, count: Int) async throws -> [P2PBlock] {
        guard count > 0, from >= 1 else { return [] }
        let last = from &+ UInt64(count - 1)
        guard last >= from else { return [] }
        let store = self.store
        return try await threadPool.runIfActive {
            let encoded = try store.encodedBlocks(in: from...last)
            var out: [P2PBlock] = []
            out.reserveCapacity(encoded.count)
            for (i, block) in encoded.enumerated() {
                let height = from + UInt64(i)
                let signed: SignedHeader
                do throws(WireError) {
                    signed = try SignedHeader(decoding: block.header)
                } catch {
                    throw StoreError.corrupted(what: "header at height \(height)", reason: error.description)
                }
                out.append(P2PBlock(height: height, headerHash: signed.header.hash,
                                    encodedSignedHeader: block.header, encodedData: block.data))
            }
            return out
        }
    }

    package func daHeightHints(at height: UInt64) async throws -> (header: UInt64, data: UInt64) {
        let store = self.store
        let inclusion = try await threadPool.runIfActive { try store.daInclusion(at: height) }
        return (inclusion.headerDAHeight ?? 0, inclusion.dataDAHeight ?? 0)
    }

    package func height(ofHeaderHash hash: [UInt8]) async throws -> UInt64? {
        guard hash.count == 32 else { return nil }
        let store = self.store
        return try await threadPool.runIfActive { try store.height(forHash: hash) }
    }
}
