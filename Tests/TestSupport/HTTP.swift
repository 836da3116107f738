import Foundation
import ProcessKit

/// HTTP as the tests speak it: ProcessKit's loopback client (the benchmark's too) run on a thread
/// of its own — a client independent of the node's, never blocking Swift's cooperative pool.
package enum HTTP {
    package struct Response: Sendable {
        package let status: Int
        package let body: Data
        package var text: String { String(decoding: body, as: UTF8.self) }
    }

    static let curl = URL(fileURLWithPath: "/usr/bin/curl")

    package static func get(_ url: String) async throws -> Response {
        try await request("GET", url)
    }

    /// POSTs `body` as raw bytes.
    package static func post(_ url: String, body: Data, contentType: String = "application/octet-stream",
                            headers: [String] = []) async throws -> Response {
        try await request("POST", url, body: body, headers: ["Content-Type: \(contentType)"] + headers)
    }

    /// Connection failures (nothing listening, or the peer gone) are thrown; every HTTP status
    /// is returned.
    package static func request(_ method: String, _ url: String, body: Data? = nil,
                               headers: [String] = []) async throws -> Response {
        let bytes = body.map { [UInt8]($0) } ?? []
        return try await withCheckedThrowingContinuation { continuation in
            Thread {
                do {
                    let reply = try LoopbackHTTPConnection.request(method, url: url, body: bytes, headers: headers)
                    continuation.resume(returning: Response(status: reply.status, body: Data(reply.body)))
                } catch {
                    continuation.resume(throwing: TestFailure("\(method) \(url): \(error)"))
                }
            }.start()
        }
    }

    /// JSON-RPC 2.0 call; the whole answer object (result or error) is returned as parsed JSON.
    package static func jsonRPC(_ url: String, method: String, params: String = "[]",
                               headers: [String] = []) async throws -> [String: Any] {
        let body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\(method)\",\"params\":\(params)}"
        let r = try await post(url, body: Data(body.utf8), contentType: "application/json", headers: headers)
        guard let object = try? JSONSerialization.jsonObject(with: r.body) as? [String: Any] else {
            throw TestFailure("\(method) at \(url): HTTP \(r.status), not a JSON object: \(r.text.prefix(300))")
        }
        return object
    }
}

/// Runs `/usr/bin/curl -sS` with `arguments` to completion and returns its stdout (the way an
/// operator would talk to an API by hand).
package func runCurl(_ arguments: [String], timeout: Duration = .seconds(30)) throws -> (status: Int32, output: String) {
    let r = try runCommand(HTTP.curl, ["-sS"] + arguments, timeout: timeout)
    return (r.status, r.stdout)
}
