import Primitives
import Config
import Foundation
import HTTPClient
import Logging
import Synchronization

/// How `CelestiaDAClient` reaches its DA node.
package struct DAClientOptions: Sendable, Equatable {
    /// The JSON-RPC endpoint, e.g. `http://127.0.0.1:7980/`.
    package var url: String
    /// Sent as `Authorization: Bearer <token>` when not empty.
    package var authToken: String
    package var connectTimeout: Duration
    /// Upper bound of one whole HTTP exchange.
    package var requestTimeout: Duration
    /// Keep-alive connections (each with a thread of its own): the most requests in flight at once.
    package var connections: Int
    /// Retries of transport failures and 5xx answers, per call.
    package var retry: RetryPolicy
    /// Larger responses are refused as malformed instead of filling memory.
    package var maxResponseBytes: Int
    /// PEM CA bundle trusted for an https:// DA node (empty: the system's CAs).
    package var caFile: String

    package init(url: String, authToken: String = "", connectTimeout: Duration = .seconds(5),
                requestTimeout: Duration = .seconds(30), connections: Int = 4,
                retry: RetryPolicy = .default, maxResponseBytes: Int = 256 << 20, caFile: String = "") {
        self.caFile = caFile
        self.url = url
        self.authToken = authToken
        self.connectTimeout = connectTimeout
        self.requestTimeout = requestTimeout
        self.connections = connections
        self.retry = retry
        self.maxResponseBytes = maxResponseBytes
    }

    /// Options from the node configuration: one connection per parallel fetch plus one, so a
    /// submission or head query never waits behind a full fetch window.
    package init(config: DAConfig) {
        self.init(url: config.address.url, authToken: config.authToken,
                  connectTimeout: min(.seconds(5), config.requestTimeout),
                  requestTimeout: config.requestTimeout,
                  connections: max(1, config.fetchParallelism) + 1,
                  maxResponseBytes: max(64 << 20, config.maxBlobSize * 4 + (1 << 20)),
                  caFile: config.tlsCAFile)
    }
}

