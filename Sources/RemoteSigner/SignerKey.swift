import Primitives
import CPKCS11
import Config
import Crypto
import Foundation
import Synchronization

/// The private key `signer serve` signs with: ev-node's encrypted file unlocked in this process,
/// or an Ed25519 key inside a PKCS#11 token (an HSM, or SoftHSM2 in tests) that never leaves it.
/// The fence and the mark are the same for both.
package protocol SignerKey: Sendable {
    /// The raw 32-byte Ed25519 public key.
    var rawPublicKey: [UInt8] { get }
    /// An Ed25519 signature over `message`. Blocking (a token is a device): call it from a
    /// thread that may block, as the fence does.
    func signature(for message: [UInt8]) throws(SignerKeyError) -> [UInt8]
}

/// The key could not sign (the token failed, was removed, logged out).
package struct SignerKeyError: Error, Sendable, Equatable, CustomStringConvertible {
    package var reason: String
    package init(_ reason: String) { self.reason = reason }
    package var description: String { reason }
}

/// `signer.json`'s key, in this process.
package struct FileSignerKey: SignerKey {
    let key: Curve25519.Signing.PrivateKey
    package let rawPublicKey: [UInt8]

    package init(_ key: Curve25519.Signing.PrivateKey) {
        self.key = key
        rawPublicKey = Array(key.publicKey.rawRepresentation)
    }

    package func signature(for message: [UInt8]) throws(SignerKeyError) -> [UInt8] {
        do {
            return Array(try key.signature(for: message))
        } catch {
            throw SignerKeyError("signing failed: \(error)")
        }
    }
}

/// Why a PKCS#11 key could not be opened: one line each, naming what to check.
package enum PKCS11Error: Error, Sendable, Equatable, CustomStringConvertible {
    case module(path: String, detail: String)
    case initialize(path: String, detail: String)
    case token(label: String, detail: String)
    case pin(token: String, detail: String)
    case key(label: String, token: String, detail: String)
    case notEd25519(label: String, detail: String)
    case session(detail: String)

    package var description: String {
        switch self {
        case let .module(path, detail): return "PKCS#11 module \(path) cannot be loaded: \(detail)"
        case let .initialize(path, detail): return "PKCS#11 module \(path) did not initialise: \(detail)"
        case let .token(label, detail): return "PKCS#11 token \"\(label)\" not found: \(detail)"
        case let .pin(token, detail): return "PKCS#11 token \"\(token)\" refused the login: \(detail) (check --pkcs11-pin-file)"
        case let .key(label, token, detail): return "PKCS#11 key \"\(label)\" not found on token \"\(token)\": \(detail)"
        case let .notEd25519(label, detail): return "PKCS#11 key \"\(label)\" is not an Ed25519 key: \(detail) (create one with CKM_EC_EDWARDS_KEY_PAIR_GEN on edwards25519)"
        case let .session(detail): return "PKCS#11 session cannot be opened: \(detail)"
        }
    }
}

/// An Ed25519 key inside a PKCS#11 token, signing with `CKM_EDDSA`; its public key read from the
/// token at open. One logged-in session for the life of the signer, closed at deinit.
package final class PKCS11Key: SignerKey, @unchecked Sendable {
    // @unchecked: the C handle is only touched under `lock` (the fence serialises calls too).
    private let handle: OpaquePointer
    private let lock = Mutex<Void>(())
    package let rawPublicKey: [UInt8]
    package let module: String
    package let token: String
    package let label: String

    /// Opens the key. Blocking (loads the module, logs in): at start, before serving.
    package init(module: String, token: String, keyLabel: String, pin: [UInt8]) throws(PKCS11Error) {
        var detail = [CChar](repeating: 0, count: 512)
        var out: OpaquePointer?
        let status = pin.withUnsafeBufferPointer { pinBytes in
            evp11_open(module, token, pinBytes.baseAddress, pinBytes.count, keyLabel, &out, &detail, detail.count)
        }
        let why = String(decoding: detail.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard status == Int32(EVP11_OK.rawValue), let out else {
            switch UInt32(bitPattern: status) {
            case EVP11_MODULE.rawValue: throw .module(path: module, detail: why)
            case EVP11_INIT.rawValue: throw .initialize(path: module, detail: why)
            case EVP11_TOKEN.rawValue: throw .token(label: token, detail: why)
            case EVP11_PIN.rawValue: throw .pin(token: token, detail: why)
            case EVP11_KEY.rawValue: throw .key(label: keyLabel, token: token, detail: why)
            case EVP11_NOT_ED25519.rawValue: throw .notEd25519(label: keyLabel, detail: why)
            default: throw .session(detail: why)
            }
        }
        handle = out
        var key = [UInt8](repeating: 0, count: 32)
        evp11_public_key(out, &key)
        rawPublicKey = key
        self.module = module
        self.token = token
        self.label = keyLabel
    }

    deinit {
        evp11_close(handle)
    }

    package func signature(for message: [UInt8]) throws(SignerKeyError) -> [UInt8] {
        var signature = [UInt8](repeating: 0, count: 64)
        var detail = [CChar](repeating: 0, count: 256)
        let status = lock.withLock { _ in
            message.withUnsafeBufferPointer { bytes in
                evp11_sign(handle, bytes.baseAddress, bytes.count, &signature, &detail, detail.count)
            }
        }
        guard status == Int32(EVP11_OK.rawValue) else {
            let why = String(decoding: detail.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw SignerKeyError("the PKCS#11 token \"\(token)\" did not sign with key \"\(label)\": \(why)")
        }
        return signature
    }
}

/// The PIN of a PKCS#11 token, from a file (like the passphrase and the token): its content with
/// surrounding white space trimmed.
package enum PINFile {
    /// A PIN is short; a bigger file is not one.
    static let maxBytes = 256

    package static func read(_ path: String) throws(ConfigError) -> [UInt8] {
        let text: String
        do throws(FileIO.Failure) {
            text = try FileIO.readString(path, limit: maxBytes)
        } catch {
            throw .file(path: path, reason: error.description)
        }
        let pin = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !pin.isEmpty else { throw .file(path: path, reason: "the PIN file is empty") }
        return Array(pin.utf8)
    }
}
