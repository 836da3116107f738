import Primitives
import Chain
import Config
import Foundation

/// A chain made by the independent encoder (`shared/tools/wire/make_vectors.py`: Google's
/// protobuf runtime + `cryptography`): `../shared/vectors/chain-24.json` (see its README), or
/// one the tests make with other parameters.
package struct ChainVectors: Sendable {
    package struct Block: Sendable {
        package let height: UInt64
        package let timeNs: UInt64
        package let txs: [[UInt8]]
        package let headerBytes: [UInt8]
        package let headerHash: [UInt8]
        package let signature: [UInt8]
        package let signedHeaderBytes: [UInt8]
        package let envelopeBytes: [UInt8]
        package let dataBytes: [UInt8]
        package let dataHash: [UInt8]
        package let dataFullHash: [UInt8]
        package let signedDataBytes: [UInt8]
        package let appHashBefore: [UInt8]
        package let appHashAfter: [UInt8]
    }

    package let chainID: String
    package let seed: [UInt8]
    package let rawPublicKey: [UInt8]
    package let protoPublicKey: [UInt8]
    package let address: [UInt8]
    package let genesis: Genesis
    package let emptyDataHash: [UInt8]
    package let blocks: [Block]
    /// The DA namespace the blocks were posted under, when the file names one.
    package let namespaceName: String?
    package let namespaceBytes: [UInt8]?

    /// `EVNODE_VECTORS`, else `../shared/vectors/chain-24.json` beside the package.
    package static let path: String = {
        if let override = ProcessInfo.processInfo.environment["EVNODE_VECTORS"] { return override }
        return BuiltProducts.packageRoot.appendingPathComponent("../shared/vectors/chain-24.json").standardized.path
    }()

    package static let shared: ChainVectors = {
        do {
            return try load(path: path)
        } catch {
            fatalError("cannot load the wire vectors at \(path): \(error)")
        }
    }()

    package struct LoadError: Error, CustomStringConvertible {
        package let description: String
    }

    package static func load(path: String) throws -> ChainVectors {
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
                             proposerAddress: try hex(genesis, "proposer_address_hex"),
                             // Written by evnode's extended copy of the writer (forced-inclusion chains).
                             daStartHeight: (genesis["da_start_height"] as? NSNumber)?.uint64Value ?? 0,
                             daEpochForcedInclusion: (genesis["da_epoch_forced_inclusion"] as? NSNumber)?.uint64Value
                                 ?? Genesis.defaultDAEpochForcedInclusion),
            emptyDataHash: try hex(root, "empty_data_hash"), blocks: parsed,
            namespaceName: (root["namespace"] as? [String: Any])?["name"] as? String,
            namespaceBytes: ((root["namespace"] as? [String: Any])?["bytes_hex"] as? String).flatMap(Hex.decode))
    }

    package var signer: BlockSigner { try! BlockSigner(seed: seed) }

    /// The decoded blocks, as a syncer would receive them.
    package var decodedBlocks: [(signedHeader: SignedHeader, data: BlockData)] {
        blocks.map { b in
            (try! SignedHeader(decoding: b.signedHeaderBytes), try! BlockData(decoding: b.dataBytes))
        }
    }

    /// A `now` at which every vector block is acceptable.
    package var now: UInt64 { blocks.last!.timeNs + 1_000_000_000 }
}
