import Primitives
import Foundation

/// celestia-node's `TxConfig`, the second parameter of `blob.Submit`.
///
/// Field names and meanings are those of celestia-node's JSON form (`state/txclient/tx_config.go`,
/// type `jsonTxConfig`): `gas_price`, `is_gas_price_set`, `max_gas_price`, `gas`, `tx_priority`
/// (1 low, 2 medium, 3 high), `key_name`, `signer_address`, `fee_granter_address`. A gas price
/// of nil means "let the DA node estimate" (celestia-node's `DefaultGasPrice`, -1).
package struct DATxConfig: Sendable, Equatable {
    package var gasPrice: Double?
    package var maxGasPrice: Double?
    package var gas: UInt64?
    package var txPriority: Int?
    package var keyName: String?
    package var signerAddress: String?
    package var feeGranterAddress: String?

    package init(gasPrice: Double? = nil, maxGasPrice: Double? = nil, gas: UInt64? = nil, txPriority: Int? = nil,
                keyName: String? = nil, signerAddress: String? = nil, feeGranterAddress: String? = nil) {
        self.gasPrice = gasPrice
        self.maxGasPrice = maxGasPrice
        self.gas = gas
        self.txPriority = txPriority
        self.keyName = keyName
        self.signerAddress = signerAddress
        self.feeGranterAddress = feeGranterAddress
    }

    /// celestia-node's `DefaultMaxGasPrice`: 100 × celestia-app's `DefaultMinGasPrice` (0.004 utia).
    package static let celestiaDefaultMaxGasPrice = 0.4

    package static let fieldNames = ["fee_granter_address", "gas", "gas_price", "is_gas_price_set", "key_name",
                                    "max_gas_price", "signer_address", "tx_priority"]
    package static let priorities = ["low": 1, "medium": 2, "high": 3]

    /// Parses a TxConfig JSON object (`--da.submit-options`). Unknown fields are an error: a
    /// misspelt `gas_price` silently dropped is a submission paying the estimate instead.
    package init(json text: String) throws(Failure) {
        self.init()
        let trimmed = text.trimmingWhitespace()
        if trimmed.isEmpty { return }
        let raw: RawTxConfig
        do {
            raw = try JSONDecoder().decode(RawTxConfig.self, from: Data(trimmed.utf8))
        } catch let failure as Failure {
            throw failure
        } catch let DecodingError.typeMismatch(_, context) {
            let key = context.codingPath.last?.stringValue ?? "the value"
            throw Failure(key == "the value" ? "expected a JSON object" : "\(key) has the wrong type")
        } catch DecodingError.dataCorrupted {
            throw Failure("not valid JSON")
        } catch {
            throw Failure("not valid JSON: \(error)")
        }
        let fields = raw.present
        func number(_ key: String) -> Double? { raw.numbers[key] }
        func string(_ key: String) -> String? { raw.strings[key].flatMap { $0.isEmpty ? nil : $0 } }
        let isSet: Bool
        isSet = raw.isGasPriceSet ?? fields.contains("gas_price")
        if let price = number("gas_price"), isSet, price >= 0 { gasPrice = price }
        if let price = number("gas_price"), isSet, price < 0, price != -1 {
            throw Failure("gas_price must be ≥ 0 (or -1: estimate)")
        }
        if let max = number("max_gas_price") {
            guard max >= 0 else { throw Failure("max_gas_price must be ≥ 0") }
            maxGasPrice = max == 0 ? nil : max
        }
        if let g = number("gas") {
            guard g >= 0, g == g.rounded(), g < 1e18 else { throw Failure("gas must be a whole number ≥ 0") }
            gas = g == 0 ? nil : UInt64(g)
        }
        if let p = number("tx_priority") {
            guard p == p.rounded(), (0...3).contains(Int(p)) else { throw Failure("tx_priority must be 1 (low), 2 (medium) or 3 (high)") }
            txPriority = p == 0 ? nil : Int(p)
        }
        keyName = string("key_name")
        if let a = string("signer_address") {
            try Bech32.check(a, field: "signer_address")
            signerAddress = a
        }
        if let a = string("fee_granter_address") {
            try Bech32.check(a, field: "fee_granter_address")
            feeGranterAddress = a
        }
    }

    /// The JSON object sent as `blob.Submit`'s second parameter, with celestia-node's field names;
    /// what is not set is left out so that the DA node applies its own defaults.
    package var json: String {
        var parts: [String] = []
        if let f = feeGranterAddress { parts.append("\"fee_granter_address\":\(jsonQuoted(f))") }
        if let g = gas { parts.append("\"gas\":\(g)") }
        if let p = gasPrice {
            parts.append("\"gas_price\":\(Self.decimal(p))")
            parts.append("\"is_gas_price_set\":true")
        }
        if let k = keyName { parts.append("\"key_name\":\(jsonQuoted(k))") }
        if let m = maxGasPrice { parts.append("\"max_gas_price\":\(Self.decimal(m))") }
        if let s = signerAddress { parts.append("\"signer_address\":\(jsonQuoted(s))") }
        if let t = txPriority { parts.append("\"tx_priority\":\(t)") }
        return "{" + parts.joined(separator: ",") + "}"
    }

    /// A JSON number for a price: the shortest form that reads back the same (an exponent is valid JSON).
    package static func decimal(_ v: Double) -> String {
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return "\(v)"
    }

    /// The JSON as decoded, before the checks above.
    private struct RawTxConfig: Decodable {
        var present: Set<String> = []
        var numbers: [String: Double] = [:]
        var strings: [String: String] = [:]
        var isGasPriceSet: Bool?

        struct Key: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }

        init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: Key.self)
            for key in c.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) {
                let name = key.stringValue
                guard DATxConfig.fieldNames.contains(name) else {
                    throw Failure("unknown field \"\(name)\" (celestia-node's TxConfig has \(DATxConfig.fieldNames.joined(separator: ", ")))")
                }
                present.insert(name)
                switch name {
                case "is_gas_price_set":
                    isGasPriceSet = try c.decode(Bool.self, forKey: key)
                case "key_name", "signer_address", "fee_granter_address":
                    strings[name] = try c.decode(String.self, forKey: key)
                default:
                    numbers[name] = try c.decode(Double.self, forKey: key)
                }
            }
        }
    }

    package struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        package let description: String
        init(_ description: String) { self.description = description }
    }
}

