import Config
import NIOCore

/// Why a peer is disconnected and banned.
enum Misbehaviour: CustomStringConvertible, Sendable {
    case malformed(WireDecodeError)
    case unexpectedMessage(MessageType, phase: String)
    case wrongChain(String)
    case badHandshakeSignature
    case invalidBlock(height: UInt64, reason: String)
    /// A height claim whose proof is missing or not the genesis proposer's header at that height.
    case invalidStatus(height: UInt64, reason: String)
    case invalidResponse(String)
    case unsolicitedResponse(requestID: UInt64)
    case flooding(String)
    case reportedByNode(String)

    var description: String {
        switch self {
        case .malformed(let e): return "malformed message: \(e)"
        case .unexpectedMessage(let t, let phase): return "unexpected \(t) message while \(phase)"
        case .wrongChain(let id): return "wrong chain id \"\(id)\""
        case .badHandshakeSignature: return "handshake signature does not match the claimed node key"
        case .invalidBlock(let h, let reason): return "invalid block at height \(h): \(reason)"
        case .invalidStatus(let h, let reason): return "unproven height claim \(h): \(reason)"
        case .invalidResponse(let reason): return "invalid range response: \(reason)"
        case .unsolicitedResponse(let id): return "range response to request \(id) that was never sent"
        case .flooding(let what): return "flooding: \(what)"
        case .reportedByNode(let reason): return reason
        }
    }

    var goodbyeReason: GoodbyeReason {
        if case .wrongChain = self { return .wrongChain }
        return .protocolViolation
    }
}

/// The per-connection protocol driver, confined to the channel's event loop: handshake state
/// machine, inbound rate limiting (by pausing socket reads), and dispatch of decoded messages to
/// the service.
final class PeerHandler: ChannelDuplexHandler {
    typealias InboundIn = Frame
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum Phase {
        case awaitingHello
        case awaitingAck(Hello)
        case ready
        /// Authenticated, but another connection to the peer is kept: still reads and handles
        /// what the peer sends until the peer closes it (see `PeerConnection.drain`).
        case draining
        case closing

        var name: String {
            switch self {
            case .awaitingHello: return "awaiting hello"
            case .awaitingAck: return "awaiting hello-ack"
            case .ready: return "ready"
            case .draining: return "draining"
            case .closing: return "closing"
            }
        }
    }

    private let service: P2PService
    private let direction: PeerDirection
    private let dialTarget: HostPort?
    private let frameLimit: FrameLimit
    private var pendingOutcome: EventLoopPromise<HandshakeOutcome>?
    private var connection: PeerConnection?
    private var phase = Phase.awaitingHello
    private let nonce = HandshakeTranscript.freshNonce()
    private var messageBucket: TokenBucket
    private var byteBucket: TokenBucket
    private var readPaused = false
    private var readWanted = false
    private var handshakeTimer: Scheduled<Void>?

    init(service: P2PService, direction: PeerDirection, dialTarget: HostPort?, frameLimit: FrameLimit,
         outcome: EventLoopPromise<HandshakeOutcome>?) {
        self.service = service
        self.frameLimit = frameLimit
        self.direction = direction
        self.dialTarget = dialTarget
        self.pendingOutcome = outcome
        let s = service.settings
        let now = NIODeadline.now()
        messageBucket = TokenBucket(rate: s.messagesPerSecond, capacity: s.messageBurst, now: now)
        byteBucket = TokenBucket(rate: s.bytesPerSecond, capacity: s.byteBurst, now: now)
    }

    // MARK: Lifecycle

