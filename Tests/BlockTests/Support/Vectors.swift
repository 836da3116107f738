import Block
import Config
import Foundation

/// `../shared/vectors/chain-24.json`: a chain made by an independent encoder (Google protobuf +
/// `cryptography`), see its README.
struct ChainVectors: Sendable {
    struct Block: Sendable {
        let height: UInt64
        let timeNs: UInt64
        let txs: [[UInt8]]
        let headerBytes: [UInt8]
        let headerHash: [UInt8]
        let signature: [UInt8]
        let signedHeaderBytes: [UInt8]
        let envelopeBytes: [UInt8]
        let dataBytes: [UInt8]
        let dataHash: [UInt8]
        let dataFullHash: [UInt8]
        let signedDataBytes: [UInt8]
        let appHashBefore: [UInt8]
        let appHashAfter: [UInt8]
    }

    let chainID: String
    let seed: [UInt8]
    let rawPublicKey: [UInt8]
    let protoPublicKey: [UInt8]
    let address: [UInt8]
    let genesis: Genesis
    let emptyDataHash: [UInt8]
    let blocks: [Block]

    static let path: String = {
        if let override = ProcessInfo.processInfo.environment["EVNODE_VECTORS"] { return override }
        let root = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        return root.appendingPathComponent("../shared/vectors/chain-24.json").standardized.path
    }()

    static let shared: ChainVectors = {
        do {
            return try load(path: path)
        } catch {
            fatalError("cannot load the wire vectors at \(path): \(error)")
        }
    }()

    struct LoadError: Error, CustomStringConvertible {
        let description: String
    }

    static func load(path: String) throws -> ChainVectors {
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path)))
        guard let root = json as? [String: Any] else { throw LoadError(description: "not an object") }
        func hex(_ object: [String: Any], _ key: String) throws -> [UInt8] {
            guard let text = object[key] as? String, let bytes = Hex.decode(text) else {
                throw LoadError(description: "missing hex field \(key)")
            }
            return bytes
        }
        func number(_ object: [String: Any], _ key: String) throws -> UInt64 {
            guard let n = object[key] as? NSNumber else { throw LoadError(description: "missing number \(key)") }
            return n.uint64Value
        }
        guard let proposer = root["proposer"] as? [String: Any], let genesis = root["genesis"] as? [String: Any],
              let chainID = root["chain_id"] as? String, let blocks = root["blocks"] as? [[String: Any]] else {
            throw LoadError(description: "missing top-level fields")
        }
        let parsed = try blocks.map { b in
            Block(height: try number(b, "height"), timeNs: try number(b, "time_ns"),
                  txs: (b["txs"] as? [String] ?? []).map { Array($0.utf8) },
                  headerBytes: try hex(b, "header_hex"), headerHash: try hex(b, "header_hash"),
                  signature: try hex(b, "signature_hex"), signedHeaderBytes: try hex(b, "signed_header_hex"),
                  envelopeBytes: try hex(b, "da_header_envelope_hex"), dataBytes: try hex(b, "data_hex"),
                  dataHash: try hex(b, "data_hash"), dataFullHash: try hex(b, "data_full_hash"),
                  signedDataBytes: try hex(b, "signed_data_hex"), appHashBefore: try hex(b, "app_hash_before"),
                  appHashAfter: try hex(b, "app_hash_after"))
        }
        return ChainVectors(
            chainID: chainID, seed: try hex(proposer, "seed_hex"), rawPublicKey: try hex(proposer, "pub_raw_hex"),
            protoPublicKey: try hex(proposer, "pub_key_proto_hex"), address: try hex(proposer, "address_hex"),
            genesis: Genesis(chainID: genesis["chain_id"] as? String ?? "",
                             initialHeight: try number(genesis, "initial_height"),
                             startTimeNanoseconds: try number(genesis, "start_time_ns"),
                             proposerAddress: try hex(genesis, "proposer_address_hex")),
            emptyDataHash: try hex(root, "empty_data_hash"), blocks: parsed)
    }

    var signer: BlockSigner { try! BlockSigner(seed: seed) }

    /// The decoded blocks, as a syncer would receive them.
    var decodedBlocks: [(signedHeader: SignedHeader, data: BlockData)] {
        blocks.map { b in
            (try! SignedHeader(decoding: b.signedHeaderBytes), try! BlockData(decoding: b.dataBytes))
        }
    }

    /// A `now` at which every vector block is acceptable.
    var now: UInt64 { blocks.last!.timeNs + 1_000_000_000 }
}
