import Crypto
import Foundation
import Logging
@testable import Libp2p
import Synchronization
import Testing

/// FloodSub's rules on RPCs as they arrive (`handleRPC`, what the stream handler calls for each
/// one): StrictSign, the seen-cache and its bound, topics, the per-RPC entry limits, blame.
/// Gossip between real services is in ServiceTests/GossipTests, with py-libp2p in IntegrationTests.
@Suite struct FloodSubTests {
    static let topic = "/chain-headerSync/topic"

    /// What the FloodSub under test asked of its owner.
    final class Owner: Sendable {
        private struct Calls {
            var validated: [FloodSub.Incoming] = []
            var punished: [(PeerID, String)] = []
            var penalized: [PeerID] = []
        }
        private let calls = Mutex(Calls())
        let verdict: FloodSub.Verdict

        init(verdict: FloodSub.Verdict = .accept) { self.verdict = verdict }

        var validated: [FloodSub.Incoming] { calls.withLock { $0.validated } }
        var punished: [(PeerID, String)] { calls.withLock { $0.punished } }
        var penalized: [PeerID] { calls.withLock { $0.penalized } }

        func floodsub(seenCapacity: Int = 1024, maxMessagesPerRPC: Int = 64) -> FloodSub {
            var options = FloodSub.Options()
            options.seenCapacity = seenCapacity
            options.maxMessagesPerRPC = maxMessagesPerRPC
            return FloodSub(identity: .init(), topics: [FloodSubTests.topic], options: options,
                            logger: Logger(label: "floodsub.test", factory: { _ in SwiftLogNoOpLogHandler() }),
                            validate: { m in self.calls.withLock { $0.validated.append(m) }; return self.verdict },
                            punish: { p, r in self.calls.withLock { $0.punished.append((p, r)) } },
                            penalize: { p, _ in self.calls.withLock { $0.penalized.append(p) } })
        }
    }

    /// A message `origin` signed (StrictSign, as `FloodSub.publish` does).
    static func message(from origin: Curve25519.Signing.PrivateKey, seqno: UInt64, topic: String = topic,
                        data: [UInt8] = [1, 2, 3]) throws -> Pubsub_Pb_Message {
        var m = Pubsub_Pb_Message()
        m.from = Data(PeerID(publicKey: Array(origin.publicKey.rawRepresentation)).bytes)
        m.data = Data(data)
        m.seqno = Data((0..<8).map { UInt8(truncatingIfNeeded: seqno >> (56 - 8 * UInt64($0))) })
        m.topic = topic
        let unsigned: [UInt8] = try m.serializedBytes()
        m.signature = try origin.signature(for: FloodSub.signPrefix + unsigned)
        return m
    }

    static func rpc(_ messages: [Pubsub_Pb_Message]) throws -> [UInt8] {
        var rpc = Pubsub_Pb_RPC()
        rpc.publish = messages
        return try rpc.serializedBytes()
    }

    static func id(_ key: Curve25519.Signing.PrivateKey) -> PeerID { PeerID(publicKey: Array(key.publicKey.rawRepresentation)) }

    @Test func aMessageIsValidatedOnceWhicheverPathItTakes() throws {
        let owner = Owner()
        let fs = owner.floodsub()
        let origin = Curve25519.Signing.PrivateKey(), relay = Curve25519.Signing.PrivateKey()
        let body = try Self.rpc([try Self.message(from: origin, seqno: 1)])
        #expect(fs.handleRPC(body, from: Self.id(origin)))
        #expect(fs.handleRPC(body, from: Self.id(relay)), "a copy through another peer is no offence")
        #expect(owner.validated.count == 1)
        #expect(owner.validated.first?.origin == Self.id(origin) && owner.validated.first?.source == Self.id(origin))
        #expect(fs.signatureChecks == 1, "the copy cost no signature check")
        #expect(owner.penalized.isEmpty)
        // The origin itself sending it again is.
        #expect(fs.handleRPC(body, from: Self.id(origin)))
        #expect(owner.penalized == [Self.id(origin)])
        #expect(owner.punished.isEmpty)
    }

    /// The seen-cache holds at most `seenCapacity` entries beyond the newest: the oldest is
    /// forgotten first (and would be taken as new again).
    @Test func theSeenCacheIsBoundedOldestFirst() throws {
        let owner = Owner()
        let fs = owner.floodsub(seenCapacity: 2)
        let origin = Curve25519.Signing.PrivateKey(), relay = Curve25519.Signing.PrivateKey()
        let messages = try (1...4).map { try Self.message(from: origin, seqno: UInt64($0)) }
        for m in messages { fs.handleRPC(try Self.rpc([m]), from: Self.id(relay)) }
        #expect(owner.validated.count == 4)
        fs.handleRPC(try Self.rpc([messages[3]]), from: Self.id(relay))
        fs.handleRPC(try Self.rpc([messages[2]]), from: Self.id(relay))
        #expect(owner.validated.count == 4, "the newest are still seen")
        fs.handleRPC(try Self.rpc([messages[0]]), from: Self.id(relay))
        #expect(owner.validated.count == 5, "the oldest was forgotten")
    }

    @Test func messagesOnOtherTopicsAreNeitherValidatedNorBlamed() throws {
        let owner = Owner()
        let fs = owner.floodsub()
        let origin = Curve25519.Signing.PrivateKey()
        let body = try Self.rpc([try Self.message(from: origin, seqno: 1, topic: "/someone-else/topic")])
        #expect(fs.handleRPC(body, from: Self.id(origin)))
        #expect(owner.validated.isEmpty && owner.punished.isEmpty && fs.signatureChecks == 0)
    }

