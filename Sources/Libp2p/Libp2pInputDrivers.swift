import Crypto
import Foundation
import Logging
import NIOCore
import SwiftProtobuf
import Synchronization

/// Runs the parsers a remote peer reaches — and the state machines that consume what they parse —
/// over bytes held in memory instead of a socket. These are the entry points of the fuzz targets
/// (`Fuzz/Targets`; the P2P service's own are `P2PInputDrivers`); the node never calls them. Each drives the code a connection runs, in the
/// order it runs it, and reports what happened; none of them changes how that code behaves.
package enum Libp2pInputDrivers {
    /// What a component did with the bytes: the error it ended with (nil when it took them all).
    package struct Outcome: Sendable, Equatable {
        package var failure: String?
        /// Target-specific counts (responses, streams, bodies, ...), for the fuzz targets' checks.
        package var counts: [String: Int] = [:]

        package init(failure: String? = nil, counts: [String: Int] = [:]) {
            self.failure = failure
            self.counts = counts
        }
    }

    // MARK: multistream-select

    /// The listener side, as the host runs it for a new connection and for every stream a peer
    /// opens: header, then proposals until one in `supported`.
    package static func multistreamListener(_ chunks: [[UInt8]], supported: Set<String>) async -> Outcome {
        var reader = ByteReader(MemoryChunks(chunks))
        var written = 0
        do {
            let chosen = try await Multistream.accept(supported, reader: &reader) { written += $0.readableBytes }
            return Outcome(counts: ["selected": supported.contains(chosen) ? 1 : -1, "written": written])
        } catch {
            return Outcome(failure: "\(error)", counts: ["written": written])
        }
    }

    /// The dialer side: proposes `proposal` and reads the peer's answers.
    package static func multistreamDialer(_ chunks: [[UInt8]], proposing proposal: String) async -> Outcome {
        var reader = ByteReader(MemoryChunks(chunks))
        do {
            try await Multistream.select(proposal, reader: &reader) { _ in }
            return Outcome(counts: ["selected": 1, "leftover": reader.leftover.readableBytes])
        } catch {
            return Outcome(failure: "\(error)")
        }
    }

    // MARK: Noise

    /// The XX handshake as responder (`initiator` false: what any TCP client reaches) or as
    /// initiator (what the peer we dial answers), fed the peer's bytes.
    package static func noiseHandshake(_ chunks: [[UInt8]], initiator: Bool,
                                       identity: Curve25519.Signing.PrivateKey) async -> Outcome {
        var reader = ByteReader(MemoryChunks(chunks))
        var written = 0
        do {
            let result = try await Noise.handshake(initiator: initiator, identity: identity, expected: nil,
                                                   reader: &reader) { written += $0.readableBytes }
            return Outcome(counts: ["established": result.remote.bytes.count, "written": written])
        } catch {
            return Outcome(failure: "\(error)", counts: ["written": written])
        }
    }

    /// The check of a peer's handshake payload against its Noise static key. With `resignWith`,
    /// a payload that names that key as its identity gets a valid signature first, so that what
    /// follows the signature check is reached too.
    package static func noisePayload(_ payload: [UInt8], remoteStatic: [UInt8],
                                     resignWith key: Curve25519.Signing.PrivateKey?) -> Outcome {
        var bytes = payload
        if let key, var decoded = try? Noise_Pb_NoiseHandshakePayload(serializedBytes: payload),
           LibP2PKey.decodeEd25519PublicKey(Array(decoded.identityKey)) == Array(key.publicKey.rawRepresentation),
           let signature = try? key.signature(for: Noise.signaturePrefix + remoteStatic) {
            decoded.identitySig = signature
            bytes = (try? decoded.serializedBytes()) ?? payload
        }
        do {
            let peer = try Noise.verify(payload: bytes, remoteStatic: remoteStatic)
            return Outcome(counts: ["verified": peer.bytes.count])
        } catch {
            return Outcome(failure: "\(error)")
        }
    }

    /// What arrives on a secured connection: a frame the peer sealed with the session's key, or
    /// raw bytes (a forged, cut or garbled frame).
    package enum WireChunk: Sendable {
        case sealed([UInt8])
        case raw([UInt8])
    }

    /// An established Noise session's receiving side, and what the host runs on it: the muxer's
    /// multistream negotiation (`/yamux/1.0.0`), then the yamux session over the decrypted bytes
    /// (see `yamuxSession` for what the session's consumers do). `key`: the 32-byte transport key
    /// both sides use (a handshake's outcome; the handshake itself is `noiseHandshake`'s target).
    package static func noiseTransport(_ chunks: [WireChunk], key: [UInt8]) async -> Outcome {
        var send = Noise.CipherState(key: SymmetricKey(data: key))
        var tcp: [[UInt8]] = []
        for chunk in chunks {
            switch chunk {
            case .raw(let bytes): tcp.append(bytes)
            case .sealed(let plaintext):
                guard let sealed = try? Libp2pHost.encrypt(ByteBuffer(bytes: plaintext), &send) else { continue }
                tcp.append(Array(sealed.readableBytesView))
            }
        }
        var secure = ByteReader(NoiseSource(reader: ByteReader(MemoryChunks(tcp)),
                                            cipher: Noise.CipherState(key: SymmetricKey(data: key))))
        do {
            _ = try await Multistream.accept([Yamux.protocolID], reader: &secure) { _ in }
        } catch {
            return Outcome(failure: "\(error)")
        }
        var outcome = await yamuxSession(reading: &secure, isDialer: false)
        outcome.counts["negotiated"] = 1
        outcome.counts["largestRead"] = Noise.maxPlaintext
        return outcome
    }

    // MARK: yamux

    /// The most bytes a yamux session may leave unconsumed in its read buffer: one frame header
    /// and a data frame no longer than a stream's receive window (the peer may not send more).
    package static var yamuxRetainedBound: Int {
        Yamux.headerSize + Int(Yamux.initialWindow) + Int(YamuxSession.Limits().windowSlack)
    }

    /// A yamux session fed the peer's bytes as the connection's read loop feeds it, read by read
    /// through a `ByteReader`, with a reader on every stream the peer opens (consuming and so
    /// reopening its window, as the protocol handlers do) and one stream of our own open with a
    /// little data written. Counts: `retained`, the most bytes the session left in the read
    /// buffer (see `yamuxRetainedBound`); `bufferCapacity`, the read buffer's largest capacity;
    /// `largestRead`, the largest read; `streams`, the streams the peer opened; `delivered`, the
    /// bytes the stream readers got.
    package static func yamuxSession(_ chunks: [[UInt8]], isDialer: Bool) async -> Outcome {
        var reader = ByteReader(MemoryChunks(chunks))
        var outcome = await yamuxSession(reading: &reader, isDialer: isDialer)
        outcome.counts["largestRead"] = chunks.map(\.count).max() ?? 0
        return outcome
    }

    /// The host's read loop after the upgrade (`Libp2pHost.run`): the session takes what the
    /// reader holds, then every read as it arrives.
    package static func yamuxSession<S: ChunkSource>(reading reader: inout ByteReader<S>, isDialer: Bool) async -> Outcome {
        let session = YamuxSession(isDialer: isDialer)
        let tally = ReadTally()
        var outcome = Outcome()
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withTaskGroup(of: Void.self) { readers in
                    for await stream in session.inboundStreams {
                        tally.streams.add(1, ordering: .relaxed)
                        readers.addTask {
                            var reader = stream.reader()
                            while (try? await reader.fill()) == true {
                                tally.bytes.add(reader.buffer.readableBytes, ordering: .relaxed)
                                reader.buffer.clear()
                            }
                        }
                    }
                }
            }
            if let own = try? session.openStream() {
                group.addTask { try? await own.write(ByteBuffer(bytes: [UInt8](repeating: 0x61, count: 100))) }
            }
            var retained = 0, capacity = 0
            do {
                try session.receive(&reader.buffer)
                while try await reader.fill() {
                    try session.receive(&reader.buffer)
                    retained = max(retained, reader.buffer.readableBytes)
                    capacity = max(capacity, reader.buffer.capacity)
                }
            } catch {
                outcome.failure = "\(error)"
            }
            outcome.counts["retained"] = retained
            outcome.counts["bufferCapacity"] = capacity
            session.close(goAway: outcome.failure == nil ? .normal : .protocolError)
        }
        var frames = 0
        for await _ in session.frames { frames += 1 }
        outcome.counts["streams"] = tally.streams.load(ordering: .relaxed)
        outcome.counts["delivered"] = tally.bytes.load(ordering: .relaxed)
        outcome.counts["framesSent"] = frames
        return outcome
    }

    // MARK: FloodSub

    /// `body` with every message from `peer` signed by `key` (StrictSign), when it decodes as an RPC.
    package static func strictSigned(_ body: [UInt8], by key: Curve25519.Signing.PrivateKey, peer: PeerID) -> [UInt8] {
        guard var rpc = try? Pubsub_Pb_RPC(serializedBytes: body) else { return body }
        for i in rpc.publish.indices where Array(rpc.publish[i].from) == peer.bytes {
            var unsigned = rpc.publish[i]
            unsigned.clearSignature()
            unsigned.clearKey()
            guard let bytes: [UInt8] = try? unsigned.serializedBytes(),
                  let signature = try? key.signature(for: FloodSub.signPrefix + bytes) else { continue }
            rpc.publish[i].signature = signature
        }
        return (try? rpc.serializedBytes()) ?? body
    }

    // MARK: Plumbing

    package static let quietLogger = Logger(label: "evnode.fuzz", factory: { _ in SwiftLogNoOpLogHandler() })

    package static func connection(_ peer: PeerID, session: YamuxSession, channel: any Channel) -> Libp2pConnection {
        // A documentation address (RFC 5737), so address bans apply as to any remote peer.
        Libp2pConnection(remote: peer, direction: session.isDialer ? .outbound : .inbound,
                         remoteAddress: "192.0.2.1:4001", addressKey: "192.0.2.1", remoteIP: "192.0.2.1", serial: 1,
                         origin: ConnectionOrigin(dialer: peer, dialerNonce: []), session: session, channel: channel)
    }

    /// The stream the peer opens first (its SYN), as the session hands it to the host.
    package static func peerOpenedStream(_ session: YamuxSession) async throws -> YamuxStream {
        var syn = Yamux.header(.windowUpdate, .syn, stream: session.isDialer ? 2 : 1, length: 0)
        try session.receive(&syn)
        // Already yielded by the SYN: this does not wait.
        var streams = session.inboundStreams.makeAsyncIterator()
        guard let stream = await streams.next() else { throw LinkError.closed }
        return stream
    }

    /// The id of the next stream the node opens on the session (its SYN among the sent frames).
    package static func nextOpened(_ frames: inout AsyncStream<ByteBuffer>.Iterator) async -> UInt32? {
        while let frame = await frames.next() {
            if let parsed = SentFrame(frame), parsed.flags.contains(.syn), parsed.type != .ping { return parsed.stream }
        }
        return nil
    }

    /// Runs `client` while playing the peer's end of the stream it opens on `session`: the
    /// peer's bytes go out as data frames within the window the client grants, then a FIN.
    package static func answering<T: Sendable>(_ session: YamuxSession, with chunks: [[UInt8]],
                                               _ client: @escaping @Sendable () async -> T) async -> T {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                var frames = session.frames.makeAsyncIterator()
                guard let id = await nextOpened(&frames) else { return }
                var window = Int(Yamux.initialWindow)
                for chunk in chunks {
                    var rest = chunk[...]
                    while !rest.isEmpty {
                        while window == 0 {
                            guard let frame = await frames.next() else { return }
                            guard let sent = SentFrame(frame), sent.stream == id else { continue }
                            if sent.flags.contains(.rst) { return }
                            if sent.type == .windowUpdate { window += Int(sent.length) }
                        }
                        let n = min(rest.count, window, Yamux.maxDataFrame)
                        var frame = Yamux.header(.data, [], stream: id, length: UInt32(n))
                        frame.writeBytes(rest.prefix(n))
                        rest = rest.dropFirst(n)
                        window -= n
                        do { try session.receive(&frame) } catch { return }
                    }
                }
                var fin = Yamux.header(.windowUpdate, .fin, stream: id, length: 0)
                try? session.receive(&fin)
            }
            let value = await client()
            // The client is done: whatever the answering side still waits for will not come.
            session.close()
            group.cancelAll()
            return value
        }
    }

    /// A frame the session sent, parsed back.
    package struct SentFrame {
        package var type: Yamux.FrameType
        package var flags: Yamux.Flags
        package var stream: UInt32
        package var length: UInt32
        package var payload: ByteBuffer?

        package init?(_ frame: ByteBuffer) {
            var b = frame
            guard let _ = b.readInteger(as: UInt8.self), let rawType = b.readInteger(as: UInt8.self),
                  let type = Yamux.FrameType(rawValue: rawType), let flags = b.readInteger(as: UInt16.self),
                  let stream = b.readInteger(as: UInt32.self), let length = b.readInteger(as: UInt32.self) else { return nil }
            self.type = type
            self.flags = Yamux.Flags(rawValue: flags)
            self.stream = stream
            self.length = length
            self.payload = type == .data ? b : nil
        }
    }
}

/// What the stream readers of `Libp2pInputDrivers.yamuxSession` got.
private final class ReadTally: Sendable {
    let streams = Atomic<Int>(0)
    let bytes = Atomic<Int>(0)
}

/// Chunks held in memory as a connection's bytes, one per read; the end of the list is the peer
/// closing. Like TCP, a read hands out what arrived, whatever `max` asks.
struct MemoryChunks: ChunkSource {
    private var rest: ArraySlice<[UInt8]>

    package init(_ chunks: [[UInt8]]) { rest = chunks[...] }

    mutating func nextChunk(max: Int) async throws -> ByteBuffer? {
        guard let chunk = rest.popFirst() else { return nil }
        return ByteBuffer(bytes: chunk)
    }
}
