import Config
import NIOConcurrencyHelpers
import NIOCore

/// How a dial ended its handshake; reported to the redial loop.
enum HandshakeOutcome: Sendable {
    case ready(PeerID)
    /// The peer is already connected over another connection, which was kept.
    case duplicate(PeerID)
    case isSelf
    case failed(String)
}

/// One TCP connection to a peer: its immutable facts plus the mutable per-peer state that the
/// channel handler (on the event loop) and the service's API (on any thread) both touch, behind a
/// lock. Outbound frames go through `send`, which bounds what may queue up for a slow reader.
final class PeerConnection: Sendable {
    let serial: UInt64
    let channel: any Channel
    let direction: PeerDirection
    let dialTarget: HostPort?
    /// IP of the remote end, the key of address bans (nil only for non-IP sockets).
    let remoteIP: String?
    let remoteAddress: String
    let connectedAt: ContinuousClock.Instant
    private let softLimit: Int
    private let hardLimit: Int
    private let state: NIOLockedValueBox<State>

    struct State {
        var peerID: PeerID?
        var hello: Hello?
        var ready = false
        /// Who dialled it, known once the handshake is verified; decides between duplicates.
        var origin: ConnectionOrigin?
        /// Lost to another connection to the same peer: this node no longer uses it, but still
        /// reads what the peer sends until the peer closes it (see `drain`).
        var draining = false
        var closed = false
        var announcedHeight: UInt64?
        var lastAnnouncedAt: ContinuousClock.Instant?
        var lastResponseAt: ContinuousClock.Instant?
        var requestsAnswered = 0
        var requestsFailed = 0
        var throttleEvents = 0
        var gossipDropped = 0
        var pendingOutboundBytes = 0
        /// Our requests waiting for the peer's answer, by request id.
        var pendingRequests: [UInt64: EventLoopPromise<RangeResponse>] = [:]
        /// The peer's requests we are answering now.
        var servingRequests = 0
        var handshakeOutcome: EventLoopPromise<HandshakeOutcome>?
        /// Why this side closed the connection (first reason wins); nil if the peer closed it.
        var closeReason: String?
    }

    init(serial: UInt64, channel: any Channel, direction: PeerDirection, dialTarget: HostPort?,
         settings: P2PSettings, handshakeOutcome: EventLoopPromise<HandshakeOutcome>?) {
        self.serial = serial
        self.channel = channel
        self.direction = direction
        self.dialTarget = dialTarget
        self.remoteIP = channel.remoteAddress?.ipAddress
        self.remoteAddress = channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "unknown"
        self.connectedAt = .now
        self.softLimit = settings.outboundSoftLimitBytes
        self.hardLimit = settings.outboundHardLimitBytes
        var initial = State()
        initial.handshakeOutcome = handshakeOutcome
        self.state = NIOLockedValueBox(initial)
    }

    var peerID: PeerID? { state.withLockedValue { $0.peerID } }
    var isReady: Bool { state.withLockedValue { $0.ready } }
    var origin: ConnectionOrigin? { state.withLockedValue { $0.origin } }
    var isDraining: Bool { state.withLockedValue { $0.draining } }
    var announcedHeight: UInt64? { state.withLockedValue { $0.announcedHeight } }

    /// Largest frame the peer accepts (from its hello); 0 before the hello.
    var peerMaxFrameBytes: Int { state.withLockedValue { $0.hello.map { Int($0.maxFrameBytes) } ?? 0 } }

    var label: String {
        if let id = peerID { return "\(id.short)@\(remoteAddress)" }
        return remoteAddress
    }

    func withState<T>(_ body: (inout State) -> T) -> T {
        state.withLockedValue(body)
    }

    /// Completes the dialler's wait, once.
    func resolveHandshake(_ outcome: HandshakeOutcome) {
        let promise = state.withLockedValue { s -> EventLoopPromise<HandshakeOutcome>? in
            defer { s.handshakeOutcome = nil }
            return s.handshakeOutcome
        }
        promise?.succeed(outcome)
    }

    func info() -> PeerInfo? {
        state.withLockedValue { s in
            guard s.ready, let id = s.peerID else { return nil }
            return PeerInfo(id: id, remoteAddress: remoteAddress, listenPort: s.hello?.listenPort ?? 0,
                            direction: direction, dialTarget: dialTarget, connectedAt: connectedAt,
                            announcedHeight: s.announcedHeight, lastAnnouncedAt: s.lastAnnouncedAt,
                            lastResponseAt: s.lastResponseAt, requestsAnswered: s.requestsAnswered,
                            requestsFailed: s.requestsFailed, throttleEvents: s.throttleEvents,
                            gossipDropped: s.gossipDropped)
        }
    }

