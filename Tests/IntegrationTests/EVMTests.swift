import Foundation
import ProcessKit
import Testing
import TestSupport

/// `--execution evm` against a real EVM: the py-evm test EL (Tests/EVM/test_el.py), real
/// processes, real HTTP with JWT, signed EIP-1559 transfers.
@Suite(.serialized)
struct EVMTests {
    /// Aggregator with its EL → transfers via POST /tx → balances move, app_hash = EL state
    /// root; a full node with its own EL syncs to the same block hashes; the aggregator killed
    /// between forkchoiceUpdated and newPayload resumes without a second or skipped block; its EL
    /// killed and replaced by an empty one is rebuilt; a lost disk (store and EL) is recovered
    /// with --catchup-timeout, every block rebuilt with identical roots, then the next produced.
    @Test(.timeLimit(.minutes(10))) func evmChainProducedSyncedAndRecovered() async throws {
        try #require(EVMFiles.available, "the py-evm virtualenv is missing: run `make deps`")
        try await Testnet.run(chainID: "evm-chain") { net in
            _ = try await net.startDA()
            let elA = try net.makeEL(name: "el-a")
            let elF = try net.makeEL(name: "el-f")
            try await elA.start()
            try await elF.start()
            let a = try net.makeNode(name: "agg", aggregator: true, blockTime: "300ms", extra: elA.nodeArguments())
            try await a.start()
            try await a.waitForStatus("three blocks") { $0.heights.store >= 3 }

            // Transfers signed in Python (eth-account), sent as raw bytes through POST /tx.
            let before = try await elA.balance(EVMFiles.recipient)
            for tx in try EVMFiles.transfers(count: 5, nonce: 0, value: 1000) {
                let r = try await HTTP.post(a.rpc + "/tx", body: Data(tx))
                #expect(r.status == 202, "POST /tx: HTTP \(r.status) \(r.text)")
            }
            let expected = "0x" + String(UInt128(before.dropFirst(2), radix: 16)! + 5000, radix: 16)
            try await waitUntil("the transfers to be executed", timeout: .seconds(60), every: .milliseconds(200)) {
                try await elA.balance(EVMFiles.recipient) == expected
            }
            let s1 = try await a.waitForStatus("two more blocks") { $0.heights.store >= 3 }
            let height1 = s1.heights.store
            var txsInBlocks = 0
            for h in 1...height1 { txsInBlocks += try await a.block(h)?.txs.count ?? 0 }
            #expect(txsInBlocks == 5)
            try await expectAppHashesAreELRoots(a, elA, through: height1)

            // A full node with its own EL syncs (DA + P2P) to the same block hashes.
            let f = try net.makeNode(name: "full", aggregator: false, peers: [a], genesisFrom: a, extra: elF.nodeArguments())
            try await f.start()
            try await f.waitForStatus("synced to \(height1)", timeout: .seconds(120)) { $0.heights.store >= height1 }
            try await expectSameChain(a, f, through: height1)
            try await waitUntil("el-f to reach \(height1 - 1)", timeout: .seconds(30)) { try await elF.height() >= height1 - 1 }
            let hashA = try await elA.block(height1 - 1)?["hash"] as? String
            let hashF = try await elF.block(height1 - 1)?["hash"] as? String
            #expect(hashA != nil && hashA == hashF, "the full node's EL is not at the aggregator's EL block")
            #expect(try await elF.balance(EVMFiles.recipient) == expected)

            // kill -9 between forkchoiceUpdated and newPayload, then restart: the EL holds its
            // answer to getPayload for block crashAt, so the node has recorded the started build
            // (ExecMeta) and has neither the payload nor the EL's verdict when it is killed.
            let s2 = try await a.status()
            let crashAt = s2.heights.store + 3
            try await elA.stallGetPayload(at: crashAt)
            try await waitUntil("the aggregator to wait on getPayload for \(crashAt)", timeout: .seconds(60)) {
                try await elA.stalledAt() == crashAt
            }
            _ = await a.stop(signal: SIGKILL)
            try await elA.stallGetPayload(at: nil)
            #expect(a.lastRunDiedOfSignal)
            try await a.start()
            try await a.waitForStatus("past the crash height") { $0.heights.store >= crashAt + 2 }
            let s3 = try await a.status()
            try await expectAppHashesAreELRoots(a, elA, through: s3.heights.store)
            _ = try await a.hashes(through: s3.heights.store)  // every height present, none skipped

            // The EL killed mid-run: the node stays up and says so; a fresh (empty) EL on the same
            // ports gets every stored block replayed onto it, with the same roots.
            await elA.stop(signal: SIGKILL)
            let down = try await a.waitForStatus("EL reported unreachable", timeout: .seconds(30)) {
                $0.execution?.reachable == false
            }
            #expect(down.execution?.last_error?.contains("EL http://127.0.0.1:") == true)
            let ready = try await HTTP.get(a.rpc + "/health/ready")
            #expect(ready.status == 503 && ready.text.contains("execution layer unreachable"))
            try await elA.start()
            try await a.waitForStatus("producing again after the EL came back", timeout: .seconds(120)) {
                $0.heights.store >= down.heights.store + 3 && $0.execution?.reachable == true
            }
            let s4 = try await a.status()
            try await expectAppHashesAreELRoots(a, elA, through: s4.heights.store)
            #expect(try await elA.balance(EVMFiles.recipient) == expected)

            // Lost disk: store and EL wiped; --catchup-timeout rebuilds every block on the fresh EL.
            await a.stop()
            await elA.stop()
            let lostHeight = try await f.waitForStatus("full node has the aggregator's head", timeout: .seconds(60)) {
                $0.heights.store >= s4.heights.store
            }.heights.store
            let recorded = try await f.hashes(through: lostHeight)
            try FileManager.default.removeItem(atPath: a.home + "/data")
            try await elA.start()
            let recovered = a
            try await recovered.start(flags: a.flags + ["--catchup-timeout", "60s", "--p2p.peers", f.p2pAddress])
            try await recovered.waitForStatus("aggregating past the lost height", timeout: .seconds(180)) {
                $0.phase == "aggregating" && $0.heights.store > lostHeight
            }
            let rebuilt = try await recovered.hashes(through: lostHeight)
            #expect(rebuilt == recorded, "the recovered chain differs from the one before the loss")
            let s5 = try await recovered.status()
            try await expectAppHashesAreELRoots(recovered, elA, through: s5.heights.store)
            #expect(try await elA.balance(EVMFiles.recipient) == expected)
            await recovered.stop()
            await elA.stop()
            await elF.stop()
        }
    }

