import Chain
import Foundation
import HTTPClient
import Synchronization

/// A JSON-RPC error the EL answered with.
public struct RPCErrorObject: Sendable, Equatable {
    public let code: Int64
    public let message: String

    /// Engine API `Unsupported fork`: the method version does not match the block's fork.
    public static let unsupportedFork: Int64 = -38005
    /// Engine API `Unknown payload`.
    public static let unknownPayload: Int64 = -38001
    /// JSON-RPC `Method not found`.
    public static let methodNotFound: Int64 = -32601
}

/// What one JSON-RPC call to the EL gave: a result, or an error object. Transport failures and
/// answers that are not JSON-RPC are thrown as `ExecutionError`s naming the EL and the method.
public enum RPCOutcome: Sendable {
    case result(JSONValue)
    case error(RPCErrorObject)
}

/// JSON-RPC 2.0 over HTTP to the two endpoints of an execution client: the Engine API (every
/// request carries a freshly minted JWT) and the eth API (no auth). libcurl keep-alive
/// connections on threads of their own (the shared `HTTPClient`).
public final class EngineRPCClient: Sendable {
    public let engineURL: String
    public let ethURL: String
    private let engine: CurlConnectionPool
    private let eth: CurlConnectionPool
    private let jwt: EngineJWT
    private let nextID = Atomic<Int64>(1)

    public init(engineURL: String, ethURL: String, jwt: EngineJWT,
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

    public func shutdown() async {
        await engine.shutdown()
        await eth.shutdown()
    }

    /// An `engine_*` call (JWT-authenticated).
    public func engineCall(_ method: String, _ params: [JSONValue], height: UInt64?) async throws(ExecutionError) -> RPCOutcome {
        try await call(engine, url: engineURL, method: method, params: params, height: height, authenticated: true)
    }

    /// An eth-namespace call (`eth_*`, `txpoolExt_*`).
    public func ethCall(_ method: String, _ params: [JSONValue], height: UInt64?) async throws(ExecutionError) -> RPCOutcome {
        try await call(eth, url: ethURL, method: method, params: params, height: height, authenticated: false)
    }

    private func call(_ pool: CurlConnectionPool, url: String, method: String, params: [JSONValue], height: UInt64?,
                      authenticated: Bool) async throws(ExecutionError) -> RPCOutcome {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let body = JSONValue.object([("jsonrpc", .string("2.0")), ("id", .int(id)), ("method", .string(method)),
                                     ("params", .array(params))]).encoded()
        let shape = RequestShape(headers: authenticated ? ["Authorization: " + jwt.bearer()] : [])
        let engineName = "EL \(url)"
        let reply: HTTPReply
        do throws(HTTPError) {
            reply = try await pool.post(Array(body.utf8), shape: shape)
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
        return try Self.decode(reply, engine: engineName, method: method, id: id, height: height)
    }

    static func decode(_ reply: HTTPReply, engine: String, method: String, id: Int64,
                       height: UInt64?) throws(ExecutionError) -> RPCOutcome {
        func fail(_ kind: ExecutionError.Kind, _ reason: String) -> ExecutionError {
            ExecutionError(kind: kind, engine: engine, method: method, height: height, reason: reason)
        }
        if reply.status == 401 || reply.status == 403 {
            throw fail(.rejected, "the EL refused the JWT (HTTP \(reply.status)): --evm.jwt-secret-file must hold the secret the EL was started with, and both clocks must agree within 60 s")
        }
        let parsed = JSONValue.parse(reply.body)
        guard let parsed, case .object = parsed else {
            let snippet = String(decoding: reply.body.prefix(200), as: UTF8.self)
            if reply.status >= 500 || reply.status == 0 {
                throw fail(.unavailable, "HTTP \(reply.status): \(snippet)")
            }
            throw fail(.rejected, "answer is not a JSON-RPC object (HTTP \(reply.status)): \(snippet.isEmpty ? "<empty body>" : snippet)")
        }
        if let error = parsed["error"], !error.isNull {
            guard case .int(let code)? = error["code"] else {
                throw fail(.rejected, "JSON-RPC error without a numeric code: \(error.encoded().prefix(200))")
            }
            return .error(RPCErrorObject(code: code, message: error["message"]?.stringValue ?? ""))
        }
        guard let result = parsed["result"] else {
            throw fail(.rejected, "JSON-RPC answer has neither result nor error (HTTP \(reply.status))")
        }
        if let answered = parsed["id"], answered != .int(id) {
            throw fail(.rejected, "JSON-RPC answer carries id \(answered.encoded()), the request had \(id)")
        }
        return .result(result)
    }
}
