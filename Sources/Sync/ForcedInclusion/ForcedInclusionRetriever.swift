import DAClient
import Chain

/// Reads forced-inclusion transactions from DA (ev-node's forced-inclusion retriever, README
/// "Forced inclusion and based sequencing"). Each blob in the namespace is one raw transaction.
/// Stateless: the sequencer, a based node and a verifying full node each ask for the epochs they
/// need, and every one of them gets the same transactions for the same epoch.
package struct ForcedInclusionRetriever: ForcedInclusionSource {
    package let client: any DAClient
    package let namespace: DANamespace
    package let epochs: ForcedInclusionEpochs

    package init(client: any DAClient, namespace: DANamespace, epochs: ForcedInclusionEpochs) {
        self.client = client
        self.namespace = namespace
        self.epochs = epochs
    }

    /// The forced transactions to read at `daHeight`: nothing inside an epoch, the whole epoch
    /// at its last height.
    package func read(at daHeight: UInt64) async throws(ForcedInclusionError) -> ForcedInclusionRead {
        guard daHeight >= epochs.startHeight else {
            throw .beforeStart(daHeight: daHeight, startHeight: epochs.startHeight)
        }
        guard epochs.isEpochEnd(daHeight) else { return .notEpochEnd(daHeight: daHeight) }
        return .epoch(try await epoch(containing: daHeight))
    }

    /// The epoch holding `daHeight`, read whole. Its last height is asked first: when it is
    /// not produced yet, no other height is fetched for nothing.
    package func epoch(containing daHeight: UInt64) async throws(ForcedInclusionError) -> ForcedInclusionEpoch {
        let heights = epochs.bounds(containing: daHeight)
        let endTime: UInt64
        do throws(DAError) {
            endTime = try await client.header(height: heights.upperBound).timeNanoseconds
        } catch {
            throw Self.failure(error, at: heights.upperBound)
        }
        var txs: [[UInt8]] = []
        var dropped = 0
        for height in heights {
            let blobs: [DABlob]
            do throws(DAError) {
                blobs = try await client.getAll(height: height, namespaces: [namespace])
            } catch {
                if case .notFound = error { continue }
                throw Self.failure(error, at: height)
            }
            for blob in blobs where !blob.data.isEmpty {
                if blob.data.count > ForcedInclusionRules.maxTxBytes {
                    dropped += 1
                } else {
                    txs.append(blob.data)
                }
            }
        }
        return ForcedInclusionEpoch(daHeights: heights, txs: txs, droppedOversize: dropped, endTime: endTime)
    }

    package func latestDAHeight() async throws(ForcedInclusionError) -> UInt64 {
        do throws(DAError) {
            return try await client.networkHead().height
        } catch {
            throw .unavailable(daHeight: 0, reason: "asking the DA head: \(error)")
        }
    }

    private static func failure(_ error: DAError, at height: UInt64) -> ForcedInclusionError {
        if case .heightFromFuture = error { return .heightFromFuture(daHeight: height) }
        return .unavailable(daHeight: height, reason: error.description)
    }
}
