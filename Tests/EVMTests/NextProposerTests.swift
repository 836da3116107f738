import Chain
import Store
import Config
import Foundation
import Logging
import Testing
import TestSupport
@testable import EVM
import HTTPClient

/// ev-node's EVM rotation rule (reference/ev-node-chain-rules.md §1 "EVM adapter"): after block h,
/// `evolve_getNextProposer` at h−1 and h; a changed, non-zero word is the next proposer; −32601
/// means the EL has no proposer control; other failures are asked again, then stop the node.
@Suite struct NextProposerRuleTests {
    let a = [UInt8](repeating: 0xaa, count: 32)
    let b = [UInt8](repeating: 0xbb, count: 32)
    let zero = [UInt8](repeating: 0, count: 32)

    @Test func aChangedNonZeroWordIsTheNextProposer() {
        #expect(NextProposerRule.change(before: a, after: b) == b)
        #expect(NextProposerRule.change(before: zero, after: b) == b)
        #expect(NextProposerRule.change(before: a, after: a) == [])
        #expect(NextProposerRule.change(before: a, after: zero) == [], "a zero word names nobody")
        #expect(NextProposerRule.change(before: zero, after: zero) == [])
    }

    @Test func theAnswerMustBeOne32ByteWord() throws {
        #expect(try EngineAnswers.proposerWord("0x" + String(repeating: "ab", count: 32)) == [UInt8](repeating: 0xab, count: 32))
        let bad = ["0x1234", "0x" + String(repeating: "ab", count: 33), String(repeating: "ab", count: 33),
                   "0x" + String(repeating: "zz", count: 32), String(repeating: "0", count: 1 << 20)]
        for answer in bad {
            #expect(throws: EngineAnswers.Unusable.self, "accepted \(answer.prefix(40))") {
                try EngineAnswers.proposerWord(answer)
            }
        }
        // Answers that are not a string at all fail the typed decoding of the result.
        for result in ["5", "null", "[]", "{}"] {
            let body = Array(#"{"jsonrpc":"2.0","id":1,"result":\#(result)}"#.utf8)
            let problem = EngineAnswerDrivers.read(HTTPReply(status: 200, body: body), id: 1, as: .proposerWord, height: 1)
            #expect(problem != nil, "accepted \(result)")
        }
    }
}

/// The executor against the real py-evm test EL, which carries ev-reth's proposer control.
@Suite(.serialized) struct NextProposerELTests {
    let keyA = KeyFile.generate()
    let keyB = KeyFile.generate()

    /// One EL on `genesis`, an executor on a fresh store; `body` gets both.
    func withExecutor(genesis: String, attempts: Int = 3,
                      _ body: (TestEL, EVMExecutor) async throws -> Void) async throws {
        let dir = TempDirectory("evnode-evm-proposer")
        var taken = Set<Int>()
        let el = try TestEL(name: "el", directory: dir.path, logDirectory: dir.sub("logs"), taken: &taken, genesis: genesis)
        try await el.start()
        let store = try BlockStore.open(path: dir.sub("store"))
        let rpc = try EngineRPCClient(engineURL: el.engineURL, ethURL: el.ethURL,
                                      jwt: EngineJWT(secret: try EngineJWT.readSecret(path: el.secretFile)))
        let executor = EVMExecutor(rpc: rpc, store: store,
                                   options: .init(statusBackoff: .milliseconds(20), proposerAttempts: attempts),
                                   logger: Logger(label: "test.evm"))
        do {
            try await body(el, executor)
        } catch {
            await rpc.shutdown()
            store.close()
            await el.stop()
            throw error
        }
        await rpc.shutdown()
        store.close()
        await el.stop()
    }

    func genesis() -> Genesis {
        Genesis(chainID: "proposer", startTimeNanoseconds: 1_700_000_000_000_000_000, proposerAddress: keyA.address)
    }

