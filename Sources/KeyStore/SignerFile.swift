import Primitives
import Config
import Crypto
import Foundation

/// ev-node's file signer, `signer.json` (`pkg/signer/file/local.go`): a JSON object of four
/// standard-base64 fields,
///
///     {"priv_key_encrypted": …, "nonce": …, "pub_key": …, "salt": …}
///
/// where `priv_key_encrypted` is AES-256-GCM (12-byte nonce, no additional data, 16-byte tag
/// appended) of the 64-byte libp2p raw Ed25519 private key (seed ‖ public key), under the key
/// Argon2id(passphrase, salt; t = 3, m = 32 MiB, p = 4) → 32 bytes. Mode 0600.
package enum SignerFile {
    package static let fileName = "signer.json"
    /// A signer.json is about 250 bytes; anything past this is not one and is not read.
    package static let maxFileBytes = 64 * 1024
    static let saltLength = 16
    static let nonceLength = 12
    static let tagLength = 16

    /// Decrypts the key at `path` with `passphrase`. Every check that needs no Argon2id (JSON,
    /// base64, lengths, the legacy format) comes before the derivation.
    package static func decrypt(path: String, passphrase: Passphrase) throws(SignerFileError) -> KeyFile {
        let bytes: [UInt8]
        do {
            guard try FileIO.existence(path) else { throw SignerFileError(path: path, problem: .notFound) }
            bytes = try FileIO.readBytes(path, limit: maxFileBytes)
        } catch let error as SignerFileError {
            throw error
        } catch {
            throw SignerFileError(path: path, problem: .unreadable("\(error)"))
        }
        let sealed = try Sealed.parse(bytes, path: path)
        let derived: [UInt8]
        do {
            derived = try Argon2id.deriveKey(passphrase: passphrase.bytes, salt: sealed.salt)
        } catch {
            throw SignerFileError(path: path, problem: .argon2(error.description))
        }
        let plaintext: Data
        do {
            let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: sealed.nonce),
                                            ciphertext: sealed.ciphertext.dropLast(tagLength),
                                            tag: sealed.ciphertext.suffix(tagLength))
            plaintext = try AES.GCM.open(box, using: SymmetricKey(data: derived))
        } catch {
            throw SignerFileError(path: path, problem: .wrongPassphraseOrAltered)
        }
        let key = try RawEd25519.key(from: Array(plaintext), path: path)
        guard key.publicKey == sealed.publicKey else {
            throw SignerFileError(path: path, problem: .publicKeyMismatch("pub_key is not the public key of the encrypted private key"))
        }
        return key
    }

    /// The file's text for `key` under `passphrase`, with a fresh random salt and nonce.
    package static func seal(_ key: KeyFile, passphrase: Passphrase, path: String) throws(SignerFileError) -> String {
        var rng = SystemRandomNumberGenerator()
        let salt = (0..<saltLength).map { _ in UInt8.random(in: .min ... .max, using: &rng) }
        let derived: [UInt8]
        do {
            derived = try Argon2id.deriveKey(passphrase: passphrase.bytes, salt: salt)
        } catch {
            throw SignerFileError(path: path, problem: .argon2(error.description))
        }
        let box: AES.GCM.SealedBox
        do {
            box = try AES.GCM.seal(RawEd25519.bytes(of: key), using: SymmetricKey(data: derived), nonce: AES.GCM.Nonce())
        } catch {
            throw SignerFileError(path: path, problem: .writeFailed("AES-GCM: \(error)"))
        }
        func b64<D: DataProtocol>(_ d: D) -> String { Data(d).base64EncodedString() }
        // Field order as ev-node's json.Marshal writes them.
        return "{\"priv_key_encrypted\":\"\(b64(box.ciphertext + box.tag))\",\"nonce\":\"\(b64(Data(box.nonce)))\",\"pub_key\":\"\(b64(key.publicKey))\",\"salt\":\"\(b64(salt))\"}"
    }

    /// Encrypts `key` into `path` atomically with mode 0600 (temp file, fsync, rename). With
    /// `overwrite` false an existing file is refused and left as it is.
    package static func write(_ key: KeyFile, passphrase: Passphrase, path: String, overwrite: Bool) throws(SignerFileError) {
        if !overwrite, FileIO.exists(path) { throw SignerFileError(path: path, problem: .alreadyExists) }
        let text = try seal(key, passphrase: passphrase, path: path)
        do {
            try FileIO.writeAtomically(path, text, mode: 0o600, exclusive: !overwrite)
        } catch {
            throw SignerFileError(path: path, problem: .writeFailed(error.description))
        }
    }

    /// The decoded fields of a file, checked for shape.
    struct Sealed {
        let ciphertext: [UInt8]
        let nonce: [UInt8]
        let publicKey: [UInt8]
        let salt: [UInt8]

        static func parse(_ bytes: [UInt8], path: String) throws(SignerFileError) -> Sealed {
            func damaged(_ what: String) -> SignerFileError { SignerFileError(path: path, problem: .damaged(what)) }
            guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
                throw damaged(bytes.isEmpty ? "the file is empty" : "not a JSON object")
            }
            func field(_ name: String, required: Bool = true) throws(SignerFileError) -> [UInt8]? {
                guard let value = object[name], !(value is NSNull) else {
                    if required { throw damaged("\"\(name)\" is missing") }
                    return nil
                }
                guard let text = value as? String, let data = Data(base64Encoded: text) else {
                    throw damaged("\"\(name)\" is not standard base64")
                }
                return Array(data)
            }
            let ciphertext = try field("priv_key_encrypted")!
            let nonce = try field("nonce")!
            let publicKey = try field("pub_key")!
            // ev-node treats an absent or empty salt alike: the pre-Argon2id format.
            let salt = try field("salt", required: false) ?? []
            if salt.isEmpty { throw SignerFileError(path: path, problem: .legacyWithoutSalt) }
            // libargon2 needs ≥ 8 bytes; ev-node writes 16 and Go would take any length.
            guard (8...1024).contains(salt.count) else { throw damaged("\"salt\" is \(salt.count) bytes (ev-node writes 16)") }
            guard nonce.count == nonceLength else { throw damaged("\"nonce\" is \(nonce.count) bytes, AES-GCM's is 12") }
            guard publicKey.count == 32 else { throw damaged("\"pub_key\" is \(publicKey.count) bytes, an Ed25519 public key is 32") }
            // 64 bytes of key (96 in libp2p's old redundant form) plus the 16-byte tag.
            guard ciphertext.count == 64 + tagLength || ciphertext.count == 96 + tagLength else {
                throw damaged("\"priv_key_encrypted\" is \(ciphertext.count) bytes; an encrypted Ed25519 key is 80")
            }
            return Sealed(ciphertext: ciphertext, nonce: nonce, publicKey: publicKey, salt: salt)
        }
    }
}

