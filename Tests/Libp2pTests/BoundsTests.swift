@testable import Config
import Crypto
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
@testable import Libp2p
import ProcessKit
import Testing
import TestSupport

/// The bounds against strangers at the level of one component fed bytes directly (the same
/// attacks over real TCP with a real Noise handshake are in `AttackTests`).
@Suite struct YamuxBoundsTests {
    private func opened(_ session: YamuxSession, stream: UInt32 = 1) throws {
        var open = Yamux.header(.windowUpdate, .syn, stream: stream, length: 0)
        try session.receive(&open)
    }

    /// C2: a header announcing 4 GiB is refused as it arrives; main waited for the body.
    @Test func dataFrameOverTheWindowIsRefusedWhenItsHeaderArrives() throws {
        let listener = YamuxSession(isDialer: false)
        try opened(listener)
        var header = Yamux.header(.data, [], stream: 1, length: 0xFFFF_FFFF)
        header.writeBytes([1, 2, 3])
        #expect(throws: LinkError.self) { try listener.receive(&header) }
        // Exactly the window is fine, and waits for its body.
        let other = YamuxSession(isDialer: false)
        try opened(other)
        var full = Yamux.header(.data, [], stream: 1, length: Yamux.initialWindow)
        try other.receive(&full)
        #expect(full.readableBytes == Yamux.headerSize, "the frame waits for its body")
        listener.close()
        other.close()
    }

    /// Frames for streams that are gone (or never were) are bounded the same way.
    @Test func dataFrameForAnUnknownStreamIsBoundedToo() throws {
        let listener = YamuxSession(isDialer: false)
        var header = Yamux.header(.data, [], stream: 5, length: Yamux.initialWindow + 1)
        #expect(throws: LinkError.self) { try listener.receive(&header) }
        var syn = Yamux.header(.data, .syn, stream: 7, length: 0x1000_0000)
        #expect(throws: LinkError.self) { try listener.receive(&syn) }
        // Within a window, a frame for a stream this node reset is read and dropped.
        var ok = Yamux.header(.data, [], stream: 9, length: 4)
        ok.writeBytes([0, 0, 0, 0])
        try YamuxSession(isDialer: false).receive(&ok)
        #expect(ok.readableBytes == 0)
        listener.close()
    }

    /// A stream holds the peer's bytes in one buffer until read; a smaller window remains after.
    @Test func aStreamsUnreadBytesAreItsWindowAtMost() async throws {
        let listener = YamuxSession(isDialer: false)
        try opened(listener)
        var stream: YamuxStream?
        for await s in listener.inboundStreams {
            stream = s
            break
        }
        let s = try #require(stream)
        for _ in 0..<1000 {
            var one = Yamux.header(.data, [], stream: 1, length: 1)
            one.writeBytes([7])
            try listener.receive(&one)
        }
        #expect(s.unread == 1000)
        #expect(s.currentReceiveWindow == Yamux.initialWindow - 1000)
        let chunk = try await s.read(max: 10)
        #expect(chunk?.readableBytes == 10)
        #expect(s.unread == 990)
        listener.close()
    }

    /// The peer opens at most `maxInboundStreams`; the next one is reset, not kept.
    @Test func peerOpenedStreamsAreCapped() throws {
        var limits = YamuxSession.Limits()
        limits.maxInboundStreams = 4
        let listener = YamuxSession(isDialer: false, limits: limits)
        for id in stride(from: UInt32(1), through: 11, by: 2) { try opened(listener, stream: id) }
        #expect(listener.streamCount == 4)
        #expect(listener.inboundStreamCount == 4)
        listener.remove(1)
        try opened(listener, stream: 13)
        #expect(listener.streamCount == 4)
        listener.close()
    }

    /// Node-wide, past each connection's guaranteed few, peer-opened streams share a quota.
    @Test func peerOpenedStreamsShareANodeQuota() throws {
        let quota = StreamQuota(capacity: 3, guaranteed: 1)
        let a = YamuxSession(isDialer: false, inboundQuota: quota)
        let b = YamuxSession(isDialer: false, inboundQuota: quota)
        for id in stride(from: UInt32(1), through: 9, by: 2) { try opened(a, stream: id) }
        #expect(a.streamCount == 3, "a takes the whole quota")
        try opened(b, stream: 1)
        try opened(b, stream: 3)
        #expect(b.streamCount == 1, "b still gets its guaranteed stream, no more")
        a.close()
        #expect(quota.inUse == 1)
        try opened(b, stream: 5)
        #expect(b.streamCount == 2)
        b.close()
        #expect(quota.inUse == 0)
    }

