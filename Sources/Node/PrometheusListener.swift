import Config
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// ev-node's Prometheus endpoint (`instrumentation.prometheus`): `GET /metrics` on
/// `instrumentation.prometheus_listen_addr` (default `:26660`), the same text as the RPC port's
/// `/metrics` — ev-node's series and evnode's own.
package struct PrometheusListener: Service {
    let address: HostPort
    let metrics: NodeMetrics
    let logger: Logger
    let onListening: @Sendable (HostPort) async -> Void

    package init(address: HostPort, metrics: NodeMetrics, logger: Logger,
                onListening: @escaping @Sendable (HostPort) async -> Void = { _ in }) {
        self.address = address
        self.metrics = metrics
        self.logger = logger
        self.onListening = onListening
    }

    package func run() async throws {
        let router = Router()
        let metrics = self.metrics
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: metrics.text())))
        }
        let logger = self.logger
        let address = self.address
        let onListening = self.onListening
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(address.host, port: address.port), serverName: "evnode"),
            onServerRunning: { channel in
                let bound = HostPort(host: address.host, port: channel.localAddress?.port ?? 0)
                logger.info("Prometheus metrics listening", metadata: ["address": "http://\(bound)/metrics"])
                await onListening(bound)
            },
            logger: logger)
        try await app.run()
    }
}
