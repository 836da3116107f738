import Foundation
import Logging
import NIOCore
import SwiftProtobuf
import Libp2p

/// go-header's exchange (`/<networkID>/header-ex/v0.0.3`, go-header v0.8.6 p2p/server.go and
/// session.go): one request per stream, `uvarint(len) ‖ HeaderRequest`, answered by up to
/// `amount` `HeaderResponse`s and a close.
enum HeaderExchange {
    /// go-header's MaxRangeRequestSize.
    static let maxRange: UInt64 = 64
    /// ev-node's message size limit (pkg/sync/p2p_message_size.go): what this node's server
    /// may send, never more.
    static let maxMessageBytes = 10 * 1024 * 1024
    static let requestLimit = 4096

    /// What this node's client reads of one answer. A signed header is well under 1 KiB, so the
    /// header network gets a small per-message limit; a block's data is at most ev-node's blob
    /// size (5 MiB) plus its envelope. A response that would pass its total is cut there: the
    /// client keeps the blocks it has and asks again for the rest.
    struct ResponseLimits: Sendable, Equatable {
        var message: Int
        var response: Int

        static let headers = ResponseLimits(message: 64 * 1024, response: 1 << 20)
        static let data = ResponseLimits(message: 5 * 1024 * 1024 + 64 * 1024, response: 16 << 20)

        static func of(network: String) -> ResponseLimits {
            network.hasSuffix("-headerSync") ? .headers : .data
        }

        /// What one request of `amount` responses may hold at once.
        func allowance(amount: Int) -> Int { min(response, max(1, amount) * message) }
    }

    static func protocolID(network: String) -> String { "/\(network)/header-ex/v0.0.3" }
    static func topic(network: String) -> String { "/\(network)/header-sub/v0.0.1" }
    static func headerNetwork(chainID: String) -> String { "\(chainID)-headerSync" }
    static func dataNetwork(chainID: String) -> String { "\(chainID)-dataSync" }

    enum Kind: Sendable { case header, data }

    static func frame(_ message: some SwiftProtobuf.Message) -> ByteBuffer {
        let body: [UInt8] = (try? message.serializedBytes()) ?? []
        var b = ByteBuffer()
        Varint.write(UInt64(body.count), to: &b)
        b.writeBytes(body)
        return b
    }

    static func ok(_ body: [UInt8]) -> P2p_Pb_HeaderResponse {
        var r = P2p_Pb_HeaderResponse()
        r.body = Data(body)
        r.statusCode = .ok
        return r
    }

    static var notFound: P2p_Pb_HeaderResponse {
        var r = P2p_Pb_HeaderResponse()
        r.statusCode = .notFound
        return r
    }

    // MARK: Client

    enum ClientError: Error, CustomStringConvertible {
        /// The peer answered with a status other than OK/NOT_FOUND, or a response that does not decode.
        case invalidResponse(String)

        var description: String {
            switch self {
            case .invalidResponse(let what): return "invalid header-ex response: \(what)"
            }
        }
    }

    /// Sends one request and collects the OK bodies: stops at `amount` responses, EOF (a partial
    /// answer) or NOT_FOUND (an empty answer). What it reads is held under `budget` (the
    /// service's, for all its requests): the request first takes its allowance (waiting for room), every message is within
    /// its network's limit, and an answer that would pass the allowance ends there (partial).
    static func request(_ req: P2p_Pb_HeaderRequest, network: String, on conn: Libp2pConnection, host: Libp2pHost,
                        budget: BufferBudget, timeout: Duration, limits: ResponseLimits? = nil) async throws -> [[UInt8]] {
        let expected = max(1, Int(clamping: req.amount))
        let limits = limits ?? ResponseLimits.of(network: network)
        return try await withTimeout(timeout, "header-ex request to \(conn.remote.short)") {
            let allowance = min(limits.allowance(amount: expected), budget.accountCapacity)
            let account = budget.openAccount()
            defer { account.close() }
            try await account.reserve(allowance)
            var (stream, reader) = try await host.openStream(conn, protocol: protocolID(network: network), timeout: timeout)
            defer { stream.close() }
            try await stream.write(frame(req))
            stream.closeWrite()
            var bodies: [[UInt8]] = []
            var held = 0
            while bodies.count < expected {
                guard let length = try await reader.readVarint() else { break }
                guard length <= UInt64(limits.message) else {
                    throw LinkError.tooLarge(Int(clamping: length), limit: limits.message)
                }
                guard held + Int(length) <= allowance else {
                    // The rest is asked for again; the server is told to stop.
                    stream.reset()
                    break
                }
                held += Int(length)
                let msg = try await reader.readExactly(Int(length))
                let response: P2p_Pb_HeaderResponse
                do {
                    response = try P2p_Pb_HeaderResponse(serializedBytes: Array(msg.readableBytesView))
                } catch {
                    throw ClientError.invalidResponse("does not decode: \(error)")
                }
                switch response.statusCode {
                case .ok:
                    bodies.append(Array(response.body))
                case .notFound:
                    return bodies
                default:
                    throw ClientError.invalidResponse("status \(response.statusCode.rawValue)")
                }
            }
            return bodies
        }
    }

    static func headRequest() -> P2p_Pb_HeaderRequest {
        var r = P2p_Pb_HeaderRequest()
        r.origin = 0
        r.amount = 1
        return r
    }

    static func rangeRequest(from: UInt64, amount: UInt64) -> P2p_Pb_HeaderRequest {
        var r = P2p_Pb_HeaderRequest()
        r.origin = from
        r.amount = amount
        return r
    }
}

