import Primitives
import DAClient
import Foundation
import Logging
import ProcessKit
import Testing
import TestSupport

/// The client against a real `evnode local-da` process.
@Suite struct LocalDATests {
    let headers = namespace("t-headers")
    let data = namespace("t-data")

    @Test func submitThenGetAll() async throws {
        try await withLocalDA { _, client, _ in
            let start = try await client.networkHead()
            let first = [DABlob(namespace: headers, data: bytes("h1")), DABlob(namespace: data, data: bytes("d1")),
                         DABlob(namespace: headers, data: bytes("h2"))]
            let h1 = try await client.submit(first)
            #expect(h1 == start.height + 1)
            let h2 = try await client.submit([DABlob(namespace: data, data: bytes("d2"))])
            #expect(h2 == h1 + 1, "each submission is a new height")

            let onlyHeaders = try await client.getAll(height: h1, namespaces: [headers])
            #expect(onlyHeaders.map(\.data) == [bytes("h1"), bytes("h2")])
            #expect(onlyHeaders.map(\.index) == [0, 2])
            #expect(onlyHeaders.allSatisfy { $0.commitment == DABlob.commitment(namespace: $0.namespace, data: $0.data) })
            let both = try await client.getAll(height: h1, namespaces: [headers, data])
            #expect(both.map(\.data) == [bytes("h1"), bytes("d1"), bytes("h2")])

            let one = try await client.get(height: h1, namespace: data, commitment: DABlob.commitment(namespace: data, data: bytes("d1")))
            #expect(one.data == bytes("d1"))

            let head = try await client.networkHead()
            #expect(head.height == h2)
            let header = try await client.header(height: h1)
            #expect(header.height == h1)
            #expect(header.timeNanoseconds >= start.timeNanoseconds && header.timeNanoseconds <= head.timeNanoseconds)
        }
    }

    @Test func restartKeepsEveryBlob() async throws {
        let dir = TempDirectory("evnode-da-restart")
        let home = dir.path + "/da"
        var expected: [UInt64: [UInt8]] = [:]
        let first = try await LocalDAProcess.start(home: home, arguments: ["--block-time", "50ms"])
        let before: DAHeader
        do {
            let client = try CelestiaDAClient(options: DAClientOptions(url: first.url, retry: .none))
            for i in 0..<5 {
                let payload = bytes("blob-\(i)")
                expected[try await client.submit([DABlob(namespace: data, data: payload)])] = payload
            }
            before = try await client.networkHead()
            await client.shutdown()
        } catch {
            await first.stop()
            throw error
        }
        #expect(await first.stop() == 0, "SIGTERM stops local DA cleanly")

        let second = try await LocalDAProcess.start(home: home, arguments: ["--block-time", "1h"])
        do {
            let client = try CelestiaDAClient(options: DAClientOptions(url: second.url, retry: .none))
            let after = try await client.networkHead()
            #expect(after.height >= before.height, "the head survives the restart")
            for (height, payload) in expected {
                let blobs = try await client.getAll(height: height, namespaces: [data])
                #expect(blobs.map(\.data) == [payload], "height \(height)")
            }
            let next = try await client.submit([DABlob(namespace: data, data: bytes("after restart"))])
            #expect(next == after.height + 1)
            await client.shutdown()
        } catch {
            await second.stop()
            throw error
        }
        await second.stop()
    }

