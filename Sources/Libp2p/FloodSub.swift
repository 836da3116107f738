import Primitives
import Crypto
import DequeModule
import Foundation
import Logging
import NIOCore
import SwiftProtobuf
import Synchronization

/// FloodSub (`/floodsub/1.0.0`, libp2p/specs pubsub/README.md) with StrictSign, the pubsub
/// ev-node runs: one long-lived outbound stream per peer carrying length-prefixed RPCs, every
/// message signed by its origin's peer key, a seen-cache of `from ‖ seqno`, and each new valid
/// message forwarded to every peer subscribed to its topic except its source and origin.
///
/// Facing strangers: an RPC's entries are counted before it is decoded (at most
/// `maxMessagesPerRPC` messages and `maxSubscriptionsPerRPC` subscriptions); a message's cheap
/// checks (topic, sizes, `from`, key) and the seen-cache come before its signature is checked, so
/// copies of a message cost no signature check; a message is marked seen only once its signature
/// verified, so nobody can pre-mark a genuine `(from, seqno)` with a forged one; processing stops
/// as soon as the peer was punished; RPCs being read are held under a node-wide byte budget;
/// frames queued to a peer count against its connection's send budget.
package final class FloodSub: Sendable {
    package static let protocolID = "/floodsub/1.0.0"
    static let signPrefix = Array("libp2p-pubsub:".utf8)

    package struct Options: Sendable {
        /// Largest RPC accepted or sent (ev-node: 5 MiB messages).
        package var maxRPCBytes = 5 * 1024 * 1024 + 64 * 1024
        package var seenTTL: Duration = .seconds(120)
        package var seenCapacity = 65_536
        /// RPCs queued to one peer beyond which newer ones are dropped (the peer can fetch by
        /// range); the bytes count against the connection's send budget as well.
        package var queuePerPeer = 1024
        /// Go and py send one message per RPC; more than this in one RPC is an attack.
        package var maxMessagesPerRPC = 64
        /// ev-node subscribes to two topics; a host with other services has a few more.
        package var maxSubscriptionsPerRPC = 64
        /// Bytes of RPCs being read and handled at once, for the whole node (each connection
        /// reads one RPC at a time, at most `maxRPCBytes`); readers wait for room.
        package var readBudgetBytes = 64 << 20

        package init() {}
    }

    package enum Verdict: Sendable, Equatable {
        case accept
        case ignore
        case reject(String)
    }

    /// A message that passed the signature and seen checks, for the application to validate.
    package struct Incoming: Sendable {
        package var topic: String
        package var data: [UInt8]
        package var origin: PeerID
        package var source: PeerID
    }

    private struct Peer {
        var connection: Libp2pConnection?
        var topics: Set<String> = []
        var queue: AsyncStream<ByteBuffer>.Continuation?
        var queued = 0
        var dropped = 0
    }

    private struct State {
        var peers: [PeerID: Peer] = [:]
        /// Each peer's RPC stream to this node (one; a newer one replaces it, as in Go).
        var inbound: [PeerID: YamuxStream] = [:]
        var seen: [SeenKey: ContinuousClock.Instant] = [:]
        var seenOrder: Deque<(SeenKey, ContinuousClock.Instant)> = []
        var seqno: UInt64
        var signatureChecks = 0
    }

    struct SeenKey: Hashable, Sendable {
        package let from: [UInt8]
        package let seqno: [UInt8]
    }

    package let identity: Curve25519.Signing.PrivateKey
    package let localID: PeerID
    package let topics: Set<String>
    package let options: Options
    package let logger: Logger
    private let state: Mutex<State>
    /// RPCs being read and handled, node-wide.
    let readBudget: BufferBudget
    /// Set once by the owner: the application's check of a message.
    package let validate: @Sendable (Incoming) -> Verdict
    /// Called for a peer whose message was rejected (bad signature, invalid payload).
    package let punish: @Sendable (PeerID, String) -> Void
    /// Called for a peer that sent the same message twice (a lesser offence).
    package let penalize: @Sendable (PeerID, String) -> Void

    package init(identity: Curve25519.Signing.PrivateKey, topics: Set<String>, options: Options = Options(), logger: Logger,
         validate: @escaping @Sendable (Incoming) -> Verdict,
         punish: @escaping @Sendable (PeerID, String) -> Void,
         penalize: @escaping @Sendable (PeerID, String) -> Void) {
        self.identity = identity
        self.localID = PeerID(publicKey: Array(identity.publicKey.rawRepresentation))
        self.topics = topics
        self.options = options
        self.logger = logger
        self.validate = validate
        self.punish = punish
        self.penalize = penalize
        readBudget = BufferBudget(nodeCapacity: max(options.readBudgetBytes, options.maxRPCBytes),
                                  accountCapacity: options.maxRPCBytes)
        // Like Go: the counter starts at the current time in nanoseconds, so a restarted node
        // does not reuse the seqnos its peers have seen.
        let now = UInt64(Date().timeIntervalSince1970 * 1e9)
        state = Mutex(State(seqno: now))
    }

    package var peerCount: Int { state.withLock { $0.peers.count } }

    /// Signatures checked since start (how much CPU peers made the node spend on them).
    var signatureChecks: Int { state.withLock { $0.signatureChecks } }

    func subscribedPeers(_ topic: String) -> [PeerID] {
        state.withLock { $0.peers.filter { $0.value.topics.contains(topic) }.map(\.key) }
    }

    package func topics(of peer: PeerID) -> Set<String> { state.withLock { $0.peers[peer]?.topics ?? [] } }

    /// Frames dropped for a peer because its queue or its connection's send budget was full.
    package func dropped(for peer: PeerID) -> Int { state.withLock { $0.peers[peer]?.dropped ?? 0 } }

    // MARK: Connections

    /// Opens the outbound RPC stream to a new peer and says which topics this node wants, then
    /// writes what is queued for it.
    package func peerConnected(_ conn: Libp2pConnection, host: Libp2pHost) async {
        let (queue, continuation) = AsyncStream.makeStream(of: ByteBuffer.self)
        let previous = state.withLock { s -> AsyncStream<ByteBuffer>.Continuation? in
            let old = s.peers[conn.remote]
            var peer = Peer(connection: conn)
            peer.topics = old?.topics ?? []
            peer.queue = continuation
            s.peers[conn.remote] = peer
            return old?.queue
        }
        previous?.finish()
        var frames = queue.makeAsyncIterator()
        let stream: YamuxStream
        do {
            (stream, _) = try await host.openStream(conn, protocol: Self.protocolID)
        } catch {
            logger.debug("peer has no floodsub", metadata: ["peer": "\(conn.remote.short)", "error": "\(error)"])
            await stopQueueing(conn, continuation, &frames)
            return
        }
        // The stream is one-way: anything the peer sends on it is dropped.
        stream.stopReading()
        var hello = Pubsub_Pb_RPC()
        hello.subscriptions = topics.sorted().map { t in
            var s = Pubsub_Pb_RPC.SubOpts()
            s.subscribe = true
            s.topicid = t
            return s
        }
        do {
            try await stream.write(Self.frame(hello))
            while let rpc = await frames.next() {
                state.withLock { s in
                    if s.peers[conn.remote]?.connection === conn { s.peers[conn.remote]!.queued -= 1 }
                }
                try await stream.write(rpc, prepaid: true)
            }
        } catch {
            logger.debug("floodsub stream closed", metadata: ["peer": "\(conn.remote.short)", "error": "\(error)"])
        }
        await stopQueueing(conn, continuation, &frames)
        stream.close()
    }

    /// Ends a peer's queue: nothing more is queued, and what is queued gives its room back.
    private func stopQueueing(_ conn: Libp2pConnection, _ continuation: AsyncStream<ByteBuffer>.Continuation,
                              _ frames: inout AsyncStream<ByteBuffer>.AsyncIterator) async {
        detach(conn)
        continuation.finish()
        while let f = await frames.next() { conn.session.sendAccount.release(f.readableBytes) }
    }

    /// Stops queueing to `conn` (its writer ended).
    private func detach(_ conn: Libp2pConnection) {
        state.withLock { s in
            guard let p = s.peers[conn.remote], p.connection === conn else { return }
            s.peers[conn.remote]!.queue = nil
            s.peers[conn.remote]!.queued = 0
        }
    }

    package func peerDisconnected(_ conn: Libp2pConnection) {
        let q = state.withLock { s -> AsyncStream<ByteBuffer>.Continuation? in
            guard let p = s.peers[conn.remote], p.connection === conn else { return nil }
            s.peers.removeValue(forKey: conn.remote)
            return p.queue
        }
        q?.finish()
    }

    static func frame(_ rpc: Pubsub_Pb_RPC) -> ByteBuffer {
        let body: [UInt8] = (try? rpc.serializedBytes()) ?? []
        var b = ByteBuffer()
        b.reserveCapacity(body.count + 5)
        Varint.write(UInt64(body.count), to: &b)
        b.writeBytes(body)
        return b
    }

    // MARK: Inbound

    /// The handler of the peer's RPC stream: one RPC at a time, each held under the node's read
    /// budget (the reader waits for room, and yamux flow control holds the peer back meanwhile).
    package func serve(_ s: inout InboundStream) async throws {
        let connection = s.connection
        let source = connection.remote
        let stream = s.stream
        // One RPC stream per peer: a newer one resets the older (go-libp2p-pubsub does the same).
        let older = state.withLock { st -> YamuxStream? in
            defer { st.inbound[source] = stream }
            return st.inbound[source]
        }
        older?.reset()
        let account = readBudget.openAccount()
        defer {
            account.close()
            state.withLock { st in
                if st.inbound[source] === stream { st.inbound.removeValue(forKey: source) }
            }
        }
        while let length = try await s.reader.readVarint() {
            guard length <= UInt64(options.maxRPCBytes) else {
                throw LinkError.tooLarge(Int(clamping: length), limit: options.maxRPCBytes)
            }
            let n = Int(length)
            try await account.reserve(n)
            let body = try await s.reader.readExactly(n)
            let goOn = handleRPC(Array(body.readableBytesView), from: source, connection: connection) { connection.isClosed }
            account.release(n)
            guard goOn else { throw LinkError.protocolViolation("stopped reading a punished peer's RPCs") }
        }
        s.stream.close()
    }

    /// Entries of one RPC, counted from its top-level fields without decoding anything.
    struct EntryCount: Equatable {
        package var subscriptions = 0
        package var messages = 0
    }

    /// Counts `subscriptions` (field 1) and `publish` (field 2) entries; nil when the bytes are
    /// not a well-formed protobuf message.
    static func countEntries(_ body: [UInt8]) -> EntryCount? {
        var count = EntryCount()
        var i = 0
        while i < body.count {
            guard let tag = Varint.read(body, at: &i) else { return nil }
            switch tag & 7 {
            case 0:
                guard Varint.read(body, at: &i) != nil else { return nil }
            case 1:
                guard body.count - i >= 8 else { return nil }
                i += 8
            case 2:
                guard let n = Varint.read(body, at: &i), n <= UInt64(body.count - i) else { return nil }
                i += Int(n)
                if tag >> 3 == 1 { count.subscriptions += 1 }
                if tag >> 3 == 2 { count.messages += 1 }
            case 5:
                guard body.count - i >= 4 else { return nil }
                i += 4
            default:
                return nil
            }
        }
        return count
    }

    /// Handles one RPC's bytes from `source`; false once processing must stop (the peer was
    /// punished, or `stopped` says its connection is gone). Entry point for fuzzing too.
    @discardableResult
    func handleRPC(_ body: [UInt8], from source: PeerID, connection: Libp2pConnection? = nil,
                   stopped: () -> Bool = { false }) -> Bool {
        guard let count = Self.countEntries(body) else {
            punish(source, "pubsub RPC does not decode")
            return false
        }
        guard count.messages <= options.maxMessagesPerRPC, count.subscriptions <= options.maxSubscriptionsPerRPC else {
            punish(source, "pubsub RPC with \(count.messages) messages and \(count.subscriptions) subscriptions "
                       + "(at most \(options.maxMessagesPerRPC) and \(options.maxSubscriptionsPerRPC))")
            return false
        }
        let rpc: Pubsub_Pb_RPC
        do {
            rpc = try Pubsub_Pb_RPC(serializedBytes: body)
        } catch {
            punish(source, "pubsub RPC does not decode: \(error)")
            return false
        }
        if !rpc.subscriptions.isEmpty {
            state.withLock { st in
                if st.peers[source] == nil {
                    guard let connection else { return }
                    st.peers[source] = Peer(connection: connection)
                }
                // Only this node's topics matter (it forwards nothing else): others are not kept.
                for sub in rpc.subscriptions where sub.hasTopicid && topics.contains(sub.topicid) {
                    if sub.subscribe { st.peers[source]!.topics.insert(sub.topicid) }
                    else { st.peers[source]!.topics.remove(sub.topicid) }
                }
            }
        }
        for message in rpc.publish {
            guard handle(message, from: source), !stopped() else { return false }
        }
        return true
    }

    /// One message; false when the source was punished for it.
    private func handle(_ message: Pubsub_Pb_Message, from source: PeerID) -> Bool {
        guard topics.contains(message.topic) else { return true } // not ours: floodsub does not relay it
        guard let origin = PeerID(bytes: Array(message.from)) else {
            punish(source, "pubsub message with an invalid 'from' (not an Ed25519 peer id)")
            return false
        }
        if origin == localID { return true }
        guard message.hasSignature, message.hasSeqno else {
            punish(source, "unsigned pubsub message (StrictSign)")
            return false
        }
        guard message.signature.count == 64, (1...64).contains(message.seqno.count) else {
            punish(source, "pubsub message with a \(message.signature.count)-byte signature or a \(message.seqno.count)-byte seqno")
            return false
        }
        if message.hasKey, LibP2PKey.decodeEd25519PublicKey(Array(message.key)) != origin.publicKey {
            punish(source, "pubsub message key does not match its 'from'")
            return false
        }
        let key = SeenKey(from: Array(message.from), seqno: Array(message.seqno))
        // Seen already: a copy (or a forgery of a message that verified) costs no signature check.
        guard !isSeen(key) else {
            duplicate(message, from: source, origin: origin)
            return true
        }
        var unsigned = message
        unsigned.clearSignature()
        unsigned.clearKey()
        state.withLock { $0.signatureChecks += 1 }
        guard let signed: [UInt8] = try? unsigned.serializedBytes(),
              LibP2PKey.verify(signature: Array(message.signature), of: Self.signPrefix + signed,
                               publicKey: origin.publicKey) else {
            punish(source, "pubsub message signature is invalid")
            return false
        }
        // Marked only now: a forged signature never marks a genuine (from, seqno) as seen.
        guard markSeen(key) else {
            duplicate(message, from: source, origin: origin)
            return true
        }
        let verdict = validate(Incoming(topic: message.topic, data: Array(message.data), origin: origin, source: source))
        logger.trace("pubsub message", metadata: ["topic": "\(message.topic)", "from": "\(origin.short)",
                                                  "source": "\(source.short)", "verdict": "\(verdict)"])
        switch verdict {
        case .accept:
            var rpc = Pubsub_Pb_RPC()
            rpc.publish = [message]
            forward(Self.frame(rpc), topic: message.topic, except: [source, origin])
        case .ignore:
            break
        case .reject(let reason):
            punish(source, reason)
            return false
        }
        return true
    }

    private func duplicate(_ message: Pubsub_Pb_Message, from source: PeerID, origin: PeerID) {
        // Floodsub delivers a message once per path; the same peer sending it twice is not.
        if source == origin {
            penalize(source, "sent the same pubsub message twice (seqno \(Hex.encode(Array(message.seqno))))")
        }
    }

    private func isSeen(_ key: SeenKey) -> Bool {
        let now = ContinuousClock.now
        return state.withLock { s in
            guard let t = s.seen[key] else { return false }
            return now - t <= options.seenTTL
        }
    }

    private func markSeen(_ key: SeenKey) -> Bool {
        let now = ContinuousClock.now
        return state.withLock { s in
            while let (k, t) = s.seenOrder.first, now - t > options.seenTTL || s.seenOrder.count > options.seenCapacity {
                s.seenOrder.removeFirst()
                if s.seen[k] == t { s.seen.removeValue(forKey: k) }
            }
            if let t = s.seen[key], now - t <= options.seenTTL { return false }
            s.seen[key] = now
            s.seenOrder.append((key, now))
            return true
        }
    }

    /// Queues `frame` to every subscribed peer but `except`; a peer whose queue or connection
    /// send budget is full misses it (counted in `dropped`).
    private func forward(_ frame: ByteBuffer, topic: String, except: Set<PeerID>) {
        let bytes = frame.readableBytes
        let queues = state.withLock { s -> [(AsyncStream<ByteBuffer>.Continuation, BufferBudget.Account)] in
            var out: [(AsyncStream<ByteBuffer>.Continuation, BufferBudget.Account)] = []
            for (id, p) in s.peers where !except.contains(id) && p.topics.contains(topic) {
                guard let q = p.queue, let conn = p.connection else { continue }
                let account = conn.session.sendAccount
                guard p.queued < options.queuePerPeer, account.tryReserve(bytes) else {
                    s.peers[id]!.dropped += 1
                    continue
                }
                s.peers[id]!.queued += 1
                out.append((q, account))
            }
            return out
        }
        for (q, account) in queues {
            if case .terminated = q.yield(frame) {
                // Its writer stopped meanwhile: nobody will write it.
                account.release(bytes)
            }
        }
    }

    // MARK: Publishing

    /// Signs and sends `data` on `topic` to every peer subscribed to it.
    package func publish(topic: String, data: [UInt8]) {
        let seqno = state.withLock { s -> UInt64 in
            s.seqno &+= 1
            return s.seqno
        }
        var m = Pubsub_Pb_Message()
        m.from = Data(localID.bytes)
        m.data = Data(data)
        var seq = [UInt8](repeating: 0, count: 8)
        for i in 0..<8 { seq[i] = UInt8(truncatingIfNeeded: seqno >> (56 - 8 * UInt64(i))) }
        m.seqno = Data(seq)
        m.topic = topic
        guard let unsigned: [UInt8] = try? m.serializedBytes(),
              let sig = try? identity.signature(for: Self.signPrefix + unsigned) else { return }
        m.signature = sig
        _ = markSeen(SeenKey(from: localID.bytes, seqno: seq))
        var rpc = Pubsub_Pb_RPC()
        rpc.publish = [m]
        forward(Self.frame(rpc), topic: topic, except: [])
    }
}
