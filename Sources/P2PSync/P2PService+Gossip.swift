import Primitives
import Chain
import Libp2p

/// Gossip in: FloodSub hands each new message (StrictSign and seen-cache passed) to
/// `gossipReceived`, whose verdict decides whether FloodSub relays it (`.accept`), drops it
/// (`.ignore`) or bans the peer that sent it (`.reject`).
///
/// Who is blamed for what (issue 27 §2, review M1): a relayer forwards only what it checked, so
/// the peer that sent a message answers for what is wrong with that message *on its own* — a
/// header that does not decode, is for another chain or is not the proposer's; data that does
/// not decode, has no metadata, is for another chain or has height or time 0. Data that merely
/// does not match a header blames nobody (`PendingGossip`): the header may have come from another
/// peer, and an equivocating proposer can sign two headers at one height. Cheap checks come
/// before the signature check (review M3).
extension P2PService {
    func gossipReceived(_ message: FloodSub.Incoming) -> FloodSub.Verdict {
        if message.topic == headerTopic {
            gossipBytes?.headerReceived.add(message.data.count)
            return headerReceived(message)
        }
        gossipBytes?.dataReceived.add(message.data.count)
        return dataReceived(message)
    }

    private func headerReceived(_ message: FloodSub.Incoming) -> FloodSub.Verdict {
        let signed: SignedHeader
        do {
            signed = try decodeHeader(message.data)
        } catch {
            return .reject("gossiped header: \(error)")
        }
        let header = signed.header
        guard header.chainID == chainID else {
            return .reject("gossiped header \(header.height) is for chain \"\(header.chainID)\", not \"\(chainID)\"")
        }
        let storeHeight = source.currentHeight()
        guard header.height > storeHeight else { return .ignore }
        let hash = header.hash
        let known = registry.withLock { r in
            r.pending.prune(through: storeHeight)
            return r.pending.knows(height: header.height, hash: hash)
        }
        // The same header again (another origin, or a replay with a fresh seqno): checked already.
        if known { return .ignore }
        if isAheadOfClock(header, what: "gossiped header", from: message.source) { return .ignore }
        switch validator.validate(header: signed) {
        case .reject(let reason): return .reject("gossiped header \(header.height): \(reason)")
        case .ignore: return .ignore
        case .accept: break
        }
        let outcome = registry.withLock { r in
            r.pending.add(header: PendingGossip.HeldHeader(signed: signed, hash: hash, from: message.source))
        }
        switch outcome {
        case .paired(let pair):
            deliver(pair)
            return .accept
        case .held:
            return .accept
        case .notKept:
            return .ignore
        }
    }

    private func dataReceived(_ message: FloodSub.Incoming) -> FloodSub.Verdict {
        let data: BlockData
        let body: [UInt8]
        do {
            (data, body) = try decodeData(message.data)
        } catch {
            return .reject("gossiped data: \(error)")
        }
        guard let metadata = data.metadata else { return .reject("gossiped data without metadata") }
        guard metadata.chainID == chainID else {
            return .reject("gossiped data \(metadata.height) is for chain \"\(metadata.chainID)\", not \"\(chainID)\"")
        }
        guard metadata.height > 0, metadata.time > 0 else { return .reject("gossiped data with height or time 0") }
        let storeHeight = source.currentHeight()
        guard metadata.height > storeHeight else { return .ignore }
        let wanted = registry.withLock { r in
            r.pending.prune(through: storeHeight)
            return r.pending.wants(dataAt: metadata.height, storeHeight: storeHeight)
        }
        // Far above the store with no header to pair with: not worth hashing, let alone holding.
        guard wanted else { return .ignore }
        let held = PendingGossip.HeldData(body: body, txsHash: data.dataHash, time: metadata.time, from: message.source)
        let (outcome, pair) = registry.withLock { r in
            r.pending.add(data: held, height: metadata.height, storeHeight: storeHeight)
        }
        if let pair {
            deliver(pair)
            return .accept
        }
        if case .dropped(let why) = outcome {
            logger.trace("gossiped data not held", metadata: ["height": "\(metadata.height)", "peer": "\(message.source.short)",
                                                             "reason": "\(why)"])
        }
        // Held or not, unpaired data is never relayed: nothing verified vouches for it yet.
        return .ignore
    }

    /// go-header's clock rule (reference §5): a header more than 10 s ahead of the local clock is
    /// dropped, not relayed, and its sender not blamed (clocks drift); it is taken when it comes
    /// again, by gossip or range sync, once the clock has caught up. Logged with the times.
    func isAheadOfClock(_ header: Header, what: String, from peer: PeerID) -> Bool {
        let now = BlockValidator.currentTime()
        do throws(ValidationError) {
            try BlockValidator.checkNotAhead(header, now: now, maxDrift: BlockValidator.p2pMaxFutureDrift)
            return false
        } catch {
            logger.info("dropped a \(what) ahead of the local clock", metadata: [
                "height": "\(header.height)", "hash": "\(Hex.encode(header.hash))", "time_ns": "\(header.time)",
                "now_ns": "\(now)", "max_ahead_ns": "\(BlockValidator.p2pMaxFutureDrift)", "peer": "\(peer)"])
            return true
        }
    }

    /// Hands a paired block to the node. The data goes as received; its metadata is not
    /// trusted downstream (`SignedBlockValidator.check` drops it).
    private func deliver(_ pair: PendingGossip.Pair) {
        let signed = pair.header.signed
        let block = P2PBlock(height: signed.header.height, headerHash: pair.header.hash,
                             encodedSignedHeader: signed.encoded(), encodedData: pair.data.body)
        if case .dropped = receivedContinuation.yield(ReceivedBlock(block: block, from: pair.header.from)) {
            registry.withLock { $0.receivedDropped += 1 }
        }
    }

    /// What gossip holds now (held headers and data are bounded by `P2PSettings`).
    var heldGossip: HeldGossip {
        registry.withLock { r in
            HeldGossip(waitingHeaders: r.pending.waitingHeaderCount, headerRecords: r.pending.headerRecordCount,
                       dataMessages: r.pending.heldDataCount, dataBytes: r.pending.dataByteCount,
                       dataHeights: r.pending.heldDataHeights, waitingHeaderHeights: r.pending.waitingHeaderHeights)
        }
    }
}

/// A snapshot of the gossip halves a node holds while they wait for their other half.
struct HeldGossip: Sendable, Equatable {
    var waitingHeaders: Int
    var headerRecords: Int
    var dataMessages: Int
    var dataBytes: Int
    var dataHeights: [UInt64]
    var waitingHeaderHeights: [UInt64]
}
