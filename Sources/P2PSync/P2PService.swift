import Block
import Config
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import ServiceLifecycle

/// The node's P2P layer (SPEC §8): listens for peers, dials and redials the configured ones,
/// authenticates each by its node key, keeps their announced heights, gossips and relays new
/// blocks, serves and requests height ranges, and bans peers that misbehave.
///
/// Start it with `start()` and stop it with `shutdown()`, or run it as a ServiceLifecycle
/// `Service` (`run()` returns after cancellation or graceful shutdown, with everything closed).
public final class P2PService: Service, Sendable {
    public let localID: PeerID
    public let chainID: String
    let config: P2PConfig
    let settings: P2PSettings
    let nodeKey: KeyFile
    let source: any BlockSource
    let validator: any GossipValidator
    /// Where peers' height claims are verified and kept (sticky); the catchup gate reads it.
    public let provenHeights: ProvenPeerHeights
    let logger: Logger
    let group: any EventLoopGroup
    let registry: NIOLockedValueBox<Registry>
    /// The height last announced to all peers. Its lock is held while the status frames are
    /// queued, so announcements reach each peer in the order they were made.
    let lastAnnounced: NIOLockedValueBox<UInt64?> = NIOLockedValueBox(nil)

    /// Blocks received by gossip that passed the `GossipValidator`, each once, with the peer that
    /// sent them. Single consumer. Bounded (`P2PSettings.receivedBufferCapacity`, oldest dropped
    /// first); it finishes when the service shuts down.
    public let receivedBlocks: AsyncStream<ReceivedBlock>
    private let receivedContinuation: AsyncStream<ReceivedBlock>.Continuation
    private let stopSignal: AsyncStream<Never>
    private let stopContinuation: AsyncStream<Never>.Continuation

    enum Lifecycle {
        case idle
        case running
        case stopping(Task<Void, Never>)
        case stopped
    }

    enum TargetPhase {
        case connecting, connected, backingOff, isSelf
    }

    struct TargetState {
        var phase: TargetPhase = .connecting
        var peerID: PeerID?
        var failures = 0
        var lastError: String?
    }

    struct Registry {
        var lifecycle = Lifecycle.idle
        var listener: (any Channel)?
        var listenPort: UInt16 = 0
        /// Redial loops and the height announcer; cancelled and awaited on shutdown.
        var backgroundTasks: [Task<Void, Never>] = []
        var targets: [HostPort: TargetState] = [:]
        var nextSerial: UInt64 = 1
        var nextRequestID: UInt64 = 1
        /// Every open connection, handshaking or ready.
        var connections: [UInt64: PeerConnection] = [:]
        /// Connections that completed the handshake, one per peer.
        var ready: [PeerID: PeerConnection] = [:]
        var bans: BanList
        var seen: SeenSet
        var receivedDropped = 0

        var isRunning: Bool {
            if case .running = lifecycle { return true }
            return false
        }
    }

    public init(config: P2PConfig, nodeKey: KeyFile, chainID: String, source: any BlockSource,
                validator: any GossipValidator, provenHeights: ProvenPeerHeights,
                settings: P2PSettings = P2PSettings(),
                eventLoopGroup: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
                logger: Logger = Logger(label: "evnode.p2p")) {
        self.config = config
        self.nodeKey = nodeKey
        self.localID = PeerID(key: nodeKey)
        self.chainID = chainID
        self.source = source
        self.validator = validator
        self.provenHeights = provenHeights
        self.settings = settings
        self.group = eventLoopGroup
        var logger = logger
        logger[metadataKey: "node"] = "\(PeerID(key: nodeKey).short)"
        self.logger = logger
        self.registry = NIOLockedValueBox(Registry(bans: BanList(capacity: settings.maxBans),
                                                   seen: SeenSet(capacity: max(1, settings.seenSetCapacity))))
        (receivedBlocks, receivedContinuation) = AsyncStream.makeStream(
            of: ReceivedBlock.self, bufferingPolicy: .bufferingNewest(max(1, settings.receivedBufferCapacity)))
        (stopSignal, stopContinuation) = AsyncStream.makeStream(of: Never.self)
    }