    /// What the session queues for the writer is charged to its send account and given back
    /// as the writer writes it.
    @Test func queuedFramesAreChargedToTheSendAccount() async throws {
        let budget = BufferBudget(nodeCapacity: 1 << 20, accountCapacity: 1 << 20)
        let session = YamuxSession(isDialer: true, sendAccount: budget.openAccount())
        let stream = try session.openStream()
        try await stream.write(ByteBuffer(bytes: [UInt8](repeating: 1, count: 100_000)))
        #expect(budget.used == session.queuedBytes)
        #expect(budget.used > 100_000)
        for await frame in session.frames {
            session.wrote(frame.readableBytes)
            if session.queuedBytes == 0 { break }
        }
        #expect(budget.used == 0)
        session.close()
    }
}

@Suite struct ReadBufferTests {
    /// Hands out fixed chunks; counts how much was pulled.
    struct ChunkFeed: ChunkSource {
        var chunks: [ByteBuffer]
        mutating func nextChunk(max: Int) async throws -> ByteBuffer? {
            chunks.isEmpty ? nil : chunks.removeFirst()
        }
    }

    /// C2: frames that always end mid-frame kept every byte ever received in the buffer
    /// (`fill` never compacted); read bytes are discarded now.
    @Test func readerDiscardsWhatWasRead() async throws {
        let chunk = ByteBuffer(bytes: [UInt8](repeating: 0xab, count: 1000))
        var reader = ByteReader(ChunkFeed(chunks: Array(repeating: chunk, count: 2000)))
        for _ in 0..<1999 {
            _ = try await reader.readExactly(999)
        }
        #expect(reader.buffer.readableBytes == 999)
        #expect(reader.buffer.capacity < 64 * 1024, "capacity \(reader.buffer.capacity)")
    }
}

@Suite struct BudgetTests {
    @Test func accountsAndTheNodeAreBoundedApart() {
        let budget = BufferBudget(nodeCapacity: 100, accountCapacity: 60)
        let a = budget.openAccount(), b = budget.openAccount()
        #expect(a.tryReserve(60))
        #expect(!a.tryReserve(1), "a's share is full")
        #expect(b.tryReserve(40))
        #expect(!b.tryReserve(1), "the node is full")
        a.release(10)
        #expect(b.tryReserve(10))
        a.charge(50)
        #expect(budget.used == 150, "charges pass the cap")
        a.close()
        #expect(budget.used == 50)
        #expect(!a.tryReserve(1))
        b.close()
        #expect(budget.used == 0 && budget.openAccounts == 0)
    }

    @Test func waitersGetRoomInOrderAndFailWhenTheirAccountCloses() async throws {
        let budget = BufferBudget(nodeCapacity: 100, accountCapacity: 100)
        let a = budget.openAccount(), b = budget.openAccount()
        #expect(a.tryReserve(100))
        let got = NIOLockedValueBox<[String]>([])
        let waitB = Task {
            try await b.reserve(30)
            got.withLockedValue { $0.append("b") }
        }
        try await waitUntil("b waits") { got.withLockedValue { $0.isEmpty } && budget.used == 100 }
        #expect(!b.tryReserve(1), "no overtaking a waiter")
        a.release(50)
        try await waitB.value
        #expect(got.withLockedValue { $0 } == ["b"])
        let c = budget.openAccount()
        let waitC = Task { try await c.reserve(40) }
        try await Task.sleep(for: .milliseconds(50))
        c.close()
        await #expect(throws: LinkError.self) { try await waitC.value }
        let d = budget.openAccount()
        let waitD = Task { try await d.reserve(40) }
        try await Task.sleep(for: .milliseconds(50))
        waitD.cancel()
        await #expect(throws: CancellationError.self) { try await waitD.value }
        await #expect(throws: LinkError.self) { try await d.reserve(101) }
        #expect(budget.used == 80)
    }