    func channelActive(context: ChannelHandlerContext) {
        let conn = service.makeConnection(channel: context.channel, direction: direction, dialTarget: dialTarget,
                                          outcome: pendingOutcome)
        pendingOutcome = nil
        connection = conn
        if let refusal = service.admit(conn) {
            phase = .closing
            conn.close(refusal, reason: "refused: \(refusal.reason)")
            context.fireChannelActive()
            return
        }
        let hello = Hello(protocolVersion: P2PProtocol.version, chainID: service.chainID,
                          publicKey: service.nodeKey.publicKey, nonce: nonce,
                          listenPort: service.advertisedListenPort,
                          maxFrameBytes: UInt32(clamping: service.settings.maxFrameBytes))
        conn.send(P2PMessage.hello(hello).frame(allocator: context.channel.allocator), policy: .reliable)
        handshakeTimer = context.eventLoop.assumeIsolated().scheduleTask(in: service.settings.handshakeTimeout.timeAmount) {
            [weak self] in
            guard let self else { return }
            switch self.phase {
            case .ready, .draining, .closing:
                return
            case .awaitingHello, .awaitingAck:
                self.disconnect(Goodbye(reason: .handshakeTimeout, detail: "no handshake within the timeout"))
            }
        }
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        handshakeTimer?.cancel()
        handshakeTimer = nil
        if let connection {
            service.connectionClosed(connection)
        }
        phase = .closing
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // A dial whose channel never became active still owes its dialler an answer.
        pendingOutcome?.succeed(.failed("connection closed before it was established"))
        pendingOutcome = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let wire = error as? WireDecodeError {
            punish(.malformed(wire))
        } else if case .closing = phase {
            // Errors after we decided to close add nothing.
        } else {
            phase = .closing
            connection?.noteCloseReason("I/O error: \(error)")
            context.close(promise: nil)
        }
    }

    // MARK: Inbound rate limiting

    func read(context: ChannelHandlerContext) {
        if readPaused {
            readWanted = true
        } else {
            context.read()
        }
    }

    /// Charges the peer for a frame; returns false when it was disconnected for flooding.
    private func charge(frame: Frame, context: ChannelHandlerContext) -> Bool {
        let now = NIODeadline.now()
        let size = Double(P2PProtocol.frameHeaderSize + frame.payload.readableBytes)
        let messages = messageBucket.take(1, now: now)
        // Answers to our own requests are not charged by size: we asked for them and bounded
        // them by the number of requests in flight.
        let solicited = frame.type == MessageType.rangeResponse.rawValue
            && frame.payload.getInteger(at: frame.payload.readerIndex, as: UInt64.self).map { id in
                connection?.withState { $0.pendingRequests[id] != nil } ?? false
            } == true
        let bytes = solicited ? byteBucket.take(0, now: now) : byteBucket.take(size, now: now)
        let s = service.settings
        if messages < -s.messageBurst * s.floodBanFactor {
            punish(.flooding("over \(Int(s.messageBurst * s.floodBanFactor)) messages beyond the limit of \(Int(s.messagesPerSecond))/s, burst \(Int(s.messageBurst))"))
            return false
        }
        if bytes < -s.byteBurst * s.floodBanFactor {
            punish(.flooding("over \(Int(s.byteBurst * s.floodBanFactor)) bytes beyond the limit of \(Int(s.bytesPerSecond)) B/s, burst \(Int(s.byteBurst))"))
            return false
        }
        if messages < 0 || bytes < 0 {
            pauseReading(for: max(messageBucket.timeUntilSolvent, byteBucket.timeUntilSolvent), context: context)
        }
        return true
    }

    private func pauseReading(for delay: TimeAmount, context: ChannelHandlerContext) {
        guard !readPaused else { return }
        readPaused = true
        connection?.withState { $0.throttleEvents += 1 }
        context.eventLoop.assumeIsolated().scheduleTask(in: delay) { [weak self] in
            guard let self else { return }
            self.readPaused = false
            if self.readWanted {
                self.readWanted = false
                context.read()
            }
        }
    }

