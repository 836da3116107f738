import Primitives
import DAClient
import Config
import Foundation
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixSignals

/// Settings of `evnode local-da`.
package struct LocalDAOptions: Sendable, Equatable {
    /// Directory of the local DA's RocksDB (created if missing).
    package var home: String
    /// Port 0 picks a free port; the bound address is reported to `onListening`.
    package var listen: HostPort
    /// An empty DA block is added every `blockTime`.
    package var blockTime: Duration
    /// Most bytes of blob data one `blob.Submit` may carry.
    package var maxBlobSize: Int
    /// When not empty, requests need `Authorization: Bearer <token>`.
    package var authToken: String
    /// Added before every answer, to emulate a slow or distant DA node in tests and benchmarks.
    package var responseDelay: Duration
    /// Submissions offering a lower gas price are refused with celestia-node's text (0 = any).
    package var minGasPrice: Double = 0
    /// Serve `blob.Subscribe` on the WebSocket endpoint (off: the method is missing).
    package var subscribe = true

    package init(home: String, listen: HostPort = HostPort(host: "127.0.0.1", port: 7980),
                blockTime: Duration = .seconds(1), maxBlobSize: Int = 1_500_000, authToken: String = "",
                responseDelay: Duration = .zero) {
        self.home = home
        self.listen = listen
        self.blockTime = blockTime
        self.maxBlobSize = maxBlobSize
        self.authToken = authToken
        self.responseDelay = responseDelay
    }

    /// Largest accepted request body: base64 inflates blob data by 4/3, and every blob carries
    /// some JSON around it; beyond this a request is refused with HTTP 413 before it is parsed.
    package var maxRequestBytes: Int { maxBlobSize * 2 + (1 << 20) }

    /// Where the RocksDB lives under `home`.
    package var databasePath: String { HomeLayout(home: home).home + "/db" }
}