    /// Bad EL answers stop the node with an error naming the EL, the method and the height;
    /// -38005 on forkchoiceUpdatedV3 falls forward to V4 and blocks go on.
    @Test(.timeLimit(.minutes(6))) func badELAnswersGetClearErrors() async throws {
        try #require(EVMFiles.available, "the py-evm virtualenv is missing: run `make deps`")
        try await Testnet.run(chainID: "evm-bad") { net in
            _ = try await net.startDA()
            let el = try net.makeEL(name: "el")
            try await el.start()

            let cases: [(fault: String, message: String)] = [
                ("fcu-invalid", "engine_forkchoiceUpdatedV3 at height 1: payload status INVALID"),
                ("fcu-null-payload", "engine_forkchoiceUpdatedV3 at height 1: the EL answered VALID with a null payloadId"),
                ("malformed", "engine_forkchoiceUpdatedV3 at height 0: answer is not a JSON-RPC object"),
                ("new-payload-invalid", "engine_newPayloadV4 at height 1: payload status INVALID"),
            ]
            for (i, c) in cases.enumerated() {
                // The fault is on from the start: block 1 meets it (a malformed answer already
                // stops InitChain, before the RPC server is up).
                try await el.setFault(c.fault)
                let node = try net.makeNode(name: "bad\(i)", aggregator: true, blockTime: "200ms", extra: el.nodeArguments())
                try? await node.start()
                try await waitUntil("\(node.name) to stop on \(c.fault)", timeout: .seconds(60)) { !node.isRunning }
                #expect(node.allLogs.contains(c.message), "\(c.fault): no \"\(c.message)\" in the log")
                #expect(node.allLogs.contains("EL http://127.0.0.1:\(el.enginePort)/"))
            }

            // A wrong JWT secret: refused at InitChain with the reason, the node exits.
            try await el.setFault("none")
            let wrong = net.dir.path + "/wrong-jwt.hex"
            try String(repeating: "ab", count: 32).write(toFile: wrong, atomically: true, encoding: .utf8)
            let jwtNode = try net.makeNode(name: "badjwt", aggregator: true, extra: el.nodeArguments(secretFile: wrong))
            await #expect(throws: (any Error).self) { try await jwtNode.start() }
            try await waitUntil("badjwt to exit", timeout: .seconds(30)) { !jwtNode.isRunning }
            #expect(jwtNode.allLogs.contains("the EL refused the JWT (HTTP 401)"))

            // -38005: forkchoiceUpdated falls forward to V4; blocks are produced.
            try await el.setFault("fcu-v3-unsupported")
            let v4 = try net.makeNode(name: "v4", aggregator: true, blockTime: "200ms", extra: el.nodeArguments())
            try await v4.start()
            try await v4.waitForStatus("blocks through V4") { $0.heights.store >= 3 }
            #expect(v4.allLogs.contains("using V4"))
            await v4.stop()
            await el.stop()
        }
    }
}
