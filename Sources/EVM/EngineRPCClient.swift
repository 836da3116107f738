import Chain
import Foundation
import HTTPClient
import Synchronization

/// A JSON-RPC error the EL answered with.
package struct RPCErrorObject: Sendable, Equatable {
    package let code: Int64
    package let message: String

    /// Engine API `Unsupported fork`: the method version does not match the block's fork.
    package static let unsupportedFork: Int64 = -38005
    /// Engine API `Unknown payload`.
    package static let unknownPayload: Int64 = -38001
    /// JSON-RPC `Method not found`.
    package static let methodNotFound: Int64 = -32601
}

/// What one JSON-RPC call to the EL gave: a result of the method's type, or an error object.
/// Transport failures and answers that are not JSON-RPC (or whose result does not decode) are
/// thrown as `ExecutionError`s naming the EL and the method.
package enum RPCOutcome<Result: Sendable>: Sendable {
    case result(Result)
    case error(RPCErrorObject)
}

/// JSON-RPC 2.0 over HTTP to the two endpoints of an execution client: the Engine API (every
/// request carries a freshly minted JWT) and the eth API (no auth). libcurl keep-alive
/// connections on threads of their own (the shared `HTTPClient`).
package final class EngineRPCClient: Sendable {
    package let engineURL: String
    package let ethURL: String
    private let engine: CurlConnectionPool
    private let eth: CurlConnectionPool
    private let jwt: EngineJWT
    private let nextID = Atomic<Int64>(1)

    package init(engineURL: String, ethURL: String, jwt: EngineJWT,
                requestTimeout: Duration = .seconds(10)) throws(EVMSetupError) {
        self.engineURL = engineURL
        self.ethURL = ethURL
        self.jwt = jwt
        do throws(HTTPError) {
            engine = try CurlConnectionPool(size: 2, url: engineURL, authToken: "", connectTimeout: .seconds(2),
                                            requestTimeout: requestTimeout, maxResponseBytes: 64 << 20)
            eth = try CurlConnectionPool(size: 2, url: ethURL, authToken: "", connectTimeout: .seconds(2),
                                         requestTimeout: requestTimeout, maxResponseBytes: 64 << 20)
        } catch {
            throw .client("\(error)")
        }
    }

    package func shutdown() async {
        await engine.shutdown()
        await eth.shutdown()
    }

    /// An `engine_*` call (JWT-authenticated) whose result decodes as `Result`.
    func engineCall<Result: Decodable & Sendable>(_ method: String, _ params: RPCParams, as: Result.Type = Result.self,
                                                  height: UInt64?) async throws(ExecutionError) -> RPCOutcome<Result> {
        try await call(engine, url: engineURL, method: method, params: params, height: height, authenticated: true)
    }

    /// An eth-namespace call (`eth_*`, `txpoolExt_*`) whose result decodes as `Result`.
    func ethCall<Result: Decodable & Sendable>(_ method: String, _ params: RPCParams, as: Result.Type = Result.self,
                                               height: UInt64?) async throws(ExecutionError) -> RPCOutcome<Result> {
        try await call(eth, url: ethURL, method: method, params: params, height: height, authenticated: false)
    }

    private func call<Result: Decodable & Sendable>(_ pool: CurlConnectionPool, url: String, method: String, params: RPCParams,
                                                    height: UInt64?, authenticated: Bool) async throws(ExecutionError) -> RPCOutcome<Result> {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let engineName = "EL \(url)"
        let body: Data
        do {
            body = try JSONEncoder().encode(JSONRPCRequest(id: id, method: method, params: params))
        } catch {
            throw ExecutionError(kind: .rejected, engine: engineName, method: method, height: height,
                                 reason: "encoding the request: \(error)")
        }
        let shape = RequestShape(headers: authenticated ? ["Authorization: " + jwt.bearer()] : [])
        let reply: HTTPReply
        do throws(HTTPError) {
            reply = try await pool.post(Array(body), shape: shape)
        } catch {
            switch error {
            case .transport, .cancelled, .shutDown:
                throw ExecutionError(kind: .unavailable, engine: engineName, method: method, height: height,
                                     reason: "\(error)")
            case .responseTooLarge, .setup:
                throw ExecutionError(kind: .rejected, engine: engineName, method: method, height: height,
                                     reason: "\(error)")
            }
        }
        return try Self.decode(reply, as: Result.self, engine: engineName, method: method, id: id, height: height)
    }

    static func decode<Result: Decodable & Sendable>(_ reply: HTTPReply, as: Result.Type, engine: String, method: String,
                                                     id: Int64, height: UInt64?) throws(ExecutionError) -> RPCOutcome<Result> {
        func fail(_ kind: ExecutionError.Kind, _ reason: String) -> ExecutionError {
            ExecutionError(kind: kind, engine: engine, method: method, height: height, reason: reason)
        }
        if reply.status == 401 || reply.status == 403 {
            throw fail(.rejected, "the EL refused the JWT (HTTP \(reply.status)): --evm.jwt-secret-file must hold the secret the EL was started with, and both clocks must agree within 60 s")
        }
        func notJSONRPC() -> ExecutionError {
            let snippet = String(decoding: reply.body.prefix(200), as: UTF8.self)
            if reply.status >= 500 || reply.status == 0 {
                return fail(.unavailable, "HTTP \(reply.status): \(snippet)")
            }
            return fail(.rejected, "answer is not a JSON-RPC object (HTTP \(reply.status)): \(snippet.isEmpty ? "<empty body>" : snippet)")
        }
        let answer: JSONRPCReply<Result>
        do {
            let decoder = JSONDecoder()
            decoder.userInfo[JSONRPCReply<Result>.requestID] = id
            answer = try decoder.decode(JSONRPCReply<Result>.self, from: Data(reply.body))
        } catch let error as JSONRPCReplyError {
            switch error {
            case .noResult: throw fail(.rejected, "JSON-RPC answer has neither result nor error (HTTP \(reply.status))")
            case .otherID(let answered): throw fail(.rejected, "JSON-RPC answer carries id \(answered), the request had \(id)")
            case .errorWithoutCode(let text): throw fail(.rejected, "JSON-RPC error without a numeric code: \(text.prefix(200))")
            }
        } catch let error as DecodingError {
            switch error {
            case .dataCorrupted(let context) where context.codingPath.isEmpty:
                throw notJSONRPC()
            case .typeMismatch(_, let context) where context.codingPath.isEmpty:
                throw notJSONRPC()
            default:
                throw fail(.rejected, "unusable result: \(error.fieldDescription)")
            }
        } catch {
            throw notJSONRPC()
        }
        return answer.outcome
    }
}

