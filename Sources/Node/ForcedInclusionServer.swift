import Primitives
import Chain
import Config
import EVM
import Foundation
import Hummingbird
import HTTPClient
import Logging
import NIOCore
import ServiceLifecycle

/// apps/evm's forced-inclusion server (`--force-inclusion-server HOST:PORT`, README "Forced
/// inclusion and based sequencing"): an Ethereum JSON-RPC endpoint where
/// `eth_sendRawTransaction` posts the raw transaction as one blob to the forced-inclusion
/// namespace, so that it reaches the chain through DA alone, and every other method goes to the
/// EL's eth RPC. It answers the DA height that holds the blob as `"0x"` + 64 hex digits (there
/// is no transaction hash before the sequencer includes it), as ev-node does.
///
/// It faces anyone who can reach its port: the body is bounded before it is read
/// (`maxBodyBytes`), as are batches (`maxBatchRequests`) and the EL's answers.
package struct ForcedInclusionRPC: Sendable {
    /// A hex-encoded transaction of the largest size a forced transaction may have, and room
    /// for the request around it.
    package static let maxBodyBytes = 2 * ForcedInclusionRules.maxTxBytes + (64 << 10)
    /// go-ethereum allows 1,000 per batch; each `eth_sendRawTransaction` here is a DA
    /// submission, so far fewer.
    package static let maxBatchRequests = 100
    /// The most of an EL answer passed back.
    package static let maxProxiedAnswerBytes = 64 << 20

    package enum Code {
        package static let parseError: Int64 = -32700
        package static let invalidRequest: Int64 = -32600
        package static let methodNotFound: Int64 = -32601
        package static let invalidParams: Int64 = -32602
        package static let internalError: Int64 = -32603
    }

    /// Where other methods go (nil: nowhere, they are answered "method not found").
    package protocol Upstream: Sendable {
        var url: String { get }
        func post(_ body: [UInt8]) async throws(HTTPClient.HTTPError) -> HTTPReply
        /// Closes its connections (the server stopped).
        func shutdown() async
    }

    package let poster: ForcedInclusionPoster
    package let epochs: ForcedInclusionEpochs
    package let upstream: (any Upstream)?
    let logger: Logger

    package init(poster: ForcedInclusionPoster, epochs: ForcedInclusionEpochs, upstream: (any Upstream)?, logger: Logger) {
        self.poster = poster
        self.epochs = epochs
        self.upstream = upstream
        self.logger = logger
    }

    /// One HTTP request body → the HTTP status and body to answer.
    package func handle(_ body: [UInt8]) async -> (status: Int, body: String) {
        guard let request = JSONValue.parse(body) else {
            return (200, Self.error(nil, Code.parseError, "invalid JSON"))
        }
        guard case .array(let batch) = request else {
            if case .object = request, request["method"]?.stringValue != "eth_sendRawTransaction",
               request["method"]?.stringValue != nil, let upstream {
                // A single proxied call goes through as it came, answered as the EL answers (ev-node).
                return await proxyWhole(body, to: upstream, id: request["id"])
            }
            return (200, await answer(request))
        }
        guard !batch.isEmpty else { return (200, Self.error(nil, Code.invalidRequest, "empty batch")) }
        guard batch.count <= Self.maxBatchRequests else {
            return (200, Self.error(nil, Code.invalidRequest,
                                    "a batch of \(batch.count) requests; at most \(Self.maxBatchRequests) are served"))
        }
        var answers: [String] = []
        answers.reserveCapacity(batch.count)
        for item in batch { answers.append(await answer(item)) }
        return (200, "[" + answers.joined(separator: ",") + "]")
    }

    /// One request object → its JSON-RPC answer.
    func answer(_ request: JSONValue) async -> String {
        guard case .object = request, let method = request["method"]?.stringValue else {
            return Self.error(request["id"], Code.invalidRequest, "a JSON-RPC request object with a method was expected")
        }
        let id = request["id"]
        guard method == "eth_sendRawTransaction" else {
            guard let upstream else { return Self.error(id, Code.methodNotFound, "method \(method) not found") }
            return await proxyOne(request, to: upstream)
        }
        guard case .array(let params) = request["params"] ?? .null, params.count == 1,
              let text = params[0].stringValue else {
            return Self.error(id, Code.invalidParams, "invalid params: expected [\"0x...\"]")
        }
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard trimmed.hasPrefix("0x") || trimmed.hasPrefix("0X") else {
            return Self.error(id, Code.invalidParams, "invalid transaction hex: hex string must start with 0x")
        }
        guard let tx = Hex.decode(String(trimmed.dropFirst(2))) else {
            return Self.error(id, Code.invalidParams, "invalid transaction hex: not an even number of hex digits")
        }
        guard !tx.isEmpty else { return Self.error(id, Code.invalidParams, "transaction data cannot be empty") }
        let height: UInt64
        do throws(ForcedInclusionPoster.Failure) {
            height = try await poster.post(tx)
        } catch {
            if case .tooLarge = error { return Self.error(id, Code.invalidParams, error.description) }
            logger.warning("a forced transaction could not be posted to DA", metadata: [
                "bytes": "\(tx.count)", "error": "\(error)"])
            return Self.error(id, Code.internalError, "failed to submit to DA: \(error)")
        }
        let epoch = epochs.epoch(of: height)
        let epochEnd = epoch == 0 ? epochs.startHeight + epochs.size - 1 : epochs.startHeight + epoch * epochs.size - 1
        logger.info("forced transaction posted to DA", metadata: [
            "bytes": "\(tx.count)", "da_height": "\(height)", "epoch_end": "\(epochEnd)",
            "included_from_da_height": "\(epochEnd + 1)"])
        return Self.result(id, .string("0x" + Self.hex64(height)))
    }

    private func proxyWhole(_ body: [UInt8], to upstream: any Upstream, id: JSONValue?) async -> (status: Int, body: String) {
        do throws(HTTPClient.HTTPError) {
            let reply = try await upstream.post(body)
            return (reply.status, String(decoding: reply.body, as: UTF8.self))
        } catch {
            return (200, Self.error(id, Code.internalError, "failed to proxy request to \(upstream.url): \(error)"))
        }
    }

    /// A batch member: the EL's answer must be one JSON value to be placed in the batch answer.
    private func proxyOne(_ request: JSONValue, to upstream: any Upstream) async -> String {
        let id = request["id"]
        do throws(HTTPClient.HTTPError) {
            let reply = try await upstream.post(Array(request.encoded().utf8))
            guard let answer = JSONValue.parse(reply.body) else {
                return Self.error(id, Code.internalError, "the EL at \(upstream.url) answered HTTP \(reply.status) without JSON")
            }
            return answer.encoded()
        } catch {
            return Self.error(id, Code.internalError, "failed to proxy request to \(upstream.url): \(error)")
        }
    }

    static func hex64(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 64 - digits.count) + digits
    }

    static func result(_ id: JSONValue?, _ value: JSONValue) -> String {
        JSONValue.object([("jsonrpc", .string("2.0")), ("id", id ?? .null), ("result", value)]).encoded()
    }

    static func error(_ id: JSONValue?, _ code: Int64, _ message: String) -> String {
        JSONValue.object([("jsonrpc", .string("2.0")), ("id", id ?? .null),
                          ("error", .object([("code", .int(code)), ("message", .string(message))]))]).encoded()
    }
}

