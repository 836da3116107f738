import Foundation
import Hummingbird
import NIOCore
import RPCAPI
import SwiftProtobuf

/// ev-node's services over the Connect protocol's unary calls on HTTP/1.1:
/// `POST /evnode.v1.StoreService/GetState` with a binary (`application/proto`) or proto3 JSON
/// (`application/json`) body; the answer in the same encoding, or Connect's JSON error
/// `{"code": …, "message": …}` with the HTTP status Connect pairs with the code.
enum ConnectRoutes {
    /// Every request message of these services is a height, a 32-byte hash or a short key: 64 KiB
    /// is far above any honest request and bounds what a stranger makes the node read.
    static let maxRequestBytes = 64 << 10

    /// One unary method: decodes the request in the given encoding, answers in the same.
    typealias Call = @Sendable (_ body: [UInt8], _ json: Bool) throws(APIFault) -> [UInt8]

    /// `/evnode.v1.<Service>/<Method>` → its call.
    static func methods(_ api: EvnodeAPI) -> [(path: String, call: Call)] {
        let empty = SwiftProtobuf.Google_Protobuf_Empty.self
        return [
            ("/evnode.v1.StoreService/GetBlock", unary(Evnode_V1_GetBlockRequest.self) { r throws(APIFault) in try api.getBlock(r) }),
            ("/evnode.v1.StoreService/GetState", unary(empty) { _ throws(APIFault) in try api.getState() }),
            ("/evnode.v1.StoreService/GetMetadata", unary(Evnode_V1_GetMetadataRequest.self) { r throws(APIFault) in try api.getMetadata(r) }),
            ("/evnode.v1.StoreService/GetGenesisDaHeight", unary(empty) { _ throws(APIFault) in try api.getGenesisDaHeight() }),
            ("/evnode.v1.StoreService/GetP2PStoreInfo", unary(empty) { _ throws(APIFault) in try api.getP2PStoreInfo() }),
            ("/evnode.v1.P2PService/GetPeerInfo", unary(empty) { _ throws(APIFault) in api.getPeerInfo() }),
            ("/evnode.v1.P2PService/GetNetInfo", unary(empty) { _ throws(APIFault) in api.getNetInfo() }),
            ("/evnode.v1.ConfigService/GetNamespace", unary(empty) { _ throws(APIFault) in api.getNamespace() }),
            ("/evnode.v1.ConfigService/GetSignerInfo", unary(empty) { _ throws(APIFault) in try api.getSignerInfo() }),
        ]
    }

    static func register<Context: RequestContext>(on router: Router<Context>, api: EvnodeAPI) {
        for (path, call) in methods(api) {
            router.post(RouterPath(path)) { request, _ in
                await answer(request, call)
            }
        }
    }

    static func answer(_ request: Request, _ call: Call) async -> Response {
        let json: Bool
        switch mediaType(request.headers[.contentType]) {
        case "application/proto": json = false
        case "application/json": json = true
        case let other:
            return failure(APIFault(.invalidArgument,
                                  "Content-Type \(other.isEmpty ? "missing" : "\"\(other)\"") is not application/proto or application/json"),
                         status: 415)
        }
        if let encoding = request.headers[.contentEncoding], encoding.lowercased() != "identity" {
            return failure(APIFault(.unimplemented, "Content-Encoding \"\(encoding)\" is not supported; send the body uncompressed"))
        }
        // Refuse a declared oversize body before reading any of it; `collect(upTo:)` bounds the rest.
        if let length = request.headers[.contentLength].flatMap(Int.init), length > maxRequestBytes {
            return failure(tooLarge(length))
        }
        let body: ByteBuffer
        do {
            body = try await request.body.collect(upTo: maxRequestBytes)
        } catch {
            return failure(tooLarge(nil))
        }
        do throws(APIFault) {
            let bytes = try call(Array(body.readableBytesView), json)
            return Response(status: .ok,
                            headers: [.contentType: json ? "application/json" : "application/proto"],
                            body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
        } catch {
            return failure(error)
        }
    }

    static func tooLarge(_ length: Int?) -> APIFault {
        APIFault(.resourceExhausted, "request body \(length.map { "of \($0) bytes " } ?? "")exceeds the limit of \(maxRequestBytes) bytes")
    }

    /// The media type without parameters (`application/json; charset=utf-8` → `application/json`).
    static func mediaType(_ header: String?) -> String {
        guard let header else { return "" }
        return header.split(separator: ";", maxSplits: 1).first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
    }

    /// Connect's error body, with the code's HTTP status unless `status` overrides it.
    static func failure(_ fault: APIFault, status: Int? = nil) -> Response {
        let object: [String: String] = ["code": fault.code.rawValue, "message": fault.message]
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
        return Response(status: .init(code: status ?? fault.code.httpStatus), headers: [.contentType: "application/json"],
                        body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func unary<Request: SwiftProtobuf.Message, Answer: SwiftProtobuf.Message>(
        _: Request.Type, _ handler: @escaping @Sendable (Request) throws(APIFault) -> Answer
    ) -> Call {
        { body, json throws(APIFault) in
            let request: Request
            do {
                if json {
                    var options = JSONDecodingOptions()
                    options.ignoreUnknownFields = true
                    request = body.isEmpty ? Request() : try Request(jsonUTF8Bytes: body, options: options)
                } else {
                    request = try Request(serializedBytes: body)
                }
            } catch {
                throw APIFault(.invalidArgument,
                               "the body is not a valid \(json ? "JSON" : "binary") \(Request.protoMessageName): \(error)")
            }
            let answer = try handler(request)
            do {
                let bytes: [UInt8] = json ? try answer.jsonUTF8Bytes() : try answer.serializedBytes()
                return bytes
            } catch {
                throw APIFault(.internal, "cannot encode \(Answer.protoMessageName): \(error)")
            }
        }
    }
}
