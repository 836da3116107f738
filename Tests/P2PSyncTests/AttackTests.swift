@testable import Config
import Foundation
import NIOConcurrencyHelpers
import NIOCore
@testable import P2PSync
import ProcessKit
import Testing
import TestSupport
@testable import Libp2p

/// Strangers attacking a real `P2PService` over real TCP on 127.0.0.x: each attacker completes
/// a real Noise handshake with an identity of its own (or holds a bare socket), then sends what
/// an honest peer would not. Each test names the finding of the 2026-12-07 review it covers.
@Suite(.serialized) struct AttackTests {
    static let chainID = "attack"

    static func expectGoAway(_ frame: RawSession.Frame?, _ code: Yamux.GoAwayCode) {
        #expect(frame?.type == .goAway)
        #expect(frame?.length == code.rawValue)
    }

    // MARK: yamux (C2)

    /// A data frame announcing 4 GiB, its body trickling in: the node closes the connection
    /// (GoAway, protocol error) on the header instead of buffering toward 4 GiB.
    @Test func anOversizedFrameClosesTheConnectionAtItsHeader() async throws {
        let chain = try TestChain(chainID: Self.chainID)
        let a = try await TestNode.start("a", chain: chain)
        let conn = try await withTimeout(.seconds(20), "the node closing the connection") {
            try await RawSession.with(port: a.port, from: "127.0.0.2") { raw -> Libp2pConnection in
                let peer = raw.id
                try await waitUntil("connected") { a.service.host.connection(to: peer) != nil }
                let conn = try #require(a.service.host.connection(to: peer))
                let id = try await raw.open(Libp2pHost.pingID)
                try await raw.frame(.data, [], stream: id, length: 0xFFFF_FFFF)
                for _ in 0..<32 {
                    do {
                        try await raw.outbound.write(Libp2pHost.encrypt(ByteBuffer(repeating: 0, count: 60_000), &raw.send))
                    } catch {
                        break
                    }
                }
                // The GoAway itself may be lost to the reset of a socket closed with unread data.
                let goAway = try await raw.readUntil { $0.type == .goAway }
                if let goAway { Self.expectGoAway(goAway, .protocolError) }
                return conn
            }
        }
        #expect(conn.isClosed)
        #expect(conn.closeReason?.contains("over its window") == true, "\(conn.closeReason ?? "")")
        await a.stop()
    }

    // MARK: header-ex server (C3)

    /// A range request whose answer the peer never lets through (no window granted): the
    /// node reads one block at a time, and resets the stream at the write deadline.
    @Test func exchangeAnswersAreStreamedAndAWithheldWindowGetsTheStreamReset() async throws {
        let chain = try TestChain(chainID: Self.chainID)
        try chain.build(to: 64, txBytes: 64 * 1024)
        let recording = RecordingSource(chain.source)
        var settings = P2PSettings.test
        settings.exchangeWriteDeadline = .seconds(1)
        let a = try await TestNode.start("a", chain: chain, source: recording, settings: settings)
        let proto = HeaderExchange.protocolID(network: HeaderExchange.dataNetwork(chainID: Self.chainID))
        let request = Array(HeaderExchange.frame(HeaderExchange.rangeRequest(from: 1, amount: 64)).readableBytesView)
        let (received, reset) = try await withTimeout(.seconds(30), "the stream's reset") {
            try await RawSession.with(port: a.port, from: "127.0.0.3") { raw -> (Int, Bool) in
                let id = try await raw.open(proto, payload: request, fin: true)
                var received = 0
                let rst = try await raw.readUntil { f in
                    if f.stream == id, f.type == .data { received += f.payload.count }
                    return f.stream == id && f.flags.contains(.rst)
                }
                return (received, rst != nil)
            }
        }
        #expect(reset)
        #expect(received <= Int(Yamux.initialWindow))
        #expect(recording.largestRequest == 1, "one block read at a time")
        #expect(recording.requests < 64)
        await a.stop()
    }

