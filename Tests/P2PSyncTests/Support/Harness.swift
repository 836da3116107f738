@testable import Chain
@testable import Sync
@testable import Config
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
@testable import P2PSync
import ProcessKit
import Telemetry
import Testing
import TestSupport
@testable import Libp2p

extension P2PSettings {
    /// Short durations so that redials, head polls and timeouts happen within a test.
    static var test: P2PSettings {
        var s = P2PSettings()
        s.banDuration = .seconds(120)
        s.redialInitialDelay = .milliseconds(50)
        s.redialMaxDelay = .milliseconds(400)
        s.handshakeTimeout = .seconds(30)
        // Tests share two cores with other builds: an honest handshake can take seconds there.
        s.inboundHandshakeTimeout = .seconds(30)
        s.requestTimeout = .seconds(5)
        s.connectTimeout = .seconds(1)
        s.headPollInterval = .milliseconds(100)
        return s
    }
}

func testLogger(_ name: String) -> Logger {
    var logger = Logger(label: "evnode.p2p.test.\(name)")
    let level = ProcessInfo.processInfo.environment["P2P_TEST_LOG"].flatMap(Logger.Level.init(rawValue:))
    logger.logLevel = level ?? .critical
    return logger
}

/// One P2P service on 127.0.0.1 with a block source, plus everything it received by gossip.
final class TestNode: Sendable {
    let name: String
    let key: KeyFile
    let source: any BlockSource
    let service: P2PService
    let port: Int
    private let run: ServiceRun
    private let inbox = NIOLockedValueBox<[ReceivedBlock]>([])
    private let collector: Task<Void, Never>

    var id: PeerID { service.localID }
    var received: [ReceivedBlock] { inbox.withLockedValue { $0 } }
    var multiaddr: String { "/ip4/127.0.0.1/tcp/\(port)/p2p/\(id)" }

    private init(name: String, key: KeyFile, source: any BlockSource, run: ServiceRun, port: Int) {
        self.name = name
        self.key = key
        self.source = source
        self.service = run.service
        self.run = run
        self.port = port
        let stream = run.service.receivedBlocks
        let inbox = self.inbox
        collector = Task {
            for await block in stream { inbox.withLockedValue { $0.append(block) } }
        }
    }

    static func start(_ name: String, chain: TestChain, peers: [String] = [], port: Int = 0,
                      key: KeyFile = .generate(), source: any BlockSource = MemoryBlockSource(),
                      validator: (any GossipValidator)? = nil, settings: P2PSettings = .test,
                      blocked: [String] = [], allowed: [String] = [], metrics: P2PSeries? = nil) async throws -> TestNode {
        var config = P2PConfig(listen: HostPort(host: "127.0.0.1", port: port),
                               peers: try peers.map { try P2PPeerAddress(parsing: $0) })
        config.blockedPeers = blocked
        config.allowedPeers = allowed
        let service = P2PService(config: config, nodeKey: key, chainID: chain.chainID, source: source,
                                 validator: validator ?? chain.signedBlockValidator,
                                 provenHeights: ProvenPeerHeights(validator: BlockValidator(genesis: chain.genesis)),
                                 settings: settings, metrics: metrics, logger: testLogger(name))
        let (run, address) = try await ServiceRun.start(service, logger: testLogger(name))
        return TestNode(name: name, key: key, source: source, run: run, port: address.port ?? 0)
    }

    func stop() async {
        await run.stop()
        await collector.value
    }

    func isConnected(to other: TestNode) -> Bool {
        service.peers.contains { $0.id == other.id }
    }

    func hasReceived(_ block: P2PBlock) -> Bool {
        received.contains { $0.block == block }
    }

    /// Publishes an encoded signed header as this node's own gossip (a fresh seqno each time).
    func publish(header encodedSignedHeader: [UInt8]) {
        service.floodsub.publish(topic: service.headerTopic,
                                 data: P2PEnvelope.header(encodedSignedHeader: encodedSignedHeader, daHeightHint: 0))
    }

    /// Publishes encoded data as this node's own gossip (a fresh seqno each time).
    func publish(data encodedData: [UInt8]) {
        service.floodsub.publish(topic: service.dataTopic, data: P2PEnvelope.data(encodedData: encodedData, daHeightHint: 0))
    }

    /// Waits until FloodSub knows that `count` peers subscribe to both topics (it sends nothing
    /// to a peer before its subscriptions arrived).
    func waitForSubscribers(_ count: Int) async throws {
        try await waitUntil("\(name) to know \(count) subscribed peers") {
            service.floodsub.subscribedPeers(service.headerTopic).count == count
                && service.floodsub.subscribedPeers(service.dataTopic).count == count
        }
    }
}

/// The real validator, counting the header signature checks it is asked for.
final class RecordingValidator: GossipValidator {
    let inner: SignedBlockValidator
    private let checks = NIOLockedValueBox(0)

    init(_ inner: SignedBlockValidator) {
        self.inner = inner
    }

    var headerChecks: Int { checks.withLockedValue { $0 } }

    func validate(_ block: P2PBlock) -> GossipVerdict { inner.validate(block) }

    func validate(header: SignedHeader) -> GossipVerdict {
        checks.withLockedValue { $0 += 1 }
        return inner.validate(header: header)
    }
}
