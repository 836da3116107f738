import Block
@testable import Config
@testable import P2PSync
import Testing

/// Three real services on 127.0.0.1 in a line A – B – C (A and C are not connected). Blocks are
/// real: built by the Block module, signed by the genesis proposer, checked by
/// `SignedBlockValidator`; B serves them from a RocksDB `BlockStore`.
@Suite("P2P line of three nodes", .serialized)
struct LineTopologyTests {
    struct Line {
        let a: TestNode, b: TestNode, c: TestNode

        func stop() async {
            await c.stop()
            await b.stop()
            await a.stop()
        }
    }

    static func line(chain: TestChain, bSource: any BlockSource = MemoryBlockSource(),
                     bSettings: P2PSettings = .test) async throws -> Line {
        let a = try await TestNode.start("A", chain: chain)
        let b = try await TestNode.start("B", chain: chain, peers: [a.port], source: bSource, settings: bSettings)
        let c = try await TestNode.start("C", chain: chain, peers: [b.port])
        try await waitUntil("A–B–C connected") {
            a.isConnected(to: b) && c.isConnected(to: b) && b.service.peers.count == 2
        }
        #expect(!a.isConnected(to: c))
        return Line(a: a, b: b, c: c)
    }

    @Test("a block gossiped by A reaches C through B, once, and is not echoed back to A")
    func gossipAlongTheLine() async throws {
        let chain = try TestChain()
        let line = try await Self.line(chain: chain)
        let (a, b, c) = (line.a, line.b, line.c)

        let first = try chain.block(height: 1)
        a.service.broadcast(block: first)
        try await waitUntil("C receives block 1") { c.hasReceived(first) }
        #expect(c.received.first?.from == b.id)
        #expect(b.received.first?.from == a.id)
        // What arrives decodes to the block the proposer built.
        let decoded = try chain.validator.check(c.received[0].block).get()
        #expect(try decoded.signedHeader == chain.store.signedHeader(at: 1))

        // A second block pushes through the same ordered connections: once it has arrived, any
        // echo or duplicate of the first would have arrived before it.
        let second = try chain.block(height: 2)
        a.service.broadcast(block: second)
        try await waitUntil("C receives block 2") { c.hasReceived(second) }
        #expect(c.received.map(\.block) == [first, second])
        #expect(b.received.map(\.block) == [first, second])
        #expect(a.received.isEmpty)

        // A rebroadcast of a known block is dropped by B's seen-set.
        a.service.broadcast(block: first)
        let third = try chain.block(height: 3)
        a.service.broadcast(block: third)
        try await waitUntil("C receives block 3") { c.hasReceived(third) }
        #expect(c.received.map(\.block) == [first, second, third])
        await line.stop()
    }

    @Test("heights announced on connect and on each new block give maxPeerHeight")
    func heightAnnouncements() async throws {
        let chain = try TestChain()
        try chain.build(to: 20)
        let line = try await Self.line(chain: chain, bSource: chain.source)
        let (a, b, c) = (line.a, line.b, line.c)
        try await waitUntil("C learns B's height 20") { c.service.maxPeerHeight == 20 }
        try await waitUntil("A learns B's height 20") { a.service.maxPeerHeight == 20 }
        // B hears 0 from A and C: both announced, neither is above zero.
        try await waitUntil("B hears A and C") { b.service.peers.allSatisfy { $0.announcedHeight == 0 } }
        #expect(b.service.maxPeerHeight == 0)

        try chain.build(to: 21)
        b.service.announce(height: 21)
        try await waitUntil("C learns height 21") { c.service.maxPeerHeight == 21 }
        let info = try #require(c.service.peers.first)
        #expect(info.id == b.id)
        #expect(info.lastAnnouncedAt != nil)
        #expect(info.direction == .outbound)
        await line.stop()
    }

