import DAClient
import Submission
import Foundation
import Hummingbird
import NIOCore

/// What the dashboard and the DA visualizer read; the node implements it (`NodeDashboardBackend`).
package protocol DashboardBackend: Sendable {
    var feed: DashboardFeed { get }
    /// `rpc.enable_da_visualization`: `/da*` answer only when set (503 otherwise, as ev-node).
    var daVisualizationEnabled: Bool { get }
    /// Whether this node posts to DA (an aggregator); the visualizer says so when it does not.
    var submitsToDA: Bool { get }
    /// The last submission attempts, oldest first.
    var submissions: [DASubmissionRecord] { get }
    var daConnected: Bool { get }
    func blob(daHeight: UInt64, namespace: DANamespace, commitment: [UInt8]) async throws(DAError) -> DABlob
}

/// `GET /` (the dashboard), `GET /events` (its live stream) and ev-node's DA visualizer routes.
enum DashboardRoutes {
    /// How often an open stream looks for a newer snapshot (the node samples once a second).
    static let streamPoll: Duration = .milliseconds(250)

    static func register(on router: Router<BasicRequestContext>, backend: any DashboardBackend) {
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                     body: .init(byteBuffer: ByteBuffer(string: DashboardPage.html)))
        }
        router.get("/events") { _, _ in
            events(backend.feed)
        }
        router.get("/da") { _, _ in
            guard backend.daVisualizationEnabled else { return unavailable() }
            return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: DAVisualizer.page(backend))))
        }
        router.get("/da/submissions") { _, _ in
            guard backend.daVisualizationEnabled else { return unavailable() }
            return try jsonObject(DAVisualizer.submissions(backend))
        }
        router.get("/da/stats") { _, _ in
            guard backend.daVisualizationEnabled else { return unavailable() }
            return try jsonObject(DAVisualizer.stats(backend))
        }
        router.get("/da/health") { _, _ in
            guard backend.daVisualizationEnabled else { return unavailable() }
            return try jsonObject(DAVisualizer.health(backend, now: Date()))
        }
        router.get("/da/blob") { request, _ in
            guard backend.daVisualizationEnabled else { return unavailable() }
            switch await DAVisualizer.blob(backend, id: request.uri.queryParameters.get("id"),
                                          namespace: request.uri.queryParameters.get("namespace")) {
            case .success(let object): return try jsonObject(object)
            case .failure(let failure): return Response.text(failure.message + "\n", status: .init(code: failure.status))
            }
        }
    }

    /// Server-sent events: `history` (the chart's samples) once, then `snapshot` whenever the
    /// node samples itself, until the client goes, the node stops, or the feed closes.
    static func events(_ feed: DashboardFeed) -> Response {
        guard let subscription = feed.subscribe() else {
            return Response.text("too many dashboard streams open (at most \(feed.maxSubscribers))\n",
                                 status: .serviceUnavailable)
        }
        let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-store"]
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            defer { subscription.close() }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let history = try encoder.encode(feed.history)
            try await writer.write(ByteBuffer(string: "retry: 2000\nevent: history\ndata: "
                                              + String(decoding: history, as: UTF8.self) + "\n\n"))
            var seen: UInt64 = 0
            while !Task.isCancelled, !feed.isFinished {
                if let next = feed.latest(after: seen) {
                    seen = next.sequence
                    var buffer = ByteBuffer(string: "event: snapshot\ndata: ")
                    buffer.writeBytes(next.json)
                    buffer.writeString("\n\n")
                    try await writer.write(buffer)
                }
                try await Task.sleep(for: streamPoll)
            }
            try await writer.finish(nil)
        })
    }

    /// ev-node's answer while the visualizer is off (it registers the routes always).
    static func unavailable() -> Response {
        Response.text("DA visualization not available\n", status: .serviceUnavailable)
    }

    static func jsonObject(_ object: [String: Any]) throws -> Response {
        let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        return Response(status: .ok, headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: Array(data) + [0x0A])))
    }
}
