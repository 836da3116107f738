/// Why an HTTP exchange produced no answer. Callers (the DA client, the EVM executor) map these
/// to their own errors, which name the method and the server.
package enum HTTPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// libcurl failed: connection refused, timeout, reset… `code` is the CURLcode.
    case transport(code: Int, message: String, url: String)
    /// The answer was larger than the connection's limit; the transfer was aborted.
    case responseTooLarge(limit: Int)
    /// The waiting task was cancelled; the transfer was aborted.
    case cancelled
    /// The client's threads were shut down.
    case shutDown
    /// libcurl could not be set up.
    case setup(String)

    package var description: String {
        switch self {
        case let .transport(code, message, url): return "HTTP transport to \(url) failed (curl \(code)): \(message)"
        case let .responseTooLarge(limit): return "response larger than \(limit) bytes"
        case .cancelled: return "cancelled"
        case .shutDown: return "HTTP client is shut down"
        case let .setup(reason): return "HTTP client setup: \(reason)"
        }
    }
}