    @Test("C fetches 200 blocks from B's store in requests of at most 64")
    func rangeOf200() async throws {
        let chain = try TestChain()
        let blocks = try chain.blocks(1...200)
        let served = RecordingSource(chain.source)
        let line = try await Self.line(chain: chain, bSource: served)
        let (b, c) = (line.b, line.c)
        try await waitUntil("C learns B's height") { c.service.maxPeerHeight == 200 }

        let fetched = try await c.service.requestRange(from: 1, to: 200)
        #expect(fetched == blocks)
        #expect(served.largestRequest <= P2PProtocol.maxBlocksPerRequest)
        #expect(served.requests >= 4)
        let info = try #require(c.service.peers.first { $0.id == b.id })
        #expect(info.requestsAnswered >= 4)
        #expect(info.lastResponseAt != nil)
        // Every fetched block passes the full check against the genesis proposer.
        for block in fetched { #expect(chain.validator.validate(block) == .accept) }

        // A sub-range that does not start at a chunk boundary.
        #expect(try await c.service.requestRange(from: 63, to: 130) == Array(blocks[62..<130]))
        // Heights nobody has fail with a typed error naming them.
        await #expect(throws: P2PError.self) { try await c.service.requestRange(from: 190, to: 260) }
        await #expect(throws: P2PError.invalidRange(from: 5, to: 4)) { try await c.service.requestRange(from: 5, to: 4) }
        // Nobody was punished along the way.
        #expect(c.service.activeBans.isEmpty && b.service.activeBans.isEmpty)
        await line.stop()
    }

    @Test("responses are cut to the frame limit and the requester asks again for the rest")
    func partialResponses() async throws {
        // 20 KiB of txs per block, 64 KiB frames: three blocks per response at most.
        let chain = try TestChain(txBytes: 20 << 10)
        let blocks = try chain.blocks(1...40)
        var small = P2PSettings.test
        small.maxFrameBytes = 64 << 10
        let served = RecordingSource(chain.source)
        let line = try await Self.line(chain: chain, bSource: served, bSettings: small)
        try await waitUntil("C learns B's height") { line.c.service.maxPeerHeight == 40 }
        let fetched = try await line.c.service.requestRange(from: 1, to: 40)
        #expect(fetched == blocks)
        #expect(served.requests >= 14)
        await line.stop()
    }
}

@Suite("P2P range requests with unreliable peers", .serialized)
struct RangeFailoverTests {
    @Test("a peer serving forged blocks is banned, and the range comes from an honest peer")
    func forgedBlocks() async throws {
        let chain = try TestChain()
        let good = try chain.blocks(1...200)
        // A's store holds blocks whose headers are signed by someone who is not the proposer,
        // but it proves its height with a genuine header (so only its range answer is wrong).
        let forged = try (1...200).map { try chain.forged(height: UInt64($0)) }
        let honest = MemoryBlockSource()
        let forger = MemoryBlockSource(forged)
        forger.prove(with: good)
        let a = try await TestNode.start("A", chain: chain, source: forger)
        let b = try await TestNode.start("B", chain: chain, source: honest)
        let c = try await TestNode.start("C", chain: chain, peers: [a.port, b.port])
        try await waitUntil("C connected to A and B") { c.isConnected(to: a) && c.isConnected(to: b) }
        try await waitUntil("C knows A's height") { c.service.maxPeerHeight == 200 }

        // Only A claims the heights: its forged answer gets it banned and the fetch fails.
        await #expect(throws: P2PError.self) { try await c.service.requestRange(from: 1, to: 200) }
        #expect(c.service.isBanned(peer: a.id))
        try await waitUntil("A disconnected") { !c.isConnected(to: a) }

        // B gets the real blocks and announces them; the fetch now succeeds from B.
        honest.add(good)
        b.service.announce(height: 200)
        try await waitUntil("C learns B's height") {
            c.service.peers.first { $0.id == b.id }?.announcedHeight == 200
        }
        #expect(try await c.service.requestRange(from: 1, to: 200) == good)
        #expect(c.isConnected(to: b))
        await c.stop()
        await b.stop()
        await a.stop()
    }

