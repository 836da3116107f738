import Chain
import Logging

/// The EVM executor's judgement of a block's candidate transactions (ev-node's EVM `FilterTxs`,
/// README "Forced inclusion and based sequencing"): size and gas.
///
/// With forced transactions in the list, every transaction is decoded (`RawTransaction`): one
/// that does not decode is garbage and removed, as is one whose gas limit alone exceeds the
/// block's; then the size rule; then, once the transactions taken so far would exceed the
/// block's gas, that one and every later one is postponed (order is kept). Without forced
/// transactions nothing is decoded: mempool transactions were checked by the EL when queued.
package enum EVMTxFilter {
    package static func filter(_ txs: [[UInt8]], maxBytes: UInt64, maxGas: UInt64, hasForced: Bool,
                              logger: Logger? = nil) -> [TxFilterStatus] {
        var result: [TxFilterStatus] = []
        result.reserveCapacity(txs.count)
        var takenBytes: UInt64 = 0
        var takenGas: UInt64 = 0
        var full = false
        for (index, tx) in txs.enumerated() {
            if tx.isEmpty {
                result.append(.remove)
                continue
            }
            let size = UInt64(tx.count)
            var gas: UInt64 = 0
            if hasForced {
                do throws(RawTransaction.DecodeError) {
                    gas = try RawTransaction.decode(tx).gasLimit
                } catch {
                    logger?.debug("forced-inclusion candidate removed: not a transaction", metadata: [
                        "index": "\(index)", "bytes": "\(size)", "error": "\(error)"])
                    result.append(.remove)
                    continue
                }
                if maxGas > 0, gas > maxGas {
                    logger?.debug("forced-inclusion candidate removed: its gas limit exceeds the block's", metadata: [
                        "index": "\(index)", "gas": "\(gas)", "block_gas_limit": "\(maxGas)"])
                    result.append(.remove)
                    continue
                }
            }
            if maxBytes > 0, size > maxBytes {
                result.append(.remove)
                continue
            }
            if full {
                result.append(.postpone)
                continue
            }
            // Both sums stay below their bounds (each term is at most its bound), so no overflow.
            if maxBytes > 0, takenBytes + size > maxBytes {
                full = true
                result.append(.postpone)
                continue
            }
            if hasForced, maxGas > 0, takenGas + gas > maxGas {
                full = true
                result.append(.postpone)
                continue
            }
            takenBytes += size
            takenGas += gas
            result.append(.include)
        }
        return result
    }
}

extension EVMExecutor {
    /// Size and gas (`EVMTxFilter`).
    package func filterTxs(_ txs: [[UInt8]], maxBytes: UInt64, maxGas: UInt64, hasForced: Bool) -> [TxFilterStatus] {
        EVMTxFilter.filter(txs, maxBytes: maxBytes, maxGas: maxGas, hasForced: hasForced)
    }

    /// The gas limit of the EL's latest block (ev-node's `GetExecutionInfo().MaxGas`): every
    /// block takes its parent's limit (`gasLimit` of the payload attributes), so on an evnode
    /// chain it is the genesis block's, the same for the sequencer and every verifier.
    package func maxGasPerBlock() async throws(ExecutionError) -> UInt64 {
        let method = "eth_getBlockByNumber"
        let outcome = try await rpc.ethCall(method, RPCParams("latest", false), as: ELBlock?.self, height: nil)
        func rejected(_ reason: String) -> ExecutionError {
            ExecutionError(kind: .rejected, engine: "EL \(rpc.ethURL)", method: method, height: nil, reason: reason)
        }
        switch outcome {
        case .error(let e):
            throw rejected("JSON-RPC error \(e.code): \(e.message)")
        case .result(let block):
            guard let block else { throw rejected("the EL has no latest block") }
            return block.gasLimit
        }
    }
}