/// A JSON-RPC 2.0 request.
private struct JSONRPCRequest: Encodable {
    let jsonrpc = "2.0"
    let id: Int64
    let method: String
    let params: RPCParams
}

enum JSONRPCReplyError: Error {
    case noResult
    case otherID(String)
    case errorWithoutCode(String)
}

/// A JSON-RPC 2.0 answer to the request whose id is in the decoder's `userInfo`: its error
/// object, or its result decoded as `Result` (checked in that order, the id before the result).
struct JSONRPCReply<Result: Decodable & Sendable>: Decodable {
    static var requestID: CodingUserInfoKey { CodingUserInfoKey(rawValue: "evnode.jsonrpc.id")! }

    let outcome: RPCOutcome<Result>

    private enum Key: String, CodingKey { case id, result, error }
    private enum ErrorKey: String, CodingKey { case code, message }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        if c.contains(.error), try !c.decodeNil(forKey: .error) {
            let error = try c.decode(JSONValue.self, forKey: .error)
            guard case .int(let code)? = error["code"] else { throw JSONRPCReplyError.errorWithoutCode(error.encoded()) }
            outcome = .error(RPCErrorObject(code: code, message: error["message"]?.stringValue ?? ""))
            return
        }
        guard c.contains(.result) else { throw JSONRPCReplyError.noResult }
        if c.contains(.id), let expected = decoder.userInfo[Self.requestID] as? Int64 {
            let answered = try c.decode(JSONValue.self, forKey: .id)
            guard answered == .int(expected) else { throw JSONRPCReplyError.otherID(answered.encoded()) }
        }
        outcome = .result(try c.decode(Result.self, forKey: .result))
    }
}
