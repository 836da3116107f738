import Crypto
import Foundation
import Logging
import NIOCore
import SwiftProtobuf
import Synchronization

/// Runs the parsers a remote peer reaches — and the state machines that consume what they parse —
/// over bytes held in memory instead of a socket. These are the entry points of the fuzz targets
/// (`Fuzz/Targets`); the node never calls them. Each drives the code a connection runs, in the
/// order it runs it, and reports what happened; none of them changes how that code behaves.
package enum P2PInputDrivers {
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
    static func yamuxSession<S: ChunkSource>(reading reader: inout ByteReader<S>, isDialer: Bool) async -> Outcome {
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

    // MARK: FloodSub and the gossip behind it

    /// A peer's FloodSub RPC stream served by `service`'s FloodSub — RPC decoding, subscriptions,
    /// the checks of every message, the service's gossip validation (envelope, header and data
    /// decoding, pairing, what is held) and its penalties and bans — after the peer was registered
    /// the way a new connection registers it (our RPC stream to it opened and negotiated). Counts:
    /// `delivered` (blocks paired and handed to the node), `penalty`, `banned`. The service is
    /// shut down afterwards.
    ///
    /// `chunks` is the stream's bytes; with `resign`, each chunk is instead one RPC body that is
    /// framed here after every message `from` the peer (`peerKey`) got a valid StrictSign
    /// signature, so that the fuzzer reaches what follows the signature check.
    /// `channel` is only held by the connection object; nothing is written to it.
    package static func gossip(_ chunks: [[UInt8]], resign: Bool, service: P2PService,
                               peerKey: Curve25519.Signing.PrivateKey, channel: any Channel) async -> Outcome {
        let peer = PeerID(publicKey: Array(peerKey.publicKey.rawRepresentation))
        var stream: [[UInt8]] = chunks
        if resign {
            stream = chunks.map { body in
                var framed: [UInt8] = []
                let signed = signed(body, by: peerKey, peer: peer)
                Varint.append(UInt64(signed.count), to: &framed)
                return framed + signed
            }
        }
        let session = YamuxSession(isDialer: false)
        let conn = connection(peer, session: session, channel: channel)
        var frames = session.frames.makeAsyncIterator()
        let floodsub = service.floodsub
        var outcome = Outcome()
        // What `P2PService.connected` does, but its head request to the peer (the header-ex
        // client's business, `askHead` below).
        service.registry.withLock { r in r.peers[conn.remote, default: P2PService.PeerState()].connection = conn.serial }
        await withTaskGroup(of: Void.self) { group in
            // Registration: our RPC stream to the peer, negotiated (the peer echoes the protocol).
            group.addTask { await floodsub.peerConnected(conn, host: service.host) }
            if let ours = await nextOpened(&frames) {
                var echo = Multistream.messages([Multistream.header, FloodSub.protocolID])
                var frame = Yamux.header(.data, [], stream: ours, length: UInt32(echo.readableBytes))
                frame.writeBuffer(&echo)
                try? session.receive(&frame)
            }
            do {
                let inbound = try await peerOpenedStream(session)
                for chunk in stream where !chunk.isEmpty {
                    inbound.received(ByteBuffer(bytes: chunk))
                }
                inbound.remoteFinished()
                var s = InboundStream(connection: conn, stream: inbound, protocolID: FloodSub.protocolID,
                                      reader: inbound.reader())
                try await floodsub.serve(&s)
            } catch {
                outcome.failure = "\(error)"
            }
            outcome.counts["banned"] = service.isBanned(peer: peer) ? 1 : 0
            outcome.counts["penalty"] = service.penalty(of: peer)
            service.disconnected(conn)
            session.close()
        }
        while await frames.next() != nil {}
        // The blocks gossip paired and handed to the node (the service never ran: its feed ends here).
        service.finishStreams()
        var delivered = 0
        for await _ in service.receivedBlocks { delivered += 1 }
        outcome.counts["delivered"] = delivered
        return outcome
    }

    /// `body` with every message from `peer` signed by `key` (StrictSign), when it decodes as an RPC.
    private static func signed(_ body: [UInt8], by key: Curve25519.Signing.PrivateKey, peer: PeerID) -> [UInt8] {
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

    // MARK: header-ex

    /// One request stream served by the header-ex server over `source` (`dataSync`: the data
    /// network's server, else the header network's). `chunks` is what the peer sends on the
    /// stream (then it closes its side, as go-header's client does). Counts: `responses`, `ok`,
    /// `notFound`, `reset` (the server reset the stream), `responseBytes`.
    package static func headerExchangeServer(_ chunks: [[UInt8]], dataSync: Bool, source: any BlockSource,
                                             peerKey: Curve25519.Signing.PrivateKey, channel: any Channel) async -> Outcome {
        let peer = PeerID(publicKey: Array(peerKey.publicKey.rawRepresentation))
        let session = YamuxSession(isDialer: false)
        let conn = connection(peer, session: session, channel: channel)
        let server = HeaderExchangeServer(kind: dataSync ? .data : .header, source: source, logger: quietLogger)
        var outcome = Outcome()
        var streamID: UInt32 = 0
        do {
            let inbound = try await peerOpenedStream(session)
            streamID = inbound.id
            for chunk in chunks where !chunk.isEmpty {
                inbound.received(ByteBuffer(bytes: chunk))
            }
            inbound.remoteFinished()
            var s = InboundStream(connection: conn, stream: inbound, protocolID: "header-ex", reader: inbound.reader())
            do {
                try await server.serve(&s)
            } catch {
                // What the host does with a handler's error.
                inbound.reset()
                outcome.failure = "\(error)"
            }
        } catch {
            outcome.failure = "\(error)"
        }
        session.close()
        var payload = ByteBuffer()
        var reset = 0
        for await frame in session.frames {
            guard let parsed = SentFrame(frame), parsed.stream == streamID else { continue }
            if parsed.flags.contains(.rst) { reset = 1 }
            if parsed.type == .data, var body = parsed.payload { payload.writeBuffer(&body) }
        }
        outcome.counts["reset"] = reset
        outcome.counts["responseBytes"] = payload.readableBytes
        var responses = 0, ok = 0, notFound = 0
        while case .value(let length, let n) = Varint.parse(payload.readableBytesView),
              payload.readableBytes - n >= Int(length) {
            payload.moveReaderIndex(forwardBy: n)
            let message = payload.readBytes(length: Int(length)) ?? []
            responses += 1
            if let response = try? P2p_Pb_HeaderResponse(serializedBytes: message) {
                if response.statusCode == .ok { ok += 1 }
                if response.statusCode == .notFound { notFound += 1 }
            }
        }
        outcome.counts["responses"] = responses
        outcome.counts["ok"] = ok
        outcome.counts["notFound"] = notFound
        return outcome
    }

    /// `service` asks the peer for its head (`askHead`, what it does for every connected peer):
    /// the header-ex client reads `chunks` as the peer's answer on the stream it opened
    /// (multistream echo included), delivered within the window the client grants; the service
    /// then records the claim in its `ProvenPeerHeights` or punishes the peer.
    /// Counts: `banned`.
    package static func askHead(_ chunks: [[UInt8]], service: P2PService,
                                peerKey: Curve25519.Signing.PrivateKey, channel: any Channel) async -> Outcome {
        let peer = PeerID(publicKey: Array(peerKey.publicKey.rawRepresentation))
        let session = YamuxSession(isDialer: true)
        let conn = connection(peer, session: session, channel: channel)
        await answering(session, with: chunks) { await service.askHead(conn) }
        return Outcome(counts: ["banned": service.isBanned(peer: peer) ? 1 : 0])
    }

    /// A range request `[from, from + amount)` as range sync sends it: the header-ex client on the
    /// header network reads `headerChunks` as the peer's answer, on the data network
    /// `dataChunks`; then the answers are decoded and paired as range sync pairs them, each block
    /// checked by the service's validator. Counts: `headers`, `data`, `accepted`, `rejected`.
    package static func requestRange(from: UInt64, amount: UInt64, headerChunks: [[UInt8]], dataChunks: [[UInt8]],
                                     service: P2PService, peerKey: Curve25519.Signing.PrivateKey,
                                     channel: any Channel) async -> Outcome {
        let peer = PeerID(publicKey: Array(peerKey.publicKey.rawRepresentation))
        let request = HeaderExchange.rangeRequest(from: from, amount: amount)
        var outcome = Outcome()
        func ask(_ network: String, _ chunks: [[UInt8]]) async -> [[UInt8]]? {
            let session = YamuxSession(isDialer: true)
            let conn = connection(peer, session: session, channel: channel)
            let result = await answering(session, with: chunks) { () async -> Result<[[UInt8]], any Error> in
                do {
                    return .success(try await HeaderExchange.request(request, network: network, on: conn, host: service.host,
                                                                     timeout: service.settings.requestTimeout))
                } catch {
                    return .failure(error)
                }
            }
            switch result {
            case .success(let bodies): return bodies
            case .failure(let error):
                outcome.failure = "\(error)"
                return nil
            }
        }
        guard let headers = await ask(service.headerNetwork, headerChunks),
              let datas = await ask(service.dataNetwork, dataChunks) else { return outcome }
        outcome.counts["headers"] = headers.count
        outcome.counts["data"] = datas.count
        var accepted = 0, rejected = 0
        for i in 0..<min(headers.count, datas.count) {
            // As range sync pairs an answer: both decode, the header is at its height, the block checks.
            let height = from &+ UInt64(i)
            guard let signed = try? service.decodeHeader(headers[i]), signed.header.height == height,
                  let data = try? service.decodeData(datas[i]),
                  let header = try? P2PEnvelope.strip(headers[i], hintField: P2PEnvelope.headerHintField) else {
                rejected += 1
                continue
            }
            let block = P2PBlock(height: height, headerHash: signed.header.hash, encodedSignedHeader: header.body,
                                 encodedData: data.1)
            if case .accept = service.validator.validate(block) { accepted += 1 } else { rejected += 1 }
        }
        outcome.counts["accepted"] = accepted
        outcome.counts["rejected"] = rejected
        return outcome
    }

    // MARK: Plumbing

    package static let quietLogger = Logger(label: "evnode.fuzz", factory: { _ in SwiftLogNoOpLogHandler() })

    private static func connection(_ peer: PeerID, session: YamuxSession, channel: any Channel) -> Libp2pConnection {
        // A documentation address (RFC 5737), so address bans apply as to any remote peer.
        Libp2pConnection(remote: peer, direction: session.isDialer ? .outbound : .inbound,
                         remoteAddress: "192.0.2.1:4001", addressKey: "192.0.2.1", remoteIP: "192.0.2.1", serial: 1,
                         origin: ConnectionOrigin(dialer: peer, dialerNonce: []), session: session, channel: channel)
    }

    /// The stream the peer opens first (its SYN), as the session hands it to the host.
    private static func peerOpenedStream(_ session: YamuxSession) async throws -> YamuxStream {
        var syn = Yamux.header(.windowUpdate, .syn, stream: session.isDialer ? 2 : 1, length: 0)
        try session.receive(&syn)
        // Already yielded by the SYN: this does not wait.
        var streams = session.inboundStreams.makeAsyncIterator()
        guard let stream = await streams.next() else { throw LinkError.closed }
        return stream
    }

    /// The id of the next stream the node opens on the session (its SYN among the sent frames).
    private static func nextOpened(_ frames: inout AsyncStream<ByteBuffer>.Iterator) async -> UInt32? {
        while let frame = await frames.next() {
            if let parsed = SentFrame(frame), parsed.flags.contains(.syn), parsed.type != .ping { return parsed.stream }
        }
        return nil
    }

    /// Runs `client` while playing the peer's end of the stream it opens on `session`: the
    /// peer's bytes go out as data frames within the window the client grants, then a FIN.
    private static func answering<T: Sendable>(_ session: YamuxSession, with chunks: [[UInt8]],
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
    private struct SentFrame {
        var type: Yamux.FrameType
        var flags: Yamux.Flags
        var stream: UInt32
        var length: UInt32
        var payload: ByteBuffer?

        init?(_ frame: ByteBuffer) {
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

/// What the stream readers of `P2PInputDrivers.yamuxSession` got.
private final class ReadTally: Sendable {
    let streams = Atomic<Int>(0)
    let bytes = Atomic<Int>(0)
}

/// Chunks held in memory as a connection's bytes, one per read; the end of the list is the peer
/// closing. Like TCP, a read hands out what arrived, whatever `max` asks.
struct MemoryChunks: ChunkSource {
    private var rest: ArraySlice<[UInt8]>

    init(_ chunks: [[UInt8]]) { rest = chunks[...] }

    mutating func nextChunk(max: Int) async throws -> ByteBuffer? {
        guard let chunk = rest.popFirst() else { return nil }
        return ByteBuffer(bytes: chunk)
    }
}
