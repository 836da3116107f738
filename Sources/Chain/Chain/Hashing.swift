import Crypto

/// SHA-256 helpers returning `[UInt8]`, the byte type used throughout the block model.
package enum Hashing {
    static let digestSize = 32

    @inline(__always)
    package static func sha256(_ bytes: [UInt8]) -> [UInt8] {
        bytes.withUnsafeBytes { digestBytes(SHA256.hash(data: $0)) }
    }

    @inline(__always)
    package static func sha256(_ first: [UInt8], _ second: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        first.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        second.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        return digestBytes(hasher.finalize())
    }

    @inline(__always)
    package static func sha256(_ bytes: ArraySlice<UInt8>) -> [UInt8] {
        bytes.withUnsafeBytes { digestBytes(SHA256.hash(data: $0)) }
    }

    /// SHA-256(prefix ‖ bytes) without building the concatenation.
    @inline(__always)
    package static func sha256(prefix: UInt8, _ bytes: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        withUnsafeBytes(of: prefix) { hasher.update(bufferPointer: $0) }
        bytes.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        return digestBytes(hasher.finalize())
    }

    @inline(__always)
    static func digestBytes(_ digest: SHA256.Digest) -> [UInt8] {
        digest.withUnsafeBytes { Array($0) }
    }
}
