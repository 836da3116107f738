@testable import Config
import NIOCore
@testable import P2PSync
import Testing

/// Misbehaving peers connect to B from their own loopback addresses (127.0.0.x, all routed to
/// `lo` on Linux), so that banning them by address does not touch the good peers on 127.0.0.1.
@Suite("P2P misbehaving peers", .serialized)
struct MisbehaviourTests {
    struct Line {
        let a: TestNode, b: TestNode, c: TestNode

        func stop() async {
            await c.stop()
            await b.stop()
            await a.stop()
        }

        /// B still relays gossip from A to C and answers C's range requests.
        func stillServing(_ chain: TestChain, height: UInt64) async throws {
            let block = try chain.block(height: height)
            a.service.broadcast(block: block)
            try await waitUntil("C receives block \(height) through B") { c.hasReceived(block) }
            #expect(try await c.service.requestRange(from: 1, to: 10) == chain.blocks(1...10))
            #expect(a.isConnected(to: b) && c.isConnected(to: b))
        }
    }

    static func line(chain: TestChain, bSettings: P2PSettings = .test) async throws -> Line {
        try chain.build(to: 10)
        let a = try await TestNode.start("A", chain: chain)
        let b = try await TestNode.start("B", chain: chain, peers: [a.port], source: chain.source, settings: bSettings)
        let c = try await TestNode.start("C", chain: chain, peers: [b.port])
        try await waitUntil("A–B–C connected") {
            a.isConnected(to: b) && c.isConnected(to: b) && c.service.maxPeerHeight == 10
        }
        return Line(a: a, b: b, c: c)
    }

