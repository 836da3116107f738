import Crypto
import Libp2p
import Logging
import NIOCore
import SwiftProtobuf

/// The service's side of the fuzz entry points (`Fuzz/Targets`): what a peer's bytes reach once
/// the libp2p stack (`Libp2pInputDrivers`) handed them to the P2P service — gossip validation and
/// the header exchange, server and client. The node never calls them; none of them changes how
/// the code it drives behaves.
package enum P2PInputDrivers {
    package typealias Outcome = Libp2pInputDrivers.Outcome

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
                let signed = Libp2pInputDrivers.strictSigned(body, by: peerKey, peer: peer)
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
                                                                     budget: service.exchangeClientBudget,
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

    private static var quietLogger: Logger { Libp2pInputDrivers.quietLogger }

    private static func connection(_ peer: PeerID, session: YamuxSession, channel: any Channel) -> Libp2pConnection {
        Libp2pInputDrivers.connection(peer, session: session, channel: channel)
    }

    private static func peerOpenedStream(_ session: YamuxSession) async throws -> YamuxStream {
        try await Libp2pInputDrivers.peerOpenedStream(session)
    }

    private static func nextOpened(_ frames: inout AsyncStream<ByteBuffer>.Iterator) async -> UInt32? {
        await Libp2pInputDrivers.nextOpened(&frames)
    }

    private static func answering<T: Sendable>(_ session: YamuxSession, with chunks: [[UInt8]],
                                               _ client: @escaping @Sendable () async -> T) async -> T {
        await Libp2pInputDrivers.answering(session, with: chunks, client)
    }

    private typealias SentFrame = Libp2pInputDrivers.SentFrame
}
