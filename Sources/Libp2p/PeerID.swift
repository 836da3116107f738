import Primitives
import Foundation
import SwiftProtobuf
import Crypto

/// A libp2p peer id of an Ed25519 key: the identity multihash of the key's `PublicKey`
/// protobuf (`00 24 08 01 12 20 ‖ key`), written in base58btc (`12D3KooW…`).
package struct PeerID: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// The multihash bytes (38 for an Ed25519 key), as peer ids travel in pubsub `from` fields.
    package let bytes: [UInt8]

    /// The peer id of a raw 32-byte Ed25519 public key.
    package init(publicKey: [UInt8]) {
        let key = LibP2PKey.encodePublicKey(ed25519: publicKey)
        self.bytes = [0x00, UInt8(key.count)] + key
    }

    /// The peer id from its multihash bytes; nil unless it is an identity multihash of an
    /// Ed25519 key (the only kind this node accepts: ev-node uses Ed25519 node keys).
    package init?(bytes: [UInt8]) {
        guard ed25519PublicKey(of: bytes) != nil else { return nil }
        self.bytes = bytes
    }

    /// The peer id from its base58btc text (`12D3KooW…`).
    package init?(string: String) {
        guard let raw = Base58.decode(string) else { return nil }
        self.init(bytes: raw)
    }

    /// The raw Ed25519 public key the id inlines.
    package var publicKey: [UInt8] { ed25519PublicKey(of: bytes) ?? [] }

    package var description: String { Base58.encode(bytes) }

    /// The last 8 characters, for log lines (every Ed25519 id starts with `12D3KooW`).
    package var short: String { String(description.suffix(8)) }

    package static func < (lhs: PeerID, rhs: PeerID) -> Bool {
        lhs.bytes.lexicographicallyPrecedes(rhs.bytes)
    }
}

private func ed25519PublicKey(of multihash: [UInt8]) -> [UInt8]? {
    // identity multihash: code 0x00, length 0x24, then the PublicKey protobuf.
    guard multihash.count == 38, multihash[0] == 0x00, multihash[1] == 36 else { return nil }
    return LibP2PKey.decodeEd25519PublicKey(Array(multihash[2...]))
}

/// libp2p's `PublicKey` protobuf for Ed25519, whose deterministic encoding is fixed:
/// `08 01 12 20 ‖ key`.
enum LibP2PKey {
    static func encodePublicKey(ed25519 key: [UInt8]) -> [UInt8] {
        var proto = Crypto_Pb_PublicKey()
        proto.type = .ed25519
        proto.data = Data(key)
        return Array((try? proto.serializedBytes()) ?? [UInt8]())
    }

    /// The raw key of an Ed25519 `PublicKey` protobuf; nil for other key types or bad bytes.
    static func decodeEd25519PublicKey(_ bytes: [UInt8]) -> [UInt8]? {
        guard let proto = try? Crypto_Pb_PublicKey(serializedBytes: bytes),
              proto.type == .ed25519, proto.data.count == 32 else { return nil }
        return Array(proto.data)
    }

    static func verify(signature: [UInt8], of message: [UInt8], publicKey: [UInt8]) -> Bool {
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey) else { return false }
        return key.isValidSignature(signature, for: message)
    }
}
