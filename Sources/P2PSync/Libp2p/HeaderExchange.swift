import Foundation
import Logging
import NIOCore
import SwiftProtobuf

/// go-header's exchange (`/<networkID>/header-ex/v0.0.3`, go-header v0.8.6 p2p/server.go and
/// session.go): one request per stream, `uvarint(len) ‖ HeaderRequest`, answered by up to
/// `amount` `HeaderResponse`s and a close.
enum HeaderExchange {
    /// go-header's MaxRangeRequestSize.
    static let maxRange: UInt64 = 64
    /// ev-node's message size limit (pkg/sync/p2p_message_size.go).
    static let maxMessageBytes = 10 * 1024 * 1024
    static let requestLimit = 4096

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
    /// answer) or NOT_FOUND (an empty answer).
    static func request(_ req: P2p_Pb_HeaderRequest, network: String, on conn: Libp2pConnection, host: Libp2pHost,
                        timeout: Duration) async throws -> [[UInt8]] {
        let expected = max(1, Int(clamping: req.amount))
        return try await withTimeout(timeout, "header-ex request to \(conn.remote.short)") {
            var (stream, reader) = try await host.openStream(conn, protocol: protocolID(network: network), timeout: timeout)
            defer { stream.close() }
            try await stream.write(frame(req))
            stream.closeWrite()
            var bodies: [[UInt8]] = []
            while bodies.count < expected {
                guard let msg = try await reader.readMessage(limit: maxMessageBytes) else { break }
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
struct HeaderExchangeServer: Sendable {
    let kind: HeaderExchange.Kind
    let source: any BlockSource
    let logger: Logger

    func serve(_ s: inout InboundStream) async throws {
        let stream = s.stream
        // go-header: the request must arrive within 60 s.
        let deadline = Task {
            try await Task.sleep(for: .seconds(60))
            stream.reset()
        }
        defer { deadline.cancel() }
        guard let body = try await s.reader.readMessage(limit: HeaderExchange.requestLimit) else {
            stream.reset()
            return
        }
        deadline.cancel()
        let req: P2p_Pb_HeaderRequest
        do {
            req = try P2p_Pb_HeaderRequest(serializedBytes: Array(body.readableBytesView))
        } catch {
            stream.reset()
            return
        }
        var out = ByteBuffer()
        switch req.data {
        case .none:
            stream.reset()
            return
        case .origin(let origin):
            guard req.amount >= 1 else {
                stream.reset()
                return
            }
            let head = source.currentHeight()
            if origin == 0 {
                // The head request: one response whatever the amount.
                guard head > 0, let block = try await source.blocks(from: head, count: 1).first else {
                    out.writeImmutableBuffer(HeaderExchange.frame(HeaderExchange.notFound))
                    break
                }
                out.writeImmutableBuffer(HeaderExchange.frame(HeaderExchange.ok(envelope(block))))
            } else {
                guard req.amount <= HeaderExchange.maxRange else {
                    stream.reset()
                    return
                }
                guard head >= origin else {
                    out.writeImmutableBuffer(HeaderExchange.frame(HeaderExchange.notFound))
                    break
                }
                let count = Int(min(req.amount, head - origin + 1))
                let blocks = try await source.blocks(from: origin, count: count)
                if blocks.isEmpty {
                    out.writeImmutableBuffer(HeaderExchange.frame(HeaderExchange.notFound))
                }
                for block in blocks {
                    out.writeImmutableBuffer(HeaderExchange.frame(HeaderExchange.ok(envelope(block))))
                }
            }
        case .hash(let hash):
            // dataSync resolves the hash through the header-hash index too (go-header/ev-node quirk).
            if let height = try await source.height(ofHeaderHash: Array(hash)),
               let block = try await source.blocks(from: height, count: 1).first {
                out.writeImmutableBuffer(HeaderExchange.frame(HeaderExchange.ok(envelope(block))))
            } else {
                out.writeImmutableBuffer(HeaderExchange.frame(HeaderExchange.notFound))
            }
        }
        try await stream.write(out)
        stream.close()
    }

    private func envelope(_ block: P2PBlock) -> [UInt8] {
        switch kind {
        case .header: return P2PEnvelope.header(encodedSignedHeader: block.encodedSignedHeader, daHeightHint: 0)
        case .data: return P2PEnvelope.data(encodedData: block.encodedData, daHeightHint: 0)
        }
    }
}
