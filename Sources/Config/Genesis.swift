import Foundation

/// The chain's genesis: what every node must agree on before block 1.
public struct Genesis: Sendable, Equatable {
    public var chainID: String
    public var initialHeight: UInt64
    /// Unix nanoseconds; block 1 carries exactly this time.
    public var startTimeNanoseconds: UInt64
    /// SHA-256 of the proposer's raw Ed25519 public key (32 bytes).
    public var proposerAddress: [UInt8]
    public var daStartHeight: UInt64

    public init(chainID: String, initialHeight: UInt64 = 1, startTimeNanoseconds: UInt64,
                proposerAddress: [UInt8], daStartHeight: UInt64 = 0) {
        self.chainID = chainID
        self.initialHeight = initialHeight
        self.startTimeNanoseconds = startTimeNanoseconds
        self.proposerAddress = proposerAddress
        self.daStartHeight = daStartHeight
    }

    public static let maxChainIDLength = 64

    /// Checks a chain id as `init` and genesis loading accept it.
    public static func validateChainID(_ id: String) -> String? {
        if id.isEmpty { return "chain id is empty" }
        if id.utf8.count > maxChainIDLength { return "chain id is longer than \(maxChainIDLength) bytes" }
        let ok = id.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0)) }
        return ok ? nil : "chain id \"\(id)\" may only contain letters, digits, '-', '_' and '.'"
    }

    public func validate(path: String) throws(ConfigError) {
        if let problem = Genesis.validateChainID(chainID) { throw .file(path: path, reason: problem) }
        if initialHeight < 1 { throw .file(path: path, reason: "initial_height must be ≥ 1 (got \(initialHeight))") }
        if proposerAddress.count != 32 {
            throw .file(path: path, reason: "proposer_address must be 32 bytes of base64 (got \(proposerAddress.count) bytes)")
        }
    }

    public func jsonText() -> String {
        """
        {
          "chain_id": \(jsonQuoted(chainID)),
          "start_time": "\(RFC3339.format(unixNanoseconds: startTimeNanoseconds))",
          "initial_height": \(initialHeight),
          "proposer_address": "\(Data(proposerAddress).base64EncodedString())",
          "da_start_height": \(daStartHeight)
        }

        """
    }

    public static func parse(_ text: String, path: String) throws(ConfigError) -> Genesis {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(text.utf8))
        } catch {
            throw .file(path: path, reason: "not valid JSON")
        }
        guard let dict = object as? [String: Any] else { throw .file(path: path, reason: "expected a JSON object") }
        func field<T>(_ name: String, _ type: T.Type) throws(ConfigError) -> T {
            guard let v = dict[name] else { throw .file(path: path, reason: "missing \"\(name)\"") }
            guard let t = v as? T else { throw .file(path: path, reason: "\"\(name)\" has the wrong type") }
            return t
        }
        func unsigned(_ name: String, default def: UInt64?) throws(ConfigError) -> UInt64 {
            guard let v = dict[name] else {
                if let def { return def }
                throw .file(path: path, reason: "missing \"\(name)\"")
            }
            // JSON numbers arrive as NSNumber; strings are accepted because Go encoders quote uint64.
            if let s = v as? String, let n = UInt64(s) { return n }
            if let n = v as? NSNumber, !(v is Bool), n.doubleValue >= 0, n.doubleValue == n.doubleValue.rounded() {
                return n.uint64Value
            }
            throw .file(path: path, reason: "\"\(name)\" must be a whole number ≥ 0")
        }
        let chainID = try field("chain_id", String.self)
        let timeText = try field("start_time", String.self)
        let start: UInt64
        do {
            start = try RFC3339.unixNanoseconds(timeText)
        } catch {
            throw .file(path: path, reason: "start_time: \(error.description)")
        }
        let proposerText = try field("proposer_address", String.self)
        guard let proposer = Data(base64Encoded: proposerText) else {
            throw .file(path: path, reason: "proposer_address is not base64")
        }
        let genesis = Genesis(chainID: chainID,
                              initialHeight: try unsigned("initial_height", default: 1),
                              startTimeNanoseconds: start,
                              proposerAddress: Array(proposer),
                              daStartHeight: try unsigned("da_start_height", default: 0))
        try genesis.validate(path: path)
        return genesis
    }

    public static func load(path: String) throws(ConfigError) -> Genesis {
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
