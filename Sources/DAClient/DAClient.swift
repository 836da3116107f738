import Config

/// A DA node's header: its height and block time.
package struct DAHeader: Sendable, Equatable {
    package let height: UInt64
    package let timeNanoseconds: UInt64

    /// The highest DA height a DA node is believed: 2^53 − 1, where JSON numbers stop being exact
    /// and which no chain reaches (a block a second for 285 million years). A head above it is a
    /// broken or lying DA node, and arithmetic on it (`head + 1`) would trap.
    package static let maximumPlausibleHeight: UInt64 = (1 << 53) - 1

    package init(height: UInt64, timeNanoseconds: UInt64) {
        self.height = height
        self.timeNanoseconds = timeNanoseconds
    }
}

/// The Celestia blob API as evnode uses it (SPEC §5). The seam between the node (submitter,
/// DA follower) and a concrete DA node client.
package protocol DAClient: Sendable {
    /// `blob.Submit`: posts the blobs in one submission and returns the DA height that holds them.
    /// Throws `.blobTooLarge` when the DA node rejects the submission's size.
    func submit(_ blobs: [DABlob]) async throws(DAError) -> UInt64

    /// `blob.Submit` with celestia-node's TxConfig (gas price, signer, fee granter, …).
    func submit(_ blobs: [DABlob], options: DATxConfig) async throws(DAError) -> UInt64

    /// `blob.GetAll`: the blobs at `height` in any of `namespaces`. Throws `.notFound` for a height
    /// without such blobs and `.heightFromFuture` above the DA node's head.
    func getAll(height: UInt64, namespaces: [DANamespace]) async throws(DAError) -> [DABlob]

    /// `blob.Get`: the blob with `commitment` in `namespace` at `height`.
    func get(height: UInt64, namespace: DANamespace, commitment: [UInt8]) async throws(DAError) -> DABlob

    /// `header.NetworkHead`: the DA node's newest header.
    func networkHead() async throws(DAError) -> DAHeader

    /// `header.GetByHeight`.
    func header(height: UInt64) async throws(DAError) -> DAHeader
}

extension DAClient {
    /// Clients that take no submission options post with their defaults.
    package func submit(_ blobs: [DABlob], options: DATxConfig) async throws(DAError) -> UInt64 {
        try await submit(blobs)
    }
}
