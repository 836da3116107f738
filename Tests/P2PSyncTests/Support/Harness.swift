import Block
@testable import Config
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
@testable import P2PSync
import Testing

struct WaitTimedOut: Error, CustomStringConvertible {
    let what: String
    var description: String { "timed out waiting for: \(what)" }
}

/// Polls `condition` until it holds, failing after `timeout`. Tests wait on observable state,
/// never on a fixed sleep.
func waitUntil(_ what: String, timeout: Duration = .seconds(30),
               _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while try await !condition() {
        if ContinuousClock.now > deadline { throw WaitTimedOut(what: what) }
        try await Task.sleep(for: .milliseconds(10))
    }
}

extension P2PSettings {
    /// Short durations so that redials and timeouts happen within a test.
    static var test: P2PSettings {
        var s = P2PSettings()
        s.banDuration = .seconds(120)
        s.redialInitialDelay = .milliseconds(50)
        s.redialMaxDelay = .milliseconds(400)
        // Long: a test's own side of a handshake (a raw peer) runs on the cooperative pool, which
        // other tests running in parallel can starve for seconds on two cores. The test of the
        // timeout itself sets a short one.
        s.handshakeTimeout = .seconds(30)
        s.duplicateDrainTimeout = .seconds(3)
        s.requestTimeout = .seconds(3)
        s.connectTimeout = .seconds(1)
        return s
    }
}

func testLogger(_ name: String) -> Logger {
    var logger = Logger(label: "evnode.p2p.test.\(name)")
    let level = ProcessInfo.processInfo.environment["P2P_TEST_LOG"].flatMap(Logger.Level.init(rawValue:))
    logger.logLevel = level ?? .critical
    return logger
}

/// One P2P service on 127.0.0.1 with an in-memory block source, plus everything it received by
/// gossip.
final class TestNode: Sendable {
    let name: String
    let key: KeyFile
    let source: any BlockSource
    let service: P2PService
    let port: Int
    private let inbox = NIOLockedValueBox<[ReceivedBlock]>([])
    private let collector: Task<Void, Never>

    var id: PeerID { service.localID }
    var received: [ReceivedBlock] { inbox.withLockedValue { $0 } }

    private init(name: String, key: KeyFile, source: any BlockSource, service: P2PService, port: Int) {
        self.name = name
        self.key = key
        self.source = source
        self.service = service
        self.port = port
        let stream = service.receivedBlocks
        let inbox = self.inbox
        collector = Task {
            for await block in stream { inbox.withLockedValue { $0.append(block) } }
        }
    }

    static func start(_ name: String, chain: TestChain, peers: [Int] = [], port: Int = 0,
                      key: KeyFile = .generate(), source: any BlockSource = MemoryBlockSource(),
                      settings: P2PSettings = .test) async throws -> TestNode {
        try await start(name, validator: chain.validator, peers: peers, port: port, key: key, source: source,
                        settings: settings)
    }

    static func start(_ name: String, validator: SignedBlockValidator, peers: [Int] = [], port: Int = 0,
                      key: KeyFile = .generate(), source: any BlockSource = MemoryBlockSource(),
                      settings: P2PSettings = .test) async throws -> TestNode {
        let config = P2PConfig(listen: HostPort(host: "127.0.0.1", port: port),
                               peers: peers.map { HostPort(host: "127.0.0.1", port: $0) })
        let service = P2PService(config: config, nodeKey: key, chainID: validator.chainID, source: source,
                                 validator: validator, provenHeights: ProvenPeerHeights(validator: validator.blockValidator),
                                 settings: settings,
                                 logger: testLogger(name))
        let address = try await service.start()
        return TestNode(name: name, key: key, source: source, service: service, port: address.port ?? 0)
    }

    func stop() async {
        await service.shutdown()
        await collector.value
    }

    func isConnected(to other: TestNode) -> Bool {
        service.peers.contains { $0.id == other.id }
    }