    /// Requests a peer may have answered at once are capped; beyond the cap the stream is reset.
    @Test func concurrentExchangeRequestsPerPeerAreCapped() async throws {
        let chain = try TestChain(chainID: Self.chainID)
        try chain.build(to: 64, txBytes: 64 * 1024)
        var settings = P2PSettings.test
        settings.exchangeRequestsPerPeer = 2
        settings.exchangeWriteDeadline = .seconds(60)
        let a = try await TestNode.start("a", chain: chain, source: chain.source, settings: settings)
        let proto = HeaderExchange.protocolID(network: HeaderExchange.dataNetwork(chainID: Self.chainID))
        let request = Array(HeaderExchange.frame(HeaderExchange.rangeRequest(from: 1, amount: 64)).readableBytesView)
        let resets = try await withTimeout(.seconds(30), "two resets") {
            try await RawSession.with(port: a.port, from: "127.0.0.4") { raw -> Set<UInt32> in
                var ids: [UInt32] = []
                for _ in 0..<4 { ids.append(try await raw.open(proto, payload: request, fin: true)) }
                var reset: Set<UInt32> = []
                _ = try await raw.readUntil { f in
                    if ids.contains(f.stream), f.flags.contains(.rst) { reset.insert(f.stream) }
                    return reset.count == 2
                }
                return reset
            }
        }
        #expect(resets.count == 2)
        await a.stop()
    }

    // MARK: header-ex client (M7)

    /// Answers every header-ex stream the node opens for `proto` with `messages`; the node's
    /// own request runs meanwhile. Returns its outcome.
    private func answering(_ a: TestNode, proto: String, from address: String, messages: [ByteBuffer],
                           request: @escaping @Sendable (Libp2pConnection) async throws -> [[UInt8]]) async throws
        -> Result<[[UInt8]], any Error> {
        let outcome = NIOLockedValueBox<Result<[[UInt8]], any Error>?>(nil)
        try await withTimeout(.seconds(30), "the node's request") {
            try await RawSession.with(port: a.port, from: address) { raw in
                let id = raw.id
                try await waitUntil("connected") { a.service.host.connection(to: id) != nil }
                let conn = try #require(a.service.host.connection(to: id))
                let task = Task {
                    let r: Result<[[UInt8]], any Error>
                    do { r = .success(try await request(conn)) } catch { r = .failure(error) }
                    outcome.withLockedValue { $0 = r }
                }
                while outcome.withLockedValue({ $0 }) == nil {
                    guard let syn = try await raw.readUntil({ f in
                        (f.type == .data && String(decoding: f.payload, as: UTF8.self).contains(proto))
                            || outcome.withLockedValue({ $0 }) != nil
                    }), outcome.withLockedValue({ $0 }) == nil else { break }
                    var answer = Multistream.messages([Multistream.header, proto])
                    for m in messages { answer.writeImmutableBuffer(m) }
                    try await raw.data(stream: syn.stream, Array(answer.readableBytesView), flags: .fin)
                }
                await task.value
            }
        }
        return try #require(outcome.withLockedValue { $0 })
    }

    /// A header answer is at most 64 KiB: a 100 KiB one fails the request on its length,
    /// before its body is read (main took up to 10 MiB per message, 64 per request).
    @Test func anOversizedHeaderAnswerIsRefusedOnItsLength() async throws {
        let chain = try TestChain(chainID: Self.chainID)
        var settings = P2PSettings.test
        settings.headPollInterval = .seconds(600)
        let a = try await TestNode.start("a", chain: chain, settings: settings)
        let network = HeaderExchange.headerNetwork(chainID: Self.chainID)
        let big = HeaderExchange.frame(HeaderExchange.ok([UInt8](repeating: 7, count: 100 * 1024)))
        let host = a.service.host, budget = a.service.exchangeClientBudget
        let outcome = try await answering(a, proto: HeaderExchange.protocolID(network: network), from: "127.0.0.5",
                                          messages: [big]) { conn in
            try await HeaderExchange.request(HeaderExchange.rangeRequest(from: 1, amount: 4), network: network,
                                             on: conn, host: host, budget: budget, timeout: .seconds(10))
        }
        guard case .failure(LinkError.tooLarge(let n, let limit)) = outcome else {
            Issue.record("expected a too-large failure, got \(outcome)")
            await a.stop()
            return
        }
        #expect(n > 100 * 1024 && limit == HeaderExchange.ResponseLimits.headers.message)
        // The node's own head request to the new peer (sent on connecting) may still hold its
        // allowance, until it is answered or times out (5 s); nothing is held after that.
        try await waitUntil("every allowance to be given back", timeout: .seconds(15)) {
            budget.used == 0
        }
        await a.stop()
    }

