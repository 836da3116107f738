import GRPCCore

/// A refused ev-node RPC call: the code both protocols share (Connect names it in its JSON
/// error, gRPC in `grpc-status`) and a message that says what was wrong.
package struct APIFault: Error, Sendable, Equatable, CustomStringConvertible {
    /// The Connect/gRPC codes this API answers with.
    package enum Code: String, Sendable, Equatable {
        case invalidArgument = "invalid_argument"
        case notFound = "not_found"
        case resourceExhausted = "resource_exhausted"
        case unimplemented
        case `internal`
        case unavailable

        /// The HTTP status the Connect protocol pairs with the code.
        package var httpStatus: Int {
            switch self {
            case .invalidArgument: 400
            case .notFound: 404
            case .resourceExhausted: 429
            case .unimplemented: 501
            case .internal: 500
            case .unavailable: 503
            }
        }

        var grpc: RPCError.Code {
            switch self {
            case .invalidArgument: .invalidArgument
            case .notFound: .notFound
            case .resourceExhausted: .resourceExhausted
            case .unimplemented: .unimplemented
            case .internal: .internalError
            case .unavailable: .unavailable
            }
        }
    }

    package let code: Code
    package let message: String

    package init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    package var description: String { "\(code.rawValue): \(message)" }

    var rpcError: RPCError { RPCError(code: code.grpc, message: message) }
}
