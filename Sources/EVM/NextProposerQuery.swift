import Chain
import Logging

/// ev-node's decision whether executing block h handed production to another key (v1.2
/// rotation, `execution/evm`): the EL's next-proposer word before the block (at h−1) and after it
/// (at h). A zero word means the EL names nobody (ev-reth without `initialNextProposer`, before
/// any `setNextProposer`); an unchanged word means the block changed nothing. Either way the
/// state keeps its proposer (empty = unchanged).
enum NextProposerRule {
    static func change(before: [UInt8], after: [UInt8]) -> [UInt8] {
        if after.allSatisfy({ $0 == 0 }) || after == before { return [] }
        return after
    }
}

/// Asks the EL `evolve_getNextProposer` at h−1 and h after block h was executed, on every path
/// that returns a block's result (built, adopted, resumed), as ev-node's EVM adapter does.
///
/// - `-32601` (method not found) on either call: the EL has no proposer control (ev-reth
///   registers the method only when `proposerControlAdmin` is set), so the chain never rotates.
/// - Any other JSON-RPC error, or an answer that is not one 32-byte word: asked again, `attempts`
///   times in all (ev-node's syncer retries ExecuteTxs 3 times), then a `rejected` error that
///   stops the node, naming the method, the block height and the last failure. A rotation the
///   node cannot read must not be guessed: applying the block without it would expect the wrong
///   signer from h+1 on.
/// - The EL cannot be reached: `unavailable`, as every other EL call; the node waits for the EL
///   and executes the block again (it is adopted from the EL and the question asked again).
struct NextProposerQuery: Sendable {
    static let method = "evolve_getNextProposer"

    /// Who answered, for errors (`EL http://…`).
    let engine: String
    let attempts: Int
    /// The sleep before the n-th attempt is `backoff × (n − 1)`.
    let backoff: Duration
    let logger: Logger

    typealias Ask = (_ block: UInt64) async throws(ExecutionError) -> RPCOutcome<String>

    /// The next proposer named while executing `height`, empty when unchanged.
    func change(afterExecuting height: UInt64, ask: Ask) async throws(ExecutionError) -> [UInt8] {
        // Block 0 is genesis: nothing executed it (ev-node asks nothing either).
        guard height > 0 else { return [] }
        guard let before = try await word(at: height - 1, executing: height, ask: ask),
              let after = try await word(at: height, executing: height, ask: ask) else { return [] }
        return NextProposerRule.change(before: before, after: after)
    }

    /// The EL's word at `block`; nil when the EL does not know the method.
    private func word(at block: UInt64, executing height: UInt64, ask: Ask) async throws(ExecutionError) -> [UInt8]? {
        var lastFailure = ""
        for attempt in 1...max(1, attempts) {
            if attempt > 1 {
                do {
                    try await Task.sleep(for: backoff * (attempt - 1))
                } catch {
                    throw ExecutionError(kind: .unavailable, engine: engine, method: Self.method, height: height, reason: "cancelled")
                }
            }
            do throws(ExecutionError) {
                switch try await ask(block) {
                case .error(let e) where e.code == RPCErrorObject.methodNotFound:
                    return nil
                case .error(let e):
                    lastFailure = "JSON-RPC error \(e.code): \(e.message)"
                case .result(let result):
                    do throws(EngineAnswers.Unusable) {
                        return try EngineAnswers.proposerWord(result)
                    } catch {
                        lastFailure = error.description
                    }
                }
            } catch {
                // Unreachable: waited out like every EL call. A reply that is not JSON-RPC at all
                // is a wrong answer, asked again like the others.
                if error.isUnavailable { throw error }
                lastFailure = error.reason
            }
            if attempt < attempts {
                logger.warning("the EL's next-proposer answer is unusable; asking again", metadata: [
                    "method": "\(Self.method)", "block": "\(block)", "height": "\(height)", "attempt": "\(attempt)",
                    "error": "\(lastFailure)"])
            }
        }
        throw ExecutionError(kind: .rejected, engine: engine, method: Self.method, height: height,
                             reason: "no usable answer for block \(block) after \(max(1, attempts)) attempts: \(lastFailure)")
    }
}