    /// An answer is cut at its allowance: the blocks received so far are kept (the rest is
    /// asked for again), never more than the allowance held.
    @Test func anAnswerPastItsAllowanceEndsThere() async throws {
        let chain = try TestChain(chainID: Self.chainID)
        let a = try await TestNode.start("a", chain: chain)
        let network = HeaderExchange.dataNetwork(chainID: Self.chainID)
        let body = HeaderExchange.frame(HeaderExchange.ok([UInt8](repeating: 1, count: 20 * 1024)))
        let host = a.service.host, budget = a.service.exchangeClientBudget
        let limits = HeaderExchange.ResponseLimits(message: 32 * 1024, response: 64 * 1024)
        let outcome = try await answering(a, proto: HeaderExchange.protocolID(network: network), from: "127.0.0.6",
                                          messages: Array(repeating: body, count: 10)) { conn in
            try await HeaderExchange.request(HeaderExchange.rangeRequest(from: 1, amount: 10), network: network,
                                             on: conn, host: host, budget: budget, timeout: .seconds(10), limits: limits)
        }
        let bodies = try outcome.get()
        #expect(bodies.count == 3, "three 20 KiB answers fit 64 KiB")
        // Its own head requests to the silent peer end with the connection.
        try await waitUntil("every allowance returned") { budget.used == 0 }
        await a.stop()
    }

    // MARK: FloodSub (M3, C4's queue)

    /// Only this node's topics are kept of a peer's subscriptions.
    @Test func onlyThisNodesTopicsAreKeptOfASubscription() async throws {
        let chain = try TestChain(chainID: Self.chainID)
        let a = try await TestNode.start("a", chain: chain)
        var hello = Pubsub_Pb_RPC()
        hello.subscriptions = ([a.service.headerTopic] + (0..<20).map { "/junk/\($0)" }).map { t in
            var s = Pubsub_Pb_RPC.SubOpts()
            s.subscribe = true
            s.topicid = t
            return s
        }
        let payload = Array(FloodSub.frame(hello).readableBytesView)
        try await withTimeout(.seconds(20), "the subscription") {
            try await RawSession.with(port: a.port, from: "127.0.0.7") { raw in
                let id = raw.id
                _ = try await raw.open(FloodSub.protocolID, payload: payload)
                try await waitUntil("subscribed") { !a.service.floodsub.topics(of: id).isEmpty }
                #expect(a.service.floodsub.topics(of: id) == [a.service.headerTopic])
            }
        }
        await a.stop()
    }

    /// One RPC stream per peer, as in go-libp2p-pubsub: a newer one resets the older.
    @Test func aNewerGossipStreamReplacesTheOlder() async throws {
        let chain = try TestChain(chainID: Self.chainID)
        let a = try await TestNode.start("a", chain: chain)
        var hello = Pubsub_Pb_RPC()
        var sub = Pubsub_Pb_RPC.SubOpts()
        sub.subscribe = true
        sub.topicid = a.service.headerTopic
        hello.subscriptions = [sub]
        let payload = Array(FloodSub.frame(hello).readableBytesView)
        try await withTimeout(.seconds(20), "the older stream's reset") {
            try await RawSession.with(port: a.port, from: "127.0.0.16") { raw in
                let first = try await raw.open(FloodSub.protocolID, payload: payload)
                let id = raw.id
                try await waitUntil("subscribed") { !a.service.floodsub.topics(of: id).isEmpty }
                let second = try await raw.open(FloodSub.protocolID, payload: payload)
                let rst = try await raw.readUntil { $0.flags.contains(.rst) && ($0.stream == first || $0.stream == second) }
                #expect(rst?.stream == first)
            }
        }
        await a.stop()
    }

