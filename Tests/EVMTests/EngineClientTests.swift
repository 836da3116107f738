import Crypto
import Foundation
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

    @Test func payloadAttributeNumbersAreJSONNumbers() {
        // ev-reth declares timestamp and gasLimit as plain u64: they must not be hex strings.
        let attrs = JSONValue.object([("timestamp", .int(1_700_000_000)), ("gasLimit", .int(30_000_000))])
        #expect(attrs.encoded() == #"{"timestamp":1700000000,"gasLimit":30000000}"#)
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