    /// A forged signature gets its sender punished and marks nothing seen: the genuine message
    /// with the same (from, seqno) still goes through.
    @Test func aForgeryIsPunishedAndDoesNotShadowTheGenuineMessage() throws {
        let owner = Owner()
        let fs = owner.floodsub()
        let origin = Curve25519.Signing.PrivateKey(), forger = Curve25519.Signing.PrivateKey()
        let genuine = try Self.message(from: origin, seqno: 7, data: [1])
        var forged = genuine
        forged.data = Data([2])
        #expect(!fs.handleRPC(try Self.rpc([forged, genuine]), from: Self.id(forger)), "processing stops at the forgery")
        #expect(owner.punished.map(\.0) == [Self.id(forger)])
        #expect(owner.punished.first?.1.contains("signature is invalid") == true)
        #expect(owner.validated.isEmpty)
        #expect(fs.handleRPC(try Self.rpc([genuine]), from: Self.id(origin)))
        #expect(owner.validated.map(\.data) == [[1]])
    }

    @Test func unsignedAndMalformedMessagesArePunished() throws {
        let origin = Curve25519.Signing.PrivateKey()
        var unsigned = try Self.message(from: origin, seqno: 1)
        unsigned.clearSignature()
        var longSeqno = try Self.message(from: origin, seqno: 1)
        longSeqno.seqno = Data(repeating: 1, count: 65)
        var badFrom = try Self.message(from: origin, seqno: 1)
        badFrom.from = Data([1, 2, 3])
        var otherKey = try Self.message(from: origin, seqno: 1)
        otherKey.key = Data(LibP2PKey.encodePublicKey(ed25519: Array(Curve25519.Signing.PrivateKey().publicKey.rawRepresentation)))
        for (m, reason) in [(unsigned, "unsigned"), (longSeqno, "seqno"), (badFrom, "invalid 'from'"), (otherKey, "key does not match")] {
            let owner = Owner()
            let fs = owner.floodsub()
            #expect(!fs.handleRPC(try Self.rpc([m]), from: Self.id(origin)))
            #expect(owner.punished.count == 1 && owner.punished[0].1.contains(reason), "\(owner.punished)")
            #expect(fs.signatureChecks == 0, "refused before its signature is checked")
        }
    }

    /// An RPC's entries are counted before it is decoded: one over the limit, or bytes that are
    /// no protobuf, get the sender punished with nothing validated.
    @Test func rpcsOverTheEntryLimitOrUndecodableArePunishedUnread() throws {
        let origin = Curve25519.Signing.PrivateKey()
        let owner = Owner()
        let fs = owner.floodsub(maxMessagesPerRPC: 3)
        let three = try (1...3).map { try Self.message(from: origin, seqno: UInt64($0)) }
        #expect(fs.handleRPC(try Self.rpc(three), from: Self.id(origin)))
        #expect(owner.validated.count == 3)
        let four = try (4...7).map { try Self.message(from: origin, seqno: UInt64($0)) }
        #expect(!fs.handleRPC(try Self.rpc(four), from: Self.id(origin)))
        #expect(owner.validated.count == 3 && fs.signatureChecks == 3)
        #expect(owner.punished.last?.1.contains("4 messages") == true, "\(owner.punished)")
        #expect(!fs.handleRPC([0x12, 0xff, 0x01], from: Self.id(origin)), "a length past the end")
        #expect(owner.punished.count == 2)
        #expect(FloodSub.countEntries([0x0a, 0x00, 0x12, 0x00, 0x12, 0x00]) == .init(subscriptions: 1, messages: 2))
        #expect(FloodSub.countEntries([0x0f]) == nil, "wire type 7")
    }

    /// The application's verdict: reject blames the sender (not the origin) and stops; ignore
    /// blames no one.
    @Test(arguments: [FloodSub.Verdict.ignore, .reject("bad block")])
    func theApplicationsVerdictBlamesTheSenderOnlyOnReject(verdict: FloodSub.Verdict) throws {
        let owner = Owner(verdict: verdict)
        let fs = owner.floodsub()
        let origin = Curve25519.Signing.PrivateKey(), relay = Curve25519.Signing.PrivateKey()
        let goOn = fs.handleRPC(try Self.rpc([try Self.message(from: origin, seqno: 1)]), from: Self.id(relay))
        #expect(goOn == (verdict == .ignore))
        #expect(owner.punished.map(\.0) == (verdict == .ignore ? [] : [Self.id(relay)]))
    }

    /// Frames are `uvarint(length) ‖ RPC`.
    @Test func framesAreLengthPrefixed() throws {
        var rpc = Pubsub_Pb_RPC()
        rpc.publish = [try Self.message(from: .init(), seqno: 1, data: [UInt8](repeating: 7, count: 300))]
        var frame = FloodSub.frame(rpc)
        let body: [UInt8] = try rpc.serializedBytes()
        var prefix: [UInt8] = []
        Varint.append(UInt64(body.count), to: &prefix)
        #expect(frame.readBytes(length: prefix.count) == prefix && prefix.count == 2)
        #expect(frame.readBytes(length: frame.readableBytes) == body)
    }
}