    /// A subscriber that takes the gossip stream but never opens its window: what is queued
    /// for it stays within its connection's send budget, and the rest is dropped.
    @Test func gossipQueuedToASlowPeerStaysWithinItsConnectionBudget() async throws {
        let chain = try TestChain(chainID: Self.chainID)
        try chain.build(to: 24, txBytes: 100 * 1024)
        var settings = P2PSettings.test
        settings.sendBufferPerConnectionBytes = 1 << 20
        let a = try await TestNode.start("a", chain: chain, settings: settings)
        let topics = [a.service.headerTopic, a.service.dataTopic]
        let blocks = try chain.blocks(1...24)
        try await withTimeout(.seconds(30), "drops") {
            try await RawSession.with(port: a.port, from: "127.0.0.8") { raw in
                let id = raw.id
                var hello = Pubsub_Pb_RPC()
                hello.subscriptions = topics.map { t in
                    var s = Pubsub_Pb_RPC.SubOpts()
                    s.subscribe = true
                    s.topicid = t
                    return s
                }
                _ = try await raw.open(FloodSub.protocolID, payload: Array(FloodSub.frame(hello).readableBytesView))
                // Take the node's gossip stream, then never read it.
                let syn = try #require(try await raw.readUntil { f in
                    f.type == .data && String(decoding: f.payload, as: UTF8.self).contains(FloodSub.protocolID)
                })
                try await raw.data(stream: syn.stream,
                                   Array(Multistream.messages([Multistream.header, FloodSub.protocolID]).readableBytesView))
                try await waitUntil("subscribed") { a.service.floodsub.topics(of: id).count == 2 }
                for b in blocks { a.service.broadcast(block: b) }
                try await waitUntil("gossip beyond the budget is dropped") { a.service.floodsub.dropped(for: id) > 0 }
                #expect(a.service.host.sendBudget.used <= (1 << 20) + 64 * 1024)
            }
        }
        await a.stop()
    }

    /// A peer that grants windows but stops reading its socket: the node's write stalls and
    /// the connection is closed after the write timeout.
    @Test func aPeerThatStopsReadingIsClosedAfterTheWriteTimeout() async throws {
        let chain = try TestChain(chainID: Self.chainID)
        try chain.build(to: 40, txBytes: 400 * 1024)
        var settings = P2PSettings.test
        settings.writeTimeout = .seconds(1)
        let a = try await TestNode.start("a", chain: chain, settings: settings)
        let topics = [a.service.headerTopic, a.service.dataTopic]
        let blocks = try chain.blocks(1...40)
        try await withTimeout(.seconds(40), "the close") {
            try await RawSession.with(port: a.port, from: "127.0.0.9") { raw in
                let id = raw.id
                var hello = Pubsub_Pb_RPC()
                hello.subscriptions = topics.map { t in
                    var s = Pubsub_Pb_RPC.SubOpts()
                    s.subscribe = true
                    s.topicid = t
                    return s
                }
                _ = try await raw.open(FloodSub.protocolID, payload: Array(FloodSub.frame(hello).readableBytesView))
                let syn = try #require(try await raw.readUntil { f in
                    f.type == .data && String(decoding: f.payload, as: UTF8.self).contains(FloodSub.protocolID)
                })
                try await raw.data(stream: syn.stream,
                                   Array(Multistream.messages([Multistream.header, FloodSub.protocolID]).readableBytesView))
                try await raw.frame(.windowUpdate, [], stream: syn.stream, length: 1 << 30)
                try await waitUntil("subscribed") { a.service.floodsub.topics(of: id).count == 2 }
                // Not reading from here on. Gossip until the socket's buffers (their size is
                // the kernel's to tune) are full and a write waits.
                let end = ContinuousClock.now + .seconds(30)
                while !(a.service.host.connection(to: id)?.isClosed ?? true), ContinuousClock.now < end {
                    for b in blocks { a.service.broadcast(block: b) }
                    try await Task.sleep(for: .milliseconds(200))
                }
                #expect(a.service.host.connection(to: id)?.isClosed ?? true, "closed as not reading")
                #expect(a.service.host.connection(to: id)?.closeReason?.contains("does not read") ?? true)
            }
        }
        await a.stop()
    }

    // MARK: Connections (M2)

    /// An inbound handshake that stalls frees its slot after the inbound deadline, not the
    /// outbound one.
    @Test func aStalledInboundHandshakeFreesItsSlotQuickly() async throws {
        let chain = try TestChain(chainID: Self.chainID)
        var settings = P2PSettings.test
        settings.inboundHandshakeTimeout = .seconds(1)
        let a = try await TestNode.start("a", chain: chain, settings: settings)
        let socket = try await IdleSocket.open(port: a.port, from: "127.0.0.10")
        try await waitUntil("the stalled handshake is closed", timeout: .seconds(4)) { !socket.isOpen }
        try await waitUntil("its slot is free") { a.service.host.openChannelCount == 0 }
        await a.stop()
    }

    /// Inbound connections per address are limited; other addresses are not affected.
    @Test func inboundConnectionsPerAddressAreLimited() async throws {
        let chain = try TestChain(chainID: Self.chainID)
        var settings = P2PSettings.test
        settings.maxInboundPerAddress = 3
        let a = try await TestNode.start("a", chain: chain, settings: settings)
        var held: [IdleSocket] = []
        for _ in 0..<3 { held.append(try await IdleSocket.open(port: a.port, from: "127.0.0.11")) }
        try await waitUntil("three handshakes in progress") { a.service.host.connectionCounts.inboundHandshaking == 3 }
        let fourth = try await IdleSocket.open(port: a.port, from: "127.0.0.11")
        try await waitUntil("the fourth is refused", timeout: .seconds(3)) { !fourth.isOpen }
        #expect(fourth.bytesReceived == 0, "refused before the handshake")
        let elsewhere = try await IdleSocket.open(port: a.port, from: "127.0.0.12")
        try await waitUntil("another address is admitted") { a.service.host.connectionCounts.inboundHandshaking == 4 }
        #expect(held.allSatisfy(\.isOpen) && elsewhere.isOpen)
        for s in held + [elsewhere] { s.close() }
        await a.stop()
    }

    /// A banned address is refused when it connects, before a byte of the handshake (main
    /// answered with multistream and Noise, then refused the identity).
    @Test func aBannedAddressIsRefusedBeforeTheHandshake() async throws {
        let chain = try TestChain(chainID: Self.chainID)
        let a = try await TestNode.start("a", chain: chain)
        try await withTimeout(.seconds(20), "the ban") {
            try await RawSession.with(port: a.port, from: "127.0.0.13") { raw in
                let id = raw.id
                try await waitUntil("connected") { a.service.host.connection(to: id) != nil }
                a.service.penalize(peer: id, reason: "test: misbehaved")
                _ = try await raw.readUntil { _ in false }
            }
        }
        #expect(a.service.isBanned(address: "127.0.0.13"))
        let socket = try await IdleSocket.open(port: a.port, from: "127.0.0.13")
        try await waitUntil("refused at accept", timeout: .seconds(3)) { !socket.isOpen }
        #expect(socket.bytesReceived == 0)
        await a.stop()
    }

    /// 64 idle sockets from eight addresses, reopened as they close (the review's eclipse):
    /// an honest node still gets in, because a stranger's handshake makes room.
    @Test func idleSocketsFromManyAddressesDoNotLockOutAPeer() async throws {
        let chain = try TestChain(chainID: Self.chainID)
        let a = try await TestNode.start("a", chain: chain)
        let port = a.port
        let attacker = Task {
            var sockets: [IdleSocket] = []
            while !Task.isCancelled {
                sockets.removeAll { !$0.isOpen }
                for i in 0..<8 {
                    let from = "127.0.1.\(i + 1)"
                    var mine = sockets.filter { $0.channel.localAddress?.ipAddress == from }.count
                    while mine < 8, let s = try? await IdleSocket.open(port: port, from: from) {
                        sockets.append(s)
                        mine += 1
                    }
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
            for s in sockets { s.close() }
        }
        try await waitUntil("the attack holds the handshake slots") {
            a.service.host.connectionCounts.inboundHandshaking >= 16
        }
        let b = try await TestNode.start("b", chain: chain, peers: [a.multiaddr])
        try await waitUntil("the honest node connects", timeout: .seconds(15)) { a.isConnected(to: b) }
        #expect(a.service.host.connectionCounts.evicted > 0)
        attacker.cancel()
        await attacker.value
        await b.stop()
        await a.stop()
    }

    /// Strangers fill the inbound slots; a configured peer's inbound connection is admitted
    /// beyond them, a further stranger is not.
    @Test func configuredPeersKeepInboundSlots() async throws {
        let chain = try TestChain(chainID: Self.chainID)
        let cKey = KeyFile.generate()
        let deadPort = try freeLoopbackPort()
        var settings = P2PSettings.test
        settings.maxInboundConnections = 1
        let a = try await TestNode.start("a", chain: chain, peers: ["/ip4/127.0.0.1/tcp/\(deadPort)/p2p/\(PeerID(key: cKey))"],
                                         settings: settings)
        let port = a.port
        let stranger = Task {
            try await RawSession.with(port: port, from: "127.0.0.14") { raw in _ = try await raw.readUntil { _ in false } }
        }
        try await waitUntil("the stranger holds the slot") { a.service.host.connectionCounts.inboundEstablished == 1 }
        let refusedBefore = a.service.host.connectionCounts.refused
        try await withTimeout(.seconds(20), "the second stranger's refusal") {
            try await RawSession.with(port: port, from: "127.0.0.15") { raw in _ = try await raw.readUntil { _ in false } }
        }
        #expect(a.service.host.connectionCounts.refused > refusedBefore)
        let c = try await TestNode.start("c", chain: chain, peers: [a.multiaddr], key: cKey)
        try await waitUntil("the configured peer is admitted") { a.isConnected(to: c) }
        stranger.cancel()
        _ = await stranger.result
        await c.stop()
        await a.stop()
    }
}
