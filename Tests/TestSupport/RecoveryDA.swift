import Chain
import Store
import DAClient

/// A local DA (`evnode local-da`, a real process) with the namespaces and client the recovery
/// tests post and follow with.
package final class RecoveryDA: Sendable {
    package let headerNamespace = DANamespace(name: "recovery-headers")
    package let dataNamespace = DANamespace(name: "recovery-data")
    package let process: LocalDAProcess
    package let client: CelestiaDAClient
    package var url: String { process.url }

    private init(process: LocalDAProcess, client: CelestiaDAClient) {
        self.process = process
        self.client = client
    }

    package static func start(home: String) async throws -> RecoveryDA {
        let process = try await LocalDAProcess.start(home: home, blockTime: "1h")
        return RecoveryDA(process: process, client: try CelestiaDAClient(options: DAClientOptions(url: process.url)))
    }

    /// Posts each block as the proposer does (header envelope, signed data), one DA height each.
    package func post(_ blocks: [BlockCommit], signer: BlockSigner) async throws {
        for block in blocks {
            var blobs = [DABlob(namespace: headerNamespace, data: try signer.envelope(for: block.signedHeader).encoded())]
            if !block.data.txs.isEmpty {
                blobs.append(DABlob(namespace: dataNamespace, data: try signer.sign(data: block.data).encoded()))
            }
            _ = try await client.submit(blobs)
        }
    }

    package func stop() async {
        await client.shutdown()
        await process.stop()
    }
}
