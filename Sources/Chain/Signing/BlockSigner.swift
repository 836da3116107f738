import Config
import Crypto

/// Signing failed: inside the crypto library (not expected with a valid key), or the remote
/// signer gave no signature.
package struct SigningError: Error, Sendable, Equatable, CustomStringConvertible {
    package let reason: String
    /// The signer answered and refused (its fence: the height was signed already, by this node
    /// or another one sharing the signer). An HA leader steps down on it rather than halt: the
    /// group's other member that signed there leads on, and this node follows its block.
    package let refusedBySigner: Bool
    package var description: String { "signing failed: \(reason)" }

    package init(reason: String, refusedBySigner: Bool = false) {
        self.reason = reason
        self.refusedBySigner = refusedBySigner
    }
}

/// Where the proposer's signatures are made: the key in this process, or a remote signer
/// (`evnode signer serve`) that keeps the key and its own high-water mark. Each call blocks until
/// the signature is there: call it from a thread that may block (the producer's, the DA
/// submitter's worker), never from the cooperative pool.
package protocol SigningBackend: Sendable {
    /// Signs an encoded Header, SignedHeader (DA envelope) or Data.
    func sign(_ message: [UInt8]) throws(SigningError) -> [UInt8]
    /// Signs the encoded `header` of a block whose data is `data`. A remote signer keeps the
    /// data beside its mark, so the block can be committed again after a crash.
    func sign(header: [UInt8], data: BlockData) throws(SigningError) -> [UInt8]
}

/// The key held in this process (`signer.json`).
package struct LocalSigningKey: SigningBackend {
    package let privateKey: Curve25519.Signing.PrivateKey

    package init(_ privateKey: Curve25519.Signing.PrivateKey) {
        self.privateKey = privateKey
    }

    package func sign(_ message: [UInt8]) throws(SigningError) -> [UInt8] {
        do {
            return Array(try privateKey.signature(for: message))
        } catch {
            throw SigningError(reason: "\(error)")
        }
    }

    package func sign(header: [UInt8], data: BlockData) throws(SigningError) -> [UInt8] {
        try sign(header)
    }
}

/// The proposer's signatures of SPEC §3: headers, DA header envelopes and DA data blobs, made by
/// a `SigningBackend`.
///
/// With the local key, guarding against signing two different blocks at one height (the
/// signer's high-water mark, SPEC §6) is the block producer's job, done before a signature
/// leaves the process; a remote signer also enforces its own mark, where the key is.
package struct BlockSigner: Sendable {
    package let backend: any SigningBackend
    /// Address and proto-encoded public key, as carried in every signed message.
    package let signer: Signer

    package init(privateKey: Curve25519.Signing.PrivateKey) {
        backend = LocalSigningKey(privateKey)
        signer = Signer(rawPublicKey: Array(privateKey.publicKey.rawRepresentation))
    }

    /// A signer whose key is elsewhere; `rawPublicKey` is its 32-byte Ed25519 public key.
    package init(backend: any SigningBackend, rawPublicKey: [UInt8]) {
        self.backend = backend
        signer = Signer(rawPublicKey: rawPublicKey)
    }

    package init(keyFile: KeyFile) {
        self.init(privateKey: keyFile.privateKey)
    }

    /// From a raw 32-byte Ed25519 seed.
    package init(seed: [UInt8]) throws(SigningError) {
        do {
            self.init(privateKey: try Curve25519.Signing.PrivateKey(rawRepresentation: seed))
        } catch {
            throw SigningError(reason: "not an Ed25519 seed (\(seed.count) bytes)")
        }
    }

    /// SHA-256 of the raw public key: the proposer address.
    package var address: [UInt8] { signer.address }

    package func sign(_ message: [UInt8]) throws(SigningError) -> [UInt8] {
        try backend.sign(message)
    }

    package func sign(header: Header) throws(SigningError) -> SignedHeader {
        SignedHeader(header: header, signature: try sign(header.encoded()), signer: signer)
    }

    /// A block's header, signed with its data at hand (a remote signer keeps the data).
    package func sign(header: Header, data: BlockData) throws(SigningError) -> SignedHeader {
        SignedHeader(header: header, signature: try backend.sign(header: header.encoded(), data: data), signer: signer)
    }

    /// The DA header blob: `envelope_signature` over the encoded signed header.
    package func envelope(for signedHeader: SignedHeader) throws(SigningError) -> DAHeaderEnvelope {
        DAHeaderEnvelope(signedHeader: signedHeader, envelopeSignature: try sign(signedHeader.encoded()))
    }

    /// The DA data blob: signature over the encoded data (with metadata).
    package func sign(data: BlockData) throws(SigningError) -> SignedData {
        SignedData(data: data, signature: try sign(data.encoded()), signer: signer)
    }
}

/// Ed25519 verification against the proto-encoded public keys carried in `Signer.pubKey`.
/// Pure functions over value types: safe to call from many threads at once.
package enum SignatureVerifier {
    package static func isValid(signature: [UInt8], message: [UInt8], signer: Signer) -> Bool {
        guard let raw = signer.rawPublicKey else { return false }
        return isValid(signature: signature, message: message, rawPublicKey: raw)
    }

    /// `protoPublicKey` is the 36-byte `08 01 12 20 ‖ raw32` form.
    package static func isValid(signature: [UInt8], message: [UInt8], protoPublicKey: [UInt8]) -> Bool {
        isValid(signature: signature, message: message, signer: Signer(address: [], pubKey: protoPublicKey))
    }

    package static func isValid(signature: [UInt8], message: [UInt8], rawPublicKey: [UInt8]) -> Bool {
        guard signature.count == 64,
              let key = try? Curve25519.Signing.PublicKey(rawRepresentation: rawPublicKey) else { return false }
        return key.isValidSignature(signature, for: message)
    }
}

extension SignedHeader {
    /// True when `signature` is the signer's valid signature over the encoded header. Says
    /// nothing about whether the signer is the right proposer (see `BlockValidator`).
    package var hasValidSignature: Bool {
        SignatureVerifier.isValid(signature: signature, message: header.encoded(), signer: signer)
    }
}

extension DAHeaderEnvelope {
    /// True when both the header signature and the envelope signature verify with `signer`.
    package var hasValidSignatures: Bool {
        let inner = signedHeader
        return inner.hasValidSignature
            && SignatureVerifier.isValid(signature: envelopeSignature, message: inner.encoded(), signer: signer)
    }
}

extension SignedData {
    package var hasValidSignature: Bool {
        SignatureVerifier.isValid(signature: signature, message: data.encoded(), signer: signer)
    }
}