    static func expectBanned(_ raw: RawPeer, by node: TestNode, address: String,
                             reason: GoodbyeReason = .protocolViolation) async throws {
        try await waitUntil("\(address) disconnected") { raw.isClosed }
        #expect(node.service.isBanned(address: address))
        if let goodbye = raw.goodbye { #expect(goodbye.reason == reason) }
    }

    @Test("garbage, oversized frames, a wrong chain id and a forged handshake each get the sender banned; B keeps serving A and C")
    func preHandshakeAttacks() async throws {
        let chain = try TestChain()
        let line = try await Self.line(chain: chain)
        let b = line.b

        // 1. Garbage: a well-formed frame of an unknown type.
        let garbage = try await RawPeer.connect(port: b.port, from: "127.0.0.2")
        try await garbage.send(bytes: [0, 0, 0, 4, 0xee, 0xde, 0xad, 0xbf])
        try await Self.expectBanned(garbage, by: b, address: "127.0.0.2")

        // 1b. Garbage inside a known message type.
        let junk = try await RawPeer.connect(port: b.port, from: "127.0.0.8")
        try await junk.send(bytes: [0, 0, 0, 6, MessageType.hello.rawValue, 0, 1, 200, 1, 2])
        try await Self.expectBanned(junk, by: b, address: "127.0.0.8")

        // 2. Oversized: only the header of a 9 MiB frame; B must not wait for the body.
        let oversized = try await RawPeer.connect(port: b.port, from: "127.0.0.3")
        var header = ByteBuffer()
        header.writeInteger(UInt32(9 << 20))
        header.writeInteger(MessageType.newBlock.rawValue)
        try await oversized.send(bytes: Array(header.readableBytesView))
        try await Self.expectBanned(oversized, by: b, address: "127.0.0.3")

        // 3. Wrong chain id in an otherwise valid hello.
        let stranger = try await RawPeer.connect(port: b.port, from: "127.0.0.4")
        let strangerKey = KeyFile.generate()
        try await stranger.send(.hello(Hello(protocolVersion: P2PProtocol.version, chainID: "other-chain",
                                             publicKey: strangerKey.publicKey, nonce: HandshakeTranscript.freshNonce(),
                                             listenPort: 0, maxFrameBytes: 8 << 20)))
        try await Self.expectBanned(stranger, by: b, address: "127.0.0.4", reason: .wrongChain)

        // 4. Claims A's identity but cannot sign for it.
        let impostor = try await RawPeer.connect(port: b.port, from: "127.0.0.5")
        try await impostor.send(.hello(Hello(protocolVersion: P2PProtocol.version, chainID: chain.chainID,
                                             publicKey: line.a.key.publicKey, nonce: HandshakeTranscript.freshNonce(),
                                             listenPort: 0, maxFrameBytes: 8 << 20)))
        _ = try await impostor.waitForHello()
        try await impostor.send(.helloAck(HelloAck(signature: [UInt8](repeating: 7, count: 64))))
        try await Self.expectBanned(impostor, by: b, address: "127.0.0.5")
        // The identity it claimed was never proven, so A itself is not banned.
        #expect(!b.service.isBanned(peer: line.a.id))

        // A banned address is refused at once on its next attempt.
        let again = try await RawPeer.connect(port: b.port, from: "127.0.0.2")
        try await waitUntil("banned address refused") { again.isClosed }
        #expect(again.goodbye?.reason == .banned)

        // Good peers were never disturbed, and a fresh well-behaved peer is still welcome.
        try await line.stillServing(chain, height: 11)
        let newcomer = try await RawPeer.connect(port: b.port, from: "127.0.0.9")
        _ = try await newcomer.handshake(chainID: chain.chainID, key: .generate())
        try await waitUntil("newcomer registered") { b.service.peers.count == 3 }
        await newcomer.close()
        #expect(b.service.activeBans.count == 5)
        await line.stop()
    }

    @Test("an authenticated peer gossiping a wrongly signed block is banned by id and address, and the block goes nowhere")
    func forgedGossip() async throws {
        let chain = try TestChain()
        let line = try await Self.line(chain: chain)
        let (b, c) = (line.b, line.c)
        let key = KeyFile.generate()
        let raw = try await RawPeer.connect(port: b.port, from: "127.0.0.6")
        _ = try await raw.handshake(chainID: chain.chainID, key: key)
        try await waitUntil("raw peer registered") { b.service.peers.count == 3 }

        let forged = try chain.forged(height: 11)
        try await raw.send(.newBlock(forged))
        try await Self.expectBanned(raw, by: b, address: "127.0.0.6")
        #expect(b.service.isBanned(peer: PeerID(key: key)))
        #expect(!b.hasReceived(forged))

        // Everything B relays to C goes down one ordered connection, so once a later good block
        // is at C, the forged one would be there too had it been relayed.
        try await line.stillServing(chain, height: 12)
        #expect(!c.hasReceived(forged))

        // After the handshake the limit is the configured one (a maximal block); beyond it ⇒ banned by id.
        let bigKey = KeyFile.generate()
        let big = try await RawPeer.connect(port: b.port, from: "127.0.0.12")
        _ = try await big.handshake(chainID: chain.chainID, key: bigKey)
        var header = ByteBuffer()
        header.writeInteger(UInt32(P2PSettings.test.maxFrameBytes) + 1)
        header.writeInteger(MessageType.newBlock.rawValue)
        try await big.send(bytes: Array(header.readableBytesView))
        try await Self.expectBanned(big, by: b, address: "127.0.0.12")
        #expect(b.service.isBanned(peer: PeerID(key: bigKey)))
        try await line.stillServing(chain, height: 13)
        await line.stop()
    }

    @Test("before the handshake only handshake-sized frames are accepted")
    func smallFramesBeforeHandshake() async throws {
        let chain = try TestChain()
        let b = try await TestNode.start("B", chain: chain)
        let raw = try await RawPeer.connect(port: b.port, from: "127.0.0.13")
        // A perfectly valid block message, but from a peer that has not authenticated.
        let bigChain = try TestChain(chainID: chain.chainID, txBytes: 4096)
        try await raw.send(.newBlock(bigChain.block(height: 1)))
        try await Self.expectBanned(raw, by: b, address: "127.0.0.13")
        await b.stop()
    }

    @Test("a flooding peer is banned; a peer slightly over the rate is only throttled")
    func flooding() async throws {
        let chain = try TestChain()
        var settings = P2PSettings.test
        settings.messagesPerSecond = 200
        settings.messageBurst = 100
        settings.floodBanFactor = 20 // ban beyond 2000 messages of debt
        let line = try await Self.line(chain: chain, bSettings: settings)
        let b = line.b

        // 300 messages in one burst: 200 over, paused for about a second, not banned.
        let eager = try await RawPeer.connect(port: b.port, from: "127.0.0.10")
        let eagerKey = KeyFile.generate()
        _ = try await eager.handshake(chainID: chain.chainID, key: eagerKey)
        // Heights are claimed with their proofs (the signed headers), as a real node does.
        let proofs = try (1...10).map { h in try chain.block(height: UInt64(h)).encodedSignedHeader }
        try await eager.send((0..<300).map { P2PMessage.status(height: UInt64($0 % 10 + 1), proof: proofs[$0 % 10]) })
        try await eager.send(.status(height: 11, proof: try chain.block(height: 11).encodedSignedHeader))
        try await waitUntil("eager peer's last status processed") {
            b.service.peers.first { $0.id == PeerID(key: eagerKey) }?.announcedHeight == 11
        }
        let info = try #require(b.service.peers.first { $0.id == PeerID(key: eagerKey) })
        #expect(info.throttleEvents >= 1)
        #expect(!eager.isClosed)
        #expect(!b.service.isBanned(address: "127.0.0.10"))
        await eager.close()

        // 50 000 messages at once: far beyond the burst, banned.
        let flooder = try await RawPeer.connect(port: b.port, from: "127.0.0.7")
        let flooderKey = KeyFile.generate()
        _ = try await flooder.handshake(chainID: chain.chainID, key: flooderKey)
        try? await flooder.send((1...50_000).map { _ in P2PMessage.status(height: 0, proof: []) })
        try await Self.expectBanned(flooder, by: b, address: "127.0.0.7")
        #expect(b.service.isBanned(peer: PeerID(key: flooderKey)))

        try await line.stillServing(chain, height: 11)
        await line.stop()
    }

    @Test("a peer that never completes the handshake is dropped after the timeout, without a ban")
    func silentPeer() async throws {
        let chain = try TestChain()
        var settings = P2PSettings.test
        settings.handshakeTimeout = .milliseconds(300)
        let b = try await TestNode.start("B", chain: chain, settings: settings)
        let silent = try await RawPeer.connect(port: b.port, from: "127.0.0.11")
        try await waitUntil("silent peer dropped") { silent.isClosed }
        #expect(silent.goodbye?.reason == .handshakeTimeout)
        #expect(!b.service.isBanned(address: "127.0.0.11"))
        await b.stop()
    }
}

/// SPEC §6 condition 2 at the transport: a height counts only with the genesis proposer's
/// signed header at that height, and what is proven stays counted.
@Suite("P2P height claims must be proven", .serialized)
struct ProvenHeightTests {
    @Test("a claim without a proof, or with a header signed by another key, is banned and never counts")
    func unprovenClaims() async throws {
        let chain = try TestChain()
        let node = try await TestNode.start("B", chain: chain)
        let bare = try await RawPeer.connect(port: node.port, from: "127.0.0.41")
        let bareKey = KeyFile.generate()
        _ = try await bare.handshake(chainID: chain.chainID, key: bareKey)
        try await bare.send(.status(height: .max, proof: []))
        try await waitUntil("the bare claim is banned") { node.service.isBanned(peer: PeerID(key: bareKey)) }

        let forger = try await RawPeer.connect(port: node.port, from: "127.0.0.42")
        let forgerKey = KeyFile.generate()
        _ = try await forger.handshake(chainID: chain.chainID, key: forgerKey)
        try await forger.send(.status(height: 7, proof: try chain.forged(height: 7).encodedSignedHeader))
        try await waitUntil("the forged proof is banned") { node.service.isBanned(peer: PeerID(key: forgerKey)) }

        // A proof for another height than claimed is no proof either.
        let shifter = try await RawPeer.connect(port: node.port, from: "127.0.0.43")
        let shifterKey = KeyFile.generate()
        _ = try await shifter.handshake(chainID: chain.chainID, key: shifterKey)
        try await shifter.send(.status(height: 900, proof: try chain.block(height: 3).encodedSignedHeader))
        try await waitUntil("the shifted proof is banned") { node.service.isBanned(peer: PeerID(key: shifterKey)) }

        #expect(node.service.maxPeerHeight == nil)
        #expect(!node.service.provenHeights.anyPeerAnswered)
        await node.stop()
    }

    @Test("a proven height stays counted after its peer disconnects")
    func provenHeightsAreSticky() async throws {
        let chain = try TestChain()
        let node = try await TestNode.start("B", chain: chain)
        let peer = try await RawPeer.connect(port: node.port, from: "127.0.0.44")
        let key = KeyFile.generate()
        _ = try await peer.handshake(chainID: chain.chainID, key: key)
        try await peer.send(.status(height: 9, proof: try chain.block(height: 9).encodedSignedHeader))
        try await waitUntil("the height is proven") { node.service.maxPeerHeight == 9 }
        await peer.close()
        try await waitUntil("the peer is gone") { node.service.peers.isEmpty }
        #expect(node.service.maxPeerHeight == 9)
        #expect(!node.service.isBanned(peer: PeerID(key: key)))
        await node.stop()
    }
}