    @Test func slotLimiterCapsPerKeyAndInTotalAndForgetsIdleKeys() {
        let limiter = SlotLimiter<String>(perKey: 2, total: 3)
        #expect(limiter.acquire("a") == nil)
        #expect(limiter.acquire("a") == nil)
        #expect(limiter.acquire("a") == .perKey)
        #expect(limiter.acquire("b") == nil)
        #expect(limiter.acquire("c") == .total)
        limiter.release("a")
        limiter.release("a")
        limiter.release("b")
        #expect(limiter.keys == 0 && limiter.inProgress == 0)
    }
}

@Suite struct BanAndAddressTests {
    /// M2: one list for both kinds let a flood of new identities push an address ban out.
    @Test func addressBansSurviveAFloodOfNewIdentities() {
        var bans = BanList(peerCapacity: 4, addressCapacity: 4)
        let now = NIODeadline.now()
        bans.ban(.address("10.0.0.1"), until: now + .seconds(60), now: now)
        for i in 0..<100 {
            bans.ban(.peer(PeerID(key: .generate())), until: now + .seconds(Int64(61 + i)), now: now)
        }
        #expect(bans.isBanned(.address("10.0.0.1"), now: now))
        #expect(bans.peers.count == 4 && bans.addresses.count == 1)
    }

    /// IPv6 by /64 (rotating inside it evades nothing); IPv4-mapped addresses as IPv4.
    @Test func addressKeysGroupAnIPv6Slash64() {
        let a = AddressKey.of(ip: "2001:db8:1:2::1")
        #expect(a == "2001:db8:1:2::/64")
        #expect(AddressKey.of(ip: "2001:db8:1:2:ffff:ffff:ffff:7") == a)
        #expect(AddressKey.of(ip: "2001:db8:1:3::1") != a)
        #expect(AddressKey.of(ip: "::ffff:10.1.2.3") == "10.1.2.3")
        #expect(AddressKey.of(ip: "10.1.2.3") == "10.1.2.3")
        #expect(AddressKey.of(ip: "not an ip") == nil)
    }

    /// A length varint near 2^63 made `i + Int(n)` trap.
    @Test func multiaddrWithAHugeLengthIsRefusedNotATrap() {
        let huge = Varint.encode(UInt64(Int.max) - 1)
        #expect(Multiaddr(bytes: Varint.encode(Multiaddr.Code.dns) + huge + [0x41]) == nil)
        let id = PeerID(key: .generate())
        let ok = Multiaddr(host: .ip4("1.2.3.4"), port: 1, peerID: id)
        var bytes = Array(ok.bytes.prefix(8))
        bytes += Varint.encode(Multiaddr.Code.p2p) + huge
        #expect(Multiaddr(bytes: bytes) == nil)
        #expect(Multiaddr(bytes: ok.bytes) == ok)
    }
}

/// FloodSub fed RPC bytes directly: what a peer's RPC costs before and after the checks.
@Suite struct FloodSubBoundsTests {
    final class Record: Sendable {
        let punished = NIOLockedValueBox<[String]>([])
        let penalized = NIOLockedValueBox<[String]>([])
        let validated = NIOLockedValueBox<[[UInt8]]>([])
    }

    static let topic = "/t-headerSync/header-sub/v0.0.1"

    static func floodsub(_ record: Record, options: FloodSub.Options = FloodSub.Options()) -> FloodSub {
        FloodSub(identity: KeyFile.generate().privateKey, topics: [topic], options: options, logger: testLogger("fs"),
                 validate: { m in
                     record.validated.withLockedValue { $0.append(m.data) }
                     return .accept
                 },
                 punish: { _, r in record.punished.withLockedValue { $0.append(r) } },
                 penalize: { _, r in record.penalized.withLockedValue { $0.append(r) } })
    }

    static func message(_ key: KeyFile, seqno: UInt64, data: [UInt8] = [1, 2, 3], topic: String = topic) -> Pubsub_Pb_Message {
        var m = Pubsub_Pb_Message()
        m.from = Data(PeerID(key: key).bytes)
        m.data = Data(data)
        m.seqno = Data((0..<8).map { UInt8(truncatingIfNeeded: seqno >> (56 - 8 * UInt64($0))) })
        m.topic = topic
        let unsigned: [UInt8] = try! m.serializedBytes()
        m.signature = try! key.privateKey.signature(for: FloodSub.signPrefix + unsigned)
        return m
    }