    @Test func semanticErrorsCarryCelestiasTexts() async throws {
        try await withLocalDA(arguments: ["--block-time", "1h", "--max-blob-size", "1000"]) { _, client, _ in
            let head = try await client.networkHead()
            await #expect {
                _ = try await client.getAll(height: head.height + 5, namespaces: [data])
            } throws: { error in
                guard case let .heightFromFuture(method, height, message) = error as? DAError else { return false }
                return method == "blob.GetAll" && height == head.height + 5 && message.contains("given height is from the future")
            }
            await #expect {
                _ = try await client.header(height: head.height + 1)
            } throws: { error in
                if case .heightFromFuture? = error as? DAError { return true }
                return false
            }
            // Height 1 is the empty genesis block of local DA.
            await #expect(throws: DAError.notFound(method: "blob.GetAll", height: 1, message: "blob: not found")) {
                _ = try await client.getAll(height: 1, namespaces: [data])
            }
            await #expect(throws: DAError.notFound(method: "blob.Get", height: 1, message: "blob: not found")) {
                _ = try await client.get(height: 1, namespace: data, commitment: [1, 2, 3])
            }
            await #expect {
                _ = try await client.submit([DABlob(namespace: data, data: [UInt8](repeating: 7, count: 600)),
                                             DABlob(namespace: data, data: [UInt8](repeating: 8, count: 401))])
            } throws: { error in
                guard case let .blobTooLarge(message) = error as? DAError else { return false }
                return message.hasPrefix("blob: over size limit")
            }
            // Exactly the limit is fine, and nothing was stored by the refused submission.
            let stored = try await client.submit([DABlob(namespace: data, data: [UInt8](repeating: 9, count: 1000))])
            #expect(stored == head.height + 1)
        }
    }

    @Test func bearerTokenIsRequiredWhenSet() async throws {
        try await withLocalDA(arguments: ["--block-time", "1h", "--auth-token", "s3cret"],
                              clientOptions: { DAClientOptions(url: $0, authToken: "s3cret", retry: .none) }) { da, client, _ in
            let ok = try await client.submit([DABlob(namespace: data, data: bytes("authorised"))])
            #expect(try await client.getAll(height: ok, namespaces: [data]).count == 1)

            for token in ["", "wrong"] {
                let other = try CelestiaDAClient(options: DAClientOptions(url: da.url, authToken: token, retry: .none))
                await #expect {
                    _ = try await other.networkHead()
                } throws: { error in
                    guard case let .httpStatus(status, _, _) = error as? DAError else { return false }
                    return status == 401
                }
                await other.shutdown()
            }
        }
    }

    /// A request written by hand, as a Celestia user would send it with curl: the server does not
    /// depend on evnode's client to be understood.
    @Test func handWrittenRequestsSubmitAndReadBack() async throws {
        try await withLocalDA { da, client, _ in
            let ns = DANamespace(name: "by-hand").base64
            // "hello, DA" in base64; a commitment from some other DA implementation; Celestia's
            // submit options object.
            let submit = """
            {"jsonrpc": "2.0", "id": 42, "method": "blob.Submit",
             "params": [[{"namespace": "\(ns)", "data": "aGVsbG8sIERB", "share_version": 0,
                          "commitment": "AAECAwQFBgcICQ==", "index": -1}],
                        {"gas_price": 0.002, "is_gas_price_set": true}]}
            """
            let submitted = try runCurl(["-X", "POST", "-H", "Content-Type: application/json", "--data-binary", submit, da.url])
            #expect(submitted.status == 0)
            let submitAnswer = try #require(try JSONSerialization.jsonObject(with: Data(submitted.output.utf8)) as? [String: Any])
            #expect(submitAnswer["id"] as? Int == 42)
            let height = try #require(submitAnswer["result"] as? Int, "blob.Submit answered \(submitted.output)")

            let getAll = "{\"jsonrpc\":\"2.0\",\"id\":\"read\",\"method\":\"blob.GetAll\",\"params\":[\(height),[\"\(ns)\"]]}"
            let read = try runCurl(["-X", "POST", "--data-binary", getAll, da.url])
            let answer = try #require(try JSONSerialization.jsonObject(with: Data(read.output.utf8)) as? [String: Any])
            #expect(answer["id"] as? String == "read")
            let blobs = try #require(answer["result"] as? [[String: Any]], "blob.GetAll answered \(read.output)")
            #expect(blobs.count == 1)
            #expect(blobs.first?["data"] as? String == "aGVsbG8sIERB")
            #expect(blobs.first?["namespace"] as? String == ns)
            #expect(blobs.first?["share_version"] as? Int == 0)
            #expect(blobs.first?["index"] as? Int == 0)

            // And evnode's client reads the same blob.
            let viaClient = try await client.getAll(height: UInt64(height), namespaces: [DANamespace(name: "by-hand")])
            #expect(viaClient.map(\.data) == [bytes("hello, DA")])

            let head = try runCurl(["-X", "POST", "--data-binary", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"header.NetworkHead\",\"params\":[]}", da.url])
            let headAnswer = try #require(try JSONSerialization.jsonObject(with: Data(head.output.utf8)) as? [String: Any])
            let result = try #require(headAnswer["result"] as? [String: Any])
            #expect(result["height"] as? String == String(height), "heights in headers are decimal strings")
            #expect((result["header"] as? [String: Any])?["time"] is String)
        }
    }

    @Test func badRequestsGetErrorsAndChangeNothing() async throws {
        try await withLocalDA(arguments: ["--block-time", "1h", "--max-blob-size", "1000"]) { da, client, _ in
            let before = try await client.networkHead()
            func post(_ body: String) throws -> [String: Any] {
                let r = try runCurl(["-X", "POST", "--data-binary", body, da.url])
                return try #require(try JSONSerialization.jsonObject(with: Data(r.output.utf8)) as? [String: Any], "answer: \(r.output)")
            }
            func errorCode(_ body: String) throws -> Int? {
                ((try post(body))["error"] as? [String: Any])?["code"] as? Int
            }
            #expect(try errorCode("{not json") == -32700)
            #expect(try errorCode("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"blob.Nope\",\"params\":[]}") == -32601)
            #expect(try errorCode("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"blob.GetAll\",\"params\":[\"x\"]}") == -32602)
            #expect(try errorCode("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"blob.Submit\",\"params\":[[{\"namespace\":\"AAEC\",\"data\":\"aGk=\"}]]}") == -32602)
            #expect(try errorCode("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"blob.Submit\",\"params\":[[]]}") == -32602)
            #expect(try errorCode("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"header.NetworkHead\",\"params\":[]}]") == -32600)

            // A body far above the limit is refused before it is parsed.
            let huge = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"blob.Submit\",\"params\":[[{\"data\":\"" + String(repeating: "A", count: 3 << 20) + "\"}]]}"
            let file = FileManager.default.temporaryDirectory.appendingPathComponent("huge-\(UUID().uuidString).json")
            try Data(huge.utf8).write(to: file)
            defer { try? FileManager.default.removeItem(at: file) }
            let refused = try runCurl(["-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "--data-binary", "@\(file.path)", da.url])
            #expect(refused.output == "413")

            #expect(try await client.networkHead().height == before.height, "no bad request added a height")
            #expect(try await client.submit([DABlob(namespace: data, data: bytes("still fine"))]) == before.height + 1)
        }
    }

    @Test func manyConcurrentClientsGetDistinctHeights() async throws {
        try await withLocalDA { da, _, _ in
            let clients = try (0..<4).map { _ in try CelestiaDAClient(options: DAClientOptions(url: da.url, connections: 4, retry: .none)) }
            let heights = try await withThrowingTaskGroup(of: (UInt64, [UInt8]).self) { group in
                for i in 0..<32 {
                    let client = clients[i % clients.count]
                    group.addTask {
                        let payload = bytes("concurrent-\(i)")
                        return (try await client.submit([DABlob(namespace: data, data: payload)]), payload)
                    }
                }
                var out: [(UInt64, [UInt8])] = []
                for try await r in group { out.append(r) }
                return out
            }
            #expect(Set(heights.map(\.0)).count == 32, "every submission got a height of its own")
            for (height, payload) in heights {
                #expect(try await clients[0].getAll(height: height, namespaces: [data]).map(\.data) == [payload])
            }
            for c in clients { await c.shutdown() }
        }
    }

    @Test func emptyBlocksAppearEveryBlockTime() async throws {
        try await withLocalDA(arguments: ["--block-time", "100ms"]) { _, client, _ in
            let start = try await client.networkHead().height
            try await waitUntil("three empty DA blocks", timeout: .seconds(30)) {
                try await client.networkHead().height >= start + 3
            }
            await #expect(throws: DAError.notFound(method: "blob.GetAll", height: start + 1, message: "blob: not found")) {
                _ = try await client.getAll(height: start + 1, namespaces: [data])
            }
        }
    }

    @Test func retriesRideOutADANodeRestart() async throws {
        let dir = TempDirectory("evnode-da-retry")
        let home = dir.path + "/da"
        let port = try freeLoopbackPort()
        let log = LogCapture()
        let client = try CelestiaDAClient(options: DAClientOptions(
            url: "http://127.0.0.1:\(port)/",
            retry: RetryPolicy(maxAttempts: 200, initialDelay: .milliseconds(20), maxDelay: .milliseconds(100))),
            logger: log.logger)
        // The DA node is down while the request starts (it has failed at least once); it comes
        // back a moment later.
        let pending = Task { try await client.networkHead() }
        try await waitUntil("the request to fail against the DA node that is down", timeout: .seconds(30)) {
            log.all.contains { $0.1.hasPrefix("DA request failed, retrying") }
        }
        let second = try await LocalDAProcess.start(home: home, port: port)
        do {
            let head = try await pending.value
            #expect(head.height >= 1)
        } catch {
            await second.stop()
            throw error
        }
        await second.stop()
        // Without retries, a DA node that is down is a transport error naming the URL.
        let once = try CelestiaDAClient(options: DAClientOptions(url: "http://127.0.0.1:\(port)/", retry: .none))
        await #expect {
            _ = try await once.networkHead()
        } throws: { error in
            guard case let .transport(_, _, url) = error as? DAError else { return false }
            return url == "http://127.0.0.1:\(port)/"
        }
        await once.shutdown()
        await client.shutdown()
    }

    @Test func cancellingAPendingRequestAbortsIt() async throws {
        try await withLocalDA(arguments: ["--block-time", "1h", "--response-delay", "30s"]) { da, client, _ in
            let pending = Task { try await client.networkHead() }
            try await waitUntil("the request to reach the DA node", timeout: .seconds(30)) {
                try establishedConnections(toPort: da.port) > 0
            }
            pending.cancel()
            await #expect(throws: DAError.cancelled) { try await pending.value }
        }
    }
}

/// How many TCP connections to 127.0.0.1:`port` are established, as the kernel lists them
/// (/proc/net/tcp): a request is in flight at the server once its connection is.
private func establishedConnections(toPort port: Int) throws -> Int {
    // Read to the end: `String(contentsOfFile:)` stops at the first chunk of a /proc file.
    let file = try FileHandle(forReadingFrom: URL(fileURLWithPath: "/proc/net/tcp"))
    defer { try? file.close() }
    let table = String(decoding: try file.readToEnd() ?? Data(), as: UTF8.self)
    let remote = ":" + String(format: "%04X", port)
    return table.split(separator: "\n").dropFirst().filter { line in
        let fields = line.split(separator: " ")
        // sl, local address, remote address, state (01: established).
        return fields.count > 3 && fields[2].hasSuffix(remote) && fields[3] == "01"
    }.count
}
