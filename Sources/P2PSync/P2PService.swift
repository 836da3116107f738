import Primitives
import Chain
import Sync
import Config
import Crypto
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import Telemetry
import Libp2p

/// The node's P2P layer on ev-node's libp2p stack (SPEC §8; p2p-wire.md): TCP, Noise, yamux,
/// identify and ping (`Libp2pHost`); FloodSub gossip of `P2PSignedHeader` and `P2PData` on the
/// chain's two go-header topics; go-header's exchange server and client on
/// `/<chainID>-{headerSync,dataSync}/header-ex/v0.0.3`. Peers' heights come from their head
/// answers, verified by `ProvenPeerHeights` (SPEC §6); peers that send bad messages are
/// disconnected and banned; configured peers are redialled with backoff.
package final class P2PService: Service, Sendable {
    package let localID: PeerID
    package let chainID: String
    let config: P2PConfig
    /// `p2p.blocked_peers` / `p2p.allowed_peers`, applied after every handshake and before every dial.
    let gate: PeerGate
    /// Set when a peer list does not parse: `run()` fails with it.
    private let gateError: P2PError?
    let settings: P2PSettings
    let source: any BlockSource
    let validator: any GossipValidator
    /// The heights peers proved with the genesis proposer's signed header (SPEC §6 condition 2).
    package let provenHeights: ProvenPeerHeights
    let logger: Logger
    let group: any EventLoopGroup
    let host: Libp2pHost
    /// Header-ex answers this node's own requests hold at once, all peers together (go-header's
    /// exchange is the service's, so its budget is too, not the host's).
    let exchangeClientBudget: BufferBudget
    let floodsub: FloodSub
    let headerNetwork: String
    let dataNetwork: String
    let headerTopic: String
    let dataTopic: String

    /// Blocks received by gossip (header and data paired, validated), each once, with the peer
    /// that sent the header. Single consumer; bounded (oldest dropped first); finishes on shutdown.
    package let receivedBlocks: AsyncStream<ReceivedBlock>
    let receivedContinuation: AsyncStream<ReceivedBlock>.Continuation
    private let stopSignal: AsyncStream<Never>
    private let stopContinuation: AsyncStream<Never>.Continuation

    struct PeerState {
        var head: UInt64?
        var headAt: ContinuousClock.Instant?
        var lastResponseAt: ContinuousClock.Instant?
        var requestsAnswered = 0
        var requestsFailed = 0
        var inFlight = 0
        var penalty = 0
        var dialTarget: P2PPeerAddress?
        /// The connection this state belongs to (`Libp2pConnection.serial`): it goes when that
        /// connection ends, unless a replacement took over.
        var connection: UInt64?
    }

    enum TargetPhase: Sendable, Equatable { case connecting, connected, backingOff, isSelf, gated(String) }

    struct TargetState {
        var phase: TargetPhase = .connecting
        /// The identity this node's own dial to the target's address proved in its handshake
        /// (the id the address names, if it names one). Only its answers count as this
        /// configured peer's, on whichever connection the two nodes keep.
        var peerID: PeerID?
        var failures = 0
        var lastError: String?
        /// The peer answered a head request (a proven head or an empty chain) as `peerID`.
        var answered = false
    }

    enum Lifecycle { case idle, running, stopping, stopped }

    struct Registry {
        var lifecycle = Lifecycle.idle
        var listenAddress: SocketAddress?
        var targets: [P2PPeerAddress: TargetState] = [:]
        /// Connected peers' state, by identity; an entry goes with its connection (`disconnected`).
        var peers: [PeerID: PeerState] = [:]
        var bans: BanList
        var pending: PendingGossip
        var receivedDropped = 0
        var isRunning: Bool {
            if case .running = lifecycle { return true }
            return false
        }
    }

    let registry: Mutex<Registry>
    /// ev-node's `p2p_*` series; nil when not counted.
    package let metrics: P2PSeries?
    let gossipBytes: GossipByteCells?

    package init(config: P2PConfig, nodeKey: KeyFile, chainID: String, source: any BlockSource,
                validator: any GossipValidator, provenHeights: ProvenPeerHeights,
                settings: P2PSettings = P2PSettings(),
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                metrics: P2PSeries? = nil,
                logger: Logger = Logger(label: "evnode.p2p")) {
        self.metrics = metrics
        gossipBytes = metrics.map(GossipByteCells.init)
        self.config = config
        do {
            gate = try PeerGate(config: config)
            gateError = nil
        } catch {
            gate = PeerGate()
            gateError = error
        }
        self.localID = PeerID(key: nodeKey)
        self.chainID = chainID
        self.source = source
        self.validator = validator
        self.provenHeights = provenHeights
        self.settings = settings
        exchangeClientBudget = BufferBudget(nodeCapacity: settings.exchangeClientBytes,
                                            accountCapacity: settings.exchangeClientBytes)
        self.group = eventLoopGroup
        var logger = logger
        logger[metadataKey: "node"] = "\(PeerID(key: nodeKey).short)"
        self.logger = logger
        headerNetwork = HeaderExchange.headerNetwork(chainID: chainID)
        dataNetwork = HeaderExchange.dataNetwork(chainID: chainID)
        headerTopic = HeaderExchange.topic(network: headerNetwork)
        dataTopic = HeaderExchange.topic(network: dataNetwork)
        registry = Mutex(Registry(bans: BanList(peerCapacity: settings.maxBans, addressCapacity: settings.maxAddressBans),
                                  pending: PendingGossip(limits: .init(
            headerRecords: max(1, settings.pendingHeaderCapacity), dataWindow: settings.pendingDataWindow,
            dataBytes: max(0, settings.pendingDataBudgetBytes)))))
        (receivedBlocks, receivedContinuation) = AsyncStream.makeStream(
            of: ReceivedBlock.self, bufferingPolicy: .bufferingNewest(max(1, settings.receivedBufferCapacity)))
        (stopSignal, stopContinuation) = AsyncStream.makeStream(of: Never.self)

        // The callbacks below reach `self` only once init is done (they run on connections).
        let box = ServiceBox()
        var fsOptions = FloodSub.Options()
        fsOptions.maxRPCBytes = settings.maxGossipBytes
        fsOptions.seenCapacity = settings.seenSetCapacity
        fsOptions.readBudgetBytes = settings.gossipReadBudgetBytes
        floodsub = FloodSub(identity: nodeKey.privateKey, topics: [headerTopic, dataTopic], options: fsOptions,
                            logger: logger,
                            validate: { box.service?.gossipReceived($0) ?? .ignore },
                            punish: { box.service?.punish($0, reason: $1) },
                            penalize: { box.service?.addPenalty($0, reason: $1) })
        let fs = floodsub
        let exchangeLimiter = SlotLimiter<PeerID>(perKey: settings.exchangeRequestsPerPeer, total: settings.exchangeRequestsNode)
        let headerServer = HeaderExchangeServer(kind: .header, source: source, logger: logger, limiter: exchangeLimiter,
                                                writeDeadline: settings.exchangeWriteDeadline)
        let dataServer = HeaderExchangeServer(kind: .data, source: source, logger: logger, limiter: exchangeLimiter,
                                              writeDeadline: settings.exchangeWriteDeadline)
        var hostOptions = Self.hostOptions(settings, headerNetwork: headerNetwork, dataNetwork: dataNetwork)
        hostOptions.traffic = metrics.map(P2PSeriesTraffic.init(series:))
        host = Libp2pHost(identity: nodeKey.privateKey, handlers: [
            FloodSub.protocolID: { try await fs.serve(&$0) },
            HeaderExchange.protocolID(network: headerNetwork): { try await headerServer.serve(&$0) },
            HeaderExchange.protocolID(network: dataNetwork): { try await dataServer.serve(&$0) },
        ], options: hostOptions, group: eventLoopGroup, logger: logger)
        box.service = self
        let host = self.host
        host.setEvents(.init(
            connected: { conn in box.service?.connected(conn) },
            whileConnected: { conn in await box.service?.whileConnected(conn) },
            identified: { _ in },
            disconnected: { conn in box.service?.disconnected(conn) },
            refuse: { id, address, direction in box.service?.refusal(id, address: address, direction: direction) },
            refuseAddress: { address in box.service?.refusal(address: address) },
            isReserved: { id in box.service?.reservesSlot(for: id) ?? false }))
    }

    static func hostOptions(_ settings: P2PSettings, headerNetwork: String, dataNetwork: String) -> Libp2pHost.Options {
        var o = Libp2pHost.Options()
        o.handshakeTimeout = settings.handshakeTimeout
        o.inboundHandshakeTimeout = settings.inboundHandshakeTimeout
        o.connectTimeout = settings.connectTimeout
        o.keepAliveInterval = settings.keepAliveInterval
        o.maxInbound = settings.maxInboundConnections
        o.maxOutbound = settings.maxOutboundConnections
        o.maxInboundHandshakes = settings.maxInboundHandshakes
        o.maxInboundPerAddress = settings.maxInboundPerAddress
        o.sendBufferPerConnection = settings.sendBufferPerConnectionBytes
        o.sendBufferNode = settings.sendBufferNodeBytes
        o.writeTimeout = settings.writeTimeout
        o.yamux.maxStreams = settings.maxStreamsPerConnection
        o.yamux.maxInboundStreams = settings.maxInboundStreamsPerConnection
        o.nodeInboundStreams = settings.maxInboundStreamsNode
        // One gossip stream per peer (a newer one replaces the older: two at once while it
        // does); header-ex streams are capped again by the servers' limiter once their request
        // is read.
        o.streamsPerProtocol = [
            FloodSub.protocolID: 2,
            HeaderExchange.protocolID(network: headerNetwork): settings.exchangeRequestsPerPeer,
            HeaderExchange.protocolID(network: dataNetwork): settings.exchangeRequestsPerPeer,
        ]
        return o
    }

    // MARK: Lifecycle

    /// Binds the listener, then owns everything until a graceful shutdown or cancellation: the
    /// listener and the connections it accepts, one redial loop per configured peer (each runs
    /// its own connection), the head polls. On the way out the listener and every connection
    /// close; `receivedBlocks` finishes. Runs once.
    package func run() async throws {
        if let gateError {
            finishStreams()
            throw gateError
        }
        if !gate.isOpen {
            logger.info("connection gater on", metadata: [
                "blocked_peers": "\(gate.blocked.count)", "allowed_peers": "\(gate.allowed.count)"])
        }
        let canStart = registry.withLock { r -> Bool in
            guard case .idle = r.lifecycle else { return false }
            r.lifecycle = .running
            return true
        }
        guard canStart else { throw P2PError.alreadyStarted }
        let listener: Libp2pHost.Listener
        do {
            listener = try await host.bind(host: config.listen.host, port: config.listen.port)
        } catch {
            registry.withLock { $0.lifecycle = .stopped }
            finishStreams()
            throw P2PError.bindFailed(address: config.listen.description, reason: "\(error)")
        }
        host.setListenAddrs(advertisedAddrs(bound: listener.address))
        var targets: [P2PPeerAddress] = []
        for peer in config.peers where !targets.contains(peer) { targets.append(peer) }
        registry.withLock { r in
            r.listenAddress = listener.address
            for target in targets { r.targets[target] = TargetState() }
        }
        for target in targets where target.peerID == nil {
            logger.notice("peer given without a peer id: its identity is learned in the handshake",
                          metadata: ["peer": "\(target)"])
        }
        logger.info("P2P listening", metadata: [
            "address": "\(listenMultiaddrs.map(\.description).joined(separator: ","))", "peers": "\(targets.map(\.description).joined(separator: ","))",
            "chain_id": "\(chainID)", "peer_id": "\(localID)"])

        await withDiscardingTaskGroup { group in
            group.addTask { await self.host.accept(on: listener) }
            group.addTask { await self.pollHeads() }
            for target in targets {
                group.addTask { await self.redialLoop(target) }
            }
            await withTaskCancellationOrGracefulShutdownHandler {
                for await _ in stopSignal {}
            } onCancelOrGracefulShutdown: { [stopContinuation] in
                stopContinuation.finish()
            }
            registry.withLock { $0.lifecycle = .stopping }
            try? await listener.channel.close()
            host.closeAll()
            // Connections say goodbye (GoAway) and close within the writer's flush or the 2 s
            // backstop; only then are the loops cancelled, with the outbound connections they
            // run. Cancelled already (not a graceful shutdown): nothing is waited for.
            let deadline = ContinuousClock.now + .seconds(3)
            while host.openChannelCount > 0, ContinuousClock.now < deadline {
                do { try await Task.sleep(for: .milliseconds(20)) } catch { break }
            }
            group.cancelAll()
        }
        registry.withLock { $0.lifecycle = .stopped }
        finishStreams()
        logger.info("P2P stopped")
    }

    /// Nothing more is received: the consumer of `receivedBlocks` sees its end.
    func finishStreams() {
        receivedContinuation.finish()
        stopContinuation.finish()
    }

    /// The addresses identify advertises: the bound one, or every local interface's for 0.0.0.0.
    private func advertisedAddrs(bound: SocketAddress) -> [Multiaddr] {
        let port = UInt16(clamping: bound.port ?? 0)
        let ip = bound.ipAddress ?? "127.0.0.1"
        if ip == "0.0.0.0" || ip == "::" {
            let ifaces = (try? System.enumerateDevices()) ?? []
            let addrs = ifaces.compactMap { d -> Multiaddr? in
                guard let a = d.address, a.protocol == .inet, let host = a.ipAddress else { return nil }
                return Multiaddr(hostPort: host, port: port)
            }
            if !addrs.isEmpty { return addrs }
            return [Multiaddr(hostPort: "127.0.0.1", port: port)]
        }
        return [Multiaddr(hostPort: ip, port: port)]
    }

    /// The bound listen address while running.
    package var listenAddress: SocketAddress? { registry.withLock { $0.listenAddress } }

    /// This node's listen multiaddrs, each ending in `/p2p/<peer id>` (what ev-node's
    /// `--evnode.p2p.peers` takes).
    package var listenMultiaddrs: [Multiaddr] {
        host.listenAddrs.map { var a = $0; a.peerID = localID; return a }
    }

    // MARK: Queries

    package var peers: [PeerInfo] {
        let conns = host.connections.filter { !$0.isClosed }
        // Only the connected peers' entries are read, under one lock; the map is not copied.
        let states = registry.withLock { r in conns.map { r.peers[$0.remote] ?? PeerState() } }
        return zip(conns, states).map { Self.info($0, $1) }.sorted { $0.id < $1.id }
    }

    /// Connected peers, without building their `PeerInfo`s.
    package var peerCount: Int { host.connections.reduce(0) { $0 + ($1.isClosed ? 0 : 1) } }

    /// One connected peer, nil when it is not connected.
    package func peer(_ id: PeerID) -> PeerInfo? {
        guard let conn = host.connection(to: id), !conn.isClosed else { return nil }
        return Self.info(conn, registry.withLock { $0.peers[id] } ?? PeerState())
    }

    private static func info(_ c: Libp2pConnection, _ s: PeerState) -> PeerInfo {
        PeerInfo(id: c.remote, remoteAddress: c.remoteAddress, direction: c.direction,
                 dialTarget: s.dialTarget, connectedAt: c.connectedAt, announcedHeight: s.head,
                 lastAnnouncedAt: s.headAt, lastResponseAt: s.lastResponseAt,
                 requestsAnswered: s.requestsAnswered, requestsFailed: s.requestsFailed,
                 penalty: s.penalty, protocols: c.protocols, agentVersion: c.agentVersion)
    }

    /// The highest height any peer proved during this process's life (SPEC §6): it stays after
    /// the peer disconnects. nil when none proved one.
    package var maxPeerHeight: UInt64? { provenHeights.highest }
    /// How far range sync fetches: the proven height, or beyond it a height claimed by a validly
    /// signed header of a key the chain has not named yet (see `ProvenPeerHeights.fetchTarget`).
    package var fetchTargetHeight: UInt64? { provenHeights.fetchTarget }

    package var dialTargets: [DialTargetInfo] {
        let live = Set(host.connections.filter { !$0.isClosed }.map(\.remote))
        return registry.withLock { r in
            r.targets.map { target, t in
                let state: DialTargetInfo.State
                if let id = t.peerID, live.contains(id), t.phase.isDialled {
                    state = .connected(id)
                } else {
                    switch t.phase {
                    case .connecting, .connected: state = .connecting
                    case .backingOff: state = .backingOff
                    case .isSelf: state = .isSelf
                    case .gated(let reason): state = .gated(reason: reason)
                    }
                }
                return DialTargetInfo(target: target, state: state, consecutiveFailures: t.failures, lastError: t.lastError)
            }
        }.sorted { $0.target.description < $1.target.description }
    }

    package var activeBans: [BanInfo] {
        let now = NIODeadline.now()
        return registry.withLock { r in
            r.bans.active(now: now).map { key, until in
                let subject: BanInfo.Subject
                switch key {
                case .peer(let id): subject = .peer(id)
                case .address(let ip): subject = .address(ip)
                }
                return BanInfo(subject: subject, remaining: .nanoseconds((until - now).nanoseconds))
            }
        }
    }

    package func isBanned(peer: PeerID) -> Bool {
        let now = NIODeadline.now()
        return registry.withLock { $0.bans.isBanned(.peer(peer), now: now) }
    }

    /// Whether `ip` (an IPv4 address, or any address of an IPv6 /64) is banned.
    package func isBanned(address ip: String) -> Bool {
        let now = NIODeadline.now()
        let key = AddressKey.of(ip: ip) ?? ip
        return registry.withLock { $0.bans.isBanned(.address(key), now: now) }
    }

    package var receivedBlocksDropped: Int { registry.withLock { $0.receivedDropped } }

    /// Penalty points a peer collected (duplicates and the like; a ban resets nothing).
    package func penalty(of peer: PeerID) -> Int { registry.withLock { $0.peers[peer]?.penalty ?? 0 } }

    /// One ping round trip to a connected peer.
    package func ping(_ peer: PeerID) async throws -> Duration {
        guard let conn = host.connection(to: peer) else { throw P2PError.notRunning }
        return try await host.ping(conn)
    }

    // MARK: Node → peers

    /// Gossips a block (the aggregator's own): the header, then the data, like ev-node.
    package func broadcast(block: P2PBlock) {
        let header = P2PEnvelope.header(encodedSignedHeader: block.encodedSignedHeader, daHeightHint: 0)
        let data = P2PEnvelope.data(encodedData: block.encodedData, daHeightHint: 0)
        gossipBytes?.headerSent.add(header.count)
        gossipBytes?.dataSent.add(data.count)
        floodsub.publish(topic: headerTopic, data: header)
        floodsub.publish(topic: dataTopic, data: data)
    }

    /// Reports a peer whose block failed a later check: it is disconnected and banned.
    package func penalize(peer: PeerID, reason: String) {
        punish(peer, reason: reason)
    }

    // MARK: Bans and penalties

    func punish(_ peer: PeerID, reason: String) {
        let now = NIODeadline.now()
        let until = now + settings.banDuration.timeAmount
        let conn = host.connection(to: peer)
        registry.withLock { r in
            r.bans.ban(.peer(peer), until: until, now: now)
            // By address too (an IPv6 /64 as a whole), so that a new identity from there is
            // refused before its handshake; loopback setups are told apart by id only.
            if let conn, !settings.addressBanExempt.contains(conn.remoteIP) {
                r.bans.ban(.address(conn.addressKey), until: until, now: now)
            }
        }
        logger.warning("banning peer", metadata: ["peer": "\(peer)", "reason": "\(reason)",
                                                  "duration": "\(settings.banDuration)"])
        conn?.close(reason: "banned: \(reason)", code: .protocolError)
    }

    func addPenalty(_ peer: PeerID, reason: String) {
        // Points live with the peer's connection state: a peer already gone leaves no entry behind.
        let points = registry.withLock { r -> Int in
            r.peers[peer]?.penalty += 1
            return r.peers[peer]?.penalty ?? 1
        }
        logger.info("penalising peer", metadata: ["peer": "\(peer)", "reason": "\(reason)", "points": "\(points)"])
        if points >= settings.penaltyBanThreshold {
            punish(peer, reason: "\(points) penalty points, last: \(reason)")
        }
    }

    /// Why a handshaken connection with `peer` at `address` (an `AddressKey`) is refused, if it
    /// is: the peer lists (`gate`), then bans. Asked before any stream is accepted on it.
    func refusal(_ peer: PeerID, address: String, direction: PeerDirection) -> String? {
        let now = NIODeadline.now()
        return registry.withLock { r -> String? in
            guard r.isRunning else { return "shutting down" }
            // Only configured addresses are dialled; an inbound connection counts as a
            // configured peer's once a dial of ours proved that id at a configured address.
            let configured = direction == .outbound || r.targets.values.contains { $0.peerID == peer }
            if let reason = gate.refusal(peer, dialledConfiguredAddress: configured) { return reason }
            if r.bans.isBanned(.peer(peer), now: now) { return "peer \(peer) is banned" }
            if r.bans.isBanned(.address(address), now: now) { return "address \(address) is banned" }
            return nil
        }
    }

    /// Why a TCP connection from `address` (an `AddressKey`) is refused before its handshake.
    func refusal(address: String) -> String? {
        let now = NIODeadline.now()
        return registry.withLock { r -> String? in
            guard r.isRunning else { return "shutting down" }
            return r.bans.isBanned(.address(address), now: now) ? "address \(address) is banned" : nil
        }
    }

    /// Configured peers (by the id their address names or the one their handshake proved) keep
    /// inbound slots that strangers cannot take.
    func reservesSlot(for peer: PeerID) -> Bool {
        let text = peer.description
        return registry.withLock { r in
            r.targets.contains { target, state in target.peerID == text || state.peerID == peer }
        }
    }

    // MARK: Connections

    func connected(_ conn: Libp2pConnection) {
        registry.withLock { r in r.peers[conn.remote, default: PeerState()].connection = conn.serial }
        logger.info("peer connected", metadata: ["peer": "\(conn.remote)", "address": "\(conn.remoteAddress)",
                                                  "direction": "\(conn.direction.rawValue)"])
    }

    /// A connection's work for its life, among the connection's own tasks (the host cancels it
    /// when the connection closes): the gossip stream to the peer, and its first head request.
    func whileConnected(_ conn: Libp2pConnection) async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.floodsub.peerConnected(conn, host: self.host) }
            group.addTask { await self.askHead(conn) }
        }
    }

    func disconnected(_ conn: Libp2pConnection) {
        floodsub.peerDisconnected(conn)
        // Per-identity state goes with its connection, or strangers rotating identities would
        // grow the map forever. A connection that replaced this one (one per peer pair) has set
        // its own serial and keeps the entry.
        registry.withLock { r in
            if r.peers[conn.remote]?.connection == conn.serial { r.peers.removeValue(forKey: conn.remote) }
        }
        logger.info("peer disconnected", metadata: ["peer": "\(conn.remote)", "address": "\(conn.remoteAddress)",
                                                     "reason": "\(conn.closeReason ?? "closed")"])
    }

    /// Dials a configured peer and redials it with backoff whenever the connection ends.
    ///
    /// The dial also proves who the configured peer is (SPEC §6: only answers of configured
    /// peers, on connections this node dialled itself, release the catchup gate). Both ends of a
    /// pair that dial each other keep one connection (`DuplicateConnectionRule`), often the
    /// peer's: so a connection the peer opened is not enough to skip the dial until one dial of
    /// ours has proven the identity at this address. That dial completes its handshake and is
    /// then kept or refused as a duplicate; either way the identity is proven, and from then on
    /// its answers count on the kept connection, which the handshake authenticated too.
    private func redialLoop(_ target: P2PPeerAddress) async {
        var backoff = Backoff(initial: settings.redialInitialDelay, maximum: settings.redialMaxDelay)
        let expected = target.peerID.flatMap { PeerID(string: $0) }
        if let expected, let reason = gate.refusal(expected, dialledConfiguredAddress: true) {
            gated(target, reason: reason)
            return
        }
        while !Task.isCancelled, registry.withLock({ $0.isRunning }) {
            if let proven = registry.withLock({ $0.targets[target]?.peerID }),
               let existing = host.connection(to: proven), !existing.isClosed {
                // Connected already (the peer dialled us, or our dial was kept): wait for that
                // connection to end.
                await waitClosed(existing)
                continue
            }
            registry.withLock { $0.targets[target]?.phase = .connecting }
            do {
                // The connection runs in this loop's task until it ends.
                try await host.dial(host: target.host, port: target.port, expected: expected) { conn in
                    proveIdentity(of: target, as: conn.remote)
                    if expected == nil {
                        logger.info("peer at \(target) is \(conn.remote)")
                    }
                    backoff.reset()
                    // Asked again now that the identity counts (the head request the connection
                    // event started may have been answered before).
                    await askHead(conn)
                }
            } catch let notKept as DialNotKept where notKept.reason == .connectionToSelf {
                registry.withLock { $0.targets[target]?.phase = .isSelf }
                logger.notice("configured peer is this node itself; not dialling it again", metadata: ["peer": "\(target)"])
                return
            } catch let notKept as DialNotKept where notKept.remote != localID
                && gate.refusal(notKept.remote, dialledConfiguredAddress: true) != nil {
                // The address named no id, and the one that answered there is refused.
                gated(target, reason: gate.refusal(notKept.remote, dialledConfiguredAddress: true)!)
                return
            } catch let notKept as DialNotKept where notKept.remote != localID
                && host.connection(to: notKept.remote).map({ !$0.isClosed }) == true {
                // The handshake proved the identity, and the pair keeps the connection the peer
                // opened: that connection now carries this configured peer's answers.
                proveIdentity(of: target, as: notKept.remote)
                backoff.reset()
                if let kept = host.connection(to: notKept.remote) {
                    await askHead(kept)
                }
                continue
            } catch {
                let message = "\(error)"
                let failures = registry.withLock { r -> Int in
                    r.targets[target]?.phase = .backingOff
                    r.targets[target]?.failures += 1
                    r.targets[target]?.lastError = message
                    return r.targets[target]?.failures ?? 0
                }
                if failures == 1 || failures % 10 == 0 {
                    logger.warning("cannot connect to peer", metadata: ["peer": "\(target)", "error": "\(message)",
                                                                        "failures": "\(failures)"])
                }
            }
            try? await Task.sleep(for: backoff.next())
        }
    }

    /// A configured peer the peer lists refuse: never dialled (again). It still counts as
    /// configured for the catchup, which names it among the peers that never answered.
    private func gated(_ target: P2PPeerAddress, reason: String) {
        registry.withLock { $0.targets[target]?.phase = .gated(reason) }
        logger.warning("configured peer is refused by the peer lists; not dialling it",
                       metadata: ["peer": "\(target)", "reason": "\(reason)"])
    }

    /// This node's own dial to `target` proved that `peer` is there.
    private func proveIdentity(of target: P2PPeerAddress, as peer: PeerID) {
        registry.withLock { r in
            if r.targets[target]?.peerID != peer { r.targets[target]?.answered = false }
            r.targets[target]?.phase = .connected
            r.targets[target]?.peerID = peer
            r.targets[target]?.failures = 0
            r.targets[target]?.lastError = nil
            r.peers[peer]?.dialTarget = target
        }
    }

    /// Whether `peer` is a configured peer whose identity this node's own dial proved.
    private func isProvenConfiguredPeer(_ peer: PeerID) -> Bool {
        registry.withLock { r in r.targets.values.contains { $0.peerID == peer && $0.phase.isDialled } }
    }

    /// The configured peers (as given in `--p2p.peers`) that have not answered a head request
    /// over an identity this node proved by dialling them: what the catchup gate waits for.
    package var silentConfiguredPeers: [String] {
        registry.withLock { r in
            // A target the peer lists refuse stays here: it never answers, and the catchup must
            // name it rather than count it as absent (SPEC §6 fails closed without answers).
            r.targets.filter { !$0.value.answered && $0.value.phase != .isSelf }.map(\.key.description)
        }.sorted()
    }

    private func waitClosed(_ conn: Libp2pConnection) async {
        while !Task.isCancelled, !conn.isClosed {
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    // MARK: Heads (proven heights)

    private enum HeadPollEvent: Sendable {
        case tick
        case answered(ObjectIdentifier)
    }

    /// Asks every connected peer for its head each `headPollInterval`, each peer on its own: a
    /// peer that answers slowly, or not at all until `askHead`'s timeout, delays only its own
    /// next ask, never the others'. At most `headPollConcurrency` asks run at once; when more
    /// peers are due, those asked longest ago go first.
    private func pollHeads() async {
        let interval = settings.headPollInterval
        let limit = max(1, settings.headPollConcurrency)
        await withTaskGroup(of: HeadPollEvent.self) { group in
            var asking: Set<ObjectIdentifier> = []
            var lastAsked: [ObjectIdentifier: ContinuousClock.Instant] = [:]
            group.addTask {
                try? await Task.sleep(for: interval)
                return .tick
            }
            while let event = await group.next() {
                switch event {
                case .answered(let id):
                    asking.remove(id)
                case .tick:
                    guard !Task.isCancelled, registry.withLock({ $0.isRunning }) else {
                        group.cancelAll()
                        continue
                    }
                    let open = host.connections.filter { !$0.isClosed }
                    let live = Set(open.map { ObjectIdentifier($0) })
                    lastAsked = lastAsked.filter { live.contains($0.key) }
                    let due = open.filter { !asking.contains(ObjectIdentifier($0)) }.sorted { a, b in
                        // Never asked first, then the longest ago.
                        switch (lastAsked[ObjectIdentifier(a)], lastAsked[ObjectIdentifier(b)]) {
                        case (nil, .some): return true
                        case (.some(let x), .some(let y)): return x < y
                        default: return false
                        }
                    }
                    for conn in due.prefix(max(0, limit - asking.count)) {
                        let id = ObjectIdentifier(conn)
                        asking.insert(id)
                        lastAsked[id] = .now
                        group.addTask {
                            await self.askHead(conn)
                            return .answered(id)
                        }
                    }
                    group.addTask {
                        try? await Task.sleep(for: interval)
                        return .tick
                    }
                }
            }
        }
    }

    /// Asks a peer for its head on headerSync and records the claim with its signed header.
    func askHead(_ conn: Libp2pConnection) async {
        let peer = conn.remote
        let bodies: [[UInt8]]
        do {
            bodies = try await HeaderExchange.request(HeaderExchange.headRequest(), network: headerNetwork, on: conn,
                                                      host: host, budget: exchangeClientBudget,
                                                      timeout: settings.requestTimeout)
        } catch {
            if conn.isClosed { return }
            registry.withLock { $0.peers[peer]?.requestsFailed += 1 }
            logger.debug("head request failed", metadata: ["peer": "\(peer.short)", "error": "\(error)"])
            return
        }
        // Only a configured peer's answer, as the identity this node's own dial proved, may
        // release the catchup gate; anyone's proven height holds it back (SPEC §6).
        let configured = isProvenConfiguredPeer(peer)
        guard let body = bodies.first else {
            // NOT_FOUND (or a stream closed without an answer): an empty chain, an answer
            // with nothing to prove.
            provenHeights.record(peer: peer.description, claimed: 0, header: nil, fromConfiguredPeer: configured)
            registry.withLock { r in
                r.peers[peer]?.head = 0
                r.peers[peer]?.headAt = .now
                if configured { Self.noteAnswered(peer, in: &r) }
            }
            return
        }
        let signed: SignedHeader
        do {
            signed = try decodeHeader(body)
        } catch {
            punish(peer, reason: "head answer: \(error)")
            return
        }
        switch provenHeights.record(peer: peer.description, claimed: signed.header.height, header: signed,
                                    fromConfiguredPeer: configured) {
        case .proven(let h):
            registry.withLock { r in
                r.peers[peer]?.head = h
                r.peers[peer]?.headAt = .now
                if configured { Self.noteAnswered(peer, in: &r) }
            }
        case .unplaced(let h):
            // Validly signed by a key our chain has not named yet (the peer is past a rotation
            // we have not applied): its head is shown, but proves nothing and blames no one —
            // unless a hash-linked run from the header our store holds proves it.
            registry.withLock { r in
                r.peers[peer]?.head = h
                r.peers[peer]?.headAt = .now
            }
            await proveByLinks(to: h, on: conn, configured: configured)
        case .empty:
            break
        case .rejected(let reason):
            punish(peer, reason: "head answer: \(reason)")
        }
    }

    /// Asks `conn`'s peer for the headers between our store's head and its claimed head `height`
    /// (at most `ProvenPeerHeights.maxLinkedRun`, one request) and offers them, behind our stored
    /// header, as a hash-linked run (`ProvenPeerHeights.recordRun`). A claim farther above the
    /// store waits: range sync brings the store closer, and the next head answer tries again.
    /// Only a bad signature in the run blames the peer.
    private func proveByLinks(to height: UInt64, on conn: Libp2pConnection, configured: Bool) async {
        let peer = conn.remote
        let storeHeight = source.currentHeight()
        guard storeHeight > 0, height > storeHeight,
              height - storeHeight <= UInt64(ProvenPeerHeights.maxLinkedRun) else { return }
        let anchor: SignedHeader
        let bodies: [[UInt8]]
        do {
            guard let stored = try await source.blocks(from: storeHeight, count: 1).first else { return }
            anchor = try SignedHeader(decoding: stored.encodedSignedHeader)
            bodies = try await HeaderExchange.request(HeaderExchange.rangeRequest(from: storeHeight + 1, amount: height - storeHeight),
                                                      network: headerNetwork, on: conn, host: host,
                                                      budget: exchangeClientBudget, timeout: settings.requestTimeout)
        } catch {
            logger.debug("hash-linked proof not obtained", metadata: ["peer": "\(peer.short)", "to": "\(height)",
                                                                      "error": "\(error)"])
            return
        }
        var run = [anchor]
        for body in bodies.prefix(ProvenPeerHeights.maxLinkedRun) {
            guard let header = try? decodeHeader(body) else { break }
            run.append(header)
        }
        switch provenHeights.recordRun(peer: peer.description, run: run, fromConfiguredPeer: configured) {
        case .proven(let h):
            logger.debug("peer height proven by a hash-linked run", metadata: [
                "peer": "\(peer.short)", "from": "\(storeHeight)", "proven": "\(h)"])
            if configured { registry.withLock { Self.noteAnswered(peer, in: &$0) } }
        case .rejected(let reason):
            punish(peer, reason: "hash-linked run: \(reason)")
        case .unplaced, .empty:
            break
        }
    }

    private static func noteAnswered(_ peer: PeerID, in r: inout Registry) {
        for (target, state) in r.targets where state.peerID == peer { r.targets[target]?.answered = true }
    }

    func decodeHeader(_ envelope: [UInt8]) throws -> SignedHeader {
        let (body, _) = try P2PEnvelope.strip(envelope, hintField: P2PEnvelope.headerHintField)
        do throws(WireError) {
            return try SignedHeader(decoding: body)
        } catch {
            throw EnvelopeError.malformed("signed header: \(error.description)")
        }
    }

    func decodeData(_ envelope: [UInt8]) throws -> (BlockData, [UInt8]) {
        let (body, _) = try P2PEnvelope.strip(envelope, hintField: P2PEnvelope.dataHintField)
        do throws(WireError) {
            return (try BlockData(decoding: body), body)
        } catch {
            throw EnvelopeError.malformed("data: \(error.description)")
        }
    }
}

/// Lets init hand closures a reference to the service before it is complete. Weak: the closures
/// live in the service's own FloodSub and host, so a strong reference was a cycle that kept every
/// service — its host, FloodSub and pending gossip — alive after its last user let go.
final class ServiceBox: Sendable {
    private struct Reference: Sendable {
        weak var service: P2PService?
    }

    private let ref = Mutex(Reference())
    var service: P2PService? {
        get { ref.withLock { $0.service } }
        set { ref.withLock { $0.service = newValue } }
    }
}

/// `message_{receive,send}_bytes_total` of the two gossip topics, looked up once. Sent bytes are
/// counted once per published message, not once per peer it is flooded to.
struct GossipByteCells: Sendable {
    let headerReceived: CounterCell
    let dataReceived: CounterCell
    let headerSent: CounterCell
    let dataSent: CounterCell

    init(_ series: P2PSeries) {
        headerReceived = series.messageReceiveBytes.cell(["header"])
        dataReceived = series.messageReceiveBytes.cell(["data"])
        headerSent = series.messageSendBytes.cell(["header"])
        dataSent = series.messageSendBytes.cell(["data"])
    }
}

extension P2PService.TargetPhase {
    /// Whether the target is (re)dialled: not this node itself, not refused by the peer lists.
    var isDialled: Bool {
        switch self {
        case .isSelf, .gated: return false
        case .connecting, .connected, .backingOff: return true
        }
    }
}