    enum SendPolicy {
        /// Must reach the peer (handshake, status, responses) unless the peer stopped reading.
        case reliable
        /// Gossip: skipped when too much is already queued for this peer.
        case droppable
    }

    enum SendResult {
        case sent
        case dropped
        /// The queue for this peer passed the hard limit; the caller disconnects it.
        case overflow
        case closed
    }

    /// Queues `frame` (a complete encoded frame) for the peer. Thread-safe.
    @discardableResult
    func send(_ frame: ByteBuffer, policy: SendPolicy) -> SendResult {
        let size = frame.readableBytes
        let result = state.withLockedValue { s -> SendResult in
            if s.closed { return .closed }
            if policy == .droppable,
               s.pendingOutboundBytes + size > softLimit || (s.hello.map { size > Int($0.maxFrameBytes) } ?? false) {
                s.gossipDropped += 1
                return .dropped
            }
            if s.pendingOutboundBytes + size > hardLimit { return .overflow }
            s.pendingOutboundBytes += size
            return .sent
        }
        guard case .sent = result else { return result }
        channel.writeAndFlush(frame).whenComplete { [state] _ in
            state.withLockedValue { $0.pendingOutboundBytes -= size }
        }
        return .sent
    }

    func noteCloseReason(_ reason: String) {
        state.withLockedValue { s in
            if s.closeReason == nil { s.closeReason = reason }
        }
    }

    var closeReason: String? { state.withLockedValue { $0.closeReason } }

    /// Sends a goodbye (best effort) and closes the connection.
    func close(_ goodbye: Goodbye?, reason: String) {
        noteCloseReason(reason)
        let channel = self.channel
        let frame = goodbye.map { P2PMessage.goodbye($0).frame() }
        channel.eventLoop.execute {
            if let frame { channel.writeAndFlush(frame, promise: nil) }
            channel.close(promise: nil)
        }
    }

    /// Retires a connection that lost to another one to the same peer, without losing what the
    /// peer already sent on it: the peer may still be using it (it has not completed its own
    /// handshake of the winner yet), so cutting it now would drop those frames unread. Says
    /// goodbye, which tells the peer to close it, and keeps the connection readable until the
    /// peer does; closes it after `timeout` at the latest. This node no longer sends on it
    /// (it is not the peer's connection in the registry) except answers to requests made on it.
    func drain(_ goodbye: Goodbye, timeout: TimeAmount) {
        let start = state.withLockedValue { s -> Bool in
            guard !s.draining, !s.closed else { return false }
            s.draining = true
            s.ready = false
            return true
        }
        guard start else { return }
        noteCloseReason("duplicate connection (another connection to the peer is kept)")
        send(P2PMessage.goodbye(goodbye).frame(allocator: channel.allocator), policy: .reliable)
        let channel = self.channel
        channel.eventLoop.scheduleTask(in: timeout) {
            channel.close(promise: nil)
        }
    }

    /// Registers a request for the peer's answer; nil when the connection is already closed.
    func addPendingRequest(_ id: UInt64) -> EventLoopPromise<RangeResponse>? {
        let promise = channel.eventLoop.makePromise(of: RangeResponse.self)
        let added = state.withLockedValue { s -> Bool in
            if s.closed { return false }
            s.pendingRequests[id] = promise
            return true
        }
        if added { return promise }
        promise.fail(ChannelError.ioOnClosedChannel)
        return nil
    }

    func takePendingRequest(_ id: UInt64) -> EventLoopPromise<RangeResponse>? {
        state.withLockedValue { $0.pendingRequests.removeValue(forKey: id) }
    }

    var inFlightRequests: Int { state.withLockedValue { $0.pendingRequests.count } }

    /// Marks the connection closed and fails everything still waiting on it.
    func markClosed(reason: String) {
        let (requests, outcome) = state.withLockedValue { s in
            s.closed = true
            s.ready = false
            defer {
                s.pendingRequests = [:]
                s.handshakeOutcome = nil
            }
            return (Array(s.pendingRequests.values), s.handshakeOutcome)
        }
        for promise in requests { promise.fail(ChannelError.ioOnClosedChannel) }
        outcome?.succeed(.failed(reason))
    }
}
