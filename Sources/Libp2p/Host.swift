import Crypto
import Foundation
import Logging
import NIOCore
import NIOPosix
import SwiftProtobuf
import Synchronization

/// A stream the peer opened for one of our protocols, negotiated, with its reader (holding
/// whatever the peer sent after the protocol id, e.g. a lazy client's request).
package struct InboundStream {
    package let connection: Libp2pConnection
    package let stream: YamuxStream
    package let protocolID: String
    package var reader: ByteReader<YamuxStream.Source>

    package init(connection: Libp2pConnection, stream: YamuxStream, protocolID: String,
                 reader: ByteReader<YamuxStream.Source>) {
        self.connection = connection
        self.stream = stream
        self.protocolID = protocolID
        self.reader = reader
    }
}

/// What a protocol does with a stream the peer opened.
package typealias StreamHandler = @Sendable (inout InboundStream) async throws -> Void

/// A dial whose handshake completed — so the remote proved its peer id — but whose connection
/// this host did not keep (a duplicate of the preferred connection, a banned peer, this node).
package struct DialNotKept: Error, CustomStringConvertible {
    package let remote: PeerID
    package let reason: ConnectionRefusal
    package var description: String { LinkError.negotiation(reason.description).description }
}

/// The libp2p host of this node: TCP, multistream-select, Noise, yamux, identify (+ push) and
/// ping; one connection per peer; the application protocols are the handlers given at init
/// (identify lists exactly those and its own).
package final class Libp2pHost: Sendable {
    /// What the host lets peers make it spend (README "Under attack" has the table).
    package struct Options: Sendable {
        /// Outbound: multistream + Noise + yamux negotiation must finish within this.
        package var handshakeTimeout: Duration = .seconds(10)
        /// Inbound: a stranger who connects and stalls holds a handshake slot no longer than this.
        package var inboundHandshakeTimeout: Duration = .seconds(4)
        package var connectTimeout: Duration = .seconds(5)
        package var keepAliveInterval: Duration = .seconds(30)
        /// Established inbound connections from strangers. Peers that `Events.isReserved` names
        /// (the configured ones) are admitted beyond it: their slots are reserved.
        package var maxInbound = 48
        /// Outbound connections (handshaking or established). Only configured peers are dialled,
        /// so strangers never compete for these.
        package var maxOutbound = 32
        /// Inbound connections still in their handshake. When full, the oldest handshake of the
        /// address holding the most of them makes room (if that address holds more than the
        /// newcomer's), so one source cannot keep out everyone else by reopening idle sockets.
        package var maxInboundHandshakes = 16
        /// Inbound connections (handshaking or established) per address: per IPv4 address, per
        /// IPv6 /64. Tests run several nodes on 127.0.0.1, so this leaves room for a handful.
        package var maxInboundPerAddress = 8
        /// Bytes queued for sending per connection (yamux frames and the gossip queue); writers
        /// wait and gossip frames are dropped beyond it.
        package var sendBufferPerConnection = 16 << 20
        /// The same for the whole node.
        package var sendBufferNode = 256 << 20
        /// A write to the socket that has not finished after this closes the connection (the peer
        /// does not read; go-yamux's write timeout is 10 s).
        package var writeTimeout: Duration = .seconds(10)
        /// Where each connection's bytes are counted (the node's `p2p_peer_*` series).
        package var traffic: (any ConnectionTrafficObserver)?
        /// Streams per connection, and how many of those the peer may open.
        package var yamux = YamuxSession.Limits()
        /// Peer-opened streams of the whole node beyond each connection's first `guaranteedStreams`.
        package var nodeInboundStreams = 512
        package var guaranteedStreams = 4
        /// Peer-opened streams per connection still negotiating their protocol (10 s each).
        package var maxNegotiatingStreams = 8
        package var streamNegotiationTimeout: Duration = .seconds(10)
        /// Peer-opened streams per connection running one protocol's handler at once;
        /// `defaultStreamsPerProtocol` for protocols not listed.
        package var streamsPerProtocol: [String: Int] = [:]
        package var defaultStreamsPerProtocol = 2
        package var agentVersion = "evnode-swift"

        package init() {}
    }

    static let identifyID = "/ipfs/id/1.0.0"
    static let identifyPushID = "/ipfs/id/push/1.0.0"
    static let pingID = "/ipfs/ping/1.0.0"
    static let identifyLimit = 64 * 1024

    package let identity: Curve25519.Signing.PrivateKey
    package let localID: PeerID
    package let options: Options
    package let group: any EventLoopGroup
    package let logger: Logger
    private let handlers: [String: StreamHandler]
    /// Every protocol identify lists: the application's and the host's own.
    package let protocols: [String]
    /// What connections queue for sending, per connection and in total.
    let sendBudget: BufferBudget
    /// Peer-opened streams of the whole node.
    let inboundStreams: StreamQuota

    /// Called (from the connection's task) when a connection became the peer's connection,
    /// and when it closed.
    package struct Events: Sendable {
        package var connected: @Sendable (Libp2pConnection) -> Void = { _ in }
        /// The owner's work for a connection's life (gossip to the peer, its head request): run
        /// among the connection's own tasks once `connected` returned, cancelled when it closes.
        package var whileConnected: @Sendable (Libp2pConnection) async -> Void = { _ in }
        package var identified: @Sendable (Libp2pConnection) -> Void = { _ in }
        package var disconnected: @Sendable (Libp2pConnection) -> Void = { _ in }
        /// Asked after the handshake, before a connection is accepted and before any stream
        /// (peer id, address key, who dialled): a reason refuses it.
        package var refuse: @Sendable (PeerID, String, PeerDirection) -> String? = { _, _, _ in nil }
        /// Asked when a TCP connection arrives, before a byte is read (address key): a reason
        /// refuses it — a banned address never gets a Noise handshake.
        package var refuseAddress: @Sendable (String) -> String? = { _ in nil }
        /// Peers whose inbound connections have reserved slots (the configured ones).
        package var isReserved: @Sendable (PeerID) -> Bool = { _ in false }

        package init(connected: @escaping @Sendable (Libp2pConnection) -> Void = { _ in },
                     whileConnected: @escaping @Sendable (Libp2pConnection) async -> Void = { _ in },
                     identified: @escaping @Sendable (Libp2pConnection) -> Void = { _ in },
                     disconnected: @escaping @Sendable (Libp2pConnection) -> Void = { _ in },
                     refuse: @escaping @Sendable (PeerID, String, PeerDirection) -> String? = { _, _, _ in nil },
                     refuseAddress: @escaping @Sendable (String) -> String? = { _ in nil },
                     isReserved: @escaping @Sendable (PeerID) -> Bool = { _ in false }) {
            self.connected = connected
            self.whileConnected = whileConnected
            self.identified = identified
            self.disconnected = disconnected
            self.refuse = refuse
            self.refuseAddress = refuseAddress
            self.isReserved = isReserved
        }
    }

    /// One TCP connection from accept (or connect) to its end.
    private struct Ticket {
        let direction: PeerDirection
        let addressKey: String
        let channel: any Channel
        let startedAt: ContinuousClock.Instant
        var established = false
        var reserved = false
    }

    private struct State {
        var connections: [PeerID: Libp2pConnection] = [:]
        var tickets: [ObjectIdentifier: Ticket] = [:]
        var nextSerial: UInt64 = 1
        var listenAddrs: [Multiaddr] = []
        var closed = false
        var refusedConnections = 0
        var evictedHandshakes = 0
        var events = Events()
    }

    private let state = Mutex(State())

    package init(identity: Curve25519.Signing.PrivateKey, handlers: [String: StreamHandler], options: Options,
         group: any EventLoopGroup, logger: Logger) {
        self.identity = identity
        self.localID = PeerID(publicKey: Array(identity.publicKey.rawRepresentation))
        self.options = options
        self.group = group
        self.logger = logger
        var all = handlers
        all[Self.pingID] = { stream in try await Self.servePing(&stream) }
        self.handlers = all
        self.protocols = (Array(all.keys) + [Self.identifyID, Self.identifyPushID]).sorted()
        sendBudget = BufferBudget(nodeCapacity: options.sendBufferNode, accountCapacity: options.sendBufferPerConnection)
        inboundStreams = StreamQuota(capacity: options.nodeInboundStreams, guaranteed: options.guaranteedStreams)
    }

    package func setEvents(_ e: Events) { state.withLock { $0.events = e } }

    package var connections: [Libp2pConnection] { state.withLock { Array($0.connections.values) } }

    package func connection(to peer: PeerID) -> Libp2pConnection? { state.withLock { $0.connections[peer] } }

    package var listenAddrs: [Multiaddr] { state.withLock { $0.listenAddrs } }

    package func setListenAddrs(_ addrs: [Multiaddr]) { state.withLock { $0.listenAddrs = addrs } }

    /// TCP connections open now (handshaking or established), by direction and phase.
    package struct ConnectionCounts: Sendable, Equatable {
        package var inboundHandshaking = 0
        package var inboundEstablished = 0
        package var outbound = 0
        /// Connections refused at accept or registration, and handshakes evicted, since start.
        package var refused = 0
        package var evicted = 0
    }

    var connectionCounts: ConnectionCounts {
        state.withLock { s in
            var c = ConnectionCounts(refused: s.refusedConnections, evicted: s.evictedHandshakes)
            for t in s.tickets.values {
                switch (t.direction, t.established) {
                case (.inbound, false): c.inboundHandshaking += 1
                case (.inbound, true): c.inboundEstablished += 1
                case (.outbound, _): c.outbound += 1
                }
            }
            return c
        }
    }

    // MARK: Listening and dialling

    package typealias RawChannel = NIOAsyncChannel<ByteBuffer, ByteBuffer>

    /// A bound listening socket, accepting once `accept(on:)` runs.
    package struct Listener: Sendable {
        package let address: SocketAddress
        fileprivate let server: NIOAsyncChannel<RawChannel, Never>
        /// Closing it ends `accept(on:)` (once the connections it accepted ended).
        package var channel: any Channel { server.channel }
    }

    package func bind(host: String, port: Int) async throws -> Listener {
        let server = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 128)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try RawChannel(wrappingChannelSynchronously: channel) }
            }
        guard let address = server.channel.localAddress else {
            try? await server.channel.close()
            throw LinkError.closed
        }
        return Listener(address: address, server: server)
    }

    /// Accepts until the listener is closed; every inbound connection runs in a child task, and
    /// this returns once they all ended.
    package func accept(on listener: Listener) async {
        do {
            try await listener.server.executeThenClose { inbound in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await child in inbound {
                        group.addTask { await self.run(child, direction: .inbound, expected: nil, established: nil) }
                    }
                }
            }
        } catch {
            logger.debug("listener ended", metadata: ["error": "\(error)"])
        }
    }

    /// Dials `host:port`, runs the upgrade and then the connection, in this task, until the
    /// connection ends: `whileOpen` gets it once it is the peer's connection (kept), and this
    /// returns when both are done. Throws when no connection was kept (`DialNotKept` once the
    /// handshake proved who answered). `expected`: the peer id the address must belong to.
    package func dial(host: String, port: Int, expected: PeerID?,
              whileOpen: (Libp2pConnection) async -> Void) async throws {
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(options.connectTimeout.timeAmount)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try RawChannel(wrappingChannelSynchronously: channel) }
            }
        let promise = channel.channel.eventLoop.makePromise(of: Libp2pConnection.self)
        var failure: (any Error)?
        await withDiscardingTaskGroup { group in
            // `run` always settles the promise: with the connection, or with why there is none.
            group.addTask { await self.run(channel, direction: .outbound, expected: expected, established: promise) }
            do {
                let conn = try await promise.futureResult.get()
                await whileOpen(conn)
            } catch {
                failure = error
            }
        }
        if let failure { throw failure }
    }

    /// Closes every connection; the listener is closed by its owner.
    package func closeAll() {
        let conns = state.withLock { s -> [Libp2pConnection] in
            s.closed = true
            return Array(s.connections.values)
        }
        for c in conns { c.close(reason: "shutting down") }
        let chans = state.withLock { $0.tickets.values.map(\.channel) }
        for ch in chans { ch.close(promise: nil) }
    }

    package var openChannelCount: Int { state.withLock { $0.tickets.count } }

    // MARK: Admission

    /// Whether a new TCP connection may start its handshake; nil admits it (and takes its slot).
    private func admit(_ channel: any Channel, direction: PeerDirection, addressKey: String) -> String? {
        if direction == .inbound, let reason = state.withLock({ $0.events }).refuseAddress(addressKey) { return reason }
        var evict: (any Channel)?
        let refusal = state.withLock { s -> String? in
            guard !s.closed else { return "shutting down" }
            switch direction {
            case .outbound:
                let outbound = s.tickets.values.filter { $0.direction == .outbound }.count
                guard outbound < options.maxOutbound else { return "outbound connection limit (\(options.maxOutbound)) reached" }
            case .inbound:
                let fromAddress = s.tickets.values.filter { $0.direction == .inbound && $0.addressKey == addressKey }.count
                guard fromAddress < options.maxInboundPerAddress else {
                    return "\(fromAddress) connections from \(addressKey) already (limit \(options.maxInboundPerAddress))"
                }
                let handshaking = s.tickets.filter { $0.value.direction == .inbound && !$0.value.established }
                if handshaking.count >= options.maxInboundHandshakes {
                    var byAddress: [String: [(ObjectIdentifier, Ticket)]] = [:]
                    for (id, t) in handshaking { byAddress[t.addressKey, default: []].append((id, t)) }
                    let mine = byAddress[addressKey]?.count ?? 0
                    guard let (busiest, theirs) = byAddress.max(by: { $0.value.count < $1.value.count }),
                          busiest != addressKey, theirs.count > mine + 1,
                          let oldest = theirs.min(by: { $0.1.startedAt < $1.1.startedAt }) else {
                        return "\(handshaking.count) inbound handshakes in progress (limit \(options.maxInboundHandshakes))"
                    }
                    s.tickets.removeValue(forKey: oldest.0)
                    s.evictedHandshakes += 1
                    evict = oldest.1.channel
                }
            }
            s.tickets[ObjectIdentifier(channel)] = Ticket(direction: direction, addressKey: addressKey, channel: channel,
                                                          startedAt: .now)
            return nil
        }
        evict?.close(promise: nil)
        if refusal != nil { state.withLock { $0.refusedConnections += 1 } }
        return refusal
    }

    // MARK: One connection's life

    private func run(_ raw: RawChannel, direction: PeerDirection, expected: PeerID?,
                     established: EventLoopPromise<Libp2pConnection>?) async {
        let channel = raw.channel
        let remote = channel.remoteAddress
        let address = remote.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
        let remoteIP = remote?.ipAddress ?? "?"
        let addressKey = AddressKey.of(remote) ?? remoteIP
        if let refusal = admit(channel, direction: direction, addressKey: addressKey) {
            established?.fail(LinkError.negotiation(refusal))
            logger.debug("connection refused", metadata: ["address": "\(address)", "direction": "\(direction)",
                                                          "reason": "\(refusal)"])
            try? await channel.close()
            return
        }
        var registered: Libp2pConnection?
        // Whether `established` was completed (a promise left pending would leak).
        var settled = false
        defer {
            state.withLock { s in
                s.tickets.removeValue(forKey: ObjectIdentifier(channel))
                if let r = registered, s.connections[r.remote] === r { s.connections.removeValue(forKey: r.remote) }
            }
            if let r = registered {
                r.session.sendAccount.close()
                state.withLock { $0.events }.disconnected(r)
            }
        }
        do {
            try await raw.executeThenClose { inbound, outbound in
                let deadline = direction == .inbound ? options.inboundHandshakeTimeout : options.handshakeTimeout
                let timer = channel.eventLoop.scheduleTask(in: deadline.timeAmount) {
                    channel.close(promise: nil)
                }
                var tcp = ByteReader(TCPSource(iterator: inbound.makeAsyncIterator()))
                let upgraded: (Noise.Result, ByteReader<NoiseSource<TCPSource>>)
                do {
                    upgraded = try await self.upgrade(&tcp, outbound: outbound, initiator: direction.isDialer,
                                                      expected: expected)
                } catch {
                    timer.cancel()
                    settled = true
                    established?.fail(error)
                    logger.debug("handshake failed", metadata: ["address": "\(address)", "direction": "\(direction)",
                                                                "error": "\(error)"])
                    return
                }
                timer.cancel()
                var (noise, secure) = upgraded
                let session = YamuxSession(isDialer: direction.isDialer, limits: options.yamux,
                                           sendAccount: sendBudget.openAccount(), inboundQuota: inboundStreams)
                let dialer = direction.isDialer ? localID : noise.remote
                let serial = state.withLock { s -> UInt64 in
                    defer { s.nextSerial += 1 }
                    return s.nextSerial
                }
                let conn = Libp2pConnection(remote: noise.remote, direction: direction, remoteAddress: address,
                                            addressKey: addressKey, remoteIP: remoteIP,
                                            serial: serial, origin: ConnectionOrigin(dialer: dialer, dialerNonce: noise.handshakeHash),
                                            session: session, channel: channel)
                settled = true
                if let refusal = register(conn) {
                    state.withLock { $0.refusedConnections += 1 }
                    established?.fail(DialNotKept(remote: conn.remote, reason: refusal))
                    logger.debug("connection refused", metadata: ["peer": "\(conn.remote)", "reason": "\(refusal)"])
                    session.close(goAway: .normal)
                    var send = noise.send
                    for await frame in session.frames {
                        try? await outbound.write(Self.encrypt(frame, &send))
                    }
                    session.sendAccount.close()
                    return
                }
                registered = conn
                established?.succeed(conn)
                let connectionEvents = state.withLock { $0.events }
                connectionEvents.connected(conn)
                let initialSend = noise.send
                let traffic = options.traffic?.traffic(of: conn.remote)
                defer { traffic?.closed() }
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        // The writer: every frame in order, encrypted.
                        var send = initialSend
                        for await frame in session.frames {
                            let n = frame.readableBytes
                            conn.writeStarted()
                            do {
                                try await outbound.write(Self.encrypt(frame, &send))
                            } catch {
                                break
                            }
                            conn.writeFinished()
                            session.wrote(n)
                            traffic?.sent(bytes: n, pending: session.queuedBytes)
                        }
                        channel.close(promise: nil)
                    }
                    group.addTask { await self.acceptStreams(conn) }
                    group.addTask { await self.keepAlive(conn) }
                    group.addTask { await self.watchWrites(conn) }
                    group.addTask { await self.identify(conn) }
                    group.addTask { await connectionEvents.whileConnected(conn) }
                    do {
                        traffic?.received(bytes: secure.buffer.readableBytes)
                        try session.receive(&secure.buffer)
                        while true {
                            let before = secure.buffer.readableBytes
                            guard try await secure.fill() else { break }
                            traffic?.received(bytes: secure.buffer.readableBytes - before)
                            try session.receive(&secure.buffer)
                            if session.queuedBytes > options.sendBufferPerConnection + (4 << 20) {
                                // Only control frames are queued without waiting for room: a peer
                                // that makes us answer pings it never reads lands here.
                                conn.close(reason: "does not read (\(session.queuedBytes) bytes queued)",
                                           code: .internalError)
                                break
                            }
                        }
                        conn.close(reason: "closed by the peer")
                    } catch LinkError.closed {
                        conn.close(reason: "peer said goodbye")
                    } catch let error as LinkError {
                        if case .protocolViolation = error {
                            conn.close(reason: "\(error)", code: .protocolError)
                        } else {
                            conn.close(reason: "\(error)")
                        }
                    } catch {
                        conn.close(reason: "\(error)")
                    }
                    group.cancelAll()
                }
            }
        } catch {
            if !settled { established?.fail(error) }
            logger.debug("connection ended", metadata: ["address": "\(address)", "error": "\(error)"])
        }
    }

    static func encrypt(_ frame: ByteBuffer, _ cipher: inout Noise.CipherState) throws -> ByteBuffer {
        var rest = frame
        var out = ByteBuffer()
        out.reserveCapacity(frame.readableBytes + 18 * (frame.readableBytes / Noise.maxPlaintext + 1))
        while rest.readableBytes > 0 {
            let n = min(rest.readableBytes, Noise.maxPlaintext)
            let chunk = rest.readSlice(length: n)!
            let sealed = try cipher.encrypt(Array(chunk.readableBytesView), ad: [])
            out.writeInteger(UInt16(sealed.count))
            out.writeBytes(sealed)
        }
        return out
    }

    /// multistream → Noise → multistream → yamux.
    private func upgrade(_ tcp: inout ByteReader<TCPSource>, outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
                         initiator: Bool, expected: PeerID?) async throws
        -> (Noise.Result, ByteReader<NoiseSource<TCPSource>>) {
        let write: (ByteBuffer) async throws -> Void = { try await outbound.write($0) }
        if initiator {
            try await Multistream.select(Noise.protocolID, reader: &tcp, write: write)
        } else {
            try await write(Multistream.messages([Multistream.header]))
            _ = try await Multistream.accept([Noise.protocolID], reader: &tcp, headerSent: true, write: write)
        }
        let result = try await Noise.handshake(initiator: initiator, identity: identity, expected: expected,
                                               reader: &tcp, write: write)
        var send = result.send
        var secure = ByteReader(NoiseSource(reader: tcp, cipher: result.receive))
        // Sequential here, so encrypting inline keeps the nonces in order.
        let secureWrite: (ByteBuffer) async throws -> Void = { buffer in
            try await outbound.write(Self.encrypt(buffer, &send))
        }
        if initiator {
            try await Multistream.select(Yamux.protocolID, reader: &secure, write: secureWrite)
        } else {
            _ = try await Multistream.accept([Yamux.protocolID], reader: &secure, write: secureWrite)
        }
        var r = result
        r.send = send
        return (r, secure)
    }

    /// Makes `conn` the peer's connection; returns why not otherwise.
    private func register(_ conn: Libp2pConnection) -> ConnectionRefusal? {
        if conn.remote == localID { return .connectionToSelf }
        let events = state.withLock { $0.events }
        if let reason = events.refuse(conn.remote, conn.addressKey, conn.direction) { return .refused(reason) }
        let reserved = events.isReserved(conn.remote)
        let replaced = state.withLock { s -> (Libp2pConnection?, ConnectionRefusal?) in
            if s.closed { return (nil, .refused("shutting down")) }
            let ticketID = ObjectIdentifier(conn.channel)
            if conn.direction == .inbound, !reserved {
                let strangers = s.tickets.values.filter { $0.direction == .inbound && $0.established && !$0.reserved }.count
                if strangers >= options.maxInbound {
                    return (nil, .refused("inbound connection limit (\(options.maxInbound)) reached"))
                }
            }
            var existing: Libp2pConnection?
            if let e = s.connections[conn.remote], !e.isClosed {
                guard DuplicateConnectionRule.keeps(conn.origin, over: e.origin) else {
                    return (nil, .refused("duplicate connection (the existing one is kept)"))
                }
                existing = e
            }
            s.connections[conn.remote] = conn
            s.tickets[ticketID]?.established = true
            s.tickets[ticketID]?.reserved = reserved
            return (existing, nil)
        }
        if let refusal = replaced.1 { return refusal }
        replaced.0?.close(reason: "duplicate connection (replaced by a preferred one)")
        return nil
    }

    // MARK: Streams

    private func acceptStreams(_ conn: Libp2pConnection) async {
        let negotiating = BoundedCounter(limit: options.maxNegotiatingStreams)
        await withDiscardingTaskGroup { group in
            for await stream in conn.session.inboundStreams {
                guard negotiating.tryIncrement() else {
                    logger.debug("stream refused: too many negotiating", metadata: ["peer": "\(conn.remote.short)"])
                    stream.reset()
                    continue
                }
                group.addTask {
                    await self.handle(stream, on: conn) { negotiating.decrement() }
                }
            }
        }
    }

    private func handle(_ stream: YamuxStream, on conn: Libp2pConnection, negotiated: () -> Void) async {
        var reader = stream.reader()
        let supported = Set(handlers.keys).union([Self.identifyID, Self.identifyPushID])
        let proto: String
        do {
            proto = try await withDeadline(options.streamNegotiationTimeout, onExpiry: { stream.reset() }) {
                try await Multistream.accept(supported, reader: &reader) { try await stream.write($0) }
            }
        } catch {
            negotiated()
            logger.debug("stream negotiation failed", metadata: ["peer": "\(conn.remote.short)", "error": "\(error)"])
            stream.reset()
            return
        }
        negotiated()
        let limit = options.streamsPerProtocol[proto] ?? options.defaultStreamsPerProtocol
        guard conn.beginInbound(proto, limit: limit) else {
            logger.debug("stream refused: protocol limit", metadata: ["peer": "\(conn.remote.short)", "protocol": "\(proto)",
                                                                      "limit": "\(limit)"])
            stream.reset()
            return
        }
        defer { conn.endInbound(proto) }
        var inbound = InboundStream(connection: conn, stream: stream, protocolID: proto, reader: reader)
        do {
            switch proto {
            case Self.identifyID:
                stream.stopReading()
                try await stream.write(identifyMessage(for: conn))
                stream.close()
            case Self.identifyPushID:
                if let msg = try await inbound.reader.readMessage(limit: Self.identifyLimit) {
                    apply(identify: msg, to: conn)
                }
                stream.close()
            default:
                try await handlers[proto]!(&inbound)
            }
        } catch {
            logger.debug("stream ended with an error", metadata: ["peer": "\(conn.remote.short)", "protocol": "\(proto)",
                                                                   "error": "\(error)"])
            stream.reset()
        }
    }

    /// Opens a stream for `proto` (header and protocol in one write) and waits for the echo.
    package func openStream(_ conn: Libp2pConnection, protocol proto: String,
                    timeout: Duration = .seconds(10)) async throws -> (YamuxStream, ByteReader<YamuxStream.Source>) {
        let stream = try conn.session.openStream()
        var reader = stream.reader()
        do {
            try await withDeadline(timeout, onExpiry: { stream.reset() }) {
                try await Multistream.select(proto, reader: &reader) { try await stream.write($0) }
            }
        } catch {
            stream.reset()
            throw error
        }
        return (stream, reader)
    }

    // MARK: Identify and ping

    private func identifyMessage(for conn: Libp2pConnection) throws -> ByteBuffer {
        var m = Identify_Pb_Identify()
        m.protocolVersion = "ipfs/0.1.0"
        m.agentVersion = options.agentVersion
        m.publicKey = Data(LibP2PKey.encodePublicKey(ed25519: Array(identity.publicKey.rawRepresentation)))
        m.listenAddrs = listenAddrs.map { a in
            var plain = a
            plain.peerID = nil
            return Data(plain.bytes)
        }
        if let remote = conn.channel.remoteAddress, let ip = remote.ipAddress, let port = remote.port {
            m.observedAddr = Data(Multiaddr(hostPort: ip, port: UInt16(clamping: port)).bytes)
        }
        m.protocols = protocols
        let body: [UInt8] = try m.serializedBytes()
        var out = ByteBuffer()
        Varint.write(UInt64(body.count), to: &out)
        out.writeBytes(body)
        return out
    }

    private func apply(identify msg: ByteBuffer, to conn: Libp2pConnection) {
        guard let m = try? Identify_Pb_Identify(serializedBytes: Array(msg.readableBytesView)) else {
            logger.debug("identify message does not decode", metadata: ["peer": "\(conn.remote.short)"])
            return
        }
        if m.hasPublicKey, LibP2PKey.decodeEd25519PublicKey(Array(m.publicKey)).map({ PeerID(publicKey: $0) }) != conn.remote {
            logger.warning("identify names a key that is not the connection's", metadata: ["peer": "\(conn.remote.short)"])
            return
        }
        conn.state.withLock { s in
            s.protocols = m.protocols
            s.agentVersion = m.agentVersion
            s.identified = true
        }
        state.withLock { $0.events }.identified(conn)
    }

    /// Asks the peer who it is and what it speaks.
    private func identify(_ conn: Libp2pConnection) async {
        do {
            var (stream, reader) = try await openStream(conn, protocol: Self.identifyID)
            stream.closeWrite()
            guard let msg = try await reader.readMessage(limit: Self.identifyLimit) else { throw LinkError.eof }
            stream.close()
            apply(identify: msg, to: conn)
        } catch {
            logger.debug("identify failed", metadata: ["peer": "\(conn.remote.short)", "error": "\(error)"])
        }
    }

    private static func servePing(_ s: inout InboundStream) async throws {
        while true {
            if s.reader.buffer.readableBytes == 0 {
                guard try await s.reader.fill(upTo: 32) else { break }
            }
            let payload = try await s.reader.readExactly(32)
            try await s.stream.write(payload)
        }
        s.stream.close()
    }

    /// One libp2p ping round trip.
    package func ping(_ conn: Libp2pConnection) async throws -> Duration {
        var (stream, reader) = try await openStream(conn, protocol: Self.pingID)
        defer { stream.close() }
        var payload = ByteBuffer()
        for _ in 0..<4 { payload.writeInteger(UInt64.random(in: 0...UInt64.max)) }
        let start = ContinuousClock.now
        try await stream.write(payload)
        let echo = try await reader.readExactly(32)
        guard echo == payload else { throw LinkError.protocolViolation("ping echo differs") }
        return ContinuousClock.now - start
    }

    /// Closes a connection whose socket write has not finished for `writeTimeout`: the peer
    /// stopped reading, and what is queued for it would only wait (and hold its budget).
    private func watchWrites(_ conn: Libp2pConnection) async {
        let tick = max(.milliseconds(100), options.writeTimeout / 4)
        while !Task.isCancelled, !conn.isClosed {
            do {
                try await Task.sleep(for: tick)
            } catch {
                return
            }
            if let since = conn.writeStalledSince, ContinuousClock.now - since > options.writeTimeout {
                conn.close(reason: "does not read: a write waited over \(options.writeTimeout)", code: .internalError)
                return
            }
        }
    }

    /// yamux pings every `keepAliveInterval`; a peer that answers none for three intervals is gone.
    private func keepAlive(_ conn: Libp2pConnection) async {
        while !Task.isCancelled, !conn.isClosed {
            do {
                try await Task.sleep(for: options.keepAliveInterval)
                try await withTimeout(options.keepAliveInterval * 3, "keep-alive ping") {
                    try await conn.session.ping()
                }
            } catch is CancellationError {
                return
            } catch {
                if !conn.isClosed { conn.close(reason: "\(error)") }
                return
            }
        }
    }
}
