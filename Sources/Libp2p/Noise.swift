import Crypto
import Foundation
import NIOCore
import SwiftProtobuf

/// `Noise_XX_25519_ChaChaPoly_SHA256` with libp2p's handshake payload (libp2p/specs
/// noise/README.md): `-> e`, `<- e, ee, s, es, payload`, `-> s, se, payload`, empty prologue,
/// frames of a 2-byte big-endian length. The payload binds the Noise static key to the peer's
/// Ed25519 identity.
package enum Noise {
    package static let protocolID = "/noise"
    static let protocolName = Array("Noise_XX_25519_ChaChaPoly_SHA256".utf8)
    static let signaturePrefix = Array("noise-libp2p-static-key:".utf8)
    static let maxFrame = 65535
    static let tagSize = 16
    static let maxPlaintext = maxFrame - tagSize

    /// One direction's transport key and nonce.
    package struct CipherState {
        package var key: SymmetricKey?
        var nonce: UInt64 = 0

        static func nonceBytes(_ n: UInt64) -> ChaChaPoly.Nonce {
            var bytes = [UInt8](repeating: 0, count: 12)
            for i in 0..<8 { bytes[4 + i] = UInt8(truncatingIfNeeded: n >> (8 * UInt64(i))) }
            return try! ChaChaPoly.Nonce(data: bytes)
        }

        mutating func encrypt(_ plaintext: some DataProtocol, ad: [UInt8]) throws -> [UInt8] {
            guard let key else { return Array(plaintext) }
            let box = try ChaChaPoly.seal(plaintext, using: key, nonce: Self.nonceBytes(nonce), authenticating: ad)
            nonce += 1
            return Array(box.ciphertext) + Array(box.tag)
        }

        mutating func decrypt(_ ciphertext: [UInt8], ad: [UInt8]) throws -> [UInt8] {
            guard let key else { return ciphertext }
            guard ciphertext.count >= tagSize else { throw LinkError.handshake("ciphertext shorter than its tag") }
            let box = try ChaChaPoly.SealedBox(nonce: Self.nonceBytes(nonce),
                                               ciphertext: ciphertext.prefix(ciphertext.count - tagSize),
                                               tag: ciphertext.suffix(tagSize))
            let plain: Data
            do {
                plain = try ChaChaPoly.open(box, using: key, authenticating: ad)
            } catch {
                throw LinkError.protocolViolation("Noise frame fails authentication")
            }
            nonce += 1
            return Array(plain)
        }
    }

    /// The handshake's symmetric state (Noise spec §5.2).
    struct SymmetricState {
        var ck: [UInt8]
        package var h: [UInt8]
        var cipher = CipherState()

        package init() {
            h = Noise.protocolName // exactly 32 bytes: used as is
            ck = h
            mixHash([]) // empty prologue
        }

        mutating func mixHash(_ data: [UInt8]) {
            var hasher = SHA256()
            hasher.update(data: h)
            hasher.update(data: data)
            h = Array(hasher.finalize())
        }

        static func hkdf(_ ck: [UInt8], _ ikm: [UInt8]) -> ([UInt8], [UInt8]) {
            let temp = Array(HMAC<SHA256>.authenticationCode(for: ikm, using: SymmetricKey(data: ck)))
            let tempKey = SymmetricKey(data: temp)
            let out1 = Array(HMAC<SHA256>.authenticationCode(for: [0x01], using: tempKey))
            let out2 = Array(HMAC<SHA256>.authenticationCode(for: out1 + [0x02], using: tempKey))
            return (out1, out2)
        }

        mutating func mixKey(_ ikm: [UInt8]) {
            let (newCK, k) = Self.hkdf(ck, ikm)
            ck = newCK
            cipher = CipherState(key: SymmetricKey(data: k), nonce: 0)
        }

        mutating func encryptAndHash(_ plaintext: [UInt8]) throws -> [UInt8] {
            let c = try cipher.encrypt(plaintext, ad: h)
            mixHash(c)
            return c
        }

        mutating func decryptAndHash(_ ciphertext: [UInt8]) throws -> [UInt8] {
            let p: [UInt8]
            do {
                p = try cipher.decrypt(ciphertext, ad: h)
            } catch {
                throw LinkError.handshake("handshake message fails authentication")
            }
            mixHash(ciphertext)
            return p
        }

        /// (initiator → responder, responder → initiator)
        package func split() -> (CipherState, CipherState) {
            let (k1, k2) = Self.hkdf(ck, [])
            return (CipherState(key: SymmetricKey(data: k1)), CipherState(key: SymmetricKey(data: k2)))
        }

        var hasKey: Bool { cipher.key != nil }
    }

    static func dh(_ priv: Curve25519.KeyAgreement.PrivateKey, _ pub: [UInt8]) throws -> [UInt8] {
        let key: Curve25519.KeyAgreement.PublicKey
        do {
            key = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: pub)
        } catch {
            throw LinkError.handshake("peer sent an invalid X25519 key")
        }
        let shared = try priv.sharedSecretFromKeyAgreement(with: key)
        return shared.withUnsafeBytes { Array($0) }
    }

    /// Our payload: the identity key and its signature over the Noise static key. No muxer list,
    /// so the muxer is negotiated with multistream (the way py-libp2p and Go agree on).
    package static func payload(identity: Curve25519.Signing.PrivateKey, staticKey: [UInt8]) throws -> [UInt8] {
        var p = Noise_Pb_NoiseHandshakePayload()
        p.identityKey = Data(LibP2PKey.encodePublicKey(ed25519: Array(identity.publicKey.rawRepresentation)))
        p.identitySig = try identity.signature(for: signaturePrefix + staticKey)
        return try p.serializedBytes()
    }

    /// Checks the peer's payload against its static key; returns its peer id.
    static func verify(payload: [UInt8], remoteStatic: [UInt8]) throws -> PeerID {
        let p: Noise_Pb_NoiseHandshakePayload
        do {
            p = try Noise_Pb_NoiseHandshakePayload(serializedBytes: payload)
        } catch {
            throw LinkError.handshake("handshake payload does not decode: \(error)")
        }
        guard let key = LibP2PKey.decodeEd25519PublicKey(Array(p.identityKey)) else {
            throw LinkError.handshake("identity key is not an Ed25519 libp2p PublicKey (only Ed25519 peers are accepted)")
        }
        guard LibP2PKey.verify(signature: Array(p.identitySig), of: signaturePrefix + remoteStatic, publicKey: key) else {
            throw LinkError.handshake("identity signature over the Noise static key is invalid")
        }
        return PeerID(publicKey: key)
    }

    package static func frame(_ message: [UInt8]) -> ByteBuffer {
        var b = ByteBuffer()
        b.reserveCapacity(2 + message.count)
        b.writeInteger(UInt16(message.count))
        b.writeBytes(message)
        return b
    }

    static func readFrame<S>(_ reader: inout ByteReader<S>) async throws -> [UInt8]? {
        if reader.buffer.readableBytes == 0 {
            guard try await reader.fill() else { return nil }
        }
        var lengthBytes = try await reader.readExactly(2)
        let length = Int(lengthBytes.readInteger(as: UInt16.self)!)
        var body = try await reader.readExactly(length)
        return body.readBytes(length: length)!
    }

    package struct Result {
        package var remote: PeerID
        var send: CipherState
        package var receive: CipherState
        /// The final handshake hash: the same on both ends, unique to this session.
        var handshakeHash: [UInt8]
    }

    /// Runs the XX handshake. `expected`: the peer id the dialer means to reach (checked).
    package static func handshake<S>(initiator: Bool, identity: Curve25519.Signing.PrivateKey, expected: PeerID?,
                             reader: inout ByteReader<S>,
                             write: (ByteBuffer) async throws -> Void) async throws -> Result {
        var ss = SymmetricState()
        let s = Curve25519.KeyAgreement.PrivateKey()
        let e = Curve25519.KeyAgreement.PrivateKey()
        let sPub = Array(s.publicKey.rawRepresentation)
        let ePub = Array(e.publicKey.rawRepresentation)
        let ourPayload = try payload(identity: identity, staticKey: sPub)
        func next() async throws -> [UInt8] {
            guard let f = try await readFrame(&reader) else { throw LinkError.eof }
            return f
        }
        if initiator {
            // -> e
            ss.mixHash(ePub)
            let m1 = ePub + (try ss.encryptAndHash([]))
            try await write(frame(m1))
            // <- e, ee, s, es, payload
            let m2 = try await next()
            guard m2.count >= 32 + 48 else { throw LinkError.handshake("second handshake message too short") }
            let re = Array(m2[0..<32])
            ss.mixHash(re)
            ss.mixKey(try dh(e, re))
            let rs = try ss.decryptAndHash(Array(m2[32..<80]))
            ss.mixKey(try dh(e, rs))
            let theirPayload = try ss.decryptAndHash(Array(m2[80...]))
            let remote = try verify(payload: theirPayload, remoteStatic: rs)
            if let expected, expected != remote {
                throw LinkError.handshake("peer is \(remote), not the expected \(expected)")
            }
            // -> s, se, payload
            var m3 = try ss.encryptAndHash(sPub)
            ss.mixKey(try dh(s, re))
            m3 += try ss.encryptAndHash(ourPayload)
            try await write(frame(m3))
            let (c1, c2) = ss.split()
            return Result(remote: remote, send: c1, receive: c2, handshakeHash: ss.h)
        } else {
            // -> e
            let m1 = try await next()
            guard m1.count >= 32 else { throw LinkError.handshake("first handshake message too short") }
            let re = Array(m1[0..<32])
            ss.mixHash(re)
            _ = try ss.decryptAndHash(Array(m1[32...]))
            // <- e, ee, s, es, payload
            ss.mixHash(ePub)
            ss.mixKey(try dh(e, re))
            var m2 = ePub
            m2 += try ss.encryptAndHash(sPub)
            ss.mixKey(try dh(s, re))
            m2 += try ss.encryptAndHash(ourPayload)
            try await write(frame(m2))
            // -> s, se, payload
            let m3 = try await next()
            guard m3.count >= 48 else { throw LinkError.handshake("third handshake message too short") }
            let rs = try ss.decryptAndHash(Array(m3[0..<48]))
            ss.mixKey(try dh(e, rs))
            let theirPayload = try ss.decryptAndHash(Array(m3[48...]))
            let remote = try verify(payload: theirPayload, remoteStatic: rs)
            let (c1, c2) = ss.split()
            return Result(remote: remote, send: c2, receive: c1, handshakeHash: ss.h)
        }
    }
}

/// The decrypted side of an established Noise session, as a chunk source.
struct NoiseSource<Inner: ChunkSource>: ChunkSource {
    package var reader: ByteReader<Inner>
    var cipher: Noise.CipherState

    mutating func nextChunk(max: Int) async throws -> ByteBuffer? {
        guard let frame = try await Noise.readFrame(&reader) else { return nil }
        let plain = try cipher.decrypt(frame, ad: [])
        return ByteBuffer(bytes: plain)
    }
}