    static func rpc(_ messages: [Pubsub_Pb_Message]) -> [UInt8] {
        var r = Pubsub_Pb_RPC()
        r.publish = messages
        return try! r.serializedBytes()
    }

    /// M3: 20,000 two-byte empty entries decoded into ~120-byte structs before anything else.
    @Test func rpcWithTooManyEntriesIsRefusedBeforeDecoding() {
        let record = Record()
        let fs = Self.floodsub(record)
        let source = PeerID(key: .generate())
        let body: [UInt8] = (0..<40_000).map { $0 % 2 == 0 ? 0x12 : 0x00 }
        #expect(!fs.handleRPC(body, from: source))
        #expect(record.punished.withLockedValue { $0.count } == 1)
        #expect(fs.signatureChecks == 0)
        var subs = Pubsub_Pb_RPC()
        subs.subscriptions = (0..<65).map { i in
            var s = Pubsub_Pb_RPC.SubOpts()
            s.subscribe = true
            s.topicid = "t\(i)"
            return s
        }
        #expect(!fs.handleRPC(try! subs.serializedBytes(), from: source))
        #expect(record.punished.withLockedValue { $0.count } == 2)
    }

    /// M3: a valid message replayed in one RPC by a relayer cost one signature check per copy.
    @Test func copiesOfAMessageCostOneSignatureCheck() {
        let record = Record()
        let fs = Self.floodsub(record)
        let origin = KeyFile.generate()
        let relayer = PeerID(key: .generate())
        let m = Self.message(origin, seqno: 1)
        #expect(fs.handleRPC(Self.rpc(Array(repeating: m, count: 64)), from: relayer))
        #expect(fs.signatureChecks == 1)
        #expect(record.validated.withLockedValue { $0.count } == 1)
        #expect(record.punished.withLockedValue { $0.isEmpty })
        // Another relayer's copy later costs nothing either.
        #expect(fs.handleRPC(Self.rpc([m]), from: PeerID(key: .generate())))
        #expect(fs.signatureChecks == 1)
    }

    /// The seen check comes first, but only a verified message is marked seen: a forged
    /// signature on a genuine (from, seqno) cannot make the node drop the genuine message.
    @Test func aForgedCopyCannotMarkAGenuineMessageSeen() {
        let record = Record()
        let fs = Self.floodsub(record)
        let origin = KeyFile.generate()
        let genuine = Self.message(origin, seqno: 7, data: [9, 9])
        var forged = genuine
        forged.data = Data([6, 6])
        #expect(!fs.handleRPC(Self.rpc([forged]), from: PeerID(key: .generate())))
        #expect(record.punished.withLockedValue { $0.count } == 1)
        #expect(fs.handleRPC(Self.rpc([genuine]), from: PeerID(key: .generate())))
        #expect(record.validated.withLockedValue { $0 } == [[9, 9]])
    }

    /// M3: once the peer was punished the rest of its RPC is not looked at.
    @Test func processingStopsOnceThePeerIsPunished() {
        let record = Record()
        let fs = Self.floodsub(record)
        let origin = KeyFile.generate()
        var bad = Self.message(origin, seqno: 1)
        bad.signature = Data(repeating: 0, count: 64)
        let good = (2...10).map { Self.message(origin, seqno: UInt64($0)) }
        #expect(!fs.handleRPC(Self.rpc([bad] + good), from: PeerID(key: .generate())))
        #expect(record.punished.withLockedValue { $0.count } == 1)
        #expect(record.validated.withLockedValue { $0.isEmpty })
        #expect(fs.signatureChecks == 1)
    }

    /// Cheap checks before the signature: a malformed signature or another topic costs none.
    @Test func cheapChecksComeBeforeTheSignature() {
        let record = Record()
        let fs = Self.floodsub(record)
        let origin = KeyFile.generate()
        let other = Self.message(origin, seqno: 1, topic: "/elsewhere")
        #expect(fs.handleRPC(Self.rpc([other]), from: PeerID(key: .generate())))
        var short = Self.message(origin, seqno: 2)
        short.signature = Data([1, 2, 3])
        #expect(!fs.handleRPC(Self.rpc([short]), from: PeerID(key: .generate())))
        #expect(fs.signatureChecks == 0)
        #expect(record.validated.withLockedValue { $0.isEmpty })
    }
}