    @Test("a peer whose store fails or lacks the blocks is skipped without a ban")
    func failingStore() async throws {
        let chain = try TestChain()
        let good = try chain.blocks(1...100)
        let broken = MemoryBlockSource(good)
        broken.setFailing(true)
        let pruned = MemoryBlockSource()
        pruned.claim(height: 100)
        pruned.prove(with: good)
        let a = try await TestNode.start("A", chain: chain, source: broken)
        let b = try await TestNode.start("B", chain: chain, source: pruned)
        let c = try await TestNode.start("C", chain: chain, peers: [a.port, b.port])
        try await waitUntil("C sees both at 100") {
            c.service.peers.count == 2 && c.service.peers.allSatisfy { $0.announcedHeight == 100 }
        }
        await #expect(throws: P2PError.self) { try await c.service.requestRange(from: 1, to: 100) }
        #expect(c.service.activeBans.isEmpty)
        #expect(c.service.peers.count == 2)
        broken.setFailing(false)
        #expect(try await c.service.requestRange(from: 1, to: 100) == good)
        let failures = c.service.peers.map(\.requestsFailed).reduce(0, +)
        #expect(failures >= 2)
        await c.stop()
        await b.stop()
        await a.stop()
    }
}

@Suite("P2P gossip in a loop, buffering and penalties", .serialized)
struct GossipLoopTests {
    @Test("in a triangle every node gets each block exactly once: the seen-set stops the loop")
    func triangle() async throws {
        let chain = try TestChain()
        let a = try await TestNode.start("A", chain: chain)
        let b = try await TestNode.start("B", chain: chain, peers: [a.port])
        let c = try await TestNode.start("C", chain: chain, peers: [a.port, b.port])
        try await waitUntil("triangle connected") {
            a.service.peers.count == 2 && b.service.peers.count == 2 && c.service.peers.count == 2
        }
        let blocks = try chain.blocks(1...20)
        for block in blocks { a.service.broadcast(block: block) }
        try await waitUntil("B and C have all 20") {
            blocks.allSatisfy { b.hasReceived($0) && c.hasReceived($0) }
        }
        // Without the seen-set B and C would relay to each other forever; flush with one more
        // block from B and count.
        let marker = try chain.block(height: 21)
        b.service.broadcast(block: marker)
        try await waitUntil("marker everywhere") { a.hasReceived(marker) && c.hasReceived(marker) }
        for block in blocks {
            #expect(b.received.filter { $0.block == block }.count == 1)
            #expect(c.received.filter { $0.block == block }.count == 1)
        }
        #expect(a.received.map(\.block) == [marker])
        await c.stop()
        await b.stop()
        await a.stop()
    }

    @Test("gossip waiting for a slow node is bounded: the oldest are dropped and counted")
    func boundedInbox() async throws {
        let chain = try TestChain()
        let a = try await TestNode.start("A", chain: chain)
        var settings = P2PSettings.test
        settings.receivedBufferCapacity = 4
        // A service whose received blocks nobody reads yet.
        let slow = P2PService(config: P2PConfig(listen: HostPort(host: "127.0.0.1", port: 0),
                                                peers: [HostPort(host: "127.0.0.1", port: a.port)]),
                              nodeKey: .generate(), chainID: chain.chainID, source: MemoryBlockSource(),
                              validator: chain.validator,
                                 provenHeights: ProvenPeerHeights(validator: chain.validator.blockValidator), settings: settings, logger: testLogger("slow"))
        try await slow.start()
        try await waitUntil("connected") { slow.peers.count == 1 }
        let blocks = try chain.blocks(1...10)
        for block in blocks { a.service.broadcast(block: block) }
        try await waitUntil("6 dropped") { slow.receivedBlocksDropped == 6 }
        await slow.shutdown()
        var kept: [P2PBlock] = []
        for await received in slow.receivedBlocks { kept.append(received.block) }
        #expect(kept == Array(blocks[6...]))
        await a.stop()
    }

    @Test("penalize(peer:) disconnects and bans a peer the node found bad later")
    func penalize() async throws {
        let chain = try TestChain()
        let a = try await TestNode.start("A", chain: chain)
        let b = try await TestNode.start("B", chain: chain, peers: [a.port])
        try await waitUntil("connected") { b.isConnected(to: a) }
        b.service.penalize(peer: a.id, reason: "block 5 failed app-hash check")
        try await waitUntil("A dropped") { !b.isConnected(to: a) && !a.isConnected(to: b) }
        #expect(b.service.isBanned(peer: a.id))
        #expect(b.service.activeBans.contains { $0.subject == .peer(a.id) })
        await b.stop()
        await a.stop()
    }
}
