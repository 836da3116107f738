import Config
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
final class FloodSub: Sendable {
    static let protocolID = "/floodsub/1.0.0"
    static let signPrefix = Array("libp2p-pubsub:".utf8)

    struct Options: Sendable {
        /// Largest RPC accepted or sent (ev-node: 5 MiB messages).
        var maxRPCBytes = 5 * 1024 * 1024 + 64 * 1024
        var seenTTL: Duration = .seconds(120)
        var seenCapacity = 65_536
        /// RPCs queued to one peer beyond which newer ones are dropped (the peer can fetch by range).
        var queuePerPeer = 1024
    }

    enum Verdict: Sendable, Equatable {
        case accept
        case ignore
        case reject(String)
    }

    /// A message that passed the signature and seen checks, for the application to validate.
    struct Incoming: Sendable {
        var topic: String
        var data: [UInt8]
        var origin: PeerID
        var source: PeerID
    }

    private struct Peer {
        var connection: Libp2pConnection
        var topics: Set<String> = []
        var queue: AsyncStream<ByteBuffer>.Continuation?
        var dropped = 0
        var duplicates = 0
    }

    private struct State {
        var peers: [PeerID: Peer] = [:]
        var seen: [SeenKey: ContinuousClock.Instant] = [:]
        var seenOrder: Deque<(SeenKey, ContinuousClock.Instant)> = []
        var seqno: UInt64
    }

    struct SeenKey: Hashable, Sendable {
        let from: [UInt8]
        let seqno: [UInt8]
    }

    let identity: Curve25519.Signing.PrivateKey
    let localID: PeerID
    let topics: Set<String>
    let options: Options
    let logger: Logger
    private let state: Mutex<State>
    /// Set once by the owner: the application's check of a message.
    let validate: @Sendable (Incoming) -> Verdict
    /// Called for a peer whose message was rejected (bad signature, invalid payload).
    let punish: @Sendable (PeerID, String) -> Void
    /// Called for a peer that sent the same message twice (a lesser offence).
    let penalize: @Sendable (PeerID, String) -> Void

    init(identity: Curve25519.Signing.PrivateKey, topics: Set<String>, options: Options = Options(), logger: Logger,
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
        // Like Go: the counter starts at the current time in nanoseconds, so a restarted node
        // does not reuse the seqnos its peers have seen.
        let now = UInt64(Date().timeIntervalSince1970 * 1e9)
        state = Mutex(State(seqno: now))
    }

    var peerCount: Int { state.withLock { $0.peers.count } }

    func subscribedPeers(_ topic: String) -> [PeerID] {
        state.withLock { $0.peers.filter { $0.value.topics.contains(topic) }.map(\.key) }
    }

    // MARK: Connections

    /// Opens the outbound RPC stream to a new peer and says which topics this node wants.
    func peerConnected(_ conn: Libp2pConnection, host: Libp2pHost) async {
        let (queue, continuation) = AsyncStream.makeStream(of: ByteBuffer.self,
                                                           bufferingPolicy: .bufferingOldest(options.queuePerPeer))
        let previous = state.withLock { s -> AsyncStream<ByteBuffer>.Continuation? in
            let old = s.peers[conn.remote]?.queue
            var peer = Peer(connection: conn)
            peer.topics = s.peers[conn.remote]?.topics ?? []
            peer.queue = continuation
            s.peers[conn.remote] = peer
            return old
        }
        previous?.finish()
        let stream: YamuxStream
        do {
            (stream, _) = try await host.openStream(conn, protocol: Self.protocolID)
        } catch {
            logger.debug("peer has no floodsub", metadata: ["peer": "\(conn.remote.short)", "error": "\(error)"])
            continuation.finish()
            return
        }
        var hello = Pubsub_Pb_RPC()
        hello.subscriptions = topics.sorted().map { t in
            var s = Pubsub_Pb_RPC.SubOpts()
            s.subscribe = true
            s.topicid = t
            return s
        }
        continuation.yield(Self.frame(hello))
        for await rpc in queue {
            do {
                try await stream.write(rpc)
            } catch {
                logger.debug("floodsub stream closed", metadata: ["peer": "\(conn.remote.short)", "error": "\(error)"])
                break
            }
        }
        stream.close()
    }

    func peerDisconnected(_ conn: Libp2pConnection) {
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

    /// The handler of the peer's RPC stream.
    func serve(_ s: inout InboundStream) async throws {
        let source = s.connection.remote
        while let body = try await s.reader.readMessage(limit: options.maxRPCBytes) {
            let rpc: Pubsub_Pb_RPC
            do {
                rpc = try Pubsub_Pb_RPC(serializedBytes: Array(body.readableBytesView))
            } catch {
                punish(source, "pubsub RPC does not decode: \(error)")
                throw LinkError.protocolViolation("pubsub RPC does not decode")
            }
            if !rpc.subscriptions.isEmpty {
                state.withLock { st in
                    guard st.peers[source] != nil else { return }
                    for sub in rpc.subscriptions where sub.hasTopicid {
                        if sub.subscribe { st.peers[source]!.topics.insert(sub.topicid) }
                        else { st.peers[source]!.topics.remove(sub.topicid) }
                    }
                }
            }
            for message in rpc.publish {
                handle(message, from: source)
            }
        }
        s.stream.close()
    }

    private func handle(_ message: Pubsub_Pb_Message, from source: PeerID) {
        guard topics.contains(message.topic) else { return } // not ours: floodsub does not relay it
        guard let origin = PeerID(bytes: Array(message.from)) else {
            punish(source, "pubsub message with an invalid 'from' (not an Ed25519 peer id)")
            return
        }
        if origin == localID { return }
        guard message.hasSignature, message.hasSeqno else {
            punish(source, "unsigned pubsub message (StrictSign)")
            return
        }
        if message.hasKey, LibP2PKey.decodeEd25519PublicKey(Array(message.key)) != origin.publicKey {
            punish(source, "pubsub message key does not match its 'from'")
            return
        }
        var unsigned = message
        unsigned.clearSignature()
        unsigned.clearKey()
        guard let signed: [UInt8] = try? unsigned.serializedBytes(),
              LibP2PKey.verify(signature: Array(message.signature), of: Self.signPrefix + signed,
                               publicKey: origin.publicKey) else {
            punish(source, "pubsub message signature is invalid")
            return
        }
        let key = SeenKey(from: Array(message.from), seqno: Array(message.seqno))
        let fresh = markSeen(key)
        guard fresh else {
            // Floodsub delivers a message once per path; the same peer sending it twice is not.
            if source == origin {
                penalize(source, "sent the same pubsub message twice (seqno \(Hex.encode(Array(message.seqno))))")
            }
            return
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

    private func forward(_ frame: ByteBuffer, topic: String, except: Set<PeerID>) {
        let queues = state.withLock { s in
            s.peers.filter { !except.contains($0.key) && $0.value.topics.contains(topic) }.compactMap { ($0.key, $0.value.queue) }
        }
        for (id, q) in queues {
            if case .dropped = q?.yield(frame) {
                state.withLock { $0.peers[id]?.dropped += 1 }
            }
        }
    }

    // MARK: Publishing

    /// Signs and sends `data` on `topic` to every peer subscribed to it.
    func publish(topic: String, data: [UInt8]) {
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
