import Crypto

/// SHA-256 for test expectations, computed with swift-crypto directly.
public enum Crypto256 {
    public static func hash(_ bytes: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: bytes)) }
}
