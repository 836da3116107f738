import Primitives
import Foundation
import Hummingbird
import HummingbirdWSClient
import Logging
import NIOSSL
import Synchronization

/// A head source for the DA follower: celestia-node's `blob.Subscribe` over WebSocket, one
/// notification per new DA height in a namespace. Each notification only wakes the follower,
/// which reads the height with `blob.GetAll` as it would after a poll — so everything the
/// follower checks still holds, and a missed notification costs one poll interval, not a block.
///
/// The subscription is an accelerator, never a dependency: while the socket is down, or when
/// the DA node has no `blob.Subscribe` (older nodes, HTTP-only gateways), the follower keeps
/// polling at its own interval; the socket is re-dialled with backoff and the switch is logged
/// both ways.
package final class DAHeadSubscription: Sendable {
    package struct Options: Sendable {
        /// The DA node's JSON-RPC URL (`http(s)://`); the WebSocket is dialled at the same place.
        package var url: String
        package var authToken: String
        package var caFile: String
        package var namespace: DANamespace
        /// Wait before dialling again after the socket dropped (doubles up to `maxRetryDelay`).
        package var retryDelay: Duration
        package var maxRetryDelay: Duration
        /// Wait before asking again a DA node that has no `blob.Subscribe`.
        package var missingMethodRetry: Duration

        package init(url: String, authToken: String = "", caFile: String = "", namespace: DANamespace,
                    retryDelay: Duration = .milliseconds(500), maxRetryDelay: Duration = .seconds(30),
                    missingMethodRetry: Duration = .seconds(60)) {
            self.url = url
            self.authToken = authToken
            self.caFile = caFile
            self.namespace = namespace
            self.retryDelay = retryDelay
            self.maxRetryDelay = maxRetryDelay
            self.missingMethodRetry = missingMethodRetry
        }
    }

    /// What the subscription is doing, for `/status`.
    package enum State: String, Sendable, Equatable {
        case connecting
        /// Notifications arrive; polling is only the safety net.
        case live
        /// The socket is down or the method is missing: the follower polls.
        case polling
    }

    package struct Status: Sendable, Equatable {
        package var state: State = .connecting
        package var notifications = 0
        package var lastHeight: UInt64 = 0
        package var lastError: String?
    }

    package let options: Options
    private let onHeight: @Sendable (UInt64) -> Void
    private let logger: Logger
    private let statusBox = Mutex(Status())

    /// `onHeight` runs for every notified DA height (typically `DAFollower.wake`).
    package init(options: Options, logger: Logger, onHeight: @escaping @Sendable (UInt64) -> Void) {
        self.options = options
        self.logger = logger
        self.onHeight = onHeight
    }

    package var status: Status { statusBox.withLock { $0 } }

    /// The WebSocket URL of a JSON-RPC URL: same host, port and path; ws for http, wss for https.
    package static func webSocketURL(_ url: String) -> String {
        if url.hasPrefix("https://") { return "wss://" + url.dropFirst("https://".count) }
        if url.hasPrefix("http://") { return "ws://" + url.dropFirst("http://".count) }
        return url
    }

    enum Ending: Error {
        case methodMissing(String)
        case refused(String)
    }

    /// Whether the URL's host is an IP address literal (`https://10.0.0.5:26658`).
    package static func hasIPAddressHost(_ url: String) -> Bool {
        guard let schemeEnd = url.range(of: "://") else { return false }
        let rest = url[schemeEnd.upperBound...]
        let authority = rest.prefix { $0 != "/" }
        if authority.hasPrefix("[") { return true }
        let host = authority.split(separator: ":").first ?? ""
        let parts = host.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { UInt8($0) != nil }
    }

    /// Subscribes, re-dialling after every drop, until cancelled.
    package func run() async {
        // TLS sends the host name (SNI) and checks the certificate against it; swift-nio-ssl
        // refuses an IP address there. Rather than check the certificate less, follow by polling.
        if options.url.hasPrefix("https://"), Self.hasIPAddressHost(options.url) {
            let why = "blob.Subscribe over wss needs a host name in --da.address, not an IP address (TLS server name); following DA by polling"
            set(.polling, error: why)
            logger.notice("\(why)", metadata: ["url": "\(options.url)"])
            return
        }
        var delay = options.retryDelay
        while !Task.isCancelled {
            let wasLive: Bool
            var wait = delay
            do {
                wasLive = try await connectOnce()
                set(.polling, error: "the DA node closed the subscription")
                logger.warning("DA subscription closed by the DA node; polling until it is back",
                               metadata: ["retry_in": "\(DurationParser.format(delay))"])
            } catch Ending.methodMissing(let message) {
                wasLive = false
                wait = options.missingMethodRetry
                set(.polling, error: message)
                logger.notice("the DA node has no blob.Subscribe; following DA by polling", metadata: [
                    "error": "\(message)", "retry_in": "\(DurationParser.format(wait))"])
            } catch {
                if Task.isCancelled { return }
                let before = statusBox.withLock { $0.state }
                wasLive = before == .live
                set(.polling, error: "\(error)")
                if before != .polling || wasLive {
                    logger.warning("DA subscription unavailable; polling until it is back", metadata: [
                        "error": "\(error)", "retry_in": "\(DurationParser.format(delay))"])
                }
            }
            delay = wasLive ? options.retryDelay : min(options.maxRetryDelay, delay * 2)
            do {
                try await Task.sleep(for: wait)
            } catch {
                return
            }
        }
    }

    private func set(_ state: State, error: String?) {
        statusBox.withLock {
            $0.state = state
            $0.lastError = error
        }
    }

    /// One connection: subscribe, then wake the follower per notification until the socket
    /// ends. Returns whether notifications were flowing.
    private func connectOnce() async throws -> Bool {
        var configuration = WebSocketClientConfiguration(maxFrameSize: 1 << 24)
        if !options.authToken.isEmpty {
            configuration.additionalHeaders[.authorization] = "Bearer \(options.authToken)"
        }
        var tls: TLSConfiguration?
        if options.url.hasPrefix("https://") {
            var t = TLSConfiguration.makeClientConfiguration()
            if !options.caFile.isEmpty { t.trustRoots = .file(options.caFile) }
            tls = t
        }
        let namespace = options.namespace
        let logger = self.logger
        let outcome = Outcome()
        let url = Self.webSocketURL(options.url)
        try await WebSocketClient.connect(url: url, configuration: configuration, tlsConfiguration: tls,
                                          logger: logger) { inbound, outbound, _ in
            let request = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\(DAMethod.subscribe)\",\"params\":[\"\(namespace.base64)\"]}"
            try await outbound.write(.text(request))
            var frames = FrameReader()
            for try await message in inbound.messages(maxSize: 1 << 26) {
                guard case .text(let text) = message else { continue }
                switch frames.take(text) {
                case .ignored:
                    continue
                case .undecodable(let why):
                    logger.warning("ignored a DA subscription frame that is not JSON-RPC", metadata: ["error": "\(why)"])
                    continue
                case .refused(let message, let methodMissing):
                    let failure = methodMissing ? Ending.methodMissing(message) : Ending.refused(message)
                    outcome.ending.withLock { $0 = failure }
                    try await outbound.close(.normalClosure, reason: nil)
                    return
                case .subscribed:
                    outcome.live.store(true, ordering: .relaxed)
                    self.statusBox.withLock {
                        $0.state = .live
                        $0.lastError = nil
                    }
                    logger.notice("following DA heights by blob.Subscribe", metadata: [
                        "url": "\(url)", "namespace": "\(namespace)"])
                case .implausibleHeight(let height):
                    logger.warning("ignoring a blob.Subscribe notification with an implausible DA height", metadata: [
                        "url": "\(url)", "height": "\(height)", "maximum": "\(DAHeader.maximumPlausibleHeight)"])
                case .height(let height):
                    self.statusBox.withLock {
                        $0.notifications += 1
                        $0.lastHeight = max($0.lastHeight, height)
                    }
                    self.onHeight(height)
                case .closed:
                    return
                }
            }
        }
        if let failure = outcome.ending.withLock({ $0 }) { throw failure }
        return outcome.live.load(ordering: .relaxed)
    }

    /// What the connection's handler learnt, read once the connection ended.
    private final class Outcome: Sendable {
        let live = Atomic<Bool>(false)
        let ending = Mutex<Ending?>(nil)
    }

    /// Reads the subscription's text frames in order: the answer to the subscribe request (which
    /// names the channel), then that channel's notifications.
    struct FrameReader: Sendable {
        enum Step: Sendable, Equatable {
            /// Not for this subscription (another method, another channel, no height).
            case ignored
            /// Not a JSON-RPC frame; the subscription goes on.
            case undecodable(String)
            /// The DA node refused the subscription; `methodMissing` when it has no such method.
            case refused(String, methodMissing: Bool)
            case subscribed
            case height(UInt64)
            /// A notification of a height above `DAHeader.maximumPlausibleHeight`: ignored.
            case implausibleHeight(UInt64)
            /// The DA node closed the channel.
            case closed
        }

        /// The channel the subscribe answer named; nil until then.
        private(set) var channel: Int64?

        mutating func take(_ text: String) -> Step {
            let frame: Frame
            do {
                frame = try JSONDecoder().decode(Frame.self, from: Data(text.utf8))
            } catch {
                return .undecodable(describeDecodingError(error))
            }
            if channel == nil, frame.id != nil {
                if let error = frame.error {
                    let missing = error.code == RPCErrorCode.methodNotFound || error.message.contains("method")
                    return .refused(error.message, methodMissing: missing)
                }
                channel = frame.result
                return .subscribed
            }
            switch frame.method {
            case DAMethod.channelValue?:
                guard let height = frame.params?.height, frame.params?.channel == channel else { return .ignored }
                guard height <= DAHeader.maximumPlausibleHeight else { return .implausibleHeight(height) }
                return .height(height)
            case DAMethod.channelClose?:
                return .closed
            default:
                return .ignored
            }
        }
    }

    /// A go-jsonrpc frame: the answer to the subscribe request, or a channel notification.
    private struct Frame: Decodable {
        var id: RPCID?
        var result: Int64?
        var error: RPCErrorObject?
        var method: String?
        var params: Notification?
    }

    /// `[channel, {"Height": h, …}]` (celestia-node's `SubscriptionResponse`, Go field names).
    private struct Notification: Decodable {
        var channel: Int64?
        var height: UInt64?

        private struct Body: Decodable {
            var Height: FlexibleHeight?
        }

        init(from decoder: any Decoder) throws {
            var c = try decoder.unkeyedContainer()
            channel = try? c.decode(Int64.self)
            if !c.isAtEnd, let body = try? c.decode(Body.self) { height = body.Height?.value }
        }
    }
}
