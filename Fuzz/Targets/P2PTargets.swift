import P2PSync
import Libp2p

/// The libp2p stack a stranger reaches by connecting to the listener, and the gossip and
/// exchange protocols above it. Inputs start with a byte choosing the variant (role, mode);
/// the rest is a `ChunkScript` of the peer's bytes, one piece per read.
extension FuzzTargets {
    static let yamuxProtocols: Set<String> = ["/yamux/1.0.0", "/noise", "/floodsub/1.0.0",
                                              "/evnode-vectors-headerSync/header-ex/v0.0.3"]

    static let multistream = FuzzTarget(
        name: "multistream",
        summary: "multistream-select 1.0, listener (even first byte: what every connection and stream starts with) "
            + "or dialer (odd); finding: the listener settling on a protocol it does not speak") { input throws(FuzzFinding) in
        guard let mode = input.first else { return [:] }
        let chunks = ChunkScript(decoding: input.dropFirst(), maxTotal: 64 << 10).chunks
        if mode & 1 == 0 {
            let outcome = await Libp2pInputDrivers.multistreamListener(chunks, supported: yamuxProtocols)
            if outcome.failure == nil, outcome.counts["selected"] != 1 {
                throw FuzzFinding(id: "multistream-unsupported", "the listener selected a protocol outside the supported set")
            }
            return outcome.reached
        } else {
            return await Libp2pInputDrivers.multistreamDialer(chunks, proposing: "/noise").reached
        }
    }

    static let noiseHandshake = FuzzTarget(
        name: "noise-handshake",
        summary: "Noise XX: first byte % 3 = 0 responder (any TCP client reaches it), 1 initiator, each fed the "
            + "peer's handshake frames; 2 the handshake payload check (32 bytes of Noise static key, then the "
            + "payload; a payload naming the fixture peer's key is signed validly first)") { input throws(FuzzFinding) in
        guard let mode = input.first else { return [:] }
        switch mode % 3 {
        case 0, 1:
            let chunks = ChunkScript(decoding: input.dropFirst(), maxTotal: 256 << 10).chunks
            return await Libp2pInputDrivers.noiseHandshake(chunks, initiator: mode % 3 == 1, identity: Fixtures.nodeKey).reached
        default:
            let rest = Array(input.dropFirst())
            guard rest.count >= 32 else { return [:] }
            return Libp2pInputDrivers.noisePayload(Array(rest[32...]), remoteStatic: Array(rest[..<32]),
                                                resignWith: Fixtures.peerKey).reached
        }
    }

    static let noiseTransport = FuzzTarget(
        name: "noise-transport",
        summary: "an established Noise session's transport frames (pieces sealed with the session key; marked "
            + "pieces raw), then the muxer's multistream and the yamux session, as the host runs them; "
            + "findings: as for yamux") { input throws(FuzzFinding) in
        let pieces = ChunkScript(decoding: input, maxTotal: streamBytes).pieces
        let chunks = pieces.map { $0.marked ? Libp2pInputDrivers.WireChunk.raw($0.bytes) : .sealed($0.bytes) }
        let outcome = await Libp2pInputDrivers.noiseTransport(chunks, key: transportKey)
        try checkRetained(outcome)
        return outcome.reached
    }

    /// Enough bytes for a yamux input to overrun any window several times over (2 MiB); more only
    /// makes inputs slower (a megabyte of 5-byte frames takes seconds under AddressSanitizer).
    static let streamBytes = 2 << 20

    /// The transport key of the session `noise-transport` reads (its value does not matter).
    static let transportKey = [UInt8](repeating: 0x5a, count: 32)

    static let yamux = FuzzTarget(
        name: "yamux",
        summary: "a yamux session (even first byte: listener, odd: dialer) fed the peer's frames read by read, "
            + "with a reader on every stream the peer opens; findings: the session holding more unconsumed "
            + "bytes than a frame header and a stream window (C2), the read buffer growing past what it holds") { input throws(FuzzFinding) in
        guard let mode = input.first else { return [:] }
        let chunks = ChunkScript(decoding: input.dropFirst(), maxTotal: streamBytes).chunks
        let outcome = await Libp2pInputDrivers.yamuxSession(chunks, isDialer: mode & 1 == 1)
        try checkRetained(outcome)
        return outcome.reached
    }

