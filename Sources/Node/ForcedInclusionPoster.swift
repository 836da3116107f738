import Primitives
import DAClient
import Chain
import Config
import Logging

/// Posts one raw transaction as one blob to the forced-inclusion namespace (what apps/evm's
/// forced-inclusion server does for `eth_sendRawTransaction`), with the node's DA submission
/// options (`da.submit_options`: gas price, signer, fee granter). DA faults that asking again
/// may fix (transport failures, 5xx, 429) are retried with backoff, at most `attempts` times
/// and never past `deadline` (ev-node gives its one submission 60 s); every other error is the
/// caller's answer at once.
package struct ForcedInclusionPoster: Sendable {
    package let client: any DAClient
    package let namespace: DANamespace
    package let txConfig: DATxConfig
    package let retry: RetryPolicy
    package let deadline: Duration
    let logger: Logger

    package init(client: any DAClient, namespace: DANamespace, txConfig: DATxConfig,
                retry: RetryPolicy = RetryPolicy(maxAttempts: 10, initialDelay: .milliseconds(250), maxDelay: .seconds(5)),
                deadline: Duration = .seconds(60), logger: Logger = Logger(label: "evnode.forced-inclusion.post")) {
        self.client = client
        self.namespace = namespace
        self.txConfig = txConfig
        self.retry = retry
        self.deadline = deadline
        self.logger = logger
    }

    package enum Failure: Error, Sendable, Equatable, CustomStringConvertible {
        /// Larger than a forced transaction may be: every node would drop it unread.
        case tooLarge(bytes: Int, limit: Int)
        case empty
        case da(DAError, attempts: Int)

        package var description: String {
            switch self {
            case let .tooLarge(bytes, limit):
                return "the transaction is \(bytes) bytes; forced transactions over \(limit) bytes are dropped by every node"
            case .empty:
                return "the transaction is empty"
            case let .da(error, attempts):
                return "posting to the forced-inclusion namespace failed after \(attempts) attempt(s): \(error)"
            }
        }
    }

    /// The DA height that holds the blob.
    package func post(_ tx: [UInt8]) async throws(Failure) -> UInt64 {
        guard !tx.isEmpty else { throw .empty }
        guard tx.count <= ForcedInclusionRules.maxTxBytes else {
            throw .tooLarge(bytes: tx.count, limit: ForcedInclusionRules.maxTxBytes)
        }
        let blob = DABlob(namespace: namespace, data: tx)
        let giveUpAt = ContinuousClock.now + deadline
        var backoff = Backoff(policy: retry)
        var attempts = 0
        while true {
            attempts += 1
            do throws(DAError) {
                let height = try await client.submit([blob], options: txConfig)
                guard height > 0 else {
                    throw DAError.malformedResponse(method: DAMethod.submit, reason: "the DA node answered height 0")
                }
                return height
            } catch {
                let delay = backoff.nextDelay()
                guard error.isRetryable, attempts < retry.maxAttempts, ContinuousClock.now + delay < giveUpAt else {
                    throw .da(error, attempts: attempts)
                }
                logger.warning("posting a forced transaction to DA failed; retrying", metadata: [
                    "error": "\(error)", "attempt": "\(attempts)", "retry_in": "\(delay)"])
                do {
                    try await Task.sleep(for: delay)
                } catch {
                    throw .da(.cancelled, attempts: attempts)
                }
            }
        }
    }
}
