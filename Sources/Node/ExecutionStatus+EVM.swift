import EVM

extension ExecutionStatus {
    init(evm: EVMExecutor) {
        let health = evm.health
        self.init(kind: "evm", engine_url: evm.rpc.engineURL, eth_url: evm.rpc.ethURL, reachable: health.reachable,
                  last_error: health.lastError, unreachable_since: health.unreachableSince)
    }
}
