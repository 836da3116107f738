import Chain
import Crypto
import Foundation
import HTTPClient
import Testing
@testable import EVM

@Suite struct EngineJWTTests {
    /// The token is HS256 over `header.claims` with the secret, base64url without padding, and
    /// carries iat (and exp an hour later), as execution-apis authentication.md asks.
    @Test func tokenIsHS256WithIat() throws {
        let secret = [UInt8](repeating: 0x11, count: 32)
        let token = EngineJWT(secret: secret).token(issuedAt: 1_700_000_000)
        let parts = token.split(separator: ".").map(String.init)
        #expect(parts.count == 3)
        func decode(_ s: String) -> [UInt8] {
            var b = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
            while b.count % 4 != 0 { b += "=" }
            return [UInt8](Data(base64Encoded: b)!)
        }
        #expect(String(decoding: decode(parts[0]), as: UTF8.self) == #"{"alg":"HS256","typ":"JWT"}"#)
        #expect(String(decoding: decode(parts[1]), as: UTF8.self) == #"{"iat":1700000000,"exp":1700003600}"#)
        let mac = HMAC<SHA256>.authenticationCode(for: Array((parts[0] + "." + parts[1]).utf8), using: SymmetricKey(data: secret))
        #expect(decode(parts[2]) == Array(mac))
    }

    @Test func secretFileIsReadAsEvNodeDoes() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("jwt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("jwt.hex").path
        try "  0xABcd01\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(try EngineJWT.readSecret(path: file) == [0xab, 0xcd, 0x01])
        try "\n".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(throws: EVMSetupError.secretFile(path: file, reason: "is empty")) { try EngineJWT.readSecret(path: file) }
        try "zz".write(toFile: file, atomically: true, encoding: .utf8)
        #expect(throws: EVMSetupError.self) { try EngineJWT.readSecret(path: file) }
        #expect(throws: EVMSetupError.self) { try EngineJWT.readSecret(path: dir.appendingPathComponent("none").path) }
    }
}

@Suite struct JSONValueTests {
    @Test func payloadsRoundTripFieldForField() throws {
        let text = #"{"executionPayload":{"blockHash":"0xab","transactions":["0x01"],"n":12,"ok":true,"x":null},"blockValue":"0x0"}"#
        let value = try #require(JSONValue.parse(Array(text.utf8)))
        #expect(value["executionPayload"]?["blockHash"]?.stringValue == "0xab")
        #expect(JSONValue.parse(Array(value.encoded().utf8)) == value)
        #expect(value["executionPayload"]?["n"] == .int(12))
    }

    @Test func malformedJSONIsRefused() {
        for bad in ["", "{", "{\"a\":}", "[1,]", "nul", "{\"a\":1} x", "\"\u{01}\""] {
            #expect(JSONValue.parse(Array(bad.utf8)) == nil, "accepted \(bad)")
        }
    }

    @Test func payloadAttributeNumbersAreJSONNumbers() throws {
        // ev-reth declares timestamp and gasLimit as plain u64: they must not be hex strings.
        let attrs = PayloadAttributes(timestamp: 1_700_000_000, prevRandao: EthHash([UInt8](repeating: 1, count: 32)),
                                      suggestedFeeRecipient: EthBytes([UInt8](repeating: 2, count: 20)),
                                      parentBeaconBlockRoot: EthHash([UInt8](repeating: 0, count: 32)),
                                      transactions: [EthBytes([0xab])], gasLimit: 30_000_000)
        let object = try #require(JSONValue.parse(Array(try JSONEncoder().encode(attrs))))
        #expect(object["timestamp"] == .int(1_700_000_000) && object["gasLimit"] == .int(30_000_000))
        #expect(object["transactions"] == .array([.string("0xab")]) && object["withdrawals"] == .array([]))
        #expect(object["slotNumber"] == nil, "slotNumber is forkchoiceUpdatedV4's only")
        var v4 = attrs
        v4.slotNumber = EthQuantity(26)
        #expect(JSONValue.parse(Array(try JSONEncoder().encode(v4)))?["slotNumber"] == .string("0x1a"))
    }
}

