import Crypto

/// The bytes a node signs in its `HelloAck`: a domain tag, the chain id, the verifier's nonce
/// (freshness: a recorded ack cannot be replayed on another connection), the signer's nonce and
/// public key. Verifying it proves the peer holds the private key of the identity it claims.
public enum HandshakeTranscript {
    static let domain = Array("evnode/p2p/handshake/v1".utf8)

    public static func bytes(chainID: String, verifierNonce: [UInt8], signerNonce: [UInt8],
                             signerPublicKey: [UInt8]) -> [UInt8] {
        let id = Array(chainID.utf8)
        var out = domain
        out.reserveCapacity(domain.count + 1 + id.count + verifierNonce.count + signerNonce.count + signerPublicKey.count)
        out.append(UInt8(truncatingIfNeeded: id.count))
        out += id
        out += verifierNonce
        out += signerNonce
        out += signerPublicKey
        return out
    }

    public static func sign(key: Curve25519.Signing.PrivateKey, chainID: String,
                            verifierNonce: [UInt8], signerNonce: [UInt8]) -> [UInt8] {
        let message = bytes(chainID: chainID, verifierNonce: verifierNonce, signerNonce: signerNonce,
                            signerPublicKey: Array(key.publicKey.rawRepresentation))
        // Signing only fails on a broken key object; an empty signature then fails verification.
        return (try? Array(key.signature(for: message))) ?? []
    }

    public static func verify(signature: [UInt8], publicKey: [UInt8], chainID: String,
                              verifierNonce: [UInt8], signerNonce: [UInt8]) -> Bool {
        guard let key = try? Curve25519.Signing.PublicKey(rawRepresentation: publicKey) else { return false }
        let message = bytes(chainID: chainID, verifierNonce: verifierNonce, signerNonce: signerNonce,
                            signerPublicKey: publicKey)
        return key.isValidSignature(signature, for: message)
    }

    static func freshNonce() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<P2PProtocol.nonceSize).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }
}
