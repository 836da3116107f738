import Config
import NIOCore
import NIOPosix

extension P2PService {
    /// Keeps one configured peer address connected for as long as the service runs: dials it,
    /// waits while the connection lives, and redials with exponential backoff when it drops or
    /// cannot be reached. Stops for good only if the address turns out to be this node.
    func redialLoop(_ target: HostPort) async {
        var backoff = Backoff(initial: settings.redialInitialDelay, maximum: settings.redialMaxDelay)
        while !Task.isCancelled, registry.withLockedValue({ $0.isRunning }) {
            // Already connected to the peer behind this address (perhaps over its own dial)?
            if let conn = connectionForTarget(target) {
                updateTarget(target) { $0.phase = .connected; $0.failures = 0; $0.lastError = nil }
                try? await conn.channel.closeFuture.get()
                backoff.reset()
                await pause(backoff.next())
                continue
            }
            updateTarget(target) { $0.phase = .connecting }
            switch await dial(target) {
            case .ready:
                backoff.reset()
                continue // the check above waits on the new connection
            case .duplicate(let id):
                updateTarget(target) { $0.peerID = id }
                if connectionForTarget(target) == nil { await pause(backoff.next()) }
            case .isSelf:
                updateTarget(target) { $0.phase = .isSelf; $0.lastError = "this address is the node itself" }
                logger.warning("configured peer is this node itself; not dialling it again",
                               metadata: ["target": "\(target)"])
                return
            case .failed(let reason):
                let failures = updateTarget(target) { t -> Int in
                    t.phase = .backingOff
                    t.failures += 1
                    t.lastError = reason
                    return t.failures
                }
                let delay = backoff.next()
                if failures == 1 {
                    logger.info("cannot reach peer, retrying with backoff",
                                metadata: ["target": "\(target)", "reason": "\(reason)"])
                } else {
                    logger.debug("peer still unreachable",
                                 metadata: ["target": "\(target)", "attempts": "\(failures)", "retry_in": "\(delay)"])
                }
                await pause(delay)
            }
        }
    }

    private func pause(_ delay: Duration) async {
        try? await Task.sleep(for: delay)
    }

    private func connectionForTarget(_ target: HostPort) -> PeerConnection? {
        registry.withLockedValue { r in
            guard let id = r.targets[target]?.peerID else { return nil }
            return r.ready[id]
        }
    }

    @discardableResult
    private func updateTarget<T>(_ target: HostPort, _ body: (inout TargetState) -> T) -> T {
        registry.withLockedValue { r in
            var t = r.targets[target] ?? TargetState()
            defer { r.targets[target] = t }
            return body(&t)
        }
    }

    /// One connection attempt, through the handshake.
    private func dial(_ target: HostPort) async -> HandshakeOutcome {
        let loop = group.any()
        let outcome = loop.makePromise(of: HandshakeOutcome.self)
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(settings.connectTimeout.timeAmount)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { [self] channel in
                configure(channel, direction: .outbound, dialTarget: target, outcome: outcome)
            }
        do {
            _ = try await bootstrap.connect(host: target.host, port: target.port).get()
        } catch {
            outcome.succeed(.failed("\(error)"))
        }
        // The handler always resolves the outcome: on handshake, refusal or close.
        return (try? await outcome.futureResult.get()) ?? .failed("dial abandoned")
    }
}
