import CCurlShim
import Foundation
import NIOPosix
import Synchronization

/// libcurl's process-wide setup. `curl_global_init` is not thread-safe and must run once before
/// any handle exists; a `static let` initialiser runs exactly once, under Swift's one-time lock.
enum CurlRuntime {
    private static let initResult: Int = Int(curl_global_init(Int(CURL_GLOBAL_DEFAULT)).rawValue)

    static func ensureInitialized() throws(HTTPError) {
        guard initResult == 0 else {
            throw .setup("curl_global_init failed with code \(initResult)")
        }
    }
}

/// An HTTP answer: status, body bytes and the one header the clients act on.
package struct HTTPReply: Sendable {
    package let status: Int
    package let body: [UInt8]
    /// The `Retry-After` header as sent (delay-seconds or an HTTP date), if any.
    package var retryAfter: String?

    package init(status: Int, body: [UInt8], retryAfter: String? = nil) {
        self.status = status
        self.body = body
        self.retryAfter = retryAfter
    }
}

/// How one request differs from its connection's defaults.
package struct RequestShape: Sendable {
    /// Another URL than the connection's (same host, other path).
    package var url: String?
    /// Another upper bound of the whole exchange than the connection's.
    package var timeout: Duration?
    /// For streamed answers (etcd watch): end the transfer successfully once this many complete
    /// lines arrived, or when `timeout` passes with whatever arrived by then.
    package var stopAfterLines: Int?
    /// Header lines for this request only, sent after the connection's (e.g. an
    /// `Authorization` header minted per request).
    package var headers: [String]

    package init(url: String? = nil, timeout: Duration? = nil, stopAfterLines: Int? = nil, headers: [String] = []) {
        self.url = url
        self.timeout = timeout
        self.stopAfterLines = stopAfterLines
        self.headers = headers
    }

    package static let plain = RequestShape()
}

/// Set by the task that waits for a request when it is cancelled; the transfer's progress
/// callback sees it and aborts (libcurl calls it at least about once a second).
final class CancelFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    func set() { flag.store(true, ordering: .relaxed) }
    var isSet: Bool { flag.load(ordering: .relaxed) }
}

/// What the libcurl callbacks of one connection write into. Touched only by the thread that
/// currently performs a transfer on the connection.
final class CurlTransferState {
    var body: [UInt8] = []
    var limit: Int
    var overflowed = false
    var cancel: CancelFlag?
    /// See `RequestShape.stopAfterLines`; `stoppedEarly` records that the limit ended the transfer.
    var stopAfterLines: Int?
    var linesSeen = 0
    var stoppedEarly = false
    /// `Retry-After` of the last response (rate limiting, SPEC §5 via issue 14).
    var retryAfter: String?

    init(limit: Int) {
        self.limit = limit
    }
}

/// One libcurl easy handle, i.e. one keep-alive HTTP connection to one server.
///
/// libcurl handles must not be used by two threads at once; `CurlConnectionPool` hands each
/// connection to exactly one pool thread at a time, which is why the unchecked conformance holds.
final class CurlConnection: @unchecked Sendable {
    let url: String
    private let requestTimeout: Duration
    private let handle: UnsafeMutableRawPointer
    private var headers: UnsafeMutablePointer<curl_slist>?
    /// The connection's header lines, kept to build a request's own list when it adds some.
    private let headerLines: [String]
    private let errorBuffer: UnsafeMutablePointer<CChar>
    private let state: CurlTransferState