    /// Both socket addresses of the connection this node keeps for `peer` (registry internals:
    /// `PeerInfo` has no local address), to tell whether two nodes keep the same connection.
    func keptConnection(to peer: TestNode) -> (local: SocketAddress, remote: SocketAddress)? {
        guard let conn = service.registry.withLockedValue({ $0.ready[peer.id] }),
              let local = conn.channel.localAddress, let remote = conn.channel.remoteAddress else { return nil }
        return (local, remote)
    }

    /// True when this node and `peer` each keep exactly one connection to the other, and it is
    /// the same TCP connection.
    func keepsSameSingleConnection(as peer: TestNode) -> Bool {
        guard service.peers.count == 1, peer.service.peers.count == 1,
              let mine = keptConnection(to: peer), let theirs = peer.keptConnection(to: self) else { return false }
        return mine.local == theirs.remote && mine.remote == theirs.local
    }

    func hasReceived(_ block: P2PBlock) -> Bool {
        received.contains { $0.block == block }
    }
}

/// A hand-driven TCP client for playing a misbehaving (or carefully behaving) peer: sends raw
/// bytes or messages from a chosen loopback source address and records what comes back.
final class RawPeer: Sendable {
    let channel: any Channel
    private let inbox: NIOLockedValueBox<Inbox>

    struct Inbox {
        var buffer = ByteBuffer()
        var messages: [P2PMessage] = []
    }

    private final class Recorder: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let inbox: NIOLockedValueBox<Inbox>

        init(_ inbox: NIOLockedValueBox<Inbox>) { self.inbox = inbox }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var bytes = unwrapInboundIn(data)
            inbox.withLockedValue { box in
                box.buffer.writeBuffer(&bytes)
                let parser = FrameParser(maxFrameBytes: 64 << 20)
                while let frame = try? parser.next(from: &box.buffer),
                      let message = try? P2PMessage.decode(type: frame.type, payload: frame.payload) {
                    box.messages.append(message)
                }
            }
        }
    }

    private init(channel: any Channel, inbox: NIOLockedValueBox<Inbox>) {
        self.channel = channel
        self.inbox = inbox
    }

    static func connect(port: Int, from sourceIP: String) async throws -> RawPeer {
        let inbox = NIOLockedValueBox(Inbox())
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(to: try SocketAddress(ipAddress: sourceIP, port: 0))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Recorder(inbox))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return RawPeer(channel: channel, inbox: inbox)
    }

    var messages: [P2PMessage] { inbox.withLockedValue { $0.messages } }
    var isClosed: Bool { !channel.isActive }

    var goodbye: Goodbye? {
        for case .goodbye(let g) in messages { return g }
        return nil
    }

    func send(bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    func send(_ message: P2PMessage) async throws {
        try await channel.writeAndFlush(message.frame())
    }

    /// Writes many messages in one go (for flooding).
    func send(_ messages: [P2PMessage]) async throws {
        var buffer = ByteBuffer()
        for m in messages { m.writeFrame(into: &buffer) }
        try await channel.writeAndFlush(buffer)
    }

    func waitForHello() async throws -> Hello {
        var hello: Hello?
        try await waitUntil("hello from the node") {
            for case .hello(let h) in messages { hello = h }
            return hello != nil
        }
        return hello!
    }

    /// Completes a correct handshake as `key` on `chainID`, with `nonce` as this side's hello
    /// nonce (a fresh one unless a test needs to order duplicate connections).
    func handshake(chainID: String, key: KeyFile,
                   nonce: [UInt8] = HandshakeTranscript.freshNonce()) async throws -> Hello {
        try await send(.hello(Hello(protocolVersion: P2PProtocol.version, chainID: chainID, publicKey: key.publicKey,
                                    nonce: nonce, listenPort: 0, maxFrameBytes: 8 << 20)))
        let theirs = try await waitForHello()
        let signature = HandshakeTranscript.sign(key: key.privateKey, chainID: chainID, verifierNonce: theirs.nonce,
                                                 signerNonce: nonce)
        try await send(.helloAck(HelloAck(signature: signature)))
        try await waitUntil("hello-ack from the node") {
            messages.contains { if case .helloAck = $0 { return true } else { return false } }
        }
        return theirs
    }

    func close() async {
        try? await channel.close()
    }
}
