import Crypto

/// One blob as the Celestia blob API carries it (SPEC §5).
///
/// `commitment` identifies the blob to `blob.Get`. Real Celestia derives it from a Merkle subtree
/// root over the blob's shares; clients treat it as opaque bytes. evnode's local DA defines it as
/// SHA-256(namespace ‖ data) (see `DABlob.commitment(namespace:data:)`), and the client never
/// recomputes the commitments a DA node returns, so both kinds of DA node work.
package struct DABlob: Sendable, Equatable {
    package var namespace: DANamespace
    package var data: [UInt8]
    package var shareVersion: Int
    package var commitment: [UInt8]
    /// Position of the blob in its DA block; -1 while the blob is not yet included (Celestia's
    /// convention for a blob being submitted).
    package var index: Int

    package init(namespace: DANamespace, data: [UInt8], shareVersion: Int = 0,
                commitment: [UInt8], index: Int) {
        self.namespace = namespace
        self.data = data
        self.shareVersion = shareVersion
        self.commitment = commitment
        self.index = index
    }

    /// A blob ready for `blob.Submit`: share version 0, local commitment, no index yet.
    package init(namespace: DANamespace, data: [UInt8]) {
        self.init(namespace: namespace, data: data, shareVersion: 0,
                  commitment: Self.commitment(namespace: namespace, data: data), index: -1)
    }

    /// The local DA's commitment: SHA-256(namespace ‖ data).
    package static func commitment(namespace: DANamespace, data: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: namespace.bytes)
        hasher.update(data: data)
        return Array(hasher.finalize())
    }
}