/// libp2p's raw Ed25519 private key: seed ‖ public key (64 bytes), also accepted in its old
/// 96-byte form with the public key repeated. The public half must belong to the seed: a key
/// whose halves disagree would sign with one key and claim another.
package enum RawEd25519 {
    package static func bytes(of key: KeyFile) -> [UInt8] {
        Array(key.privateKey.rawRepresentation) + key.publicKey
    }

    package static func key(from raw: [UInt8], path: String) throws(SignerFileError) -> KeyFile {
        guard raw.count == 64 || raw.count == 96 else {
            throw SignerFileError(path: path, problem: .damaged("the private key is \(raw.count) bytes, a raw Ed25519 key is 64 (seed ‖ public key)"))
        }
        let key: KeyFile
        do {
            key = KeyFile(privateKey: try Curve25519.Signing.PrivateKey(rawRepresentation: raw.prefix(32)))
        } catch {
            throw SignerFileError(path: path, problem: .damaged("the private key does not start with an Ed25519 seed"))
        }
        guard Array(raw[32..<64]) == key.publicKey, raw.count == 64 || Array(raw[64..<96]) == key.publicKey else {
            throw SignerFileError(path: path, problem: .publicKeyMismatch("the public half of the private key does not belong to its seed"))
        }
        return key
    }
}