    init(url: String, authToken: String, connectTimeout: Duration, requestTimeout: Duration,
         maxResponseBytes: Int, caFile: String = "") throws(HTTPError) {
        try CurlRuntime.ensureInitialized()
        guard let handle = curl_easy_init() else { throw .setup("curl_easy_init returned NULL") }
        self.url = url
        self.requestTimeout = requestTimeout
        self.handle = handle
        self.errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        self.errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        self.state = CurlTransferState(limit: maxResponseBytes)

        var list: UnsafeMutablePointer<curl_slist>? = nil
        var lines = ["Content-Type: application/json", "Accept: application/json",
                     // No "100-continue" round trip before large submissions.
                     "Expect:"]
        if !authToken.isEmpty { lines.append("Authorization: Bearer \(authToken)") }
        for line in lines {
            guard let next = curl_slist_append(list, line) else {
                curl_slist_free_all(list)
                throw .setup("curl_slist_append failed")
            }
            list = next
        }
        self.headers = list
        self.headerLines = lines

        let statePointer = Unmanaged.passUnretained(state).toOpaque()
        var failures: [String] = []
        func check(_ code: CURLcode, _ what: String) {
            if code != CURLE_OK { failures.append("\(what): \(String(cString: curl_easy_strerror(code)))") }
        }
        check(evcurl_setopt_ptr(handle, CURLOPT_URL, url), "URL")
        check(evcurl_setopt_long(handle, CURLOPT_POST, 1), "POST")
        // Threads other than the main one must not get SIGALRM-based DNS timeouts.
        check(evcurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1), "NOSIGNAL")
        check(evcurl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT_MS, Self.milliseconds(connectTimeout)), "CONNECTTIMEOUT_MS")
        check(evcurl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Self.milliseconds(requestTimeout)), "TIMEOUT_MS")
        check(evcurl_setopt_long(handle, CURLOPT_TCP_KEEPALIVE, 1), "TCP_KEEPALIVE")
        check(evcurl_setopt_long(handle, CURLOPT_TCP_NODELAY, 1), "TCP_NODELAY")
        check(evcurl_setopt_long(handle, CURLOPT_FOLLOWLOCATION, 0), "FOLLOWLOCATION")
        check(evcurl_setopt_ptr(handle, CURLOPT_HTTPHEADER, list), "HTTPHEADER")
        check(evcurl_setopt_ptr(handle, CURLOPT_ERRORBUFFER, errorBuffer), "ERRORBUFFER")
        // A private CA for an https:// DA node; libcurl copies the path. Peer and host name
        // checks stay on (libcurl's defaults).
        if !caFile.isEmpty { check(evcurl_setopt_ptr(handle, CURLOPT_CAINFO, caFile), "CAINFO") }
        check(evcurl_setopt_write(handle) { data, size, count, user in
            let state = Unmanaged<CurlTransferState>.fromOpaque(user!).takeUnretainedValue()
            let n = size * count
            if state.body.count + n > state.limit {
                state.overflowed = true
                return 0  // aborts the transfer with CURLE_WRITE_ERROR
            }
            if n > 0, let data {
                data.withMemoryRebound(to: UInt8.self, capacity: n) {
                    let chunk = UnsafeBufferPointer(start: $0, count: n)
                    state.body.append(contentsOf: chunk)
                    // Only the new bytes are counted: a streamed answer may be megabytes long.
                    if state.stopAfterLines != nil { state.linesSeen += chunk.lazy.filter { $0 == 0x0A }.count }
                }
            }
            if let lines = state.stopAfterLines, state.linesSeen >= lines {
                state.stoppedEarly = true
                return 0
            }
            return n
        }, "WRITEFUNCTION")
        check(evcurl_setopt_ptr(handle, CURLOPT_WRITEDATA, statePointer), "WRITEDATA")
        check(evcurl_setopt_header(handle) { data, size, count, user in
            let state = Unmanaged<CurlTransferState>.fromOpaque(user!).takeUnretainedValue()
            let n = size * count
            // Only `Retry-After` is kept; a header line is short, anything long is not it.
            if n > 12, n < 256, let data {
                let line = data.withMemoryRebound(to: UInt8.self, capacity: n) {
                    String(decoding: UnsafeBufferPointer(start: $0, count: n), as: UTF8.self)
                }
                if line.lowercased().hasPrefix("retry-after:") {
                    state.retryAfter = line.dropFirst("retry-after:".count).trimmingCharacters(in: .whitespacesAndNewlines)
                }
            }
            return n
        }, "HEADERFUNCTION")
        check(evcurl_setopt_ptr(handle, CURLOPT_HEADERDATA, statePointer), "HEADERDATA")
        check(evcurl_setopt_long(handle, CURLOPT_NOPROGRESS, 0), "NOPROGRESS")
        check(evcurl_setopt_xferinfo(handle) { user, _, _, _, _ in
            let state = Unmanaged<CurlTransferState>.fromOpaque(user!).takeUnretainedValue()
            return state.cancel?.isSet == true ? 1 : 0
        }, "XFERINFOFUNCTION")
        check(evcurl_setopt_ptr(handle, CURLOPT_XFERINFODATA, statePointer), "XFERINFODATA")
        if !failures.isEmpty {
            curl_easy_cleanup(handle)
            curl_slist_free_all(list)
            errorBuffer.deallocate()
            throw .setup("setting libcurl options for \(url): " + failures.joined(separator: "; "))
        }
    }

    deinit {
        curl_easy_cleanup(handle)
        curl_slist_free_all(headers)
        errorBuffer.deallocate()
    }

    private static func milliseconds(_ d: Duration) -> Int {
        let (seconds, attoseconds) = d.components
        let ms = seconds < 0 ? 0 : UInt64(clamping: seconds) &* 1000 &+ UInt64(attoseconds / 1_000_000_000_000_000)
        return ms == 0 ? 1 : Int(min(ms, UInt64(Int32.max)))
    }

    /// Performs one POST, blocking the calling thread until it ends.
    func post(_ body: [UInt8], shape: RequestShape = .plain, cancel: CancelFlag) -> Result<HTTPReply, HTTPError> {
        state.body.removeAll(keepingCapacity: true)
        state.overflowed = false
        state.stoppedEarly = false
        state.linesSeen = 0
        state.retryAfter = nil
        state.stopAfterLines = shape.stopAfterLines
        state.cancel = cancel
        defer { state.cancel = nil }
        errorBuffer[0] = 0
        let target = shape.url ?? url
        var code = evcurl_setopt_ptr(handle, CURLOPT_URL, target)
        // A request with headers of its own gets a list for this transfer only.
        var requestHeaders: UnsafeMutablePointer<curl_slist>? = nil
        defer {
            if requestHeaders != nil {
                _ = evcurl_setopt_ptr(handle, CURLOPT_HTTPHEADER, headers)
                curl_slist_free_all(requestHeaders)
            }
        }
        if code == CURLE_OK, !shape.headers.isEmpty {
            for line in headerLines + shape.headers {
                guard let next = curl_slist_append(requestHeaders, line) else {
                    curl_slist_free_all(requestHeaders)
                    requestHeaders = nil
                    return .failure(.setup("curl_slist_append failed"))
                }
                requestHeaders = next
            }
            code = evcurl_setopt_ptr(handle, CURLOPT_HTTPHEADER, requestHeaders)
        }
        if code == CURLE_OK {
            code = evcurl_setopt_long(handle, CURLOPT_TIMEOUT_MS, Self.milliseconds(shape.timeout ?? requestTimeout))
        }
        // The size must be set before COPYPOSTFIELDS, which then copies exactly that many bytes.
        if code == CURLE_OK {
            code = evcurl_setopt_off(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
        }
        if code == CURLE_OK {
            code = body.withUnsafeBytes { evcurl_setopt_ptr(handle, CURLOPT_COPYPOSTFIELDS, $0.baseAddress) }
        }
        if code == CURLE_OK {
            code = curl_easy_perform(handle)
        }
        let streamEnded = shape.stopAfterLines != nil
            && (state.stoppedEarly || (code == CURLE_OPERATION_TIMEDOUT && !state.body.isEmpty))
        if code != CURLE_OK && !streamEnded {
            if cancel.isSet { return .failure(.cancelled) }
            if state.overflowed {
                return .failure(.responseTooLarge(limit: state.limit))
            }
            let detail = String(cString: errorBuffer)
            let message = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
            return .failure(.transport(code: Int(code.rawValue), message: message, url: target))
        }
        var status = 0
        _ = evcurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &status)
        return .success(HTTPReply(status: status, body: state.body, retryAfter: state.retryAfter))
    }
}

