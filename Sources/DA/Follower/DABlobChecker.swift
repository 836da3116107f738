import Block
import Dispatch
import NIOCore

/// Decodes the blobs of one DA height and checks who signed them, spread over the cores when the
/// height is large (a catch-up reads DA heights holding thousands of blocks).
///
/// One signature check per block (SPEC §11 measures catch-up against exactly that): a header
/// blob's proposer signature over the header. Neither the envelope signature nor the data blob's
/// signature is verified. Neither adds to what a node accepts (SPEC §3): the header signature
/// covers the header, the header's `data_hash` covers the txs, and the pipeline checks the
/// data's metadata against the header. Each would cost another Ed25519 verification, which is the
/// catch-up's bottleneck. Data blobs still have to name the genesis proposer as signer, so other
/// chains' data sharing the namespace is turned away cheaply. Data that no header claims is
/// dropped by the follower once its height is final.
struct DABlobChecker: Sendable {
    enum Checked: Sendable {
        case header(SignedHeader)
        case data(BlockData)
        /// Not a block of this chain: undecodable, signed by another key, or a bad header signature.
        case rejected
    }

    let validator: BlockValidator
    let headerNamespace: DANamespace
    let dataNamespace: DANamespace
    /// Below this many blobs the cost of spreading the work exceeds the gain.
    var parallelThreshold = 32

    /// The checked blobs, in the order given.
    func check(_ blobs: [DABlob]) -> [Checked] {
        guard blobs.count >= parallelThreshold else { return blobs.map(check) }
        let chunks = min(blobs.count / (parallelThreshold / 2), 2 * System.coreCount)
        var out = [Checked](repeating: .rejected, count: blobs.count)
        out.withUnsafeMutableBufferPointer { results in
            // Each chunk writes only its own indices.
            nonisolated(unsafe) let results = results
            DispatchQueue.concurrentPerform(iterations: chunks) { chunk in
                for i in stride(from: chunk, to: blobs.count, by: chunks) {
                    results[i] = check(blobs[i])
                }
            }
        }
        return out
    }

    func check(_ blob: DABlob) -> Checked {
        if blob.namespace == headerNamespace, let envelope = try? DAHeaderEnvelope(decoding: blob.data),
           (try? validator.verifySignature(envelope.signedHeader)) != nil {
            return .header(envelope.signedHeader)
        }
        if blob.namespace == dataNamespace, let signed = try? SignedData(decoding: blob.data),
           (try? validator.verifySigner(of: signed)) != nil {
            return .data(signed.data)
        }
        return .rejected
    }
}