/// A Celestia node blob API client: JSON-RPC 2.0 over HTTP POST with libcurl (SPEC §5).
///
/// Requests run on a pool of keep-alive connections with threads of their own. Transport
/// failures and 5xx answers are retried with exponential backoff; semantic errors
/// (`notFound`, `heightFromFuture`, `blobTooLarge`) are answers and returned at once.
/// Call `shutdown()` when done.
package final class CelestiaDAClient: DAClient {
    package let options: DAClientOptions
    private let pool: CurlConnectionPool
    private let nextID = Atomic<Int64>(1)
    private let logger: Logger
    /// Set by a `429` answer's `Retry-After`: no request leaves before it, whoever sends it
    /// (the follower's parallel fetches and the submitter share the DA node's rate limit).
    private let pausedUntil = Mutex<ContinuousClock.Instant?>(nil)

    package init(options: DAClientOptions, logger: Logger = Logger(label: "evnode.da.client")) throws(DAError) {
        self.options = options
        self.logger = logger
        do throws(HTTPError) {
            self.pool = try CurlConnectionPool(size: max(1, options.connections), url: options.url,
                                               authToken: options.authToken,
                                               connectTimeout: options.connectTimeout,
                                               requestTimeout: options.requestTimeout,
                                               maxResponseBytes: options.maxResponseBytes,
                                               caFile: options.caFile)
        } catch {
            throw DAError(error)
        }
    }

    /// Stops the connection threads once the requests in flight end.
    package func shutdown() async {
        await pool.shutdown()
    }

    // MARK: The blob API

    package func submit(_ blobs: [DABlob]) async throws(DAError) -> UInt64 {
        try await submit(blobs, options: DATxConfig())
    }

    /// `blob.Submit` with celestia-node's TxConfig as the second parameter. Not retried here:
    /// a submission that timed out may still land, and the submitter decides what comes next
    /// (a higher fee, another signer).
    package func submit(_ blobs: [DABlob], options tx: DATxConfig) async throws(DAError) -> UInt64 {
        var params = "[["
        for (i, blob) in blobs.enumerated() {
            if i > 0 { params += "," }
            params += Self.blobJSONText(blob)
        }
        params += "]," + tx.json + "]"
        let height = try await callOnce(DAMethod.submit, params: params, height: nil, result: FlexibleHeight.self)
        return try Self.submittedHeight(height)
    }

    /// The DA height a `blob.Submit` result names.
    static func submittedHeight(_ height: FlexibleHeight?) throws(DAError) -> UInt64 {
        guard let height else {
            throw .malformedResponse(method: DAMethod.submit, reason: "result is missing (expected the DA height)")
        }
        return height.value
    }

    package func getAll(height: UInt64, namespaces: [DANamespace]) async throws(DAError) -> [DABlob] {
        let list = namespaces.map { "\"\($0.base64)\"" }.joined(separator: ",")
        let raw = try await call(DAMethod.getAll, params: "[\(height),[\(list)]]", height: height,
                                 result: [BlobJSON].self)
        return try Self.blobs(raw, asked: namespaces)
    }

    /// The blobs of a `blob.GetAll` result, each validated and in one of the namespaces asked for.
    static func blobs(_ raw: [BlobJSON]?, asked namespaces: [DANamespace]) throws(DAError) -> [DABlob] {
        // Newer Celestia nodes answer an empty height with a null result instead of an error.
        guard let raw else { return [] }
        var blobs: [DABlob] = []
        blobs.reserveCapacity(raw.count)
        for (i, item) in raw.enumerated() {
            let blob = try Self.validated(item, context: "result[\(i)]", method: DAMethod.getAll)
            guard namespaces.contains(blob.namespace) else {
                throw .malformedResponse(method: DAMethod.getAll,
                                         reason: "result[\(i)] is in namespace \(blob.namespace), which was not asked for")
            }
            blobs.append(blob)
        }
        return blobs
    }

    package func get(height: UInt64, namespace: DANamespace, commitment: [UInt8]) async throws(DAError) -> DABlob {
        let params = "[\(height),\"\(namespace.base64)\",\"\(Data(commitment).base64EncodedString())\"]"
        let raw = try await call(DAMethod.get, params: params, height: height, result: BlobJSON.self)
        guard let raw else {
            throw .notFound(method: DAMethod.get, height: height, message: DAError.Text.notFound)
        }
        let blob = try Self.validated(raw, context: "result", method: DAMethod.get)
        guard blob.namespace == namespace else {
            throw .malformedResponse(method: DAMethod.get, reason: "result is in namespace \(blob.namespace), not \(namespace)")
        }
        return blob
    }

    package func networkHead() async throws(DAError) -> DAHeader {
        let raw = try await call(DAMethod.networkHead, params: "[]", height: nil, result: HeaderJSON.self)
        return try Self.header(from: raw, method: DAMethod.networkHead)
    }

    package func header(height: UInt64) async throws(DAError) -> DAHeader {
        let raw = try await call(DAMethod.getByHeight, params: "[\(height)]", height: height, result: HeaderJSON.self)
        let header = try Self.header(from: raw, method: DAMethod.getByHeight)
        guard header.height == height else {
            throw .malformedResponse(method: DAMethod.getByHeight, reason: "asked for height \(height), got \(header.height)")
        }
        return header
    }

    // MARK: JSON-RPC

    /// Calls `method` with `params` (a JSON array text), retrying per the policy. A `nil` result
    /// means the response held `"result": null`.
    func call<R: Decodable & Sendable>(_ method: String, params: String, height: UInt64?,
                                       result: R.Type) async throws(DAError) -> R? {
        var attempt = 1
        while true {
            do {
                return try await callOnce(method, params: params, height: height, result: result)
            } catch {
                guard error.isRetryable, attempt < options.retry.maxAttempts else { throw error }
                let delay = options.retry.delay(afterAttempt: attempt)
                // Debug only: callers report a failing DA once and then summarise (issue 14),
                // a line per retry would flood the log of a node behind a flaky DA.
                logger.debug("DA request failed, retrying", metadata: [
                    "method": "\(method)", "attempt": "\(attempt)", "retry_in": "\(DurationParser.format(delay))",
                    "error": "\(error)",
                ])
                do {
                    try await Task.sleep(for: delay)
                } catch {
                    throw .cancelled
                }
                attempt += 1
            }
        }
    }

    private func callOnce<R: Decodable & Sendable>(_ method: String, params: String, height: UInt64?,
                                                   result: R.Type) async throws(DAError) -> R? {
        if let until = pausedUntil.withLock({ $0 }), until > .now {
            do {
                try await Task.sleep(until: until, clock: .continuous)
            } catch {
                throw .cancelled
            }
        }
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let body = "{\"jsonrpc\":\"2.0\",\"id\":\(id),\"method\":\"\(method)\",\"params\":\(params)}"
        let reply: HTTPReply
        do throws(HTTPError) {
            reply = try await pool.post(Array(body.utf8))
        } catch {
            throw DAError(error)
        }
        if reply.status == 429 {
            let wait = reply.retryAfter.flatMap { RetryAfter.delay($0) } ?? options.retry.initialDelay
            let until = ContinuousClock.now + wait
            pausedUntil.withLock { $0 = max($0 ?? until, until) }
            logger.debug("DA node is rate limiting (HTTP 429)", metadata: [
                "method": "\(method)", "retry_after": "\(reply.retryAfter ?? "-")", "pause": "\(DurationParser.format(wait))"])
        }
        return try Self.decode(reply, method: method, id: id, height: height, url: options.url, as: result)
    }

    static func decode<R: Decodable>(_ reply: HTTPReply, method: String, id: Int64, height: UInt64?,
                                     url: String, as: R.Type) throws(DAError) -> R? {
        let response: RPCResponse<R>
        do {
            response = try JSONDecoder().decode(RPCResponse<R>.self, from: Data(reply.body))
        } catch {
            if reply.status == 413 {
                throw .blobTooLarge(message: "HTTP 413: request body too large for the DA node")
            }
            if reply.status != 200 {
                throw .httpStatus(status: reply.status, body: String(decoding: reply.body.prefix(512), as: UTF8.self), url: url)
            }
            throw .malformedResponse(method: method, reason: describeDecodingError(error))
        }
        if let error = response.error {
            throw DAError.classify(method: method, height: height, code: error.code, message: error.message)
        }
        if reply.status == 413 {
            throw .blobTooLarge(message: "HTTP 413: request body too large for the DA node")
        }
        if reply.status != 200 {
            throw .httpStatus(status: reply.status, body: String(decoding: reply.body.prefix(512), as: UTF8.self), url: url)
        }
        if let version = response.jsonrpc, version != "2.0" {
            throw .malformedResponse(method: method, reason: "jsonrpc is \"\(version)\", expected \"2.0\"")
        }
        guard response.id == .number(id) else {
            throw .malformedResponse(method: method,
                                     reason: "response id \(response.id?.description ?? "missing") does not match request id \(id)")
        }
        return response.result
    }

    private static func validated(_ item: BlobJSON, context: String, method: String) throws(DAError) -> DABlob {
        do {
            return try item.blob(context: context, requireCommitment: true)
        } catch {
            throw .malformedResponse(method: method, reason: error.description)
        }
    }

    static func header(from raw: HeaderJSON?, method: String) throws(DAError) -> DAHeader {
        guard let raw else { throw .malformedResponse(method: method, reason: "result is null") }
        guard let height = (raw.height ?? raw.header?.height)?.value else {
            throw .malformedResponse(method: method, reason: "result.height is missing")
        }
        guard height <= DAHeader.maximumPlausibleHeight else {
            throw .malformedResponse(method: method, reason: "height \(height) is implausible (above \(DAHeader.maximumPlausibleHeight)); a DA node that claims it is broken or lying")
        }
        guard let timeText = raw.header?.time else {
            throw .malformedResponse(method: method, reason: "result.header.time is missing")
        }
        do {
            return DAHeader(height: height, timeNanoseconds: try RFC3339.unixNanoseconds(timeText))
        } catch {
            throw .malformedResponse(method: method, reason: "result.header.time: \(error)")
        }
    }

    /// A blob as Submit params carry it. Base64 never needs JSON escaping.
    package static func blobJSONText(_ blob: DABlob) -> String {
        "{\"namespace\":\"\(blob.namespace.base64)\",\"data\":\"\(Data(blob.data).base64EncodedString())\","
            + "\"share_version\":\(blob.shareVersion),\"commitment\":\"\(Data(blob.commitment).base64EncodedString())\","
            + "\"index\":\(blob.index)}"
    }
}

/// The `Retry-After` header (RFC 9110 §10.2.3): delay-seconds or an HTTP date.
enum RetryAfter {
    /// Longer waits are cut to this: a DA node's typo must not park the node for a day.
    static let longest: Duration = .seconds(600)

    /// The wait the header asks for, or nil when it is neither form.
    package static func delay(_ text: String, now: Date = Date()) -> Duration? {
        let value = text.trimmingCharacters(in: .whitespaces)
        if let seconds = UInt64(value) {
            return min(.seconds(Int64(min(seconds, 1_000_000))), longest)
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: value) else { return nil }
        let seconds = max(0, date.timeIntervalSince(now))
        return min(.milliseconds(Int64(seconds * 1000)), longest)
    }
}