    // MARK: Lifecycle

    /// Binds the listener and starts dialling the configured peers. Returns the bound address
    /// (useful with port 0). Throws if already started or the address cannot be bound.
    @discardableResult
    public func start() async throws(P2PError) -> SocketAddress {
        let canStart = registry.withLockedValue { r -> Bool in
            guard case .idle = r.lifecycle else { return false }
            r.lifecycle = .running
            return true
        }
        guard canStart else { throw .alreadyStarted }

        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 128)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                configure(channel, direction: .inbound, dialTarget: nil, outcome: nil)
            }
        let listener: any Channel
        do {
            listener = try await bootstrap.bind(host: config.listen.host, port: config.listen.port).get()
        } catch {
            registry.withLockedValue { $0.lifecycle = .stopped }
            receivedContinuation.finish()
            stopContinuation.finish()
            throw .bindFailed(address: config.listen.description, reason: "\(error)")
        }
        guard let address = listener.localAddress else {
            try? await listener.close()
            registry.withLockedValue { $0.lifecycle = .stopped }
            throw .bindFailed(address: config.listen.description, reason: "no local address after bind")
        }
        var targets: [HostPort] = []
        for peer in config.peers where !targets.contains(peer) { targets.append(peer) }
        registry.withLockedValue { r in
            r.listener = listener
            r.listenPort = UInt16(clamping: address.port ?? 0)
            for target in targets {
                r.targets[target] = TargetState()
                r.backgroundTasks.append(Task { [self] in await redialLoop(target) })
            }
            r.backgroundTasks.append(Task { [self] in await announceHeightChanges() })
        }
        logger.info("P2P listening", metadata: ["address": "\(address.ipAddress ?? "?"):\(address.port ?? 0)", "peers": "\(targets.map(\.description))",
                                                 "chain_id": "\(chainID)", "peer_id": "\(localID)"])
        return address
    }

    /// The bound listen address while running.
    public var listenAddress: SocketAddress? {
        registry.withLockedValue { $0.listener?.localAddress }
    }

    var advertisedListenPort: UInt16 { registry.withLockedValue { $0.listenPort } }

    /// Runs until the task is cancelled or a graceful shutdown is triggered, then shuts down.
    public func run() async throws {
        try await start()
        await withTaskCancellationOrGracefulShutdownHandler {
            for await _ in stopSignal {}
        } onCancelOrGracefulShutdown: { [stopContinuation] in
            stopContinuation.finish()
        }
        await shutdown()
    }

    /// Stops dialling, closes the listener and every connection (saying goodbye), fails pending
    /// requests and finishes `receivedBlocks`. Safe to call more than once and concurrently.
    public func shutdown() async {
        let work = registry.withLockedValue { r -> Task<Void, Never>? in
            switch r.lifecycle {
            case .idle:
                r.lifecycle = .stopped
                return nil
            case .stopped:
                return nil
            case .stopping(let task):
                return task
            case .running:
                let task = Task { [self] in await performShutdown() }
                r.lifecycle = .stopping(task)
                return task
            }
        }
        if let work {
            await work.value
        }
        receivedContinuation.finish()
        stopContinuation.finish()
    }

    private func performShutdown() async {
        let (listener, tasks, connections) = registry.withLockedValue { r in
            (r.listener, r.backgroundTasks, Array(r.connections.values))
        }
        for task in tasks { task.cancel() }
        try? await listener?.close()
        for conn in connections {
            conn.close(Goodbye(reason: .shuttingDown, detail: ""), reason: "shutting down")
        }
        for conn in connections {
            try? await conn.channel.closeFuture.get()
        }
        for task in tasks { await task.value }
        // Connections that were mid-accept when the listener closed.
        let stragglers = registry.withLockedValue { Array($0.connections.values) }
        for conn in stragglers {
            conn.close(nil, reason: "shutting down")
            try? await conn.channel.closeFuture.get()
        }
        registry.withLockedValue { r in
            r.lifecycle = .stopped
            r.listener = nil
            r.backgroundTasks = []
        }
        logger.info("P2P stopped")
    }

    // MARK: Queries

    /// Peers that completed the handshake.
    public var peers: [PeerInfo] {
        registry.withLockedValue { r in r.ready.values.compactMap { $0.info() } }
            .sorted { $0.id < $1.id }
    }

    /// The highest height any peer proved since the service started (SPEC §6): sticky, so a
    /// peer that proved a height and then disconnected, was banned or went silent still counts.
    /// Nil when no peer answered; 0 when peers answered only with empty chains.
    public var maxPeerHeight: UInt64? {
        provenHeights.highest
    }

    /// The configured peer addresses and where each stands.
    public var dialTargets: [DialTargetInfo] {
        registry.withLockedValue { r in
            r.targets.map { target, t in
                // Connected means a live connection to the peer behind the address right now,
                // whichever side dialled it.
                let state: DialTargetInfo.State
                if let id = t.peerID, r.ready[id] != nil, t.phase != .isSelf {
                    state = .connected(id)
                } else {
                    switch t.phase {
                    case .connecting, .connected: state = .connecting
                    case .backingOff: state = .backingOff
                    case .isSelf: state = .isSelf
                    }
                }
                return DialTargetInfo(target: target, state: state, consecutiveFailures: t.failures, lastError: t.lastError)
            }
        }.sorted { $0.target.description < $1.target.description }
    }

    public var activeBans: [BanInfo] {
        let now = NIODeadline.now()
        return registry.withLockedValue { r in
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

    public func isBanned(peer: PeerID) -> Bool {
        let now = NIODeadline.now()
        return registry.withLockedValue { $0.bans.isBanned(.peer(peer), now: now) }
    }

    public func isBanned(address ip: String) -> Bool {
        let now = NIODeadline.now()
        return registry.withLockedValue { $0.bans.isBanned(.address(ip), now: now) }
    }

    /// Gossiped blocks dropped because the node did not consume `receivedBlocks` fast enough.
    public var receivedBlocksDropped: Int { registry.withLockedValue { $0.receivedDropped } }

    // MARK: Node → peers

    /// Tells every connected peer this node's height now. The service also announces changes of
    /// `BlockSource.currentHeight()` by itself (`P2PSettings.heightAnnounceInterval`); call this
    /// when peers should learn a height without that delay (a block this node produced).
    public func announce(height: UInt64) {
        lastAnnounced.withLockedValue { last in
            last = height
            send(status: height)
        }
    }

    /// Keeps the peers' view of this node's height current (SPEC §8: peers announce their
    /// height) however the store grows — blocks synced from DA or peers, produced, or rolled
    /// back: checks the source's height every `heightAnnounceInterval` and announces it when it
    /// differs from the last announcement. Throttled by construction: during a fast catch-up
    /// peers get the latest height a few times a second, not one message per block. (Peers that
    /// connect get the current height at the handshake.)
    func announceHeightChanges() async {
        lastAnnounced.withLockedValue { $0 = source.currentHeight() }
        while !Task.isCancelled, registry.withLockedValue({ $0.isRunning }) {
            try? await Task.sleep(for: settings.heightAnnounceInterval)
            lastAnnounced.withLockedValue { last in
                let height = source.currentHeight()
                guard height != last else { return }
                last = height
                send(status: height)
            }
        }
    }

    private func send(status height: UInt64) {
        guard let message = statusMessage(height) else { return }
        let frame = message.frame()
        for conn in readyConnections() {
            deliver(frame, to: conn, policy: .reliable)
        }
    }

    /// The announcement of `height` with the signed header that proves it; nil when the header
    /// is not (or no longer) in the store, e.g. just rolled back: an unproven claim would only
    /// get this node penalised.
    func statusMessage(_ height: UInt64) -> P2PMessage? {
        guard height > 0 else { return .status(height: 0, proof: []) }
        guard let proof = source.encodedSignedHeader(at: height) else { return nil }
        return .status(height: height, proof: proof)
    }

    /// Gossips a new block (the aggregator's own) to every connected peer.
    public func broadcast(block: P2PBlock) {
        guard let key = HashKey(block.headerHash) else {
            logger.error("not broadcasting block with a header hash of \(block.headerHash.count) bytes (must be 32)",
                         metadata: ["height": "\(block.height)"])
            return
        }
        let targets = registry.withLockedValue { r -> [PeerConnection] in
            r.seen.insert(key)
            return Array(r.ready.values)
        }
        relay(block, to: targets)
    }

    /// Reports a peer whose block failed a later check: it is disconnected and banned.
    public func penalize(peer: PeerID, reason: String) {
        if let conn = registry.withLockedValue({ $0.ready[peer] }) {
            punish(conn, for: .reportedByNode(reason))
        } else {
            let until = NIODeadline.now() + settings.banDuration.timeAmount
            registry.withLockedValue { $0.bans.ban(.peer(peer), until: until, now: .now()) }
            logger.warning("banned peer", metadata: ["peer": "\(peer.short)", "reason": "\(reason)"])
        }
    }

    // MARK: Shared with the handlers

    func readyConnections() -> [PeerConnection] {
        registry.withLockedValue { Array($0.ready.values) }
    }

    func deliver(_ frame: ByteBuffer, to conn: PeerConnection, policy: PeerConnection.SendPolicy) {
        if case .overflow = conn.send(frame, policy: policy) {
            logger.warning("disconnecting peer that does not read", metadata: ["peer": "\(conn.label)"])
            conn.close(Goodbye(reason: .slowReader, detail: "more than \(settings.outboundHardLimitBytes) bytes queued"),
                       reason: "does not read (outbound queue full)")
        }
    }

    func relay(_ block: P2PBlock, to targets: [PeerConnection]) {
        guard !targets.isEmpty else { return }
        let frame = P2PMessage.newBlock(block).frame()
        for conn in targets {
            deliver(frame, to: conn, policy: .droppable)
        }
    }

    func configure(_ channel: any Channel, direction: PeerDirection, dialTarget: HostPort?,
                   outcome: EventLoopPromise<HandshakeOutcome>?) -> EventLoopFuture<Void> {
        channel.eventLoop.makeCompletedFuture {
            let sync = channel.pipeline.syncOperations
            let limit = FrameLimit()
            try sync.addHandler(ByteToMessageHandler(FrameDecoder(limit: limit)))
            try sync.addHandler(PeerHandler(service: self, direction: direction, dialTarget: dialTarget,
                                            frameLimit: limit, outcome: outcome))
        }
    }

    func makeConnection(channel: any Channel, direction: PeerDirection, dialTarget: HostPort?,
                        outcome: EventLoopPromise<HandshakeOutcome>?) -> PeerConnection {
        let serial = registry.withLockedValue { r in
            defer { r.nextSerial += 1 }
            return r.nextSerial
        }
        return PeerConnection(serial: serial, channel: channel, direction: direction, dialTarget: dialTarget,
                              settings: settings, handshakeOutcome: outcome)
    }

    /// Admits a new connection; returns the goodbye to refuse it with.
    func admit(_ conn: PeerConnection) -> Goodbye? {
        let now = NIODeadline.now()
        let refusal = registry.withLockedValue { r -> Goodbye? in
            guard r.isRunning else { return Goodbye(reason: .shuttingDown, detail: "") }
            if let ip = conn.remoteIP, r.bans.isBanned(.address(ip), now: now) {
                return Goodbye(reason: .banned, detail: "address \(ip) is banned")
            }
            if r.connections.count >= settings.maxConnections {
                return Goodbye(reason: .tooManyPeers, detail: "limit \(settings.maxConnections)")
            }
            r.connections[conn.serial] = conn
            return nil
        }
        if let refusal {
            logger.debug("refusing connection", metadata: ["address": "\(conn.remoteAddress)", "reason": "\(refusal.reason)"])
        }
        return refusal
    }

    enum Registration {
        /// The connection is now the peer's connection.
        case registered
        /// Another connection to the peer is kept; this one is being drained.
        case duplicate
        case refused(Goodbye)
    }

    /// Makes an authenticated connection the peer's connection, unless a connection to the peer
    /// that `DuplicateConnectionRule` prefers is already registered (`.duplicate`: the caller
    /// then drains the new one with `drainDuplicate`, after sending its status).
    ///
    /// Both ends apply the same rule to the same facts, so they end up keeping the same
    /// connection; but each decides when its own handshakes complete, and the two ends complete
    /// them in different orders when they dial each other at once. Meanwhile the peer may be
    /// sending on the connection this node just ruled out (it is the only one the peer has
    /// completed so far). So the loser — the new connection, or the one it replaces — is never
    /// cut: it is drained (`PeerConnection.drain`): goodbye, then read until the peer closes it.
    func register(_ conn: PeerConnection, as id: PeerID, origin: ConnectionOrigin) -> Registration {
        let now = NIODeadline.now()
        let (result, replaced) = registry.withLockedValue { r -> (Registration, PeerConnection?) in
            guard r.isRunning else { return (.refused(Goodbye(reason: .shuttingDown, detail: "")), nil) }
            if r.bans.isBanned(.peer(id), now: now) {
                return (.refused(Goodbye(reason: .banned, detail: "peer \(id.short) is banned")), nil)
            }
            conn.withState { s in
                s.peerID = id
                s.origin = origin
            }
            var replaced: PeerConnection?
            if let existing = r.ready[id], existing !== conn {
                // A registered connection always has its origin.
                if let kept = existing.origin, !DuplicateConnectionRule.keeps(origin, over: kept) {
                    return (.duplicate, nil)
                }
                replaced = existing
            }
            r.ready[id] = conn
            let inherited = replaced?.withState { ($0.announcedHeight, $0.lastAnnouncedAt) }
            conn.withState { s in
                s.ready = true
                // The peer's height is known; keep it visible until the peer announces it here.
                if s.announcedHeight == nil, let inherited {
                    (s.announcedHeight, s.lastAnnouncedAt) = inherited
                }
            }
            if let target = conn.dialTarget {
                r.targets[target]?.peerID = id
                r.targets[target]?.failures = 0
                r.targets[target]?.lastError = nil
            }
            return (.registered, replaced)
        }
        if let replaced {
            drainDuplicate(replaced, peer: id)
        }
        if case .registered = result {
            logger.info("peer connected", metadata: ["peer": "\(id.short)", "address": "\(conn.remoteAddress)",
                                                      "direction": "\(conn.direction.rawValue)"])
        }
        return result
    }

    /// Retires a connection that lost to another one to the same peer (see `register`).
    func drainDuplicate(_ conn: PeerConnection, peer id: PeerID) {
        logger.debug("draining duplicate connection", metadata: [
            "peer": "\(id.short)", "address": "\(conn.remoteAddress)", "direction": "\(conn.direction.rawValue)",
        ])
        conn.drain(Goodbye(reason: .duplicateConnection, detail: ""), timeout: settings.duplicateDrainTimeout.timeAmount)
    }

    func connectionClosed(_ conn: PeerConnection) {
        let reason = conn.closeReason ?? "closed by the peer"
        // Out of the registry first, so nothing picks it any more; then fail what still waits on it.
        let (wasReady, id) = registry.withLockedValue { r -> (Bool, PeerID?) in
            r.connections.removeValue(forKey: conn.serial)
            guard let id = conn.peerID, r.ready[id] === conn else { return (false, conn.peerID) }
            r.ready.removeValue(forKey: id)
            return (true, id)
        }
        conn.markClosed(reason: reason)
        if wasReady, let id {
            logger.info("peer disconnected", metadata: ["peer": "\(id.short)", "address": "\(conn.remoteAddress)",
                                                         "reason": "\(reason)"])
        } else {
            logger.debug("connection closed", metadata: ["address": "\(conn.remoteAddress)", "reason": "\(reason)"])
        }
    }

    /// Bans the connection's address, and its peer id once the peer has proven it (an
    /// unauthenticated claim must not get someone else banned), then disconnects it.
    func punish(_ conn: PeerConnection, for misbehaviour: Misbehaviour) {
        let now = NIODeadline.now()
        let until = now + settings.banDuration.timeAmount
        // `peerID` is only set once the handshake signature was verified.
        let id = conn.peerID
        registry.withLockedValue { r in
            if let ip = conn.remoteIP { r.bans.ban(.address(ip), until: until, now: now) }
            if let id { r.bans.ban(.peer(id), until: until, now: now) }
        }
        logger.warning("banning peer", metadata: [
            "peer": "\(id?.short ?? "unauthenticated")", "address": "\(conn.remoteAddress)",
            "reason": "\(misbehaviour)", "duration": "\(settings.banDuration)",
        ])
        conn.close(Goodbye(reason: misbehaviour.goodbyeReason, detail: "\(misbehaviour)"),
                   reason: "banned: \(misbehaviour)")
    }

    func isBanned(peer: PeerID, now: NIODeadline = .now()) -> Bool {
        registry.withLockedValue { $0.bans.isBanned(.peer(peer), now: now) }
    }

    /// Verifies a peer's height claim against its proof (`ProvenPeerHeights`); returns the
    /// misbehaviour when the proof is missing or wrong. Only proven heights are recorded.
    func statusReceived(_ height: UInt64, proof: [UInt8], from conn: PeerConnection) -> Misbehaviour? {
        guard let id = conn.peerID else { return nil }
        var header: SignedHeader?
        if !proof.isEmpty {
            do throws(WireError) {
                header = try SignedHeader(decoding: proof)
            } catch {
                return .invalidStatus(height: height, reason: "its proof does not decode as a signed header: \(error)")
            }
        }
        if case .rejected(let reason) = provenHeights.record(peer: id.description, claimed: height, header: header) {
            return .invalidStatus(height: height, reason: reason)
        }
        conn.withState { s in
            s.announcedHeight = height
            s.lastAnnouncedAt = .now
        }
        // On a connection being drained the peer announces until it switches to the kept one;
        // the height is the peer's, so the kept connection learns it too. Only upwards: what
        // the peer announces on the kept connection itself is never older than this.
        guard let kept = registry.withLockedValue({ $0.ready[id] }), kept !== conn else { return nil }
        kept.withState { s in
            if s.announcedHeight.map({ $0 < height }) ?? true {
                s.announcedHeight = height
                s.lastAnnouncedAt = .now
            }
        }
        return nil
    }

    /// Handles a gossiped block; returns the misbehaviour when it must be punished.
    func gossipReceived(_ block: P2PBlock, from conn: PeerConnection) -> Misbehaviour? {
        guard let key = HashKey(block.headerHash), let from = conn.peerID else { return nil }
        if registry.withLockedValue({ $0.seen.contains(key) }) { return nil }
        switch validator.validate(block) {
        case .reject(let reason):
            return .invalidBlock(height: block.height, reason: reason)
        case .ignore:
            return nil
        case .accept:
            break
        }
        let targets = registry.withLockedValue { r -> [PeerConnection]? in
            guard r.seen.insert(key) else { return nil }
            // Not back to the sender, whichever of its connections the block came on.
            return r.ready.filter { $0.key != from }.map(\.value)
        }
        guard let targets else { return nil }
        if case .dropped = receivedContinuation.yield(ReceivedBlock(block: block, from: from)) {
            registry.withLockedValue { $0.receivedDropped += 1 }
        }
        relay(block, to: targets)
        return nil
    }

    func wasIssued(requestID: UInt64) -> Bool {
        registry.withLockedValue { requestID < $0.nextRequestID }
    }

    func makeRequestID() -> UInt64 {
        registry.withLockedValue { r in
            defer { r.nextRequestID += 1 }
            return r.nextRequestID
        }
    }
}
