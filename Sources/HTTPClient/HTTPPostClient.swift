/// JSON-over-HTTP POSTs to one server other than the DA node (etcd's v3 gateway), on the same
/// libcurl keep-alive connections with threads of their own as the DA client: no blocking call
/// ever runs on Swift's cooperative threads. The server is fixed; each request names its path.
package final class HTTPPostClient: Sendable {
    package let baseURL: String
    private let pool: CurlConnectionPool

    /// `baseURL` without a trailing slash, e.g. `http://127.0.0.1:2379`.
    package init(baseURL: String, connections: Int = 2, connectTimeout: Duration = .seconds(2),
                requestTimeout: Duration = .seconds(5), maxResponseBytes: Int = 16 << 20) throws(HTTPError) {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        self.pool = try CurlConnectionPool(size: max(1, connections), url: base + "/", authToken: "",
                                           connectTimeout: connectTimeout, requestTimeout: requestTimeout,
                                           maxResponseBytes: maxResponseBytes)
    }

    /// POSTs `body` to `path` (starting with `/`). `timeout` overrides the request timeout.
    package func post(path: String, body: [UInt8], timeout: Duration? = nil) async throws(HTTPError) -> HTTPReply {
        return try await pool.post(body, shape: RequestShape(url: baseURL + path, timeout: timeout))
    }

    /// POSTs to a streaming endpoint and returns once `lines` complete lines arrived, or after
    /// `timeout` with the lines that arrived by then (possibly none): a long poll.
    package func postStream(path: String, body: [UInt8], lines: Int, timeout: Duration) async throws(HTTPError) -> HTTPReply {
        return try await pool.post(body, shape: RequestShape(url: baseURL + path, timeout: timeout, stopAfterLines: lines))
    }

    /// Stops the connection threads once the requests in flight end.
    package func shutdown() async {
        await pool.shutdown()
    }
}