/// `evnode local-da`: a development DA node serving the Celestia blob API subset of SPEC §5 over
/// HTTP, persisted in RocksDB.
///
/// A `Service`: `run()` serves until graceful shutdown (or cancellation) of the service group it
/// runs in; `run(gracefulShutdownSignals:)` runs it on its own until one of the signals arrives.
package final class LocalDAServer: Service, Sendable {
    package struct Failure: Error, CustomStringConvertible {
        package let description: String
    }

    package let options: LocalDAOptions
    private let chain: LocalDAChain
    private let writer: NIOThreadPool
    private let logger: Logger
    private let onListening: @Sendable (HostPort) async -> Void

    /// `onListening` gets the bound address once requests can be made.
    package init(options: LocalDAOptions, logger: Logger = Logger(label: "evnode.local-da"),
                onListening: @escaping @Sendable (HostPort) async -> Void = { _ in }) throws(Failure) {
        self.options = options
        self.logger = logger
        self.onListening = onListening
        do {
            try FileIO.makeDirectories(options.home, mode: 0o700)
        } catch {
            throw Failure(description: "\(error.path): \(error.reason)")
        }
        do {
            chain = try LocalDAChain(path: options.databasePath, now: Self.now)
        } catch {
            let hint = error.description.contains("LOCK") ? " (is another local DA using this home?)" : ""
            throw Failure(description: error.description + hint)
        }
        writer = NIOThreadPool(numberOfThreads: 1)
        writer.start()
    }

    deinit {
        writer.shutdownGracefully(queue: .global()) { _ in }
    }

    /// The newest DA height and its time.
    package var head: DAHeader { chain.head }

    static func now() -> UInt64 {
        UInt64(Date().timeIntervalSince1970 * 1_000_000_000)
    }

    /// Serves until the signals arrive (graceful shutdown) or the task is cancelled.
    package func run(gracefulShutdownSignals: [UnixSignal]) async throws {
        let group = ServiceGroup(configuration: .init(services: [self], gracefulShutdownSignals: gracefulShutdownSignals,
                                                      logger: logger))
        try await group.run()
    }

    /// Serves until graceful shutdown or cancellation. Throws when the port cannot be bound or
    /// the database fails.
    package func run() async throws {
        let rpc = LocalDARPC(chain: chain, writer: writer, maxBlobSize: options.maxBlobSize,
                             minGasPrice: options.minGasPrice, logger: logger, clock: Self.now)
        let webSocket = LocalDAWebSocket(rpc: rpc, chain: chain, subscribe: options.subscribe, logger: logger)
        let options = self.options
        let onListening = self.onListening
        let expectedAuthorization = options.authToken.isEmpty ? nil : "Bearer \(options.authToken)"

        let router = Router(context: BasicWebSocketRequestContext.self)
        // JSON-RPC over WebSocket on the same address, as celestia-node serves it.
        router.ws("/", shouldUpgrade: { request, _ in
            if let expectedAuthorization {
                guard constantTimeEqual(request.headers[.authorization] ?? "", expectedAuthorization) else {
                    return .dontUpgrade
                }
            }
            return .upgrade([:])
        }, onUpgrade: { inbound, outbound, _ in
            try await webSocket.serve(inbound: inbound, outbound: outbound)
        })
        router.post("/") { request, _ -> Response in
            if let expectedAuthorization {
                let given = request.headers[.authorization] ?? ""
                guard constantTimeEqual(given, expectedAuthorization) else {
                    return Self.plain(.unauthorized, "missing or wrong bearer token\n")
                }
            }
            if let declared = request.headers[.contentLength].flatMap(Int.init), declared > options.maxRequestBytes {
                return Self.tooLarge(options.maxRequestBytes)
            }
            let body: ByteBuffer
            do {
                body = try await request.body.collect(upTo: options.maxRequestBytes)
            } catch is NIOTooManyBytesError {
                return Self.tooLarge(options.maxRequestBytes)
            }
            if options.responseDelay > .zero {
                do {
                    // A stop must not wait for artificial delays.
                    try await cancelWhenGracefulShutdown { try await Task.sleep(for: options.responseDelay) }
                } catch {
                    return Self.plain(.serviceUnavailable, "shutting down\n")
                }
            }
            let answer = await rpc.respond(to: Data(buffer: body))
            return Response(status: .ok, headers: [.contentType: "application/json"],
                            body: .init(byteBuffer: ByteBuffer(bytes: answer)))
        }

        let app = Application(
            router: router,
            server: .http1WebSocketUpgrade(webSocketRouter: router, configuration: .init(ws: .init(maxFrameSize: 1 << 24))),
            configuration: .init(address: .hostname(options.listen.host, port: options.listen.port),
                                 serverName: nil),
            services: [EmptyBlockProducer(chain: chain, writer: writer, blockTime: options.blockTime, logger: logger)],
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? options.listen.port
                await onListening(HostPort(host: options.listen.host, port: port))
            },
            logger: logger)

        logger.info("local DA starting", metadata: [
            "db": "\(options.databasePath)", "head": "\(chain.head.height)",
            "block_time": "\(DurationParser.format(options.blockTime))", "max_blob_size": "\(options.maxBlobSize)",
            "auth": "\(options.authToken.isEmpty ? "off" : "bearer token")",
            "min_gas_price": "\(DATxConfig.decimal(options.minGasPrice))", "subscribe": "\(options.subscribe)",
        ])
        defer {
            logger.info("local DA stopped", metadata: ["head": "\(chain.head.height)"])
        }
        var failure: (any Error)?
        do {
            try await app.run()
        } catch {
            failure = error
        }
        // Nothing serves any more: let the writer finish, then close the database here rather
        // than in a deinit racing the process exit.
        try? await writer.shutdownGracefully()
        chain.close()
        if let error = failure as? IOError {
            throw Failure(description: "cannot serve on \(options.listen): \(error)")
        }
        if let failure { throw failure }
    }

    private static func plain(_ status: HTTPResponse.Status, _ text: String) -> Response {
        Response(status: status, headers: [.contentType: "text/plain; charset=utf-8"],
                 body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    private static func tooLarge(_ limit: Int) -> Response {
        var response = plain(.contentTooLarge, "request body larger than \(limit) bytes\n")
        // The rest of the body is not read; the connection cannot be reused.
        response.headers[.connection] = "close"
        return response
    }
}

/// Compares secrets in time independent of where they differ.
func constantTimeEqual(_ a: String, _ b: String) -> Bool {
    let x = Array(a.utf8), y = Array(b.utf8)
    var diff = UInt8(x.count == y.count ? 0 : 1)
    for i in 0..<min(x.count, y.count) { diff |= x[i] ^ y[i] }
    return diff == 0
}

/// Adds an empty DA block every block time, like a chain that keeps producing blocks.
struct EmptyBlockProducer: Service {
    package let chain: LocalDAChain
    package let writer: NIOThreadPool
    package let blockTime: Duration
    package let logger: Logger

    package func run() async throws {
        while true {
            do {
                try await cancelWhenGracefulShutdown { try await Task.sleep(for: blockTime) }
            } catch {
                return
            }
            let now = LocalDAServer.now()
            let header = try await writer.runIfActive { [chain] in try chain.append(blobs: [], now: now) }
            logger.trace("empty DA block", metadata: ["height": "\(header.height)"])
        }
    }
}
