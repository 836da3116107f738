import Primitives
import DAClient
import Chain
import Config
import Foundation
import ProcessKit
import Testing
import TestSupport

/// apps/evm's forced-inclusion server on a Swift EVM aggregator (issue 32): a transfer signed by
/// eth-account is sent to `--force-inclusion-server`, not to the node's `/tx` or the EL's pool;
/// it reaches DA's forced-inclusion namespace and a block through DA alone. Real processes: the
/// py-evm test EL, the local DA, `evnode start`.
@Suite(.serialized) struct ForcedInclusionServerTests {
    static let forcedNamespace = "evm-forced"
    static let epoch: UInt64 = 8

    static func rpcBody(_ method: String, _ params: String, id: String = "7") -> Data {
        Data("{\"jsonrpc\":\"2.0\",\"id\":\(id),\"method\":\"\(method)\",\"params\":\(params)}".utf8)
    }

    static func post(_ url: String, _ body: Data) async throws -> (status: Int, json: Any) {
        let r = try await HTTP.post(url, body: body, contentType: "application/json")
        guard let json = try? JSONSerialization.jsonObject(with: Data(r.text.utf8)) else {
            throw TestFailure("\(url) answered HTTP \(r.status) without JSON: \(r.text)")
        }
        return (r.status, json)
    }