    // MARK: Messages

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if case .closing = phase { return }
        guard charge(frame: frame, context: context) else { return }
        let message: P2PMessage
        do {
            message = try P2PMessage.decode(type: frame.type, payload: frame.payload)
        } catch {
            punish(.malformed(error))
            return
        }
        if case .goodbye(let goodbye) = message {
            phase = .closing
            connection?.noteCloseReason("peer said goodbye: \(goodbye.reason)\(goodbye.detail.isEmpty ? "" : " (\(goodbye.detail))")")
            context.close(promise: nil)
            return
        }
        switch phase {
        case .awaitingHello:
            guard case .hello(let hello) = message else {
                return punish(.unexpectedMessage(message.type, phase: phase.name))
            }
            receivedHello(hello, context: context)
        case .awaitingAck(let hello):
            guard case .helloAck(let ack) = message else {
                return punish(.unexpectedMessage(message.type, phase: phase.name))
            }
            receivedAck(ack, hello: hello, context: context)
        case .ready, .draining:
            dispatch(message)
        case .closing:
            return
        }
    }

    private func receivedHello(_ hello: Hello, context: ChannelHandlerContext) {
        guard let conn = connection else { return }
        if hello.protocolVersion != P2PProtocol.version {
            return disconnect(Goodbye(reason: .incompatibleVersion,
                                      detail: "speaks version \(hello.protocolVersion), this node \(P2PProtocol.version)"))
        }
        if hello.chainID != service.chainID {
            return punish(.wrongChain(hello.chainID))
        }
        if hello.maxFrameBytes < 64 * 1024 {
            return punish(.malformed(.outOfBounds(message: "hello", field: "max frame bytes",
                                                  value: UInt64(hello.maxFrameBytes), allowed: "≥ 65536")))
        }
        if hello.publicKey == service.nodeKey.publicKey {
            conn.resolveHandshake(.isSelf)
            return disconnect(Goodbye(reason: .connectedToSelf, detail: ""))
        }
        let claimed = PeerID(publicKey: hello.publicKey)
        if service.isBanned(peer: claimed) {
            return disconnect(Goodbye(reason: .banned, detail: "peer \(claimed.short) is banned"))
        }
        conn.withState { $0.hello = hello }
        let signature = HandshakeTranscript.sign(key: service.nodeKey.privateKey, chainID: service.chainID,
                                                 verifierNonce: hello.nonce, signerNonce: nonce)
        conn.send(P2PMessage.helloAck(HelloAck(signature: signature)).frame(allocator: context.channel.allocator),
                  policy: .reliable)
        phase = .awaitingAck(hello)
    }

    private func receivedAck(_ ack: HelloAck, hello: Hello, context: ChannelHandlerContext) {
        guard let conn = connection else { return }
        guard HandshakeTranscript.verify(signature: ack.signature, publicKey: hello.publicKey,
                                         chainID: service.chainID, verifierNonce: nonce, signerNonce: hello.nonce) else {
            return punish(.badHandshakeSignature)
        }
        let id = PeerID(publicKey: hello.publicKey)
        let origin = ConnectionOrigin(dialer: direction == .outbound ? service.localID : id,
                                      dialerNonce: direction == .outbound ? nonce : hello.nonce)
        let registration = service.register(conn, as: id, origin: origin)
        switch registration {
        case .registered, .duplicate:
            handshakeTimer?.cancel()
            handshakeTimer = nil
            frameLimit.maxFrameBytes = service.settings.maxFrameBytes
            // The status follows every completed handshake, also on a connection being drained:
            // the peer may still be using it and should know this node's height meanwhile.
            // With the signed header that proves it (none for an empty chain). If the head moved
            // between the two reads, the next announcement follows within the announce interval.
            if let status = service.statusMessage(service.source.currentHeight()) {
                conn.send(status.frame(allocator: context.channel.allocator), policy: .reliable)
            }
            if case .registered = registration {
                phase = .ready
                conn.resolveHandshake(.ready(id))
            } else {
                phase = .draining
                service.drainDuplicate(conn, peer: id)
                conn.resolveHandshake(.duplicate(id))
            }
        case .refused(let goodbye):
            disconnect(goodbye)
        }
    }

    private func dispatch(_ message: P2PMessage) {
        guard let conn = connection else { return }
        switch message {
        case .status(let height, let proof):
            if let problem = service.statusReceived(height, proof: proof, from: conn) { punish(problem) }
        case .newBlock(let block):
            if let problem = service.gossipReceived(block, from: conn) { punish(problem) }
        case .rangeRequest(let request):
            service.serve(request, for: conn)
        case .rangeResponse(let response):
            if let promise = conn.takePendingRequest(response.requestID) {
                promise.succeed(response)
            } else if !service.wasIssued(requestID: response.requestID) {
                punish(.unsolicitedResponse(requestID: response.requestID))
            }
            // Otherwise a late answer to a request that already timed out: dropped.
        case .hello, .helloAck:
            punish(.unexpectedMessage(message.type, phase: phase.name))
        case .goodbye:
            break // handled before dispatch
        }
    }

    // MARK: Closing

    private func punish(_ misbehaviour: Misbehaviour) {
        guard let conn = connection else { return }
        if case .closing = phase { return }
        phase = .closing
        service.punish(conn, for: misbehaviour)
    }

    private func disconnect(_ goodbye: Goodbye) {
        guard let conn = connection else { return }
        if case .closing = phase { return }
        phase = .closing
        conn.close(goodbye, reason: "\(goodbye.reason)\(goodbye.detail.isEmpty ? "" : ": \(goodbye.detail)")")
    }
}