/// The server side over the node's `BlockSource`: head, ranges of at most 64 (more: reset),
/// NOT_FOUND above the head, partial ranges up to the head, hash look-ups; then close.
///
/// Facing strangers: a request is served only within the limiter's caps (per peer and for the
/// node; beyond them the stream is reset); the answer is streamed — one block read, framed and
/// written before the next is read — so a peer that withholds its window holds one block, and
/// the whole answer must be written within `writeDeadline` or the stream is reset and freed.
struct HeaderExchangeServer: Sendable {
    let kind: HeaderExchange.Kind
    let source: any BlockSource
    let logger: Logger
    /// Requests being answered, per peer and node-wide (one limiter for both networks).
    let limiter: SlotLimiter<PeerID>
    /// go-header's server write deadline (8 s).
    let writeDeadline: Duration
    /// go-header's server read deadline: the request must arrive within it.
    var readDeadline: Duration = .seconds(60)

    init(kind: HeaderExchange.Kind, source: any BlockSource, logger: Logger,
         limiter: SlotLimiter<PeerID> = SlotLimiter(perKey: 16, total: 64), writeDeadline: Duration = .seconds(8)) {
        self.kind = kind
        self.source = source
        self.logger = logger
        self.limiter = limiter
        self.writeDeadline = writeDeadline
    }

    /// What to send for a request: how the answer is made, without holding it.
    enum Plan: Equatable, Sendable {
        case reset
        case notFound
        /// `count` blocks from `from` (stopping early at the first the source lacks).
        case blocks(from: UInt64, count: Int)
        case head(UInt64)
        case hash([UInt8])
    }

    /// The plan for a request's bytes given the current head; entry point for fuzzing too.
    static func plan(_ body: [UInt8], head: UInt64) -> Plan {
        guard let req = try? P2p_Pb_HeaderRequest(serializedBytes: body) else { return .reset }
        switch req.data {
        case .none:
            return .reset
        case .origin(let origin):
            guard req.amount >= 1 else { return .reset }
            if origin == 0 {
                // The head request: one response whatever the amount.
                return head > 0 ? .head(head) : .notFound
            }
            guard req.amount <= HeaderExchange.maxRange else { return .reset }
            guard head >= origin else { return .notFound }
            return .blocks(from: origin, count: Int(min(req.amount, head - origin + 1)))
        case .hash(let hash):
            return .hash(Array(hash))
        }
    }

    func serve(_ s: inout InboundStream) async throws {
        let stream = s.stream
        let peer = s.connection.remote
        // go-header: the request must arrive within 60 s.
        let body = try await withDeadline(readDeadline, onExpiry: { stream.reset() }) {
            try await s.reader.readMessage(limit: HeaderExchange.requestLimit)
        }
        guard let body else {
            stream.reset()
            return
        }
        // One request per stream: nothing more is read (nor held) from it.
        s.reader.discardLeftover()
        stream.stopReading()
        let plan = Self.plan(Array(body.readableBytesView), head: source.currentHeight())
        if plan == .reset {
            stream.reset()
            return
        }
        if let refusal = limiter.acquire(peer) {
            logger.debug("header-ex request refused", metadata: [
                "peer": "\(peer.short)", "reason": "\(refusal == .perKey ? "per-peer limit" : "node limit")"])
            stream.reset()
            return
        }
        defer { limiter.release(peer) }
        do {
            // The answer runs in a child task so the deadline can cancel it; a cancelled handler
            // (its connection closing) cancels it too.
            try await withTimeout(writeDeadline, "header-ex answer") { try await answer(plan, on: stream) }
        } catch {
            stream.reset()
            if error is CancellationError || Task.isCancelled { return }
            // Past the deadline: the stream is reset, as go-header's server does; not the peer's fault.
            if case LinkError.timeout = error { return }
            throw error
        }
        stream.close()
    }

    /// Writes the answer one response at a time.
    private func answer(_ plan: Plan, on stream: YamuxStream) async throws {
        switch plan {
        case .reset:
            return
        case .notFound:
            try await stream.write(HeaderExchange.frame(HeaderExchange.notFound))
        case .head(let head):
            guard let block = try await source.blocks(from: head, count: 1).first else {
                try await stream.write(HeaderExchange.frame(HeaderExchange.notFound))
                return
            }
            try await stream.write(try await frame(block))
        case .blocks(let from, let count):
            var sent = 0
            while sent < count {
                try Task.checkCancellation()
                guard let block = try await source.blocks(from: from + UInt64(sent), count: 1).first else { break }
                try await stream.write(try await frame(block))
                sent += 1
            }
            if sent == 0 { try await stream.write(HeaderExchange.frame(HeaderExchange.notFound)) }
        case .hash(let hash):
            // dataSync resolves the hash through the header-hash index too (go-header/ev-node quirk).
            if let height = try await source.height(ofHeaderHash: hash),
               let block = try await source.blocks(from: height, count: 1).first {
                try await stream.write(try await frame(block))
            } else {
                try await stream.write(HeaderExchange.frame(HeaderExchange.notFound))
            }
        }
    }

    private func frame(_ block: P2PBlock) async throws -> ByteBuffer {
        HeaderExchange.frame(HeaderExchange.ok(try await envelope(block)))
    }

    /// With the DA height of its inclusion as the hint, as ev-node serves it (0: not known).
    private func envelope(_ block: P2PBlock) async throws -> [UInt8] {
        let hints = try await source.daHeightHints(at: block.height)
        switch kind {
        case .header: return P2PEnvelope.header(encodedSignedHeader: block.encodedSignedHeader, daHeightHint: hints.header)
        case .data: return P2PEnvelope.data(encodedData: block.encodedData, daHeightHint: hints.data)
        }
    }
}
