import Primitives
import Crypto
import Foundation

/// The P2P identity in ev-node's `config/node_key.json` format (pkg/p2p/key/nodekey.go), so an
/// operator moving a node from ev-node keeps its peer id, and back:
/// `{"priv_key": "<base64 of 64 bytes seed ‖ public key>", "pub_key": "<base64 of 32 bytes>"}`
/// (standard base64, not protobuf). A 96-byte legacy private key (seed ‖ public key ‖ public
/// key) is accepted too. Mode 0600.
package enum NodeKeyFile {
    package static func jsonText(_ key: KeyFile) -> String {
        let seed = Array(key.privateKey.rawRepresentation)
        return """
        {"priv_key":"\(Data(seed + key.publicKey).base64EncodedString())","pub_key":"\(Data(key.publicKey).base64EncodedString())"}

        """
    }

    package static func save(_ key: KeyFile, path: String) throws(ConfigError) {
        do {
            try FileIO.writeAtomically(path, jsonText(key), mode: 0o600, exclusive: true)
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
            throw .file(path: path, reason: "not a node key file (expected a JSON object with priv_key and pub_key)")
        }
        guard let privText = object["priv_key"] as? String, let priv = Data(base64Encoded: privText) else {
            throw .file(path: path, reason: "priv_key must be standard base64")
        }
        guard priv.count == 64 || priv.count == 96 else {
            throw .file(path: path, reason: "priv_key holds \(priv.count) bytes; an Ed25519 key has 64 (seed ‖ public key)")
        }
        let key: Curve25519.Signing.PrivateKey
        do {
            key = try Curve25519.Signing.PrivateKey(rawRepresentation: priv.prefix(32))
        } catch {
            throw .file(path: path, reason: "priv_key does not start with an Ed25519 seed")
        }
        let file = KeyFile(privateKey: key)
        guard Array(priv[32..<64]) == file.publicKey else {
            throw .file(path: path, reason: "the public half of priv_key does not belong to its seed (file damaged or edited?)")
        }
        if let pubText = object["pub_key"] as? String, Data(base64Encoded: pubText).map(Array.init) != file.publicKey {
            throw .file(path: path, reason: "pub_key does not belong to priv_key (file damaged or edited?)")
        }
        return file
    }
}
