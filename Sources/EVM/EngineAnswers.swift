import Chain
import HTTPClient

/// How the executor reads the results the EL answers with: functions of the JSON alone, so that
/// each is checked the same way wherever it is used. A failure is the reason text; the executor
/// names the EL, the method and the height around it.
enum EngineAnswers {
    struct Unusable: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    /// `eth_getBlockByNumber`'s result for `tag` (nil when the EL answered null).
    static func block(_ result: JSONValue, tag: String) throws(Unusable) -> ELBlock? {
        if result.isNull { return nil }
        func quantity(_ key: String) throws(Unusable) -> UInt64 {
            guard let text = result[key]?.stringValue, let v = EthHex.decodeQuantity(text) else {
                throw Unusable("block \(tag): field \(key) missing or not a 0x quantity")
            }
            return v
        }
        func hash(_ key: String) throws(Unusable) -> [UInt8] {
            guard let text = result[key]?.stringValue, let v = EthHex.decodeData(text), v.count == 32 else {
                throw Unusable("block \(tag): field \(key) missing or not 32 bytes of 0x-hex")
            }
            return v
        }
        return ELBlock(number: try quantity("number"), hash: try hash("hash"), stateRoot: try hash("stateRoot"),
                       timestamp: try quantity("timestamp"), gasLimit: try quantity("gasLimit"))
    }

    /// `txpoolExt_getTxs`'s result: the transactions in order, empty ones skipped, stopping before
    /// `max` transactions or `maxBytes` bytes would be exceeded.
    static func transactions(_ result: JSONValue, max: Int, maxBytes: Int) throws(Unusable) -> [[UInt8]] {
        guard case .array(let items) = result else {
            throw Unusable("expected an array of 0x-hex transactions, got \(result.encoded().prefix(120))")
        }
        var txs: [[UInt8]] = []
        var bytes = 0
        for item in items {
            guard let text = item.stringValue, let tx = EthHex.decodeData(text) else {
                throw Unusable("entry \(item.encoded().prefix(80)) is not 0x-prefixed hex")
            }
            if txs.count >= max || bytes + tx.count > maxBytes { break }
            if tx.isEmpty { continue }
            txs.append(tx)
            bytes += tx.count
        }
        return txs
    }

    enum PayloadStatus: Sendable, Equatable {
        case valid
        /// SYNCING or ACCEPTED: the EL is not ready to say.
        case notReady(String)
        /// INVALID, INVALID_BLOCK_HASH or anything else, with the EL's details.
        case refused(String)
    }

    /// A `payloadStatus` (forkchoiceUpdated) or newPayload result.
    static func payloadStatus(_ status: JSONValue?) throws(Unusable) -> PayloadStatus {
        guard let status, let text = status["status"]?.stringValue else {
            throw Unusable("the answer has no payload status")
        }
        switch text {
        case "VALID": return .valid
        case "SYNCING", "ACCEPTED": return .notReady(text)
        default:
            let detail = status["validationError"]?.stringValue.map { ": \($0)" } ?? ""
            let lvh = status["latestValidHash"]?.stringValue.map { " (latestValidHash \($0))" } ?? ""
            return .refused("payload status \(text)\(detail)\(lvh)")
        }
    }

    /// `evolve_getNextProposer`'s result: one 32-byte word, `0x` and exactly 64 hex digits (ev-reth
    /// answers a `bytes32`; ev-node's proposer addresses are SHA-256 of the key, 32 bytes). The
    /// length is checked before anything is decoded.
    static func proposerWord(_ result: JSONValue) throws(Unusable) -> [UInt8] {
        guard let text = result.stringValue else {
            throw Unusable("expected a 32-byte 0x-hex word, got \(result.encoded().prefix(80))")
        }
        guard text.utf8.count == 66, let word = EthHex.decodeData(text), word.count == 32 else {
            throw Unusable("expected a 32-byte 0x-hex word, got \(text.utf8.count) characters: \(text.prefix(80))")
        }
        return word
    }

    /// forkchoiceUpdated's `payloadId`: 8 bytes, or nil when the EL gave none.
    static func payloadID(_ result: JSONValue) throws(Unusable) -> [UInt8]? {
        guard let id = result["payloadId"], !id.isNull else { return nil }
        guard let text = id.stringValue, let bytes = EthHex.decodeData(text), bytes.count == 8 else {
            throw Unusable("payloadId \(id.encoded()) is not 8 bytes of 0x-hex")
        }
        return bytes
    }

    /// getPayload's envelope: an object with a `blockValue`.
    static func payloadEnvelope(_ envelope: JSONValue) throws(Unusable) -> JSONValue {
        guard case .object = envelope, envelope["blockValue"] != nil else {
            throw Unusable("the answer is not a payload envelope with blockValue")
        }
        return envelope
    }

    /// The block the EL built for `height`, from getPayload's envelope.
    static func builtPayload(_ envelope: JSONValue, height: UInt64) throws(Unusable)
        -> (payload: JSONValue, blockHash: [UInt8], stateRoot: [UInt8]) {
        guard let payload = envelope["executionPayload"], case .object = payload,
              let hashText = payload["blockHash"]?.stringValue, let blockHash = EthHex.decodeData(hashText), blockHash.count == 32,
              let rootText = payload["stateRoot"]?.stringValue, let stateRoot = EthHex.decodeData(rootText), stateRoot.count == 32 else {
            throw Unusable("the answer has no executionPayload with a 32-byte blockHash and stateRoot")
        }
        if let number = payload["blockNumber"]?.stringValue.flatMap(EthHex.decodeQuantity), number != height {
            throw Unusable("the EL built block number \(number), expected \(height)")
        }
        return (payload, blockHash, stateRoot)
    }
}

/// Runs the executor's reading of an EL's answer on an answer held in memory: the entry point of
/// the Engine API fuzz target (`Fuzz/Targets`). The node never calls it.
package enum EngineAnswerDrivers {
    /// The result kinds the executor reads.
    package enum Reading: CaseIterable, Sendable {
        case block, transactions, forkchoice, payload, newPayloadStatus
    }

    /// `reply` to request `id` as `EngineRPCClient` decodes it, then its result read as `reading`
    /// (for the block being built at `height`). Returns what went wrong, nil when the answer was
    /// usable.
    package static func read(_ reply: HTTPReply, id: Int64, as reading: Reading, height: UInt64) -> String? {
        let outcome: RPCOutcome
        do throws(ExecutionError) {
            outcome = try EngineRPCClient.decode(reply, engine: "EL http://el.invalid", method: "\(reading)", id: id,
                                                 height: height)
        } catch {
            return error.description
        }
        guard case .result(let result) = outcome else { return "JSON-RPC error" }
        do throws(EngineAnswers.Unusable) {
            switch reading {
            case .block:
                _ = try EngineAnswers.block(result, tag: EthHex.quantity(height))
            case .transactions:
                _ = try EngineAnswers.transactions(result, max: 1000, maxBytes: 1 << 20)
            case .forkchoice:
                _ = try EngineAnswers.payloadStatus(result["payloadStatus"])
                _ = try EngineAnswers.payloadID(result)
            case .payload:
                _ = try EngineAnswers.builtPayload(try EngineAnswers.payloadEnvelope(result), height: height)
            case .newPayloadStatus:
                _ = try EngineAnswers.payloadStatus(result)
            }
            return nil
        } catch {
            return error.description
        }
    }
}
