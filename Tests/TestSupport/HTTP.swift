import Foundation

/// HTTP as the tests speak it: `/usr/bin/curl` run on a thread of its own (a client independent
/// of the node's, never blocking Swift's cooperative pool).
public enum HTTP {
    public struct Response: Sendable {
        public let status: Int
        public let body: Data
        public var text: String { String(decoding: body, as: UTF8.self) }
    }

    static let curl = URL(fileURLWithPath: "/usr/bin/curl")

    public static func get(_ url: String) async throws -> Response {
        try await request("GET", url)
    }

    /// POSTs `body` as raw bytes (curl reads them from stdin, so any bytes pass unchanged).
    public static func post(_ url: String, body: Data, contentType: String = "application/octet-stream",
                            headers: [String] = []) async throws -> Response {
        try await request("POST", url, body: body, headers: ["Content-Type: \(contentType)"] + headers)
    }

    /// Connection failures (nothing listening, or the peer gone) are thrown; every HTTP status
    /// is returned.
    public static func request(_ method: String, _ url: String, body: Data? = nil,
                               headers: [String] = []) async throws -> Response {
        var arguments = ["-X", method]
        for header in headers { arguments += ["-H", header] }
        if body != nil { arguments += ["--data-binary", "@-"] }
        arguments.append(url)
        // The status code goes to stderr so that stdout is exactly the body.
        let args = ["-sS", "--max-time", "15", "-o", "-", "-w", "%{stderr}%{http_code}"] + arguments
        let (status, out, err) = try await runOnThread(args, stdin: body)
        let errText = String(decoding: err, as: UTF8.self)
        guard status == 0, let code = Int(errText.suffix(3)) else {
            throw TestFailure("curl \(method) \(url): exit \(status): \(errText.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return Response(status: code, body: out)
    }

    /// JSON-RPC 2.0 call; the whole answer object (result or error) is returned as parsed JSON.
    public static func jsonRPC(_ url: String, method: String, params: String = "[]",
                               headers: [String] = []) async throws -> [String: Any] {
        let body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\(method)\",\"params\":\(params)}"
        let r = try await post(url, body: Data(body.utf8), contentType: "application/json", headers: headers)
        guard let object = try? JSONSerialization.jsonObject(with: r.body) as? [String: Any] else {
            throw TestFailure("\(method) at \(url): HTTP \(r.status), not a JSON object: \(r.text.prefix(300))")
        }
        return object
    }

    private static func runOnThread(_ arguments: [String], stdin: Data?) async throws -> (Int32, Data, Data) {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                let process = Process()
                process.executableURL = curl
                process.arguments = arguments
                let out = Pipe(), err = Pipe(), input = Pipe()
                process.standardOutput = out
                process.standardError = err
                process.standardInput = stdin == nil ? FileHandle.nullDevice : input
                do {
                    try process.run()
                } catch {
                    continuation.resume(throwing: error)
                    return
                }
                if let stdin {
                    input.fileHandleForWriting.write(stdin)
                    try? input.fileHandleForWriting.close()
                }
                // stderr carries three digits (or a short curl message): it cannot fill its pipe
                // while stdout is read to the end.
                let body = out.fileHandleForReading.readDataToEndOfFile()
                let errData = err.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                continuation.resume(returning: (process.terminationStatus, body, errData))
            }
            thread.start()
        }
    }
}

/// Runs `/usr/bin/curl -sS` with `arguments` to completion and returns its stdout (the way an
/// operator would talk to an API by hand).
public func runCurl(_ arguments: [String], timeout: Duration = .seconds(30)) throws -> (status: Int32, output: String) {
    let r = try runCommand(HTTP.curl, ["-sS"] + arguments, timeout: timeout)
    return (r.status, r.stdout)
}