/// The EL's eth RPC over the node's keep-alive HTTP connections.
package struct ELUpstream: ForcedInclusionRPC.Upstream {
    package let url: String
    let pool: CurlConnectionPool

    package init(url: String) throws(HTTPClient.HTTPError) {
        self.url = url
        pool = try CurlConnectionPool(size: 2, url: url, authToken: "", connectTimeout: .seconds(2),
                                      requestTimeout: .seconds(30), maxResponseBytes: ForcedInclusionRPC.maxProxiedAnswerBytes)
    }

    package func post(_ body: [UInt8]) async throws(HTTPClient.HTTPError) -> HTTPReply {
        try await pool.post(body, shape: RequestShape(headers: ["Content-Type: application/json"]))
    }

    package func shutdown() async { await pool.shutdown() }
}

/// The HTTP side of `ForcedInclusionRPC`.
package struct ForcedInclusionServer: Service {
    let address: HostPort
    let rpc: ForcedInclusionRPC
    let logger: Logger
    let onListening: @Sendable (HostPort) async -> Void

    package init(address: HostPort, rpc: ForcedInclusionRPC, logger: Logger,
                onListening: @escaping @Sendable (HostPort) async -> Void = { _ in }) {
        self.address = address
        self.rpc = rpc
        self.logger = logger
        self.onListening = onListening
    }

    package func run() async throws {
        let router = Router()
        let rpc = self.rpc
        router.post("/") { request, _ -> Response in
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: ForcedInclusionRPC.maxBodyBytes)
            } catch {
                return Self.json(ForcedInclusionRPC.error(nil, ForcedInclusionRPC.Code.invalidRequest,
                                                          "request body over \(ForcedInclusionRPC.maxBodyBytes) bytes"),
                                 status: .contentTooLarge)
            }
            let (status, answer) = await rpc.handle(Array(buffer: body))
            return Self.json(answer, status: .init(code: status))
        }
        router.get("/") { _, _ -> Response in
            // ev-node answers anything but POST so.
            Self.json(ForcedInclusionRPC.error(nil, ForcedInclusionRPC.Code.methodNotFound, "method not allowed"))
        }
        let logger = self.logger
        let address = self.address
        let onListening = self.onListening
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(address.host, port: address.port), serverName: "evnode"),
            onServerRunning: { channel in
                let bound = HostPort(host: address.host, port: channel.localAddress?.port ?? 0)
                logger.notice("forced-inclusion server listening", metadata: [
                    "address": "http://\(bound)", "proxy": "\(rpc.upstream?.url ?? "none")",
                    "namespace": "\(Hex.encode(rpc.poster.namespace.bytes))"])
                await onListening(bound)
            },
            logger: logger)
        do {
            try await app.run()
        } catch {
            await rpc.upstream?.shutdown()
            throw error
        }
        await rpc.upstream?.shutdown()
    }

    static func json(_ text: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(string: text + "\n")))
    }
}