    /// The admin's `setNextProposer(B)` in block 2 names B (and only block 2 does); a call by
    /// another account is included but reverts, and names nobody; each block asks at h−1 and h.
    @Test(.enabled(if: EVMFiles.available)) func theAdminsCallNamesTheNextProposerAndAStrangersReverts() async throws {
        let dir = TempDirectory("evnode-evm-proposer-genesis")
        let path = try EVMFiles.proposerControlGenesis(in: dir.path, initialNextProposer: keyA.address, fundOther: true)
        try await withExecutor(genesis: path) { el, executor in
            var root = try await executor.initChain(genesis: genesis())
            var time = genesis().startTimeNanoseconds
            func execute(_ txs: [[UInt8]], _ height: UInt64) async throws -> ExecutionResult {
                time += 1_000_000_000
                let asked = try await el.proposerCalls().count
                let result = try await executor.executeTxs(txs, height: height, time: time, previousRoot: root)
                root = result.stateRoot
                let calls = try await el.proposerCalls().dropFirst(asked)
                #expect(Array(calls) == ["0x\(String(height - 1, radix: 16))", "0x\(String(height, radix: 16))"],
                        "block \(height) asks at h−1 and h")
                return result
            }
            #expect(try await el.nextProposer(at: 0) == keyA.address, "initialNextProposer from the chainspec")
            #expect(try await execute([], 1).nextProposerAddress == [])

            let stranger = try EVMFiles.setNextProposer(keyB.address, key: EVMFiles.otherKey, nonce: 0)
            #expect(try await execute([stranger], 2).nextProposerAddress == [], "a non-admin call named a proposer")
            #expect(try await el.call("eth_getTransactionCount", "[\"\(EVMFiles.otherAddress)\",\"latest\"]") as? String == "0x1",
                    "the stranger's call was not included")
            #expect(try await el.nextProposer() == keyA.address)

            let admin = try EVMFiles.setNextProposer(keyB.address, nonce: 0)
            #expect(try await execute([admin], 3).nextProposerAddress == keyB.address)
            #expect(try await execute([], 4).nextProposerAddress == [], "unchanged after the rotating block")
            #expect(try await el.nextProposer(at: 2) == keyA.address)
            #expect(try await el.nextProposer(at: 3) == keyB.address)
        }
    }

    /// An EL without proposer control answers −32601: no rotation, blocks go on.
    @Test(.enabled(if: EVMFiles.available)) func anELWithoutTheMethodNeverRotates() async throws {
        try await withExecutor(genesis: EVMFiles.genesis) { el, executor in
            let root = try await executor.initChain(genesis: genesis())
            let result = try await executor.executeTxs([], height: 1, time: genesis().startTimeNanoseconds + 1_000_000_000,
                                                       previousRoot: root)
            #expect(result.nextProposerAddress == [])
            #expect(try await executor.latestHeight() == 1)
            await #expect(throws: (any Error).self) { _ = try await el.nextProposer(at: 1) }
        }
    }

    /// Two failures are asked through; three failures (errors or malformed words) stop the node
    /// with an error naming the method, the height and the failure.
    @Test(.enabled(if: EVMFiles.available)) func failuresAreRetriedThreeTimesThenStopTheNode() async throws {
        let dir = TempDirectory("evnode-evm-proposer-genesis")
        let path = try EVMFiles.proposerControlGenesis(in: dir.path, initialNextProposer: keyA.address)
        try await withExecutor(genesis: path) { el, executor in
            var root = try await executor.initChain(genesis: genesis())
            let time = genesis().startTimeNanoseconds

            try await el.setProposerFaults(failNext: 2)
            let first = try await executor.executeTxs([try EVMFiles.setNextProposer(keyB.address, nonce: 0)], height: 1,
                                                      time: time + 1_000_000_000, previousRoot: root)
            #expect(first.nextProposerAddress == keyB.address, "the rotation is read after two failed answers")
            root = first.stateRoot

            try await el.setProposerFaults(failNext: 3)
            do throws(ExecutionError) {
                _ = try await executor.executeTxs([], height: 2, time: time + 2_000_000_000, previousRoot: root)
                Issue.record("three failed answers did not stop the block")
            } catch {
                #expect(error.kind == .rejected, "\(error)")
                #expect(error.method == "evolve_getNextProposer" && error.height == 2, "\(error)")
                #expect(error.description.contains("after 3 attempts: JSON-RPC error -32603: injected failure"), "\(error)")
            }

            try await el.setProposerFaults(malformedNext: 3)
            do throws(ExecutionError) {
                _ = try await executor.executeTxs([], height: 2, time: time + 2_000_000_000, previousRoot: root)
                Issue.record("three malformed answers did not stop the block")
            } catch {
                #expect(error.kind == .rejected && error.method == "evolve_getNextProposer", "\(error)")
                #expect(error.description.contains("expected a 32-byte 0x-hex word"), "\(error)")
            }
        }
    }
}
