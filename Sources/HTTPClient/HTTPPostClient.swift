import HTTPClient

/// JSON-over-HTTP POSTs to one server other than the DA node (etcd's v3 gateway), on the same
/// libcurl keep-alive connections with threads of their own as the DA client: no blocking call
/// ever runs on Swift's cooperative threads. The server is fixed; each request names its path.
public final class HTTPPostClient: Sendable {
    public let baseURL: String
    private let pool: CurlConnectionPool

    /// `baseURL` without a trailing slash, e.g. `http://127.0.0.1:2379`.
    public init(baseURL: String, connections: Int = 2, connectTimeout: Duration = .seconds(2),
                requestTimeout: Duration = .seconds(5), maxResponseBytes: Int = 16 << 20) throws(DAError) {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        self.baseURL = base
        do throws(HTTPError) {
            self.pool = try CurlConnectionPool(size: max(1, connections), url: base + "/", authToken: "",
                                               connectTimeout: connectTimeout, requestTimeout: requestTimeout,
                                               maxResponseBytes: maxResponseBytes)
        } catch {
            throw DAError(error)
        }
    }

    /// POSTs `body` to `path` (starting with `/`). `timeout` overrides the request timeout.
    public func post(path: String, body: [UInt8], timeout: Duration? = nil) async throws(DAError) -> HTTPReply {
        do throws(HTTPError) {
            return try await pool.post(body, shape: RequestShape(url: baseURL + path, timeout: timeout))
        } catch {
            throw DAError(error)
        }
    }

    /// POSTs to a streaming endpoint and returns once `lines` complete lines arrived, or after
    /// `timeout` with the lines that arrived by then (possibly none): a long poll.
    public func postStream(path: String, body: [UInt8], lines: Int, timeout: Duration) async throws(DAError) -> HTTPReply {
        do throws(HTTPError) {
            return try await pool.post(body, shape: RequestShape(url: baseURL + path, timeout: timeout, stopAfterLines: lines))
        } catch {
            throw DAError(error)
        }
    }

    /// Stops the connection threads once the requests in flight end.
    public func shutdown() async {
        await pool.shutdown()
    }
}

extension DAError {
    /// The DA errors the shared HTTP client's failures have always been reported as.
    init(_ error: HTTPError) {
        switch error {
        case let .transport(code, message, url): self = .transport(code: code, message: message, url: url)
        case let .responseTooLarge(limit): self = .malformedResponse(method: "HTTP", reason: "response larger than \(limit) bytes")
        case .cancelled: self = .cancelled
        case .shutDown: self = .setup("DA client is shut down")
        case let .setup(reason): self = .setup(reason)
        }
    }
}