    @Test(.timeLimit(.minutes(8))) func aTransferSentToTheServerIsIncludedThroughDAAlone() async throws {
        try #require(EVMFiles.available, "the py-evm virtualenv is missing: run `make deps`")
        try await Testnet.run(chainID: "evm-fi") { net in
            let da = try await net.startDA(blockTime: "300ms")
            let el = try net.makeEL(name: "el")
            let elF = try net.makeEL(name: "el-f")
            try await el.start()
            try await elF.start()
            let fiPort = try net.freePort()
            let fi = ["--evnode.da.forced_inclusion_namespace", Self.forcedNamespace]
            let agg = try net.makeNode(name: "agg", aggregator: true, blockTime: "300ms",
                                       extra: el.nodeArguments() + fi + ["--force-inclusion-server", "127.0.0.1:\(fiPort)"])
            // Epochs from DA height 10 as in ev-node's scenarios, but of 8 DA heights: the local DA
            // makes a height per submission, and with ev-node's 2 the grace (one epoch) can pass
            // before the block carrying the transfer reaches DA (the py-evm EL builds slowly).
            var genesis = try Genesis.load(path: agg.layout.genesisFile)
            genesis.daStartHeight = 10
            genesis.daEpochForcedInclusion = Self.epoch
            try genesis.jsonText().write(toFile: agg.layout.genesisFile, atomically: true, encoding: .utf8)
            // A full node with its own EL checks forced inclusion on every DA height it syncs.
            let full = try net.makeNode(name: "full", genesisFrom: agg, extra: elF.nodeArguments() + fi)
            // The chain lives on DA from da_start_height: the aggregator posts from there on (and
            // blobs below it are in no epoch).
            let client = try CelestiaDAClient(options: DAClientOptions(url: da.url + "/"))
            try await waitUntil("DA height 10", timeout: .seconds(30)) { try await client.networkHead().height >= 10 }
            try await agg.start()
            try await full.start()
            try await agg.waitForStatus("two blocks") { $0.heights.store >= 2 }
            let server = "http://127.0.0.1:\(fiPort)/"

            let before = try await el.balance(EVMFiles.recipient)
            let tx = try #require(try EVMFiles.transfers(count: 1, nonce: 0, value: 4321).first)
            let sent = try await Self.post(server, Self.rpcBody("eth_sendRawTransaction", "[\"0x\(Hex.encode(tx))\"]"))
            let answer = try #require(sent.json as? [String: Any], "\(sent.json)")
            #expect(sent.status == 200 && answer["id"] as? Int == 7 && answer["error"] == nil, "\(answer)")
            // "0x" + the DA height as 64 hex digits (ev-node's answer).
            let result = try #require(answer["result"] as? String, "\(answer)")
            #expect(result.count == 66 && result.hasPrefix("0x"), "\(result)")
            let daHeight = try #require(UInt64(result.dropFirst(2), radix: 16))
            #expect(daHeight >= 10)
            let blobs = try await client.getAll(height: daHeight, namespaces: [DANamespace(name: Self.forcedNamespace)])
            #expect(blobs.map(\.data) == [tx], "the forced-inclusion namespace at DA \(daHeight) holds exactly the raw tx")

            // Included from DA alone: the EL's pool never saw it.
            let expected = "0x" + String(UInt128(before.dropFirst(2), radix: 16)! + 4321, radix: 16)
            try await waitUntil("the forced transfer to be executed", timeout: .seconds(60), every: .milliseconds(200)) {
                try await el.balance(EVMFiles.recipient) == expected
            }
            let pool = try await el.call("txpoolExt_getTxs", "[]") as? [Any]
            #expect(pool?.isEmpty == true, "the transfer went through the EL's pool: \(pool ?? [])")
            let head = try await agg.status().heights.store
            var carrying: [UInt64] = []
            for h in 1...head where try await agg.block(h)?.txs.contains(Data(tx).base64EncodedString()) == true {
                carrying.append(h)
            }
            #expect(carrying.count == 1, "blocks carrying the forced transfer: \(carrying)")

            // Every other method is the EL's, through the server.
            let balance = try await Self.post(server, Self.rpcBody("eth_getBalance", "[\"\(EVMFiles.recipient)\",\"latest\"]", id: "\"b\""))
            let balanceAnswer = try #require(balance.json as? [String: Any])
            #expect(balanceAnswer["result"] as? String == expected && balanceAnswer["id"] as? String == "b", "\(balanceAnswer)")
            // A batch: each member answered in order, a bad one with a clear error.
            let batch = Data(("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_sendRawTransaction\",\"params\":[\"0xzz\"]},"
                              + "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"eth_chainId\",\"params\":[]}]").utf8)
            let batchAnswer = try #require(try await Self.post(server, batch).json as? [[String: Any]])
            #expect(batchAnswer.count == 2)
            #expect((batchAnswer.first?["error"] as? [String: Any])?["code"] as? Int == -32602, "\(batchAnswer)")
            #expect(batchAnswer.last?["result"] as? String == "0x4d2", "\(batchAnswer)")
            // A body over the bound is refused before it is read whole.
            let huge = Data(repeating: UInt8(ascii: " "), count: 2 * ForcedInclusionRules.maxTxBytes + (64 << 10) + 1)
            let refused = try await HTTP.post(server, body: huge, contentType: "application/json")
            #expect(refused.status == 413, "HTTP \(refused.status)")

            // Garbage through the server reaches DA too (the server does not judge, as ev-node's
            // does not); the EVM filter removes it (no block carries it), and the checking full
            // node sees no violation.
            let garbageTx: [UInt8] = [0xde, 0xad, 0xbe, 0xef]
            let garbage = try await Self.post(server, Self.rpcBody("eth_sendRawTransaction", "[\"0xdeadbeef\"]"))
            let garbageHeight = try #require(((garbage.json as? [String: Any])?["result"] as? String)
                .flatMap { UInt64($0.dropFirst(2), radix: 16) }, "\(garbage.json)")
            try await waitUntil("DA past the garbage's grace boundary", timeout: .seconds(60)) {
                try await client.networkHead().height >= garbageHeight + 2 * Self.epoch + 2
            }
            await client.shutdown()
            let target = try await agg.status().heights.store
            for h in 1...target {
                let txs = try #require(try await agg.block(h)).txs
                #expect(!txs.contains(Data(garbageTx).base64EncodedString()), "block \(h) carries the garbage forced tx")
            }
            let followed = try await full.waitForStatus("height \(target)", timeout: .seconds(120)) {
                $0.heights.store >= target || $0.phase == "halted"
            }
            #expect(followed.phase == "syncing", "\(followed.summary) \(followed.reason ?? "")")
            try await expectSameChain(agg, full, through: target)
            let malicious = try await full.metrics().split(separator: "\n")
                .first { $0.hasPrefix("evnode_sequencer_forced_inclusion_txs_malicious_total{") }
            #expect(malicious?.hasSuffix(" 0") == true, "\(malicious ?? "no series")")
            #expect(try await elF.balance(EVMFiles.recipient) == expected)
            await full.stop()
            await agg.stop()
            await el.stop()
            await elF.stop()
        }
    }
}
