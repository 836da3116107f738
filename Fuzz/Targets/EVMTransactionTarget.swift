import Chain
import EVM

/// A forced transaction: raw bytes anyone may post to the forced-inclusion namespace, through the
/// EVM decoder and the filter that judges them.
extension FuzzTargets {
    static let evmTransaction = FuzzTarget(
        name: "evm-transaction",
        summary: "a raw EVM transaction as posted to the forced-inclusion namespace, through RawTransaction.decode "
            + "and EVMTxFilter (block gas 30,000,000, no size bound): a decoded transaction must fail to decode "
            + "without its last byte, and the filter must include it exactly when it decodes within the gas",
        maxLength: 16 << 10) { input throws(FuzzFinding) in
        let decoded = try? RawTransaction.decode(input)
        let maxGas: UInt64 = 30_000_000
        let status = EVMTxFilter.filter([input], maxBytes: 0, maxGas: maxGas, hasForced: true)
        let expected: TxFilterStatus = decoded.map { $0.gasLimit <= maxGas ? .include : .remove } ?? .remove
        guard status == [expected] else {
            throw FuzzFinding(id: "filter-disagrees", "the filter says \(status), the decoder \(String(describing: decoded))")
        }
        if decoded != nil, (try? RawTransaction.decode(Array(input.dropLast()))) != nil {
            throw FuzzFinding(id: "prefix-decodes", "the input decodes with and without its last byte")
        }
        return ["decoded": decoded == nil ? 0 : 1]
    }
}
