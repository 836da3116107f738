import Primitives
import Foundation

/// The chain's genesis: what every node must agree on before block 1.
package struct Genesis: Sendable, Equatable {
    package var chainID: String
    package var initialHeight: UInt64
    /// Unix nanoseconds; block 1 carries exactly this time.
    package var startTimeNanoseconds: UInt64
    /// SHA-256 of the proposer's raw Ed25519 public key (32 bytes).
    package var proposerAddress: [UInt8]
    package var daStartHeight: UInt64
    /// ev-node's `da_epoch_forced_inclusion`: DA blocks per forced-inclusion epoch (≥ 1).
    package var daEpochForcedInclusion: UInt64

    /// What ev-node's `NewGenesis` writes, and what a genesis without the field is read as.
    package static let defaultDAEpochForcedInclusion: UInt64 = 50

    package init(chainID: String, initialHeight: UInt64 = 1, startTimeNanoseconds: UInt64,
                proposerAddress: [UInt8], daStartHeight: UInt64 = 0,
                daEpochForcedInclusion: UInt64 = Genesis.defaultDAEpochForcedInclusion) {
        self.chainID = chainID
        self.initialHeight = initialHeight
        self.startTimeNanoseconds = startTimeNanoseconds
        self.proposerAddress = proposerAddress
        self.daStartHeight = daStartHeight
        self.daEpochForcedInclusion = daEpochForcedInclusion
    }

    package static let maxChainIDLength = 64

    /// Checks a chain id as `init` and genesis loading accept it.
    package static func validateChainID(_ id: String) -> String? {
        if id.isEmpty { return "chain id is empty" }
        if id.utf8.count > maxChainIDLength { return "chain id is longer than \(maxChainIDLength) bytes" }
        let ok = id.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)) }
        return ok ? nil : "chain id \"\(id)\" may only contain letters, digits, '-', '_' and '.'"
    }

    package func validate(path: String) throws(ConfigError) {
        if let problem = Genesis.validateChainID(chainID) { throw .file(path: path, reason: problem) }
        if initialHeight < 1 { throw .file(path: path, reason: "initial_height must be ≥ 1 (got \(initialHeight))") }
        if proposerAddress.isEmpty {
            throw .file(path: path, reason: "has no proposer_address (a home initialised without a signer, as for a full node): copy the chain's genesis.json here")
        }
        if proposerAddress.count != 32 {
            throw .file(path: path, reason: "proposer_address must be 32 bytes of base64 (got \(proposerAddress.count) bytes)")
        }
        if daEpochForcedInclusion < 1 {
            throw .file(path: path, reason: "da_epoch_forced_inclusion must be at least 1 (got \(daEpochForcedInclusion))")
        }
    }

    package func jsonText() -> String {
        """
        {
          "chain_id": \(jsonQuoted(chainID)),
          "start_time": "\(RFC3339.format(unixNanoseconds: startTimeNanoseconds))",
          "initial_height": \(initialHeight),
          "proposer_address": "\(Data(proposerAddress).base64EncodedString())",
          "da_start_height": \(daStartHeight),
          "da_epoch_forced_inclusion": \(daEpochForcedInclusion)
        }

        """
    }

    package static func parse(_ text: String, path: String) throws(ConfigError) -> Genesis {
        let file: GenesisFile
        do {
            file = try JSONDecoder().decode(GenesisFile.self, from: Data(text.utf8))
        } catch let error as DecodingError {
            throw .file(path: path, reason: GenesisFile.describe(error))
        } catch {
            throw .file(path: path, reason: "not valid JSON")
        }
        let start: UInt64
        do {
            start = try RFC3339.unixNanoseconds(file.start_time)
        } catch {
            throw .file(path: path, reason: "start_time: \(error.description)")
        }
        guard let proposerText = file.proposer_address else {
            throw .file(path: path, reason: "proposer_address is null: ev-node's `init` writes that for a home that is not an aggregator's; copy the chain's genesis.json from its aggregator")
        }
        guard let proposer = Data(base64Encoded: proposerText) else {
            throw .file(path: path, reason: "proposer_address is not base64")
        }
        let genesis = Genesis(chainID: file.chain_id,
                              initialHeight: file.initial_height?.value ?? 1,
                              startTimeNanoseconds: start,
                              proposerAddress: Array(proposer),
                              daStartHeight: file.da_start_height?.value ?? 0,
                              daEpochForcedInclusion: file.da_epoch_forced_inclusion?.value ?? defaultDAEpochForcedInclusion)
        try genesis.validate(path: path)
        return genesis
    }

    package static func load(path: String) throws(ConfigError) -> Genesis {
        let text: String
        do {
            text = try FileIO.readString(path, limit: 1 << 20)
        } catch {
            throw .file(path: path, reason: error.description)
        }
        return try parse(text, path: path)
    }
}

func jsonQuoted(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case "\r": out += "\\r"
        default:
            if scalar.value < 0x20 {
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
    }
    return out + "\""
}

/// genesis.json as written on disk. Unknown fields (an app state, say) are ignored, as ev-node's
/// `json.Unmarshal` ignores them. An absent `da_epoch_forced_inclusion` is read as 50 (what
/// ev-node's `init` writes) so that genesis files of earlier evnode versions and of ev-node
/// before forced inclusion load; ev-node itself reads an absent one as 0 and refuses the file.
/// An explicit 0 is refused, as in ev-node.
private struct GenesisFile: Decodable {
    var chain_id: String
    var start_time: String
    var initial_height: FlexibleUInt64?
    var proposer_address: String?
    var da_start_height: FlexibleUInt64?
    var da_epoch_forced_inclusion: FlexibleUInt64?

    static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, _): return "missing \"\(key.stringValue)\""
        case .typeMismatch(_, let ctx), .valueNotFound(_, let ctx):
            let field = ctx.codingPath.map(\.stringValue).joined(separator: ".")
            return field.isEmpty ? "expected a JSON object" : "\"\(field)\" has the wrong type (\(ctx.debugDescription))"
        case .dataCorrupted(let ctx):
            let field = ctx.codingPath.map(\.stringValue).joined(separator: ".")
            return field.isEmpty ? "not valid JSON" : "\"\(field)\": \(ctx.debugDescription)"
        @unknown default: return "not a genesis file"
        }
    }
}

/// Go encoders write uint64 either as a number or as a decimal string; accept both.
private struct FlexibleUInt64: Decodable {
    var value: UInt64

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let n = try? c.decode(UInt64.self) {
            value = n
        } else if let s = try? c.decode(String.self), let n = UInt64(s) {
            value = n
        } else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "must be a whole number ≥ 0")
        }
    }
}
