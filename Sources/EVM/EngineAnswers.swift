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

    /// `txpoolExt_getTxs`'s result: the transactions in order, empty ones skipped, stopping before
    /// `max` transactions or `maxBytes` bytes would be exceeded.
    static func transactions(_ result: [EthBytes], max: Int, maxBytes: Int) -> [[UInt8]] {
        var txs: [[UInt8]] = []
        var bytes = 0
        for item in result {
            let tx = item.bytes
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
    static func payloadStatus(_ status: PayloadStatusAnswer) -> PayloadStatus {
        switch status.status {
        case "VALID": return .valid
        case "SYNCING", "ACCEPTED": return .notReady(status.status)
        default:
            let detail = status.validationError.map { ": \($0)" } ?? ""
            let lvh = status.latestValidHash.map { " (latestValidHash \($0))" } ?? ""
            return .refused("payload status \(status.status)\(detail)\(lvh)")
        }
    }

    /// `evolve_getNextProposer`'s result: one 32-byte word, `0x` and exactly 64 hex digits (ev-reth
    /// answers a `bytes32`; ev-node's proposer addresses are SHA-256 of the key, 32 bytes). The
    /// length is checked before anything is decoded.
    static func proposerWord(_ text: String) throws(Unusable) -> [UInt8] {
        guard text.utf8.count == 66, let word = EthHex.decodeData(text), word.count == 32 else {
            throw Unusable("expected a 32-byte 0x-hex word, got \(text.utf8.count) characters: \(text.prefix(80))")
        }
        return word
    }

    /// forkchoiceUpdated's `payloadId`: 8 bytes, or nil when the EL gave none.
    static func payloadID(_ answer: ForkchoiceUpdatedAnswer) throws(Unusable) -> [UInt8]? {
        guard let id = answer.payloadId else { return nil }
        guard id.bytes.count == 8 else {
            throw Unusable("payloadId \(EthHex.data(id.bytes)) is not 8 bytes of 0x-hex")
        }
        return id.bytes
    }

    /// The block the EL built for `height`, from getPayload's envelope.
    static func builtPayload(_ envelope: PayloadEnvelopeAnswer, height: UInt64) throws(Unusable) -> BuiltPayload {
        let payload = envelope.executionPayload
        if let number = payload.fields.blockNumber?.value, number != height {
            throw Unusable("the EL built block number \(number), expected \(height)")
        }
        return payload
    }
}

/// Runs the executor's reading of an EL's answer on an answer held in memory: the entry point of
/// the Engine API fuzz target (`Fuzz/Targets`). The node never calls it.
package enum EngineAnswerDrivers {
    /// The result kinds the executor reads.
    package enum Reading: CaseIterable, Sendable {
        case block, transactions, forkchoice, payload, newPayloadStatus, proposerWord
    }

    /// `reply` to request `id` as `EngineRPCClient` decodes it, then its result read as `reading`
    /// (for the block being built at `height`). Returns what went wrong, nil when the answer was
    /// usable.
    package static func read(_ reply: HTTPReply, id: Int64, as reading: Reading, height: UInt64) -> String? {
        func decode<R: Decodable & Sendable>(_ type: R.Type) throws(ExecutionError) -> R? {
            let outcome = try EngineRPCClient.decode(reply, as: type, engine: "EL http://el.invalid", method: "\(reading)",
                                                     id: id, height: height)
            guard case .result(let result) = outcome else { return nil }
            return result
        }
        do {
            switch reading {
            case .block:
                guard try decode(ELBlock?.self) != nil else { return "JSON-RPC error" }
            case .transactions:
                guard let txs = try decode([EthBytes].self) else { return "JSON-RPC error" }
                _ = EngineAnswers.transactions(txs, max: 1000, maxBytes: 1 << 20)
            case .forkchoice:
                guard let answer = try decode(ForkchoiceUpdatedAnswer.self) else { return "JSON-RPC error" }
                _ = EngineAnswers.payloadStatus(answer.payloadStatus)
                _ = try EngineAnswers.payloadID(answer)
            case .payload:
                guard let envelope = try decode(PayloadEnvelopeAnswer.self) else { return "JSON-RPC error" }
                _ = try EngineAnswers.builtPayload(envelope, height: height)
            case .newPayloadStatus:
                guard let status = try decode(PayloadStatusAnswer.self) else { return "JSON-RPC error" }
                _ = EngineAnswers.payloadStatus(status)
            case .proposerWord:
                guard let word = try decode(String.self) else { return "JSON-RPC error" }
                _ = try EngineAnswers.proposerWord(word)
            }
            return nil
        } catch {
            return "\(error)"
        }
    }
}