/// Bech32 (BIP 173) address checks, for the `celestia1…` addresses an operator configures: a
/// typo caught at start beats a submission the DA node refuses hours later.
package enum Bech32 {
    private static let charset = Array("qpzry9x8gf2tvdw0s3jn54khce6mua7l")
    private static let generator: [UInt32] = [0x3b6a_57b2, 0x2650_8e6d, 0x1ea1_19fa, 0x3d42_33dd, 0x2a14_62b3]

    package static func check(_ address: String, field: String) throws(DATxConfig.Failure) {
        let lower = address.lowercased()
        guard lower == address else { throw DATxConfig.Failure("\(field) \"\(address)\" must be lower case") }
        guard let sep = lower.lastIndex(of: "1"), sep != lower.startIndex else {
            throw DATxConfig.Failure("\(field) \"\(address)\" is not a bech32 address (no \"1\" separator)")
        }
        let hrp = String(lower[..<sep])
        guard hrp == "celestia" else {
            throw DATxConfig.Failure("\(field) \"\(address)\" is not a Celestia account address (prefix \"\(hrp)\", expected \"celestia\")")
        }
        var values: [UInt32] = []
        for c in lower[lower.index(after: sep)...] {
            guard let i = charset.firstIndex(of: c) else {
                throw DATxConfig.Failure("\(field) \"\(address)\" has \"\(c)\", which bech32 does not use")
            }
            values.append(UInt32(i))
        }
        guard values.count >= 6 else { throw DATxConfig.Failure("\(field) \"\(address)\" is too short") }
        var expanded = hrp.unicodeScalars.map { $0.value >> 5 }
        expanded.append(0)
        expanded += hrp.unicodeScalars.map { $0.value & 31 }
        guard polymod(expanded + values) == 1 else {
            throw DATxConfig.Failure("\(field) \"\(address)\" has a wrong checksum (a typo?)")
        }
    }

    private static func polymod(_ values: [UInt32]) -> UInt32 {
        var chk: UInt32 = 1
        for v in values {
            let top = chk >> 25
            chk = (chk & 0x1ff_ffff) << 5 ^ v
            for i in 0..<5 where (top >> i) & 1 == 1 { chk ^= generator[i] }
        }
        return chk
    }
}
