import Primitives
import Crypto
import Foundation

/// An Ed25519 key kept in a JSON file of mode 0600 under `config/`: the block signer
/// (`signer.key`) or the P2P identity (`node.key`).
///
/// File format: `{"type": "ed25519", "private_key": "<base64 32-byte seed>",
/// "public_key": "<base64 32 bytes>", "address": "<hex SHA-256 of the public key>"}`.
/// The public key and address are redundant and checked on load, so a damaged or hand-edited
/// file is caught before it signs anything.
package struct KeyFile: Sendable {
    package let privateKey: Curve25519.Signing.PrivateKey

    package init(privateKey: Curve25519.Signing.PrivateKey) {
        self.privateKey = privateKey
    }

    package static func generate() -> KeyFile {
        KeyFile(privateKey: Curve25519.Signing.PrivateKey())
    }

    package var publicKey: [UInt8] { Array(privateKey.publicKey.rawRepresentation) }

    /// SHA-256 of the raw public key: the proposer address of SPEC §3.
    package var address: [UInt8] { Array(SHA256.hash(data: publicKey)) }

    package func jsonText() -> String {
        """
        {
          "type": "ed25519",
          "private_key": "\(privateKey.rawRepresentation.base64EncodedString())",
          "public_key": "\(Data(publicKey).base64EncodedString())",
          "address": "\(Hex.encode(address))"
        }

        """
    }

    package func save(path: String) throws(ConfigError) {
        do {
            try FileIO.writeAtomically(path, jsonText(), mode: 0o600, exclusive: true)
        } catch {
            throw .file(path: path, reason: error.description)
        }
    }

    package static func load(path: String) throws(ConfigError) -> KeyFile {
        let text: String
        do {
            text = try FileIO.readString(path, limit: 64 * 1024)
        } catch {
            throw .file(path: path, reason: error.description)
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] else {
            throw .file(path: path, reason: "not a key file (expected a JSON object)")
        }
        guard (object["type"] as? String) == "ed25519" else {
            throw .file(path: path, reason: "key type must be \"ed25519\"")
        }
        guard let seedText = object["private_key"] as? String, let seed = Data(base64Encoded: seedText),
              seed.count == 32 else {
            throw .file(path: path, reason: "private_key must be 32 bytes of base64")
        }
        let key: Curve25519.Signing.PrivateKey
        do {
            key = try Curve25519.Signing.PrivateKey(rawRepresentation: seed)
        } catch {
            throw .file(path: path, reason: "private_key is not an Ed25519 seed")
        }
        let file = KeyFile(privateKey: key)
        if let pubText = object["public_key"] as? String, Data(base64Encoded: pubText).map(Array.init) != file.publicKey {
            throw .file(path: path, reason: "public_key does not belong to private_key (file damaged or edited?)")
        }
        if let addr = object["address"] as? String, addr.lowercased() != Hex.encode(file.address) {
            throw .file(path: path, reason: "address does not match the key (file damaged or edited?)")
        }
        return file
    }
}
