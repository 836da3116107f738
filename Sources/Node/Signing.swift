import Chain
import Config
import Production
import Logging
import RemoteSigner

/// What a producing role signs with: the block signer, its high-water mark, and the connection
/// to `evnode signer serve` when the key is remote.
struct Signing: Sendable {
    let signer: BlockSigner
    let mark: any SignerMark
    let remote: RemoteSignerClient?

    /// Before anything is opened: a signer that cannot be reached, or that holds another key or
    /// signs another chain, leaves nothing to clean up. A producing role without a signer is a
    /// configuration error (only a setup built by hand gets here: the home loader refuses it).
    static func connect(setup: NodeSetup, logger: Logger) throws(NodeFailure) -> Signing {
        if setup.config.signer.kind == .grpc {
            let (client, signer) = try NodeAssembly.connectRemoteSigner(setup: setup, logger: logger)
            return Signing(signer: signer, mark: RemoteSignerMark(client: client, signer: signer.signer), remote: client)
        }
        guard let key = setup.signer else { throw NodeAssembly.noSigner }
        return Signing(signer: BlockSigner(keyFile: key), mark: SignerHighWaterMark(path: setup.layout.signerStateFile),
                       remote: nil)
    }
}
