import HTTPClient
/// Everything that can go wrong talking to a DA node, with the context an operator needs.
///
/// The last three semantic cases are recognised from the message text of a JSON-RPC error
/// (SPEC §5): DA nodes report them as ordinary errors, and only the text tells them apart.
package enum DAError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The HTTP exchange failed (libcurl code and message).
    case transport(code: Int, message: String, url: String)
    /// The DA node answered with an HTTP status other than 200 and no JSON-RPC error.
    case httpStatus(status: Int, body: String, url: String)
    /// The DA node answered with a JSON-RPC error that is none of the semantic ones below.
    case rpc(method: String, code: Int, message: String)
    /// The response was not what the API promises (what was wrong is in `reason`).
    case malformedResponse(method: String, reason: String)
    /// `blob: not found`: the height holds no blob in the requested namespaces.
    case notFound(method: String, height: UInt64, message: String)
    /// `given height is from the future`: the height is above the DA node's head.
    case heightFromFuture(method: String, height: UInt64, message: String)
    /// `blob: over size limit` (or HTTP 413): the submission is too large; split it.
    case blobTooLarge(message: String)
    /// The caller's task was cancelled while the request was pending.
    case cancelled
    /// The client could not be set up (libcurl initialisation, bad option).
    case setup(String)

    package var description: String {
        switch self {
        case let .transport(code, message, url):
            return "DA transport error talking to \(url): \(message) (curl code \(code))"
        case let .httpStatus(status, body, url):
            let snippet = body.count > 200 ? String(body.prefix(200)) + "…" : body
            return "DA node \(url) answered HTTP \(status)" + (snippet.isEmpty ? "" : ": \(snippet)")
        case let .rpc(method, code, message):
            return "DA \(method) failed: \(message) (JSON-RPC code \(code))"
        case let .malformedResponse(method, reason):
            return "malformed DA response to \(method): \(reason)"
        case let .notFound(method, height, message):
            return "DA \(method) at height \(height): \(message)"
        case let .heightFromFuture(method, height, message):
            return "DA \(method) at height \(height): \(message)"
        case let .blobTooLarge(message):
            return "DA submission too large: \(message)"
        case .cancelled:
            return "DA request cancelled"
        case let .setup(reason):
            return "DA client setup failed: \(reason)"
        }
    }

    /// Whether trying the same request again may succeed: transport failures, server errors
    /// (5xx) and rate limiting (429). Never the semantic errors, which are answers, not faults.
    package var isRetryable: Bool {
        switch self {
        case let .transport(code, _, _):
            return !CurlCode.permanent.contains(code)
        case let .httpStatus(status, _, _):
            return status >= 500 || status == 429
        default:
            return false
        }
    }

    /// Texts by which DA nodes signal the semantic errors (SPEC §5).
    package enum Text {
        package static let notFound = "blob: not found"
        package static let heightFromFuture = "given height is from the future"
        package static let overSizeLimit = "blob: over size limit"
    }

    /// Maps a JSON-RPC error to a semantic case by its message text, else `.rpc`.
    package static func classify(method: String, height: UInt64?, code: Int, message: String) -> DAError {
        if message.contains(Text.heightFromFuture) {
            return .heightFromFuture(method: method, height: height ?? 0, message: message)
        }
        if message.contains(Text.notFound) {
            return .notFound(method: method, height: height ?? 0, message: message)
        }
        if message.contains(Text.overSizeLimit) {
            return .blobTooLarge(message: message)
        }
        return .rpc(method: method, code: code, message: message)
    }
}

/// libcurl result codes the client needs by name.
enum CurlCode {
    static let unsupportedProtocol = 1
    static let urlMalformat = 3
    static let writeError = 23
    static let abortedByCallback = 42
    /// Codes that another attempt cannot fix.
    static let permanent: Set<Int> = [unsupportedProtocol, urlMalformat, writeError, abortedByCallback]
}

extension DAError {
    /// The DA errors the shared HTTP client's failures have always been reported as.
    package init(_ error: HTTPError) {
        switch error {
        case let .transport(code, message, url): self = .transport(code: code, message: message, url: url)
        case let .responseTooLarge(limit): self = .malformedResponse(method: "HTTP", reason: "response larger than \(limit) bytes")
        case .cancelled: self = .cancelled
        case .shutDown: self = .setup("DA client is shut down")
        case let .setup(reason): self = .setup(reason)
        }
    }
}
