import Foundation

// The Engine API and eth JSON-RPC messages evnode exchanges with an execution client, as
// `Codable` types (execution-apis: paris/cancun/prague; ev-reth's payload attributes extension).
// A field the EL gets wrong fails decoding with its path (`payloadStatus.status`), and the
// executor names the EL, the method and the height around it.

/// `DATA`: `0x`-prefixed hex of any length.
struct EthBytes: Codable, Sendable, Equatable {
    var bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        guard let bytes = EthHex.decodeData(try container.decode(String.self)) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not 0x-prefixed hex")
        }
        self.bytes = bytes
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(EthHex.data(bytes))
    }
}

/// A 32-byte `DATA` (block hash, state root, prevRandao).
struct EthHash: Codable, Sendable, Equatable {
    var bytes: [UInt8]

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        guard let bytes = EthHex.decodeData(try container.decode(String.self)), bytes.count == 32 else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not 32 bytes of 0x-hex")
        }
        self.bytes = bytes
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(EthHex.data(bytes))
    }
}

/// `QUANTITY`: a `0x`-prefixed hex number.
struct EthQuantity: Codable, Sendable, Equatable {
    var value: UInt64

    init(_ value: UInt64) { self.value = value }

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        guard let value = EthHex.decodeQuantity(try container.decode(String.self)) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a 0x quantity")
        }
        self.value = value
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(EthHex.quantity(value))
    }
}

/// `ForkchoiceStateV1`.
struct ForkchoiceState: Encodable, Sendable {
    var headBlockHash: EthHash
    var safeBlockHash: EthHash
    var finalizedBlockHash: EthHash
}

/// `PayloadAttributesV3` with ev-reth's extension (the block's transactions and gas limit) and,
/// for forkchoiceUpdatedV4, `slotNumber`. ev-reth declares `timestamp` and `gasLimit` as plain
/// numbers; ev-node sends them so.
struct PayloadAttributes: Encodable, Sendable {
    var timestamp: UInt64
    var prevRandao: EthHash
    var suggestedFeeRecipient: EthBytes
    var withdrawals: [EthBytes] = []
    var parentBeaconBlockRoot: EthHash
    var transactions: [EthBytes]
    var gasLimit: UInt64
    var slotNumber: EthQuantity?

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(timestamp, forKey: .timestamp)
        try c.encode(prevRandao, forKey: .prevRandao)
        try c.encode(suggestedFeeRecipient, forKey: .suggestedFeeRecipient)
        try c.encode(withdrawals, forKey: .withdrawals)
        try c.encode(parentBeaconBlockRoot, forKey: .parentBeaconBlockRoot)
        try c.encode(transactions, forKey: .transactions)
        try c.encode(gasLimit, forKey: .gasLimit)
        try c.encodeIfPresent(slotNumber, forKey: .slotNumber)
    }

    private enum CodingKeys: String, CodingKey {
        case timestamp, prevRandao, suggestedFeeRecipient, withdrawals, parentBeaconBlockRoot, transactions, gasLimit, slotNumber
    }
}

/// `PayloadStatusV1`: forkchoiceUpdated's `payloadStatus`, newPayload's result.
struct PayloadStatusAnswer: Decodable, Sendable, Equatable {
    var status: String
    var latestValidHash: String?
    var validationError: String?
}

/// forkchoiceUpdated's result.
struct ForkchoiceUpdatedAnswer: Decodable, Sendable {
    var payloadStatus: PayloadStatusAnswer
    var payloadId: EthBytes?
}

/// The fields of a built `ExecutionPayload` the executor reads. The payload itself goes back to
/// the EL in newPayload as the EL sent it (`BuiltPayload.raw`), so a field of a later fork is
/// never lost on the way.
struct ExecutionPayloadFields: Decodable, Sendable {
    var blockHash: EthHash
    var stateRoot: EthHash
    var blockNumber: EthQuantity?
    /// Present in Amsterdam's payloads: newPayloadV5.
    var slotNumber: JSONValue?
    var blockAccessList: JSONValue?
}

/// getPayload's `executionPayload`: the fields read, and the payload as received.
struct BuiltPayload: Decodable, Sendable {
    var fields: ExecutionPayloadFields
    var raw: JSONValue

    init(from decoder: any Decoder) throws {
        fields = try ExecutionPayloadFields(from: decoder)
        raw = try JSONValue(from: decoder)
    }

    /// newPayloadV5 for an Amsterdam payload, V4 before.
    var newPayloadVersion: Int { fields.slotNumber != nil || fields.blockAccessList != nil ? 5 : 4 }
}

/// getPayload's result (`ExecutionPayloadEnvelope`).
struct PayloadEnvelopeAnswer: Decodable, Sendable {
    var executionPayload: BuiltPayload
    /// Required by every getPayload version; the executor does not read it.
    var blockValue: JSONValue
    /// Prague's execution requests, handed back in newPayload.
    var executionRequests: [JSONValue]?
}

/// `eth_getBlockByNumber`'s result (without transactions): the fields the executor reads.
extension ELBlock: Decodable {
    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(number: try c.decode(EthQuantity.self, forKey: .number).value,
                  hash: try c.decode(EthHash.self, forKey: .hash).bytes,
                  stateRoot: try c.decode(EthHash.self, forKey: .stateRoot).bytes,
                  timestamp: try c.decode(EthQuantity.self, forKey: .timestamp).value,
                  gasLimit: try c.decode(EthQuantity.self, forKey: .gasLimit).value)
    }

    private enum CodingKeys: String, CodingKey {
        case number, hash, stateRoot, timestamp, gasLimit
    }
}

/// The positional `params` of a JSON-RPC request: each element encoded as itself.
package struct RPCParams: Encodable, Sendable {
    let items: [any Encodable & Sendable]

    init(_ items: any Encodable & Sendable...) { self.items = items }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.unkeyedContainer()
        for item in items { try c.encode(item) }
    }
}

/// An absent optional parameter (forkchoiceUpdated without attributes): JSON `null`.
struct JSONNull: Encodable, Sendable {
    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encodeNil()
    }
}

extension DecodingError {
    /// The failure as an operator reads it: the field's path and what is wrong with it.
    var fieldDescription: String {
        func path(_ keys: [any CodingKey]) -> String {
            let text = keys.map { $0.intValue.map { "[\($0)]" } ?? "." + $0.stringValue }.joined()
            return text.hasPrefix(".") ? String(text.dropFirst()) : (text.isEmpty ? "the answer" : text)
        }
        switch self {
        case .keyNotFound(let key, let context):
            return "\(path(context.codingPath + [key])) missing"
        case .valueNotFound(_, let context):
            return "\(path(context.codingPath)) is null"
        case .typeMismatch(let type, let context):
            return "\(path(context.codingPath)): expected \(type == String.self ? "a string" : "\(type)")"
        case .dataCorrupted(let context):
            return "\(path(context.codingPath)): \(context.debugDescription)"
        @unknown default:
            return "\(self)"
        }
    }
}
