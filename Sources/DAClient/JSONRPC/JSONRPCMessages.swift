/// JSON-RPC 2.0 envelopes (https://www.jsonrpc.org/specification), as far as the blob API needs.

/// A request id: a number, a string or null. Echoed unchanged in the response.
package enum RPCID: Codable, Sendable, Equatable, CustomStringConvertible {
    case number(Int64)
    case string(String)
    case null

    package init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let n = try? c.decode(Int64.self) {
            self = .number(n)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "id must be a number, a string or null")
        }
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .number(let n): try c.encode(n)
        case .string(let s): try c.encode(s)
        case .null: try c.encodeNil()
        }
    }

    package var description: String {
        switch self {
        case .number(let n): return String(n)
        case .string(let s): return "\"\(s)\""
        case .null: return "null"
        }
    }
}

/// `{"code": …, "message": …}`.
package struct RPCErrorObject: Codable, Sendable, Equatable {
    package var code: Int
    package var message: String

    package init(code: Int, message: String) {
        self.code = code
        self.message = message
    }
}

/// A response as the client reads it: every field optional, checked afterwards so that each
/// kind of wrong answer gets its own error text.
struct RPCResponse<Result: Decodable>: Decodable {
    package var jsonrpc: String?
    package var id: RPCID?
    package var result: Result?
    package var error: RPCErrorObject?
}

/// Error codes. The application code (1) is what Go JSON-RPC servers use for ordinary errors.
package enum RPCErrorCode {
    package static let parseError = -32700
    package static let invalidRequest = -32600
    package static let methodNotFound = -32601
    package static let invalidParams = -32602
    package static let internalError = -32603
    package static let application = 1
}

/// Method names of the Celestia node API that evnode uses.
package enum DAMethod {
    package static let submit = "blob.Submit"
    package static let getAll = "blob.GetAll"
    package static let get = "blob.Get"
    package static let networkHead = "header.NetworkHead"
    package static let getByHeight = "header.GetByHeight"
    /// WebSocket only: a notification per new DA height (go-jsonrpc channel, `xrpc.ch.val`).
    package static let subscribe = "blob.Subscribe"
    /// go-jsonrpc's channel notifications.
    package static let channelValue = "xrpc.ch.val"
    package static let channelClose = "xrpc.ch.close"
}
