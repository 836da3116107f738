import EVM
import HTTPClient

/// What an execution client answers on the Engine and eth APIs.
extension FuzzTargets {
    static let engineAnswers = FuzzTarget(
        name: "engine-answers",
        summary: "an execution client's answer (first byte % 6: eth_getBlockByNumber, txpoolExt_getTxs, "
            + "forkchoiceUpdated, getPayload, newPayload, evolve_getNextProposer; second byte: HTTP status 200, 401, 500 or 0) to request id 7 "
            + "for block 5, through the JSON-RPC decoding and the executor's reading of the result",
        maxLength: 64 << 10) { input throws(FuzzFinding) in
        guard input.count >= 2 else { return [:] }
        let readings = EngineAnswerDrivers.Reading.allCases
        let reading = readings[Int(input[input.startIndex]) % readings.count]
        let status = [200, 401, 500, 0][Int(input[input.startIndex + 1]) % 4]
        let problem = EngineAnswerDrivers.read(HTTPReply(status: status, body: Array(input.dropFirst(2))), id: 7,
                                               as: reading, height: 5)
        return ["usable": problem == nil ? 1 : 0]
    }
}
