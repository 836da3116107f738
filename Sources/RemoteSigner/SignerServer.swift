import Primitives
import Chain
import GRPCCore

import GRPCNIOTransportHTTP2
import Logging
import NIOPosix
import SignerAPI
import Synchronization
import Telemetry

/// What `evnode signer serve` counts, for its `/metrics`.
package final class SignerMetrics: Sendable {
    package let headers = CounterCell()
    package let repeatedHeaders = CounterCell()
    package let envelopes = CounterCell()
    package let data = CounterCell()
    package let refusals = CounterCell()
    package let unauthenticated = CounterCell()
    package let mark = GaugeCell()

    package init() {}

    func count(_ outcome: SignOutcome) {
        switch outcome {
        case .header(let h, _): headers.add(); mark.set(h)
        case .repeatedHeader: repeatedHeaders.add()
        case .envelope: envelopes.add()
        case .data: data.add()
        }
    }

    package func prometheus() -> String {
        var text = PrometheusText()
        text.family("evnode_signer_high_water_mark", .gauge, help: "The last height this signer signed a header for")
        text.sample("evnode_signer_high_water_mark", [], mark.value)
        text.family("evnode_signer_signatures_total", .counter, help: "Signatures answered, by what was signed")
        text.sample("evnode_signer_signatures_total", [("kind", "header")], headers.value)
        text.sample("evnode_signer_signatures_total", [("kind", "header_repeated")], repeatedHeaders.value)
        text.sample("evnode_signer_signatures_total", [("kind", "da_envelope")], envelopes.value)
        text.sample("evnode_signer_signatures_total", [("kind", "data")], data.value)
        text.family("evnode_signer_refusals_total", .counter, help: "Requests refused by the fence or as undecodable")
        text.sample("evnode_signer_refusals_total", [], refusals.value)
        text.family("evnode_signer_unauthenticated_total", .counter, help: "Requests refused for a missing or wrong token")
        text.sample("evnode_signer_unauthenticated_total", [], unauthenticated.value)
        return text.output
    }
}

/// Runs the fence's blocking work (a file sync per header) off the cooperative pool, on one
/// thread of its own: requests are also serialised by it, in arrival order.
final class FenceWorker: Sendable {
    let fence: SignerFence
    let metrics: SignerMetrics
    let logger: Logger
    private let lane = BlockingLane(name: "signer-fence", threads: 1)

    init(fence: SignerFence, metrics: SignerMetrics, logger: Logger) {
        self.fence = fence
        self.metrics = metrics
        self.logger = logger
    }

    func shutdown() async {
        await lane.shutdown()
    }

    /// Runs `body` on the fence's thread; a refusal is logged, counted and answered as
    /// FAILED_PRECONDITION with the fence's words.
    func run(peer: String, _ body: @escaping @Sendable () throws(SignRefusal) -> (signature: [UInt8], outcome: SignOutcome)) async throws -> [UInt8] {
        let result: Result<(signature: [UInt8], outcome: SignOutcome), SignRefusal>
        do throws(BlockingLaneError<SignRefusal>) {
            result = .success(try await lane.run(body))
        } catch {
            switch error {
            case .shutDown: throw RPCError(code: .unavailable, message: "the signer is stopping")
            case .failed(let refusal): result = .failure(refusal)
            }
        }
        switch result {
        case .success(let answer):
            metrics.count(answer.outcome)
            logger.info("signed", metadata: Self.metadata(answer.outcome).merging(["peer": "\(peer)"]) { a, _ in a })
            return answer.signature
        case .failure(let refusal):
            metrics.refusals.add()
            logger.warning("refused", metadata: ["peer": "\(peer)", "reason": "\(refusal)"])
            throw RPCError(code: .failedPrecondition, message: refusal.description)
        }
    }

    func mark() async throws -> SignerFence.Mark? {
        let fence = self.fence
        do throws(BlockingLaneError<SignRefusal>) {
            return try await lane.run { () throws(SignRefusal) in try fence.mark() }
        } catch {
            switch error {
            case .shutDown: throw RPCError(code: .unavailable, message: "the signer is stopping")
            case .failed(let e): throw RPCError(code: .internalError, message: e.description)
            }
        }
    }

