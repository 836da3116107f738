import CArgon2

/// Argon2id from the reference implementation (Debian's libargon2), with the parameters ev-node's
/// file signer uses. Deriving costs 32 MiB and a few hundred milliseconds of CPU: callers run it
/// once per start, off the cooperative pool.
package enum Argon2id {
    package struct Parameters: Sendable, Equatable {
        package let iterations: UInt32
        package let memoryKiB: UInt32
        package let lanes: UInt32
        package let keyLength: Int

        /// ev-node `pkg/signer/file/local.go`: t = 3, m = 32 MiB, p = 4, a 32-byte AES-256 key.
        package static let evNodeSigner = Parameters(iterations: 3, memoryKiB: 32 * 1024, lanes: 4, keyLength: 32)
    }

    package struct Failure: Error, CustomStringConvertible, Equatable, Sendable {
        package let code: Int32
        package let message: String
        package var description: String { "Argon2id failed: \(message) (libargon2 code \(code))" }
    }

    package static func deriveKey(passphrase: [UInt8], salt: [UInt8],
                                 parameters: Parameters = .evNodeSigner) throws(Failure) -> [UInt8] {
        var key = [UInt8](repeating: 0, count: parameters.keyLength)
        let code = passphrase.withUnsafeBytes { pwd in
            salt.withUnsafeBytes { s in
                key.withUnsafeMutableBytes { out in
                    argon2id_hash_raw(parameters.iterations, parameters.memoryKiB, parameters.lanes,
                                      pwd.baseAddress, pwd.count, s.baseAddress, s.count,
                                      out.baseAddress, out.count)
                }
            }
        }
        guard code == ARGON2_OK.rawValue else {
            throw Failure(code: code, message: String(cString: argon2_error_message(code)))
        }
        return key
    }
}