/// A fixed set of keep-alive connections, each used on a thread of its own so that blocking
/// libcurl transfers never occupy Swift's cooperative threads. As many threads as connections:
/// a thread that runs a job always finds an idle connection.
package final class CurlConnectionPool: Sendable {
    package let url: String
    private let threads: NIOThreadPool
    private let idle: Mutex<[CurlConnection]>

    /// `authToken`, when not empty, is sent as `Authorization: Bearer <token>` with every request;
    /// `caFile`, when not empty, is the PEM CA bundle an https:// server's certificate must chain to.
    package init(size: Int, url: String, authToken: String, connectTimeout: Duration, requestTimeout: Duration,
                maxResponseBytes: Int, caFile: String = "") throws(HTTPError) {
        precondition(size >= 1, "a connection pool needs at least one connection")
        var connections: [CurlConnection] = []
        for _ in 0..<size {
            connections.append(try CurlConnection(url: url, authToken: authToken, connectTimeout: connectTimeout,
                                                  requestTimeout: requestTimeout, maxResponseBytes: maxResponseBytes,
                                                  caFile: caFile))
        }
        self.url = url
        self.idle = Mutex(connections)
        self.threads = NIOThreadPool(numberOfThreads: size)
        self.threads.start()
    }

    deinit {
        // A pool dropped without `shutdown()` still stops its threads.
        threads.shutdownGracefully(queue: .global()) { _ in }
    }

    package func post(_ body: [UInt8], shape: RequestShape = .plain) async throws(HTTPError) -> HTTPReply {
        if Task.isCancelled { throw .cancelled }
        let cancel = CancelFlag()
        let result: Result<HTTPReply, HTTPError>
        do {
            result = try await withTaskCancellationHandler {
                try await threads.runIfActive { self.postOnPoolThread(body, shape: shape, cancel: cancel) }
            } onCancel: {
                cancel.set()
            }
        } catch is CancellationError {
            throw .cancelled
        } catch {
            throw .shutDown
        }
        return try result.get()
    }

    private func postOnPoolThread(_ body: [UInt8], shape: RequestShape, cancel: CancelFlag) -> Result<HTTPReply, HTTPError> {
        let connection = idle.withLock { $0.removeLast() }
        defer { idle.withLock { $0.append(connection) } }
        return connection.post(body, shape: shape, cancel: cancel)
    }

    /// Stops the threads after the transfers in flight end.
    package func shutdown() async {
        try? await threads.shutdownGracefully()
    }
}
