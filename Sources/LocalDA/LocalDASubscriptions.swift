import Primitives
import DAClient
import Foundation
import HummingbirdWebSocket
import Logging
import Synchronization

/// Hands every new DA height to the subscribers that are connected at that moment. A slow
/// subscriber loses nothing it needs: each notification names its height, and the subscriber
/// reads the blobs it missed with `blob.GetAll`.
final class HeadBroadcaster: Sendable {
    private let subscribers = Mutex<[UInt64: AsyncStream<DAHeader>.Continuation]>([:])
    private let nextID = Atomic<UInt64>(1)

    /// A stream of the heights appended from now on; ends when the caller stops iterating.
    package func subscribe() -> AsyncStream<DAHeader> {
        let id = nextID.wrappingAdd(1, ordering: .relaxed).oldValue
        let (stream, continuation) = AsyncStream<DAHeader>.makeStream(bufferingPolicy: .bufferingNewest(64))
        continuation.onTermination = { [weak self] _ in
            _ = self?.subscribers.withLock { $0.removeValue(forKey: id) }
        }
        subscribers.withLock { $0[id] = continuation }
        return stream
    }

    package func publish(_ header: DAHeader) {
        let all = subscribers.withLock { Array($0.values) }
        for c in all { c.yield(header) }
    }

    package var count: Int { subscribers.withLock { $0.count } }
}

/// The local DA's WebSocket endpoint: JSON-RPC over text frames, as celestia-node's go-jsonrpc
/// serves it. `blob.Subscribe [namespace]` answers with a channel id, then sends one
/// `xrpc.ch.val [id, {"Blobs": […], "Height": h, "Header": {…}}]` per new DA height (Blobs
/// empty when the height holds none in the namespace). Every other method is answered as over
/// HTTP. With `subscribe` off the method is missing, like on a node without it.
struct LocalDAWebSocket: Sendable {
    package let rpc: LocalDARPC
    package let chain: LocalDAChain
    package let subscribe: Bool
    package let logger: Logger

    private struct Request: Decodable {
        var id: RPCID?
        var method: String?
        var params: [String]?
    }

    package func serve(inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            var channel: Int64 = 0
            for try await message in inbound.messages(maxSize: 16 << 20) {
                guard case .text(let text) = message else { continue }
                let body = Data(text.utf8)
                let head = try? JSONDecoder().decode(Request.self, from: body)
                if head?.method == DAMethod.subscribe {
                    let id = head?.id ?? .null
                    guard subscribe else {
                        try await outbound.write(.text(Self.error(id, RPCErrorCode.methodNotFound,
                                                                  "method not found: \(DAMethod.subscribe)")))
                        continue
                    }
                    guard let text = head?.params?.first, let namespace = try? DANamespace(base64: text) else {
                        try await outbound.write(.text(Self.error(id, RPCErrorCode.invalidParams,
                                                                  "invalid params: expected [namespace]")))
                        continue
                    }
                    channel += 1
                    let chanID = channel
                    // Subscribe before answering: no height between the answer and the first
                    // notification is missed.
                    let heights = chain.heads.subscribe()
                    try await outbound.write(.text("{\"jsonrpc\":\"2.0\",\"id\":\(id),\"result\":\(chanID)}"))
                    logger.info("blob.Subscribe", metadata: ["namespace": "\(namespace)", "channel": "\(chanID)"])
                    let chain = self.chain
                    group.addTask {
                        for await header in heights {
                            let blobs = (try? chain.block(at: header.height))?.blobs.filter { $0.namespace == namespace } ?? []
                            try await outbound.write(.text(Self.notification(chanID, header, blobs)))
                        }
                    }
                } else {
                    let answer = await rpc.respond(to: body)
                    try await outbound.write(.text(String(decoding: answer, as: UTF8.self)))
                }
            }
            group.cancelAll()
        }
    }

    static func notification(_ channel: Int64, _ header: DAHeader, _ blobs: [DABlob]) -> String {
        let list = blobs.map { CelestiaDAClient.blobJSONText($0) }.joined(separator: ",")
        let time = RFC3339.format(unixNanoseconds: header.timeNanoseconds)
        return "{\"jsonrpc\":\"2.0\",\"method\":\"\(DAMethod.channelValue)\",\"params\":[\(channel),"
            + "{\"Blobs\":[\(list)],\"Height\":\(header.height),"
            + "\"Header\":{\"height\":\"\(header.height)\",\"header\":{\"height\":\"\(header.height)\",\"time\":\"\(time)\"}}}]}"
    }

    package static func error(_ id: RPCID, _ code: Int, _ message: String) -> String {
        "{\"jsonrpc\":\"2.0\",\"id\":\(id),\"error\":{\"code\":\(code),\"message\":\(jsonString(message))}}"
    }

    static func jsonString(_ s: String) -> String {
        let data = (try? JSONEncoder().encode(s)) ?? Data("\"\"".utf8)
        return String(decoding: data, as: UTF8.self)
    }
}