    /// A frame longer than its stream's window must be refused when its header arrives, not
    /// buffered; and the read buffer discards what was consumed instead of growing with every
    /// read (issue 27 §2).
    static func checkRetained(_ outcome: P2PInputDrivers.Outcome) throws(FuzzFinding) {
        let retained = outcome.counts["retained"] ?? 0
        let bound = Libp2pInputDrivers.yamuxRetainedBound
        if retained > bound {
            throw FuzzFinding(id: "yamux-retained",
                              "the yamux session kept \(retained) bytes of one unfinished frame, over the bound of \(bound) "
                              + "(a frame header and a stream's receive window): a frame longer than the window must be "
                              + "refused when its header arrives")
        }
        // What is kept (at most `bound`), the consumed bytes not yet discarded (fewer than that,
        // else they are discarded), one read, and the buffer's doubling.
        let capacity = outcome.counts["bufferCapacity"] ?? 0
        let capacityBound = 4 * (bound + (outcome.counts["largestRead"] ?? 0))
        if capacity > capacityBound {
            throw FuzzFinding(id: "read-buffer-growth",
                              "the connection's read buffer grew to \(capacity) bytes, over \(capacityBound): consumed "
                              + "bytes are not discarded")
        }
    }

    static let gossip = FuzzTarget(
        name: "gossip",
        summary: "a peer's FloodSub RPC stream into a full node's P2P service: RPC decoding, subscriptions, "
            + "message checks, envelope stripping, header and data decoding, pairing, punishment. Even first "
            + "byte: the pieces are the stream's bytes; odd: each piece is one RPC, framed and with every "
            + "message from the peer signed validly, so the checks after the signature are reached") { input throws(FuzzFinding) in
        guard let mode = input.first else { return [:] }
        let chunks = ChunkScript(decoding: input.dropFirst()).chunks
        let (service, verdicts) = Fixtures.service()
        var reached = await P2PInputDrivers.gossip(chunks, resign: mode & 1 == 1, service: service,
                                                   peerKey: Fixtures.peerKey, channel: Fixtures.idleChannel()).reached
        reached["headersAccepted"] = verdicts.headersAccepted
        return reached
    }

    static let headerExchangeServer = FuzzTarget(
        name: "header-ex-server",
        summary: "a go-header exchange request stream to the server over a node holding 12 blocks (even first "
            + "byte: headerSync, odd: dataSync); finding: more than 64 responses (go-header's range limit)") { input throws(FuzzFinding) in
        guard let mode = input.first else { return [:] }
        let chunks = ChunkScript(decoding: input.dropFirst(), maxTotal: 1 << 20).chunks
        let outcome = await P2PInputDrivers.headerExchangeServer(chunks, dataSync: mode & 1 == 1, source: Fixtures.source,
                                                                 peerKey: Fixtures.peerKey, channel: Fixtures.idleChannel())
        if let responses = outcome.counts["responses"], responses > 64 {
            throw FuzzFinding(id: "header-ex-responses", "the server wrote \(responses) responses to one request (at most 64)")
        }
        return outcome.reached
    }

    static let headerExchangeClient = FuzzTarget(
        name: "header-ex-client",
        summary: "the go-header exchange client reading a peer's answer on the stream it opened (multistream echo "
            + "first), within the window it grants. Even first byte: the service's head request (askHead: the "
            + "answer's signed header becomes a proven height or gets the peer banned; finding: a stranger's "
            + "answer counting as a configured peer's for the catchup gate); odd: a range request "
            + "from the second byte's height for the third byte's amount, pieces on the header network and "
            + "marked pieces on the data network, paired and checked as range sync does") { input throws(FuzzFinding) in
        guard let mode = input.first else { return [:] }
        let (service, _) = Fixtures.service()
        if mode & 1 == 0 {
            let chunks = ChunkScript(decoding: input.dropFirst()).chunks
            var reached = await P2PInputDrivers.askHead(chunks, service: service, peerKey: Fixtures.peerKey,
                                                        channel: Fixtures.idleChannel()).reached
            reached["proven"] = Int(service.provenHeights.highest ?? 0)
            // The peer is a stranger (no configured address, no dial of ours): whatever it
            // answers, the catchup gate must not count it as a configured peer's answer (C1).
            if service.provenHeights.configuredPeerAnswered {
                throw FuzzFinding(id: "fence-stranger-answer",
                                  "a stranger's head answer counted as a configured peer's for the catchup gate")
            }
            return reached
        } else {
            guard input.count >= 3 else { return [:] }
            let from = UInt64(input[input.startIndex + 1])
            let amount = UInt64(input[input.startIndex + 2])
            let pieces = ChunkScript(decoding: input.dropFirst(3)).pieces
            return await P2PInputDrivers.requestRange(from: from, amount: amount,
                                                   headerChunks: pieces.filter { !$0.marked }.map(\.bytes),
                                                   dataChunks: pieces.filter(\.marked).map(\.bytes),
                                                   service: service, peerKey: Fixtures.peerKey,
                                                   channel: Fixtures.idleChannel()).reached
        }
    }
}

extension P2PInputDrivers.Outcome {
    /// The driver's counts, and `failed` 1 when the component ended with an error.
    var reached: Reached {
        counts.merging(["failed": failure == nil ? 0 : 1]) { kept, _ in kept }
    }
}
