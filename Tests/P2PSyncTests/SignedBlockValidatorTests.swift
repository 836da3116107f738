import Primitives
import Chain
import Foundation
import NIOCore
@testable import P2PSync
import Testing
import TestSupport
@testable import Libp2p

@Suite("SignedBlockValidator")
struct SignedBlockValidatorTests {
    /// The 24 blocks of `/work/shared/vectors/chain-24.json` (made by an independent encoder) as
    /// P2P blocks, with the genesis proposer's address.
    static func vectorBlocks() throws -> (validator: SignedBlockValidator, blocks: [P2PBlock]) {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/vectors/chain-24.json")
        let candidates = [path.path, "/work/shared/vectors/chain-24.json"]
        let file = try #require(candidates.first { FileManager.default.fileExists(atPath: $0) })
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file)))
            as? [String: Any])
        let genesis = try #require(json["genesis"] as? [String: Any])
        let chainID = try #require(genesis["chain_id"] as? String)
        let proposer = try #require((genesis["proposer_address_hex"] as? String).flatMap(Hex.decode))
        let rows = try #require(json["blocks"] as? [[String: Any]])
        let blocks = try rows.map { row -> P2PBlock in
            func hex(_ key: String) throws -> [UInt8] { try #require((row[key] as? String).flatMap(Hex.decode)) }
            return P2PBlock(height: UInt64(try #require(row["height"] as? Int)), headerHash: try hex("header_hash"),
                            encodedSignedHeader: try hex("signed_header_hex"), encodedData: try hex("data_hex"))
        }
        return (SignedBlockValidator(blockValidator: BlockValidator(chainID: chainID, proposerAddress: proposer)), blocks)
    }

    @Test("accepts every block of the independently encoded vector chain, also as ev-node P2P envelopes")
    func vectorChain() throws {
        let (validator, blocks) = try Self.vectorBlocks()
        #expect(blocks.count == 24)
        for block in blocks {
            #expect(validator.validate(block) == .accept)
            // P2PSignedHeader / P2PData: the hint appended, then stripped again to the same bytes.
            let header = P2PEnvelope.header(encodedSignedHeader: block.encodedSignedHeader, daHeightHint: 0)
            let data = P2PEnvelope.data(encodedData: block.encodedData, daHeightHint: 0)
            #expect(try P2PEnvelope.strip(header, hintField: P2PEnvelope.headerHintField).body == block.encodedSignedHeader)
            #expect(try P2PEnvelope.strip(data, hintField: P2PEnvelope.dataHintField).body == block.encodedData)
            #expect(try P2PBlock(decoding: block.encoded()) == block)
        }
    }

    @Test("accepts blocks built by the Block module and rejects each kind of tampering")
    func rejections() throws {
        let chain = try TestChain(chainID: "p2p-test")
        let validator = chain.signedBlockValidator
        let good = try chain.block(height: 3)
        #expect(validator.validate(good) == .accept)

        /// True when the block is rejected for a reason that mentions `fragment`.
        func rejected(_ block: P2PBlock, _ fragment: String) -> Bool {
            guard case .reject(let reason) = validator.validate(block) else { return false }
            return reason.contains(fragment)
        }

        // Validly signed by a key the chain never named: not the peer's fault (it may be past a
        // rotation this node has not applied); the block is left to the syncer, its header's
        // gossip ignored (ev-node v1.2: P2P accepts any proposer, apply checks it).
        let stranger = try chain.forged(height: 3)
        #expect(validator.validate(stranger) == .accept)
        #expect(validator.validate(header: try stranger.decoded().signedHeader) == .ignore)
        // A flipped signature bit.
        let (signed, data) = try #require(try chain.store.block(at: 3))
        var badSignature = signed
        badSignature.signature[0] ^= 1
        #expect(rejected(P2PBlock(signedHeader: badSignature, data: data), "signature"))
        // Another chain with the same proposer key.
        let otherGenesis = BlockValidator(chainID: "other-chain", proposerAddress: chain.signer.address)
        #expect(SignedBlockValidator(blockValidator: otherGenesis).validate(good) != .accept)
        // Announced height or hash that the header does not have.
        var wrongHeight = good
        wrongHeight.height = 4
        #expect(rejected(wrongHeight, "height"))
        var wrongHash = good
        wrongHash.headerHash[5] ^= 0xff
        #expect(rejected(wrongHash, "hash"))
        // Txs swapped under a valid header.
        var otherTxs = data
        otherTxs.txs = [Array("evil=1".utf8)]
        #expect(rejected(P2PBlock(signedHeader: signed, data: otherTxs), "data"))
        // Metadata of another height under a valid header.
        var otherMeta = data
        otherMeta.metadata?.height = 99
        #expect(rejected(P2PBlock(signedHeader: signed, data: otherMeta), "height"))
        // A good block converts to a sync-pipeline candidate naming its peer, its data reduced
        // to the txs the header commits to (the metadata is covered by no signature).
        let peer = PeerID(key: .generate())
        let candidate = try good.candidate(from: peer)
        #expect(candidate.signedHeader == signed && candidate.data == BlockData(metadata: nil, txs: data.txs))
        #expect(candidate.origin == .p2p(peer: peer.description))
        #expect(PeerID(string: peer.description) == peer)
        #expect(throws: BlockProblem.self) { try wrongHeight.candidate(from: peer) }

        // Bytes that are not a signed header at all.
        var garbage = good
        garbage.encodedSignedHeader = [0xff, 0xff, 0xff]
        #expect(rejected(garbage, "does not decode"))
    }

    @Test("hands on the txs only: metadata no signature covers (a forged last_data_hash) is dropped, blaming nobody")
    func uncoveredMetadataIsDropped() throws {
        let chain = try TestChain(chainID: "p2p-test")
        try chain.build(to: 2)
        let (signed, data) = try #require(try chain.store.block(at: 2))
        var forged = data
        forged.metadata?.lastDataHash = [UInt8](repeating: 0xee, count: 32)
        let validator = chain.signedBlockValidator
        for sent in [data, forged] {
            let block = P2PBlock(signedHeader: signed, data: sent)
            #expect(validator.validate(block) == .accept)
            guard case .success(let checked) = validator.check(block) else {
                Issue.record("block 2 rejected")
                continue
            }
            #expect(checked.data == BlockData(metadata: nil, txs: data.txs), "the same block whatever the metadata said")
            #expect(try block.candidate(from: PeerID(key: .generate())).data.metadata == nil)
        }
    }

    @Test("StoreBlockSource serves the store's blocks with their header hashes, stopping at the first gap")
    func storeSource() async throws {
        let chain = try TestChain(chainID: "p2p-test")
        try chain.build(to: 10)
        let source = chain.source
        #expect(source.currentHeight() == 10)
        let served = try await source.blocks(from: 4, count: 64)
        #expect(served.map(\.height) == Array(4...10))
        for block in served {
            #expect(try block.headerHash == chain.store.signedHeader(at: block.height)?.header.hash)
            #expect(chain.signedBlockValidator.validate(block) == .accept)
        }
        #expect(try await source.blocks(from: 11, count: 5).isEmpty)
        #expect(try await source.blocks(from: .max, count: 64).isEmpty)
    }
}
