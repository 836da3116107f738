import Node
import Primitives
import DAClient
import Chain
import Foundation
import Logging
import Testing
import TestSupport

/// The forced-inclusion server's JSON-RPC handling (`ForcedInclusionRPC`) against a real
/// `evnode local-da` process: the answers ev-node gives, and a clear error for every bad input
/// with nothing posted.
@Suite struct ForcedInclusionRPCTests {
    let forced = DANamespace(name: "rpc-forced")
    let epochs = ForcedInclusionEpochs(startHeight: 10, size: 2)

    func rpc(_ client: CelestiaDAClient, retry: RetryPolicy = .none) -> ForcedInclusionRPC {
        ForcedInclusionRPC(poster: ForcedInclusionPoster(client: client, namespace: forced, txConfig: .init(), retry: retry,
                                                         deadline: .seconds(3)),
                           epochs: epochs, upstream: nil, logger: Logger(label: "test.fi-rpc"))
    }

    func object(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "\(text)")
    }

    func errorCode(_ text: String) throws -> Int? {
        (try object(text)["error"] as? [String: Any])?["code"] as? Int
    }

    static func send(_ params: String, id: Int = 1) -> [UInt8] {
        Array("{\"jsonrpc\":\"2.0\",\"id\":\(id),\"method\":\"eth_sendRawTransaction\",\"params\":\(params)}".utf8)
    }

    @Test func aRawTransactionIsPostedAndAnsweredWithItsDAHeight() async throws {
        try await withLocalDA { _, client, _ in
            let server = rpc(client)
            let (status, body) = await server.handle(Self.send("[\" 0x0102ab \"]", id: 42))
            #expect(status == 200)
            let answer = try object(body)
            #expect(answer["id"] as? Int == 42 && answer["jsonrpc"] as? String == "2.0", "\(body)")
            let result = try #require(answer["result"] as? String, "\(body)")
            #expect(result.count == 66 && result.hasPrefix("0x000000"), "\(result)")
            let height = try #require(UInt64(result.dropFirst(2), radix: 16))
            #expect(height == (try await client.networkHead().height))
            let blobs = try await client.getAll(height: height, namespaces: [forced])
            #expect(blobs.map(\.data) == [[0x01, 0x02, 0xab]])
        }
    }

    @Test func badInputGetsAClearErrorAndPostsNothing() async throws {
        try await withLocalDA { _, client, _ in
            let server = rpc(client)
            let head = try await client.networkHead().height
            let cases: [(String, [UInt8], Int)] = [
                ("not JSON", Array("{\"method\":".utf8), -32700),
                ("no 0x", Self.send("[\"0102\"]"), -32602),
                ("odd hex", Self.send("[\"0x012\"]"), -32602),
                ("not hex", Self.send("[\"0xzz\"]"), -32602),
                ("empty", Self.send("[\"0x\"]"), -32602),
                ("two params", Self.send("[\"0x01\",\"0x02\"]"), -32602),
                ("params not a list", Self.send("\"0x01\""), -32602),
                ("over the forced size", Self.send("[\"0x" + String(repeating: "ab", count: ForcedInclusionRules.maxTxBytes + 1) + "\"]"), -32602),
                ("no method", Array("{\"jsonrpc\":\"2.0\",\"id\":1}".utf8), -32600),
                ("another method with no EL to ask", Array("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"eth_chainId\"}".utf8), -32601),
                ("an empty batch", Array("[]".utf8), -32600),
                ("a batch too large", Array(("[" + Array(repeating: "{\"method\":\"eth_chainId\"}", count: ForcedInclusionRPC.maxBatchRequests + 1)
                    .joined(separator: ",") + "]").utf8), -32600),
            ]
            for (what, body, code) in cases {
                let (status, answer) = await server.handle(body)
                let got = try errorCode(answer)
                #expect(status == 200 && got == code, "\(what): \(answer.prefix(300))")
            }
            #expect(try await client.networkHead().height == head, "something was posted")
        }
    }

    @Test func aBatchIsAnsweredInOrder() async throws {
        try await withLocalDA { _, client, _ in
            let server = rpc(client)
            let body = "[" + String(decoding: Self.send("[\"0x01\"]", id: 1), as: UTF8.self) + ","
                + String(decoding: Self.send("[\"bad\"]", id: 2), as: UTF8.self) + ","
                + String(decoding: Self.send("[\"0x02\"]", id: 3), as: UTF8.self) + "]"
            let (status, text) = await server.handle(Array(body.utf8))
            let answers = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]], "\(text)")
            #expect(status == 200 && answers.map { $0["id"] as? Int } == [1, 2, 3])
            #expect(answers[0]["result"] is String && answers[2]["result"] is String)
            #expect((answers[1]["error"] as? [String: Any])?["code"] as? Int == -32602)
        }
    }

    /// DA down: the retries end within the deadline and the client is told why.
    @Test func aDAFaultIsAnInternalErrorNamingIt() async throws {
        try await withLocalDA { da, client, _ in
            let server = rpc(client, retry: RetryPolicy(maxAttempts: 3, initialDelay: .milliseconds(50), maxDelay: .milliseconds(100)))
            _ = await da.stop()
            let start = ContinuousClock.now
            let (_, body) = await server.handle(Self.send("[\"0x01\"]"))
            #expect(ContinuousClock.now - start < .seconds(10))
            let error = try #require(try object(body)["error"] as? [String: Any], "\(body)")
            #expect(error["code"] as? Int == -32603)
            // Three attempts when the port stays closed; fewer when a parallel test's process
            // takes the freed port and answers something that retrying cannot fix.
            let message = error["message"] as? String ?? ""
            #expect(message.hasPrefix("failed to submit to DA: posting to the forced-inclusion namespace failed after ")
                    && message.contains(da.url), "\(error)")
        }
    }
}
