import DAClient
import Chain
import Dispatch
import NIOCore

/// Decodes the blobs of one DA height and checks who signed them, spread over the cores when the
/// height is large (a catch-up reads DA heights holding thousands of blocks).
///
/// Headers: the proposer signature over the header, always (one Ed25519 check per block, what
/// SPEC §11 measures catch-up against), and the `DAHeaderEnvelope`'s envelope signature when the
/// blob carries one (ev-node v1.2, reference §5): it must verify over the re-encoded
/// `SignedHeader` under the header's own key, or the blob is dropped. Whether a header *without*
/// an envelope is still taken is the follower's call, in DA order (`EnvelopeStrictMode`).
///
/// Data — anyone can post to a Celestia namespace, so junk must never be held (issue 14, hole 7).
/// The rule, sound and nearly free in a catch-up:
/// - A data blob whose txs hash to the `data_hash` of a header already verified (in this DA
///   height, or waiting in the follower for its data) needs no signature check: the header's
///   signature covers `data_hash`, which covers the txs. Its metadata, though, is covered by
///   nothing verified, so it is dropped (`Checked.data(verified: false)` tells the tracker to
///   strip it when pairing): the validator then derives the chained data hash from the header and
///   the previous block exactly as the producer's metadata would give it. A copy of genuine txs
///   with forged metadata (front-running a gossiped block onto DA) thus pairs to the very same
///   block as the genuine blob.
/// - Any other data blob is held only after its own signature over the encoded `Data` is
///   verified, by a key the chain has named as a proposer (`isNamed`: the genesis proposer or a
///   rotation's; the second Ed25519 check is paid only for data that arrives before its header,
///   or for junk). Claimed data may carry any signer — ev-node signs data with the submitter's
///   key, and binds it to its block by `data_hash` only — but unclaimed data of a key the chain
///   never named is junk: rejected before it is held, so it never pins the DA resume height.
/// Both passes run on the blocking pool's threads, the second only over the unclaimed data; the
/// first (`decode`) needs nothing of the follower's state, so it runs behind each DA height's
/// fetch, the second (`resolve`) when the height's turn comes.
struct DABlobChecker: Sendable {
    enum Checked: Sendable {
        /// `enveloped`: the blob carried an envelope signature, and it verified.
        case header(SignedHeader, enveloped: Bool)
        /// `verified`: its own signature was checked (its metadata can be trusted); otherwise a
        /// verified header claims its txs and only the txs count.
        case data(BlockData, hash: [UInt8], bytes: Int, verified: Bool)
        /// Not a block of this chain: undecodable, signed by another key, or a bad signature.
        case rejected
    }

    /// The first pass's verdict on one blob.
    enum Decoded: Sendable {
        case header(SignedHeader, enveloped: Bool)
        case data(SignedData, hash: [UInt8], bytes: Int)
        case rejected
    }

    package let validator: BlockValidator
    package let headerNamespace: DANamespace
    package let dataNamespace: DANamespace
    /// Whether the chain has named this address as a proposer (nil: only the genesis proposer).
    var isNamed: (@Sendable ([UInt8]) -> Bool)? = nil
    /// Below this many blobs the cost of spreading the work exceeds the gain.
    var parallelThreshold = 32

    /// The checked blobs, in the order given. `claimed`: the data hashes of verified headers
    /// that still wait for their data.
    package func check(_ blobs: [DABlob], claimed: Set<[UInt8]> = []) -> [Checked] {
        resolve(decode(blobs), claimed: claimed)
    }

    /// The first pass, needing nothing but the blobs: headers decoded and verified, data decoded,
    /// its signer checked and its txs hashed. The follower runs it for many DA heights at once,
    /// behind their fetches, before their turn comes.
    package func decode(_ blobs: [DABlob]) -> [Decoded] {
        spread(blobs.count, initial: Decoded.rejected) { decode(blobs[$0]) }
    }

