import Config
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import ServiceLifecycle

/// What the RPC server asks of the node. The node implements it; the server knows nothing else.
package protocol RPCBackend: Sendable {
    func status() async -> NodeStatus
    func readiness() async -> Readiness
    /// `/health/live`: whether the store can be read.
    func isLive() async -> Bool
    /// `/raft/node`; nil unless the node runs in an HA group.
    func raftNode() async -> RaftNodeView?
    /// What ev-node's Connect/gRPC services read.
    var api: any EvnodeAPIBackend { get }
    func block(at height: UInt64) async -> BlockView?
    /// Queues a transaction; throws a message for the client when it is refused.
    func submitTransaction(_ tx: [UInt8]) async throws(TransactionRejected)
    func value(forKey key: [UInt8]) async -> [UInt8]?
    /// The double-sign evidence held (`GET /evidence`); throws a message when it cannot be read.
    func evidence() async throws(EvidenceUnavailable) -> EvidenceList
    /// Prometheus text exposition.
    func metricsText() async -> String
    /// The highest height whose block was pruned (`pruning.pruning_mode: all`); 0: none.
    func prunedBlockHeight() async -> UInt64
}

extension RPCBackend {
    package func prunedBlockHeight() async -> UInt64 { 0 }
}

package struct TransactionRejected: Error, Sendable, CustomStringConvertible {
    /// HTTP status to answer with (400 for a bad tx, 503 when the mempool is full or the node
    /// does not take transactions).
    package let status: Int
    package let message: String

    package init(status: Int, message: String) {
        self.status = status
        self.message = message
    }

    package var description: String { message }
}

package struct EvidenceUnavailable: Error, Sendable, CustomStringConvertible {
    package let description: String

    package init(_ description: String) {
        self.description = description
    }
}

/// `GET /raft/node`, as ev-node answers it in HA mode.
package struct RaftNodeView: Sendable, Codable, Equatable {
    package var is_leader: Bool
    package var node_id: String

    package init(is_leader: Bool, node_id: String) {
        self.is_leader = is_leader
        self.node_id = node_id
    }
}

