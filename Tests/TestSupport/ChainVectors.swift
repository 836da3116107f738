import Primitives
import Chain
import Config
import Foundation

/// A chain made by the independent encoder (`shared/tools/wire/make_vectors.py`: Google's
/// protobuf runtime + `cryptography`): `../shared/vectors/chain-24.json` (see its README), or
/// one the tests make with other parameters.
public struct ChainVectors: Sendable {
    public struct Block: Sendable {
        public let height: UInt64
        public let timeNs: UInt64
        public let txs: [[UInt8]]
        public let headerBytes: [UInt8]
        public let headerHash: [UInt8]
        public let signature: [UInt8]
        public let signedHeaderBytes: [UInt8]
        public let envelopeBytes: [UInt8]
        public let dataBytes: [UInt8]
        public let dataHash: [UInt8]
        public let dataFullHash: [UInt8]
        public let signedDataBytes: [UInt8]
        public let appHashBefore: [UInt8]
        public let appHashAfter: [UInt8]
    }

    public let chainID: String
    public let seed: [UInt8]
    public let rawPublicKey: [UInt8]
    public let protoPublicKey: [UInt8]
    public let address: [UInt8]
    public let genesis: Genesis
    public let emptyDataHash: [UInt8]
    public let blocks: [Block]
    /// The DA namespace the blocks were posted under, when the file names one.
    public let namespaceName: String?
    public let namespaceBytes: [UInt8]?

    /// `EVNODE_VECTORS`, else `../shared/vectors/chain-24.json` beside the package.
    public static let path: String = {
        if let override = ProcessInfo.processInfo.environment["EVNODE_VECTORS"] { return override }
        return BuiltProducts.packageRoot.appendingPathComponent("../shared/vectors/chain-24.json").standardized.path
    }()

    public static let shared: ChainVectors = {
        do {
            return try load(path: path)
        } catch {
            fatalError("cannot load the wire vectors at \(path): \(error)")
        }
    }()

    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
    }

    public static func load(path: String) throws -> ChainVectors {
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

    public var signer: BlockSigner { try! BlockSigner(seed: seed) }

    /// The decoded blocks, as a syncer would receive them.
    public var decodedBlocks: [(signedHeader: SignedHeader, data: BlockData)] {
        blocks.map { b in
            (try! SignedHeader(decoding: b.signedHeaderBytes), try! BlockData(decoding: b.dataBytes))
        }
    }

    /// A `now` at which every vector block is acceptable.
    public var now: UInt64 { blocks.last!.timeNs + 1_000_000_000 }
}