    /// The second pass, in DA order: the data blobs no verified header claims (in this DA
    /// height, or in `claimed`, those still waiting for their data) need their own signature.
    package func resolve(_ decoded: [Decoded], claimed: Set<[UInt8]> = []) -> [Checked] {
        var claims = claimed
        for case .header(let header, _) in decoded { claims.insert(header.header.dataHash) }
        let unclaimed = decoded.indices.filter { i in
            if case .data(_, let hash, _) = decoded[i] { return !claims.contains(hash) }
            return false
        }
        let signed = spread(unclaimed.count, initial: false) { k in
            guard case .data(let data, _, _) = decoded[unclaimed[k]] else { return false }
            let address = data.signer.address
            guard address == validator.proposerAddress || isNamed?(address) == true else { return false }
            return (try? validator.verifySignature(of: data)) != nil
        }
        var out = [Checked](repeating: .rejected, count: decoded.count)
        for (i, d) in decoded.enumerated() {
            switch d {
            case .header(let header, let enveloped): out[i] = .header(header, enveloped: enveloped)
            case .data(let data, let hash, let bytes): out[i] = .data(data.data, hash: hash, bytes: bytes, verified: false)
            case .rejected: break
            }
        }
        for (k, i) in unclaimed.enumerated() {
            guard case .data(let data, let hash, let bytes) = decoded[i] else { continue }
            out[i] = signed[k] ? .data(data.data, hash: hash, bytes: bytes, verified: true) : .rejected
        }
        return out
    }

    /// One blob on its own (tests; no header claims its data).
    package func check(_ blob: DABlob) -> Checked { check([blob])[0] }

    /// Headers verified; data decoded, its signer checked (cheap: turns other chains away) and
    /// its txs hashed.
    private func decode(_ blob: DABlob) -> Decoded {
        if blob.namespace == headerNamespace, let envelope = try? DAHeaderEnvelope(decoding: blob.data) {
            let signed = envelope.signedHeader
            // The header signature first: it also proves the embedded key well formed and
            // naming itself, which the envelope check then relies on.
            guard (try? validator.verifySignature(signed)) != nil else { return .rejected }
            if envelope.envelopeSignature.isEmpty { return .header(signed, enveloped: false) }
            guard SignatureVerifier.isValid(signature: envelope.envelopeSignature, message: signed.encoded(),
                                            signer: signed.signer) else { return .rejected }
            return .header(signed, enveloped: true)
        }
        if blob.namespace == dataNamespace, let signed = try? SignedData(decoding: blob.data),
           (try? validator.verifySigner(of: signed)) != nil {
            return .data(signed, hash: signed.data.dataHash, bytes: blob.data.count)
        }
        return .rejected
    }

    /// `work(0..<count)`, over the cores when `count` is large, off the cooperative pool (the
    /// caller runs on the blocking pool).
    private func spread<T: Sendable>(_ count: Int, initial: T, _ work: @Sendable (Int) -> T) -> [T] {
        guard count >= parallelThreshold else { return (0..<count).map(work) }
        let chunks = min(count / (parallelThreshold / 2), 2 * System.coreCount)
        var out = [T](repeating: initial, count: count)
        out.withUnsafeMutableBufferPointer { results in
            // Each chunk writes only its own indices.
            nonisolated(unsafe) let results = results
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                for i in stride(from: chunk, to: count, by: chunks) {
                    results[i] = work(i)
                }
            }
        }
        return out
    }
}

/// ev-node's strict mode for DA header envelopes (`da_retriever.go`, reference §5): once a
/// header with a valid envelope signature has been taken, headers posted without one are
/// dropped. In memory only, as in ev-node: a restart starts lax again.
///
/// One deliberate difference (the reference's "safe reading"): ev-node switches on as soon as an
/// envelope verifies under whatever key the header embeds, before the header's own signature or
/// proposer is checked, so anyone could post one self-consistent envelope and make every node
/// drop an honest legacy proposer's headers. Here only a header validly signed by a key the
/// chain has named switches it on.
struct EnvelopeStrictMode: Sendable {
    var isOn = false

    /// Whether a header is taken; switches strict mode on for an enveloped header whose
    /// proposer the chain has named (its signature was verified by `DABlobChecker`).
    mutating func admits(enveloped: Bool, proposerNamed: Bool) -> Bool {
        if enveloped {
            if proposerNamed { isOn = true }
            return true
        }
        return !isOn
    }
}