/// The node's HTTP API (SPEC §10) and ev-node's Connect and gRPC services on one port: the JSON
/// routes and Connect by Hummingbird over HTTP/1.1, gRPC by grpc-swift over HTTP/2 (see
/// `SharedPortChannel`).
package struct RPCServer: Service {
    package static let maxTransactionBytes = 1 << 20
    /// The largest gRPC request message read; every request of these services is a few bytes.
    package static let maxGRPCRequestBytes = ConnectRoutes.maxRequestBytes

    let address: HostPort
    let backend: any RPCBackend
    /// The dashboard (`GET /`, `GET /events`) and the DA visualizer (`/da*`); nil: not served.
    let dashboard: (any DashboardBackend)?
    let logger: Logger
    let onListening: @Sendable (HostPort) async -> Void

    /// `onListening` receives the bound address (useful with port 0).
    package init(address: HostPort, backend: any RPCBackend, dashboard: (any DashboardBackend)? = nil, logger: Logger,
                onListening: @escaping @Sendable (HostPort) async -> Void = { _ in }) {
        self.dashboard = dashboard
        self.address = address
        self.backend = backend
        self.logger = logger
        self.onListening = onListening
    }

    package func run() async throws {
        let router = Router()
        let backend = self.backend
        // ev-node's probes, with its bodies: Kubernetes probes and scripts match on them.
        router.get("/health/live") { _, _ in
            await backend.isLive() ? Response.text("OK\n") : Response.text("FAIL\n", status: .serviceUnavailable)
        }
        router.get("/health/ready") { _, _ in
            switch await backend.readiness() {
            case .ready: return Response.text("READY\n")
            case .notReady(let reason): return Response.text("UNREADY: \(reason)\n", status: .serviceUnavailable)
            }
        }
        router.get("/raft/node") { _, _ in
            guard let view = await backend.raftNode() else {
                return Response.text("raft is not enabled on this node\n", status: .notFound)
            }
            return try Response.json(view)
        }
        let api = EvnodeAPI(backend: backend.api)
        ConnectRoutes.register(on: router, api: api)
        router.get("/status") { _, _ in
            try Response.json(await backend.status())
        }
        router.get("/blocks/:height") { _, context in
            guard let text = context.parameters.get("height"), let height = UInt64(text) else {
                return Response.text("height must be a whole number\n", status: .badRequest)
            }
            guard let view = await backend.block(at: height) else {
                let pruned = await backend.prunedBlockHeight()
                if height <= pruned {
                    return Response.text("block \(height) was pruned: this node keeps the blocks above \(pruned) (pruning.pruning_mode all)\n",
                                         status: .notFound)
                }
                return Response.text("no block at height \(height)\n", status: .notFound)
            }
            return try Response.json(view)
        }
        router.post("/tx") { request, _ in
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: RPCServer.maxTransactionBytes)
            } catch {
                return Response.text("transaction larger than \(RPCServer.maxTransactionBytes) bytes\n",
                                     status: .contentTooLarge)
            }
            let tx = Array(body.readableBytesView)
            guard !tx.isEmpty else { return Response.text("empty transaction\n", status: .badRequest) }
            do {
                try await backend.submitTransaction(tx)
            } catch let rejection as TransactionRejected {
                return Response.text(rejection.message + "\n", status: .init(code: rejection.status))
            }
            return Response.text("accepted\n", status: .accepted)
        }
        router.get("/kv") { request, _ in
            guard let key = request.uri.queryParameters.get("key"), !key.isEmpty else {
                return Response.text("missing ?key=\n", status: .badRequest)
            }
            guard let value = await backend.value(forKey: Array(key.utf8)) else {
                return Response.text("no value for key\n", status: .notFound)
            }
            return Response(status: .ok, headers: [.contentType: "application/octet-stream"],
                            body: .init(byteBuffer: ByteBuffer(bytes: value)))
        }
        router.get("/evidence") { _, _ in
            do {
                return try Response.json(try await backend.evidence())
            } catch let failure as EvidenceUnavailable {
                return Response.text("evidence unavailable: \(failure)\n", status: .internalServerError)
            }
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                     body: .init(byteBuffer: ByteBuffer(string: await backend.metricsText())))
        }
        if let dashboard {
            DashboardRoutes.register(on: router, backend: dashboard)
        }
        let onListening = self.onListening
        let logger = self.logger
        let inbox = GRPCConnectionInbox()
        let index = try ReflectionIndex.evnode()
        var grpcConfig = HTTP2ServerTransport.Custom<GRPCConnectionInbox>.Config.defaults
        grpcConfig.rpc.maxRequestPayloadSize = Self.maxGRPCRequestBytes
        let transport = HTTP2ServerTransport.Custom(listenerFactory: inbox, config: grpcConfig)
        let grpc = GRPCServer(transport: transport, services: [
            StoreServiceGRPC(api: api), P2PServiceGRPC(api: api), ConfigServiceGRPC(api: api),
            ReflectionV1(index: index), ReflectionV1Alpha(index: index),
        ])
        let app = Application(
            router: router,
            server: HTTPServerBuilder { responder in
                SharedPortChannel(http1: HTTP1Channel(responder: responder), inbox: inbox)
            },
            configuration: .init(address: .hostname(address.host, port: address.port), serverName: "evnode"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                let bound = HostPort(host: self.address.host, port: port)
                logger.info("RPC listening", metadata: ["address": "http://\(bound)", "protocols": "HTTP/1.1, Connect, gRPC (h2c)"])
                await onListening(bound)
            },
            logger: logger)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                do {
                    try await withGracefulShutdownHandler {
                        try await grpc.serve()
                    } onGracefulShutdown: {
                        grpc.beginGracefulShutdown()
                    }
                } catch {
                    inbox.giveUp()
                    throw RPCServerFailure.grpc("\(error)")
                }
            }
            // HTTP/2 connections go to the gRPC transport: accept none before it listens.
            guard await inbox.waitUntilListening() else { return }
            group.addTask { try await app.run() }
        }
    }
}

package enum RPCServerFailure: Error, Sendable, CustomStringConvertible {
    case grpc(String)

    package var description: String {
        switch self {
        case .grpc(let why): "the gRPC server stopped: \(why)"
        }
    }
}

extension Response {
    static func text(_ s: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "text/plain; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(string: s)))
    }

    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(value)
        return Response(status: status, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}