    private static func metadata(_ outcome: SignOutcome) -> Logger.Metadata {
        switch outcome {
        case let .header(h, hash): return ["what": "header", "height": "\(h)", "hash": "\(Hex.encode(hash))"]
        case let .repeatedHeader(h, hash): return ["what": "header (repeated: the signature kept with the mark)", "height": "\(h)", "hash": "\(Hex.encode(hash))"]
        case let .envelope(h): return ["what": "DA header envelope", "height": "\(h)"]
        case let .data(h): return ["what": "data", "height": "\(h)"]
        }
    }
}

/// ev-node's `evnode.v1.SignerService`.
struct SignerService: Evnode_V1_SignerService.SimpleServiceProtocol {
    let worker: FenceWorker

    func sign(request: Evnode_V1_SignRequest, context: ServerContext) async throws -> Evnode_V1_SignResponse {
        let message = [UInt8](request.message)
        let fence = worker.fence
        let signature = try await worker.run(peer: context.remotePeer) { () throws(SignRefusal) in try fence.sign(message) }
        return .with { $0.signature = .init(signature) }
    }

    func getPublic(request: Evnode_V1_GetPublicRequest, context: ServerContext) async throws -> Evnode_V1_GetPublicResponse {
        .with { $0.publicKey = .init(worker.fence.signer.rawPublicKey ?? []) }
    }
}

/// evnode's `SignerMarkService`: the mark for a restored node, and Sign with the block's data kept.
struct MarkService: Evnodeswift_Signer_V1_SignerMarkService.SimpleServiceProtocol {
    let worker: FenceWorker

    func getMark(request: Evnodeswift_Signer_V1_GetMarkRequest, context: ServerContext) async throws -> Evnodeswift_Signer_V1_GetMarkResponse {
        let mark = try await worker.mark()
        let chainID = worker.fence.chainID
        let withBlock = request.withBlock
        return .with {
            $0.chainID = chainID
            guard let mark else { return }
            $0.signedBefore = true
            $0.lastSignedHeight = mark.height
            guard withBlock else { return }
            if let signed = mark.signedHeader {
                $0.header = .init(signed.header.encoded())
                $0.signature = .init(signed.signature)
            }
            if let data = mark.data { $0.data = .init(data.encoded()) }
        }
    }

    func signBlock(request: Evnodeswift_Signer_V1_SignBlockRequest, context: ServerContext) async throws -> Evnodeswift_Signer_V1_SignBlockResponse {
        let header = [UInt8](request.header), data = [UInt8](request.data)
        let fence = worker.fence
        let signature = try await worker.run(peer: context.remotePeer) { () throws(SignRefusal) in
            try fence.signBlock(header: header, data: data)
        }
        return .with { $0.signature = .init(signature) }
    }
}

/// Bearer-token authentication: every call carries `authorization: Bearer <token>`, compared in
/// constant time. Checked before the request is decoded by a service.
struct BearerTokenInterceptor: ServerInterceptor {
    let token: [UInt8]
    let metrics: SignerMetrics
    let logger: Logger

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingServerRequest<Input>, context: ServerContext,
        next: @Sendable (StreamingServerRequest<Input>, ServerContext) async throws -> StreamingServerResponse<Output>
    ) async throws -> StreamingServerResponse<Output> {
        let given = request.metadata[stringValues: "authorization"].first(where: { _ in true })
        guard let given, Self.matches(given, token) else {
            metrics.unauthenticated.add()
            logger.warning("refused: no valid bearer token", metadata: [
                "peer": "\(context.remotePeer)", "method": "\(context.descriptor.fullyQualifiedMethod)",
                "token_given": "\(given != nil)"])
            throw RPCError(code: .unauthenticated, message: "the signer needs `authorization: Bearer <token>` with its token")
        }
        return try await next(request, context)
    }

    static func matches(_ header: String, _ token: [UInt8]) -> Bool {
        let prefix = "Bearer "
        guard header.hasPrefix(prefix) else { return false }
        let given = Array(header.utf8.dropFirst(prefix.utf8.count))
        guard given.count == token.count else { return false }
        var diff: UInt8 = 0
        for (a, b) in zip(given, token) { diff |= a ^ b }
        return diff == 0
    }
}

