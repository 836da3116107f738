import Foundation
import GRPCCore
import RPCAPI
import SwiftProtobuf

// ev-node's services for grpc-swift: each method is the shared `EvnodeAPI` call, its
// `APIFault` turned into the gRPC status with the same code and message.

struct StoreServiceGRPC: Evnode_V1_StoreService.SimpleServiceProtocol {
    let api: EvnodeAPI

    func getBlock(request: Evnode_V1_GetBlockRequest, context: ServerContext) async throws -> Evnode_V1_GetBlockResponse {
        try grpcCall { () throws(APIFault) in try api.getBlock(request) }
    }

    func getState(request: Google_Protobuf_Empty, context: ServerContext) async throws -> Evnode_V1_GetStateResponse {
        try grpcCall { () throws(APIFault) in try api.getState() }
    }

    func getMetadata(request: Evnode_V1_GetMetadataRequest, context: ServerContext) async throws -> Evnode_V1_GetMetadataResponse {
        try grpcCall { () throws(APIFault) in try api.getMetadata(request) }
    }

    func getGenesisDaHeight(request: Google_Protobuf_Empty, context: ServerContext) async throws -> Evnode_V1_GetGenesisDaHeightResponse {
        try grpcCall { () throws(APIFault) in try api.getGenesisDaHeight() }
    }

    func getP2PStoreInfo(request: Google_Protobuf_Empty, context: ServerContext) async throws -> Evnode_V1_GetP2PStoreInfoResponse {
        try grpcCall { () throws(APIFault) in try api.getP2PStoreInfo() }
    }
}

struct P2PServiceGRPC: Evnode_V1_P2PService.SimpleServiceProtocol {
    let api: EvnodeAPI

    func getPeerInfo(request: Google_Protobuf_Empty, context: ServerContext) async throws -> Evnode_V1_GetPeerInfoResponse {
        api.getPeerInfo()
    }

    func getNetInfo(request: Google_Protobuf_Empty, context: ServerContext) async throws -> Evnode_V1_GetNetInfoResponse {
        api.getNetInfo()
    }
}

struct ConfigServiceGRPC: Evnode_V1_ConfigService.SimpleServiceProtocol {
    let api: EvnodeAPI

    func getNamespace(request: Google_Protobuf_Empty, context: ServerContext) async throws -> Evnode_V1_GetNamespaceResponse {
        api.getNamespace()
    }

    func getSignerInfo(request: Google_Protobuf_Empty, context: ServerContext) async throws -> Evnode_V1_GetSignerInfoResponse {
        try grpcCall { () throws(APIFault) in try api.getSignerInfo() }
    }
}

private func grpcCall<T>(_ body: () throws(APIFault) -> T) throws(RPCError) -> T {
    do throws(APIFault) {
        return try body()
    } catch {
        throw error.rpcError
    }
}

// MARK: reflection

/// What gRPC server reflection answers, from the committed FileDescriptorSet: the services,
/// and each proto file (with every file it imports) by name or by a symbol it defines.
struct ReflectionIndex: Sendable {
    enum Answer: Sendable, Equatable {
        case files([Data])
        case services([String])
        case extensionNumbers(type: String, numbers: [Int32])
        /// A gRPC status code (5: not found) and a message.
        case error(code: Int32, message: String)
    }

    let services: [String]
    private let fileBytes: [String: Data]
    private let dependencies: [String: [String]]
    /// Fully qualified name (no leading dot) of every message, enum, service and method → its file.
    private let symbols: [String: String]
    private let messageTypes: Set<String>

    init(serializedSet: Data, services: [String]) throws {
        let set = try Google_Protobuf_FileDescriptorSet(serializedBytes: serializedSet)
        var fileBytes: [String: Data] = [:]
        var dependencies: [String: [String]] = [:]
        var symbols: [String: String] = [:]
        var messageTypes: Set<String> = []
        for file in set.file {
            fileBytes[file.name] = try file.serializedBytes()
            dependencies[file.name] = file.dependency
            let prefix = file.package.isEmpty ? "" : file.package + "."
            func addMessages(_ messages: [Google_Protobuf_DescriptorProto], scope: String) {
                for m in messages {
                    let name = scope + m.name
                    symbols[name] = file.name
                    messageTypes.insert(name)
                    for e in m.enumType { symbols[name + "." + e.name] = file.name }
                    addMessages(m.nestedType, scope: name + ".")
                }
            }
            addMessages(file.messageType, scope: prefix)
            for e in file.enumType { symbols[prefix + e.name] = file.name }
            for s in file.service {
                symbols[prefix + s.name] = file.name
                for m in s.method { symbols[prefix + s.name + "." + m.name] = file.name }
            }
        }
        self.services = services
        self.fileBytes = fileBytes
        self.dependencies = dependencies
        self.symbols = symbols
        self.messageTypes = messageTypes
    }

    /// The evnode.v1 services and reflection itself, from the generated descriptor set.
    static func evnode() throws -> ReflectionIndex {
        guard let set = Data(base64Encoded: RPCDescriptorSet.base64) else {
            throw APIFault(.internal, "the committed descriptor set is not base64")
        }
        return try ReflectionIndex(serializedSet: set, services: [
            "evnode.v1.StoreService", "evnode.v1.P2PService", "evnode.v1.ConfigService",
            "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
        ])
    }