/// The Engine API answers as typed values: what decodes, and what an EL gets wrong named by its
/// field path.
@Suite struct EngineTypesTests {
    func reply(_ result: String, id: Int64 = 7) -> HTTPReply {
        HTTPReply(status: 200, body: Array(#"{"jsonrpc":"2.0","id":\#(id),"result":\#(result)}"#.utf8))
    }

    func decode<R: Decodable & Sendable>(_ reply: HTTPReply, as type: R.Type) throws(ExecutionError) -> RPCOutcome<R> {
        try EngineRPCClient.decode(reply, as: type, engine: "EL x", method: "m", id: 7, height: 5)
    }

    @Test func aBuiltPayloadGoesBackAsTheELSentIt() throws {
        let hash = "0x" + String(repeating: "ab", count: 32)
        let root = "0x" + String(repeating: "cd", count: 32)
        let payload = #"{"blockHash":"\#(hash)","stateRoot":"\#(root)","blockNumber":"0x5","transactions":["0x01"],"futureField":{"x":[1,true,null]}}"#
        let outcome = try decode(reply(#"{"executionPayload":\#(payload),"blockValue":"0x0","executionRequests":["0x00aa"]}"#),
                                 as: PayloadEnvelopeAnswer.self)
        guard case .result(let envelope) = outcome else { Issue.record("no result"); return }
        let built = try EngineAnswers.builtPayload(envelope, height: 5)
        #expect(built.fields.blockHash.bytes == [UInt8](repeating: 0xab, count: 32))
        #expect(built.newPayloadVersion == 4)
        // Every field, known or not, is handed back in newPayload.
        #expect(sorted(built.raw) == sorted(JSONValue.parse(Array(payload.utf8))!))
        let params = try #require(JSONValue.parse(Array(try JSONEncoder().encode(
            RPCParams(built.raw, [EthHash](), EthHash([UInt8](repeating: 0, count: 32)), envelope.executionRequests ?? [JSONValue]())))))
        guard case .array(let items) = params else { Issue.record("params are not an array"); return }
        #expect(items.count == 4 && sorted(items[0]) == sorted(JSONValue.parse(Array(payload.utf8))!))
        #expect(items[3] == .array([.string("0x00aa")]))
        // A payload of another height is refused.
        #expect(throws: EngineAnswers.Unusable.self) { try EngineAnswers.builtPayload(envelope, height: 6) }
    }

    @Test func aWrongFieldIsNamedByItsPath() {
        let cases: [(String, String)] = [
            (#"{"payloadStatus":{"latestValidHash":null}}"#, "payloadStatus.status missing"),
            (#"{"payloadStatus":{"status":5}}"#, "payloadStatus.status: expected a string"),
            (#"{"payloadStatus":{"status":"VALID"},"payloadId":"0xzz"}"#, "payloadId: not 0x-prefixed hex"),
        ]
        for (result, expected) in cases {
            #expect(throws: ExecutionError.self) { try decode(reply(result), as: ForkchoiceUpdatedAnswer.self) }
            do {
                _ = try decode(reply(result), as: ForkchoiceUpdatedAnswer.self)
            } catch {
                #expect(error.reason.contains(expected), "\(error.reason)")
            }
        }
        do {
            _ = try decode(reply(#"{"number":"0x1","hash":"0x12","stateRoot":"0x12","timestamp":"0x1","gasLimit":"0x1"}"#),
                           as: ELBlock?.self)
            Issue.record("a 1-byte hash was accepted")
        } catch {
            #expect(error.reason.contains("hash: not 32 bytes of 0x-hex"), "\(error.reason)")
        }
    }

    @Test func theEnvelopeIsCheckedBeforeTheResult() throws {
        #expect(try { if case .result(nil) = try decode(reply("null"), as: ELBlock?.self) { true } else { false } }())
        let error = Array(#"{"jsonrpc":"2.0","id":7,"error":{"code":-38001,"message":"Unknown payload"}}"#.utf8)
        guard case .error(let e) = try decode(HTTPReply(status: 200, body: error), as: PayloadEnvelopeAnswer.self) else {
            Issue.record("the error object was not read"); return
        }
        #expect(e.code == RPCErrorObject.unknownPayload && e.message == "Unknown payload")
        let failures: [(HTTPReply, String, ExecutionError.Kind)] = [
            (reply("\"0x1\"", id: 8), "carries id 8, the request had 7", .rejected),
            (HTTPReply(status: 200, body: Array(#"{"jsonrpc":"2.0","id":7}"#.utf8)), "neither result nor error", .rejected),
            (HTTPReply(status: 200, body: Array(#"{"id":7,"error":{"code":"x"}}"#.utf8)), "without a numeric code", .rejected),
            (HTTPReply(status: 200, body: Array("this is not JSON {".utf8)), "answer is not a JSON-RPC object", .rejected),
            (HTTPReply(status: 200, body: Array("[1,2]".utf8)), "answer is not a JSON-RPC object", .rejected),
            (HTTPReply(status: 502, body: Array("bad gateway".utf8)), "HTTP 502", .unavailable),
        ]
        for (answer, text, kind) in failures {
            do {
                _ = try decode(answer, as: String.self)
                Issue.record("accepted \(text)")
            } catch {
                #expect(error.reason.contains(text) && error.kind == kind, "\(error.reason)")
            }
        }
    }

    /// Object keys in a canonical order (a decoded object's key order is the decoder's).
    func sorted(_ value: JSONValue) -> JSONValue {
        switch value {
        case .object(let fields): return .object(fields.map { ($0.0, sorted($0.1)) }.sorted { $0.0 < $1.0 })
        case .array(let items): return .array(items.map(sorted))
        default: return value
        }
    }
}

@Suite struct ExecMetaTests {
    @Test func recordRoundTrips() throws {
        let meta = ExecMeta(stage: .promoted, payloadID: [1, 2, 3, 4, 5, 6, 7, 8], timestamp: 1_700_000_000,
                            txsHash: [UInt8](repeating: 9, count: 32), blockHash: [UInt8](repeating: 7, count: 32),
                            stateRoot: [UInt8](repeating: 5, count: 32))
        #expect(ExecMeta(decoding: meta.encoded()) == meta)
        #expect(ExecMeta(decoding: Array(meta.encoded().dropLast())) == nil)
        #expect(ExecMeta.key(5) == [UInt8(ascii: "e"), 0, 0, 0, 0, 0, 0, 0, 5])
    }
}