/// The TLS files of `signer serve`: its certificate and key, and the CA that client
/// certificates must chain to (mutual TLS).
package struct SignerTLSFiles: Sendable, Equatable {
    package var certificate: String
    package var key: String
    package var clientCA: String

    package init(certificate: String, key: String, clientCA: String) {
        self.certificate = certificate
        self.key = key
        self.clientCA = clientCA
    }
}

/// The host a signer listens on: loopback (127.0.0.0/8, ::1, localhost), another IP literal, or a
/// name (refused: the listener binds an address, and "loopback" must be decidable).
enum ListenHost {
    case loopback(String), other(String), name

    init(_ host: String) {
        let h = host.lowercased()
        if h == "localhost" { self = .loopback("127.0.0.1"); return }
        if h == "::1" { self = .loopback(h); return }
        let octets = h.split(separator: ".", omittingEmptySubsequences: false)
        if octets.count == 4, octets.allSatisfy({ UInt8($0) != nil }) {
            self = octets[0] == "127" ? .loopback(h) : .other(h)
            return
        }
        if h.contains(":"), h.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) {
            self = .other(h)
            return
        }
        self = .name
    }

    var isLoopback: Bool { if case .loopback = self { true } else { false } }
}

/// `evnode signer serve`: the gRPC server in front of a `SignerFence`.
package final class SignerServer: Sendable {
    package enum StartError: Error, Sendable, CustomStringConvertible {
        case notLoopbackWithoutTLS(String)
        case listen(String, String)

        package var description: String {
            switch self {
            case .notLoopbackWithoutTLS(let a):
                return "refusing to listen on \(a) without TLS: a signer reachable from other machines needs --tls-cert, --tls-key and --tls-client-ca (mutual TLS); without them it listens on loopback only"
            case let .listen(a, why): return "cannot listen on \(a): \(why)"
            }
        }
    }

    private let server: GRPCServer<HTTP2ServerTransport.Posix>
    private let worker: FenceWorker
    package let metrics: SignerMetrics

    package init(fence: SignerFence, host: String, port: Int, token: [UInt8]?, tls: SignerTLSFiles?,
                metrics: SignerMetrics, logger: Logger) throws(StartError) {
        let address: GRPCNIOTransportCore.SocketAddress
        switch ListenHost(host) {
        case .loopback(let literal), .other(let literal):
            address = literal.contains(":") ? .ipv6(host: literal, port: port) : .ipv4(host: literal, port: port)
        case .name:
            throw .listen("\(host):\(port)", "give an IP address (or localhost), not a host name")
        }
        if tls == nil, !ListenHost(host).isLoopback {
            throw .notLoopbackWithoutTLS("\(host):\(port)")
        }
        self.metrics = metrics
        worker = FenceWorker(fence: fence, metrics: metrics, logger: logger)
        let security: HTTP2ServerTransport.Posix.TransportSecurity = if let tls {
            .mTLS(certificateChain: [.file(path: tls.certificate, format: .pem)],
                  privateKey: .file(path: tls.key, format: .pem)) { config in
                config.trustRoots = .certificates([.file(path: tls.clientCA, format: .pem)])
                config.clientCertificateVerification = .noHostnameVerification
            }
        } else {
            .plaintext
        }
        var config = HTTP2ServerTransport.Posix.Config.defaults
        // A SignBlock carries one block's data: the wire limit of a block and its header.
        config.rpc.maxRequestPayloadSize = RemoteSignerClient.maxMessageBytes
        let transport = HTTP2ServerTransport.Posix(address: address,
                                                   transportSecurity: security, config: config)
        var interceptors: [any ServerInterceptor] = []
        if let token { interceptors.append(BearerTokenInterceptor(token: token, metrics: metrics, logger: logger)) }
        server = GRPCServer(transport: transport, services: [SignerService(worker: worker), MarkService(worker: worker)],
                            interceptors: interceptors)
    }

    /// Serves until cancelled or the transport fails.
    package func serve() async throws {
        do {
            try await server.serve()
        } catch {
            await worker.shutdown()
            throw error
        }
        await worker.shutdown()
    }

    /// The bound address, once listening (port 0 resolves to the one the system chose).
    package func listeningPort() async throws -> Int {
        let address = try await server.listeningAddress
        return address?.ipv4?.port ?? address?.ipv6?.port ?? 0
    }

    package func stop() {
        server.beginGracefulShutdown()
    }
}
