import Primitives
import Crypto
import Foundation

/// A Celestia namespace (SPEC §5): one version byte and a 28-byte id, 29 bytes in all.
/// evnode uses version 0, whose id must begin with 18 zero bytes.
package struct DANamespace: Hashable, Sendable, CustomStringConvertible {
    package static let size = 29
    /// Version-0 ids carry 18 leading zero bytes and 10 bytes of user data.
    static let versionZeroPrefix = 18

    package let bytes: [UInt8]

    /// The namespace named `name`: `00` ‖ 18 zero bytes ‖ the first 10 bytes of SHA-256(name).
    package init(name: String) {
        let digest = SHA256.hash(data: Array(name.utf8))
        var b = [UInt8](repeating: 0, count: 1 + Self.versionZeroPrefix)
        b.append(contentsOf: digest.prefix(10))
        self.bytes = b
    }

    package enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case wrongSize(Int)
        case unsupportedVersion(UInt8)
        case nonZeroPrefix
        case notBase64

        package var description: String {
            switch self {
            case .wrongSize(let n): return "namespace is \(n) bytes, expected \(DANamespace.size)"
            case .unsupportedVersion(let v): return "namespace version \(v) is not supported (only version 0)"
            case .nonZeroPrefix: return "version-0 namespace id must start with 18 zero bytes"
            case .notBase64: return "namespace is not valid base64"
            }
        }
    }

    /// Validates raw namespace bytes as they arrive from the wire.
    package init(bytes: [UInt8]) throws(Failure) {
        guard bytes.count == Self.size else { throw .wrongSize(bytes.count) }
        guard bytes[0] == 0 else { throw .unsupportedVersion(bytes[0]) }
        guard bytes[1...Self.versionZeroPrefix].allSatisfy({ $0 == 0 }) else { throw .nonZeroPrefix }
        self.bytes = bytes
    }

    package init(base64: String) throws(Failure) {
        guard let data = Data(base64Encoded: base64) else { throw .notBase64 }
        try self.init(bytes: Array(data))
    }

    package var base64: String { Data(bytes).base64EncodedString() }

    package var description: String { Hex.encode(bytes) }
}
