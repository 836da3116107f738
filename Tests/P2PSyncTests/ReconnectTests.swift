import Block
@testable import Config
import NIOCore
import NIOPosix
@testable import P2PSync
import Testing

@Suite("P2P reconnection", .serialized)
struct ReconnectTests {
    @Test("B stops and starts again on the same port with the same key: A and C reconnect by themselves")
    func restartMiddleNode() async throws {
        let chain = try TestChain()
        let bKey = KeyFile.generate()
        try chain.build(to: 5)
        let b1 = try await TestNode.start("B", chain: chain, key: bKey, source: chain.source)
        let a = try await TestNode.start("A", chain: chain, peers: [b1.port])
        let c = try await TestNode.start("C", chain: chain, peers: [b1.port])
        try await waitUntil("A and C connected to B") { a.isConnected(to: b1) && c.isConnected(to: b1) }

        await b1.stop()
        try await waitUntil("A and C notice B is gone") { a.service.peers.isEmpty && c.service.peers.isEmpty }
        // What B proved stays counted after it left (SPEC §6: proven heights are sticky).
        #expect(a.service.maxPeerHeight == 5)
        // While B is down the dialers keep failing and back off.
        try await waitUntil("A is backing off") {
            a.service.dialTargets.first.map { $0.consecutiveFailures >= 1 } ?? false
        }

        // The same node comes back with the same key on the same port, two blocks further.
        try chain.build(to: 7)
        let b2 = try await TestNode.start("B", chain: chain, port: b1.port, key: bKey, source: chain.source)
        try await waitUntil("A and C reconnected to the restarted B") {
            a.isConnected(to: b2) && c.isConnected(to: b2) && b2.service.peers.count == 2
        }
        try await waitUntil("new height seen") { c.service.maxPeerHeight == 7 }
        #expect(a.service.dialTargets.first?.state == .connected(b2.id))

        // And the line works again.
        let block = try chain.block(height: 8)
        a.service.broadcast(block: block)
        try await waitUntil("C receives block 8 through the restarted B") { c.hasReceived(block) }
        await c.stop()
        await a.stop()
        await b2.stop()
    }

    @Test("two nodes that dial each other end up with exactly one connection, the same on both sides")
    func simultaneousDials() async throws {
        let chain = try TestChain()
        // Both need each other's port before starting: reserve two free ports first.
        let (portA, portB) = try await (freePort(), freePort())
        // Started together, so that both dial at about the same time.
        let validator = chain.validator
        async let startA = TestNode.start("A", validator: validator, peers: [portB], port: portA)
        async let startB = TestNode.start("B", validator: validator, peers: [portA], port: portB)
        let (a, b) = try await (startA, startB)
        // Each side decides when its own handshakes complete, so for a moment the two may hold
        // different connections, or both the one that loses; they must end up keeping the same
        // single connection, the one dialled by the smaller id.
        let smallerDialled = { (node: TestNode, peer: TestNode) in
            node.service.peers.first?.direction == (node.id < peer.id ? .outbound : .inbound)
        }
        try await waitUntil("both keep the same single connection, dialled by the smaller id") {
            a.keepsSameSingleConnection(as: b) && smallerDialled(a, b) && smallerDialled(b, a)
                && a.service.dialTargets.first?.state == .connected(b.id)
                && b.service.dialTargets.first?.state == .connected(a.id)
        }
        // It carries traffic both ways.
        let block1 = try chain.block(height: 1)
        a.service.broadcast(block: block1)
        try await waitUntil("B receives block 1") { b.hasReceived(block1) }
        let block2 = try chain.block(height: 2)
        b.service.broadcast(block: block2)
        try await waitUntil("A receives block 2") { a.hasReceived(block2) }
        #expect(a.keepsSameSingleConnection(as: b))
        await a.stop()
        await b.stop()
    }

    @Test("a node configured with its own address notices and stops dialling it")
    func selfDial() async throws {
        let chain = try TestChain()
        let port = try await freePort()
        let node = try await TestNode.start("self", chain: chain, peers: [port], port: port)
        try await waitUntil("self detected") { node.service.dialTargets.first?.state == .isSelf }
        #expect(node.service.peers.isEmpty)
        #expect(node.service.activeBans.isEmpty)
        await node.stop()
    }

    @Test("run() serves until cancelled, then shuts down cleanly")
    func serviceRun() async throws {
        let chain = try TestChain()
        let peer = try await TestNode.start("peer", chain: chain)
        let service = P2PService(config: P2PConfig(listen: HostPort(host: "127.0.0.1", port: 0),
                                                   peers: [HostPort(host: "127.0.0.1", port: peer.port)]),
                                 nodeKey: .generate(), chainID: chain.chainID, source: MemoryBlockSource(),
                                 validator: chain.validator,
                                 provenHeights: ProvenPeerHeights(validator: chain.validator.blockValidator), settings: .test, logger: testLogger("run"))
        let task = Task { try await service.run() }
        try await waitUntil("connected while running") { service.peers.count == 1 }
        task.cancel()
        try await task.value
        #expect(service.peers.isEmpty)
        await #expect(throws: P2PError.notRunning) { try await service.requestRange(from: 1, to: 1) }
        try await waitUntil("peer sees the goodbye") { peer.service.peers.isEmpty }
        await peer.stop()
    }
}

/// A port that was free a moment ago, for a node that must be started on a port known in
/// advance. Taken below the kernel's ephemeral range (Linux default 32768–60999): a port handed
/// out by port 0 can be handed out again — to an outgoing connection of this very test, or to
/// any other process on the machine — between this probe and the node's bind, which made the
/// simultaneous-dial test fail with "address already in use" now and then. Ports below it are
/// only taken by explicit binds. Probes random ports until one binds.
func freePort() async throws -> Int {
    for _ in 0..<200 {
        let port = Int.random(in: 20_000..<32_000)
        guard let channel = try? await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: port).get() else { continue }
        try await channel.close()
        return port
    }
    throw NoFreePort()
}

struct NoFreePort: Error, CustomStringConvertible {
    var description: String { "no free loopback port found in 20000..<32000" }
}