    func fileByName(_ name: String) -> Answer {
        guard fileBytes[name] != nil else { return .error(code: 5, message: "no file named \(name)") }
        return .files(withDependencies(name))
    }

    func fileContaining(symbol: String) -> Answer {
        let name = symbol.hasPrefix(".") ? String(symbol.dropFirst()) : symbol
        guard let file = symbols[name] else { return .error(code: 5, message: "no symbol \(name)") }
        return .files(withDependencies(file))
    }

    func extensionNumbers(of type: String) -> Answer {
        let name = type.hasPrefix(".") ? String(type.dropFirst()) : type
        guard messageTypes.contains(name) else { return .error(code: 5, message: "no message type \(name)") }
        return .extensionNumbers(type: name, numbers: [])
    }

    func fileContainingExtension(type: String, number: Int32) -> Answer {
        .error(code: 5, message: "no extension \(number) of \(type): these files declare no extensions")
    }

    /// The file first, then everything it imports, each once.
    private func withDependencies(_ root: String) -> [Data] {
        var order: [String] = []
        var seen: Set<String> = []
        var stack = [root]
        while let name = stack.popLast() {
            guard seen.insert(name).inserted else { continue }
            order.append(name)
            stack.append(contentsOf: (dependencies[name] ?? []).reversed())
        }
        return order.compactMap { fileBytes[$0] }
    }
}

/// `grpc.reflection.v1.ServerReflection`.
struct ReflectionV1: Grpc_Reflection_V1_ServerReflection.SimpleServiceProtocol {
    let index: ReflectionIndex

    func serverReflectionInfo(request: RPCAsyncSequence<Grpc_Reflection_V1_ServerReflectionRequest, any Error>,
                              response: RPCWriter<Grpc_Reflection_V1_ServerReflectionResponse>,
                              context: ServerContext) async throws {
        for try await r in request {
            let answer: ReflectionIndex.Answer
            switch r.messageRequest {
            case .fileByFilename(let name)?: answer = index.fileByName(name)
            case .fileContainingSymbol(let symbol)?: answer = index.fileContaining(symbol: symbol)
            case .fileContainingExtension(let e)?: answer = index.fileContainingExtension(type: e.containingType, number: e.extensionNumber)
            case .allExtensionNumbersOfType(let type)?: answer = index.extensionNumbers(of: type)
            case .listServices?: answer = .services(index.services)
            case nil: answer = .error(code: 3, message: "message_request missing")
            }
            var out = Grpc_Reflection_V1_ServerReflectionResponse()
            out.validHost = r.host
            out.originalRequest = r
            switch answer {
            case .files(let files): out.fileDescriptorResponse.fileDescriptorProto = files
            case .services(let names):
                out.listServicesResponse.service = names.map { var s = Grpc_Reflection_V1_ServiceResponse(); s.name = $0; return s }
            case .extensionNumbers(let type, let numbers):
                out.allExtensionNumbersResponse.baseTypeName = type
                out.allExtensionNumbersResponse.extensionNumber = numbers
            case .error(let code, let message):
                out.errorResponse.errorCode = code
                out.errorResponse.errorMessage = message
            }
            try await response.write(out)
        }
    }
}

/// `grpc.reflection.v1alpha.ServerReflection`: the same answers in the older package, which
/// many clients (grpcurl's fallback, Python's reflection client) still ask first.
struct ReflectionV1Alpha: Grpc_Reflection_V1alpha_ServerReflection.SimpleServiceProtocol {
    let index: ReflectionIndex

    func serverReflectionInfo(request: RPCAsyncSequence<Grpc_Reflection_V1alpha_ServerReflectionRequest, any Error>,
                              response: RPCWriter<Grpc_Reflection_V1alpha_ServerReflectionResponse>,
                              context: ServerContext) async throws {
        for try await r in request {
            let answer: ReflectionIndex.Answer
            switch r.messageRequest {
            case .fileByFilename(let name)?: answer = index.fileByName(name)
            case .fileContainingSymbol(let symbol)?: answer = index.fileContaining(symbol: symbol)
            case .fileContainingExtension(let e)?: answer = index.fileContainingExtension(type: e.containingType, number: e.extensionNumber)
            case .allExtensionNumbersOfType(let type)?: answer = index.extensionNumbers(of: type)
            case .listServices?: answer = .services(index.services)
            case nil: answer = .error(code: 3, message: "message_request missing")
            }
            var out = Grpc_Reflection_V1alpha_ServerReflectionResponse()
            out.validHost = r.host
            out.originalRequest = r
            switch answer {
            case .files(let files): out.fileDescriptorResponse.fileDescriptorProto = files
            case .services(let names):
                out.listServicesResponse.service = names.map { var s = Grpc_Reflection_V1alpha_ServiceResponse(); s.name = $0; return s }
            case .extensionNumbers(let type, let numbers):
                out.allExtensionNumbersResponse.baseTypeName = type
                out.allExtensionNumbersResponse.extensionNumber = numbers
            case .error(let code, let message):
                out.errorResponse.errorCode = code
                out.errorResponse.errorMessage = message
            }
            try await response.write(out)
        }
    }
}
