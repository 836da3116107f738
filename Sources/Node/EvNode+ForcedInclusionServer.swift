import Primitives
import DAClient
import Chain
import HTTPClient
import Logging

extension EvNode {
    /// `--force-inclusion-server` (EVM nodes): posts with the node's DA client and submission
    /// options, proxies to `--evm.eth-url`. Nil when the flag is not given.
    func forcedInclusionServer() throws(NodeFailure) -> ForcedInclusionServer? {
        let config = setup.config
        guard let address = config.execution.evm.forceInclusionServer else { return nil }
        let ethURL = config.execution.evm.ethURL?.url ?? "http://localhost:8545"
        let upstream: ELUpstream
        do throws(HTTPClient.HTTPError) {
            upstream = try ELUpstream(url: ethURL)
        } catch {
            throw .config(.invalidValue(field: "evm.eth_url", value: ethURL, source: "flag",
                                        reason: "the forced-inclusion server cannot proxy to it: \(error)"))
        }
        let epochs = ForcedInclusionEpochs(startHeight: setup.genesis.daStartHeight, size: setup.genesis.daEpochForcedInclusion)
        let logger = Logger(label: "evnode.forced-inclusion.server")
        var retry = RetryPolicy(maxAttempts: 10, initialDelay: .milliseconds(250), maxDelay: .seconds(5))
        if config.da.maxSubmitAttempts > 0 { retry.maxAttempts = min(retry.maxAttempts, config.da.maxSubmitAttempts) }
        let poster = ForcedInclusionPoster(client: daClient, namespace: DANamespace(name: config.da.forcedInclusionNamespace),
                                           txConfig: config.da.txConfig, retry: retry, logger: logger)
        let rpc = ForcedInclusionRPC(poster: poster, epochs: epochs, upstream: upstream, logger: logger)
        return ForcedInclusionServer(address: address, rpc: rpc, logger: logger)
    }
}
