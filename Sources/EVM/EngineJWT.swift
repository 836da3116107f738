import Crypto
import Foundation

/// The Engine API's authentication (execution-apis `authentication.md`): an HS256 JWT minted
/// for every request, with `iat` (the EL accepts it within ±60 s) and, as ev-node sends, `exp`
/// an hour later.
package struct EngineJWT: Sendable {
    private let key: SymmetricKey

    package init(secret: [UInt8]) {
        key = SymmetricKey(data: secret)
    }

    /// `Authorization` header value for a request made at `now`.
    package func bearer(now: Date = Date()) -> String {
        "Bearer " + token(issuedAt: UInt64(max(0, now.timeIntervalSince1970)))
    }

    package func token(issuedAt iat: UInt64) -> String {
        let header = Self.base64URL(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let claims = Self.base64URL(Array("{\"iat\":\(iat),\"exp\":\(iat + 3600)}".utf8))
        let input = header + "." + claims
        let mac = HMAC<SHA256>.authenticationCode(for: Array(input.utf8), using: key)
        return input + "." + Self.base64URL(Array(mac))
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    /// Reads a secret file as ev-node does: whitespace trimmed, optional `0x`, hex. An empty
    /// or non-hex file is an error naming the file.
    package static func readSecret(path: String) throws(EVMSetupError) -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .secretFile(path: path, reason: "cannot be read")
        }
        var text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if text.hasPrefix("0x") || text.hasPrefix("0X") { text.removeFirst(2) }
        guard !text.isEmpty else { throw .secretFile(path: path, reason: "is empty") }
        guard let secret = EthHex.decodeHex(text) else {
            throw .secretFile(path: path, reason: "is not hex (expected e.g. the output of `openssl rand -hex 32`)")
        }
        return secret
    }
}

/// The EVM executor cannot be set up from its configuration.
package enum EVMSetupError: Error, Sendable, Equatable, CustomStringConvertible {
    case secretFile(path: String, reason: String)
    case client(String)

    package var description: String {
        switch self {
        case let .secretFile(path, reason): return "--evm.jwt-secret-file \(path): \(reason)"
        case let .client(reason): return "EVM executor: \(reason)"
        }
    }
}
