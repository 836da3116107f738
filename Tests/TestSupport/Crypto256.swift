import Crypto

/// SHA-256 for test expectations, computed with swift-crypto directly.
package enum Crypto256 {
    package static func hash(_ bytes: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: bytes)) }
}
