import Primitives
import Chain
import Config
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2
import GRPCProtobuf
import SignerAPI
import SwiftProtobuf
import Synchronization

/// A call to the remote signer that did not give a signature.
package enum RemoteSignerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The signer answered and refused (its fence, or its token check): final, never retried.
    case refused(address: String, reason: String)
    /// No answer: not reachable, timed out, or stopping.
    case unavailable(address: String, reason: String)
    /// An answer that is not what the protocol promises.
    case badAnswer(address: String, reason: String)

    package var description: String {
        switch self {
        case let .refused(a, r): return "the remote signer at \(a) refused: \(r)"
        case let .unavailable(a, r): return "the remote signer at \(a) did not answer: \(r)"
        case let .badAnswer(a, r): return "the remote signer at \(a) answered something unusable: \(r)"
        }
    }
}

/// The TLS files of a signer client: its certificate and key (presented to the signer) and the
/// CA the signer's certificate must chain to.
package struct SignerClientTLSFiles: Sendable, Equatable {
    package var certificate: String
    package var key: String
    package var serverCA: String

    package init(certificate: String, key: String, serverCA: String) {
        self.certificate = certificate
        self.key = key
        self.serverCA = serverCA
    }
}

/// What the signer says it last signed.
package struct RemoteMark: Sendable, Equatable {
    package var chainID: String
    package var height: UInt64?
    package var signedHeader: SignedHeader?
    package var data: BlockData?
}

/// The node's side of `evnode signer serve`: ev-node's `SignerService` and evnode's
/// `SignerMarkService` over gRPC, with the bearer token on every call. Its connection loop and
/// calls run on a thread of their own (`ClientThread`); the `blocking…` forms are for threads
/// that may block.
package final class RemoteSignerClient: Sendable {
    package let address: String
    private let client: GRPCClient<HTTP2ClientTransport.Posix>
    private let thread: ClientThread
    private let metadata: GRPCCore.Metadata
    /// The highest mark this client has seen: answered by `GetMark`, or a header it had signed.
    private let known = Mutex<UInt64?>(nil)
    /// A block signature is small work on loopback; a signer that takes this long is treated as
    /// unreachable and production stops rather than waits without bound.
    package static let callTimeout: Duration = .seconds(10)
    package static let maxMessageBytes = WireLimits.maxBlockBytes + WireLimits.maxHeaderBytes + 1024

    package init(host: String, port: Int, token: String?, tls: SignerClientTLSFiles?) throws(RemoteSignerError) {
        address = "\(host):\(port)"
        let security: HTTP2ClientTransport.Posix.TransportSecurity = if let tls {
            .mTLS(certificateChain: [.file(path: tls.certificate, format: .pem)],
                  privateKey: .file(path: tls.key, format: .pem)) { config in
                config.trustRoots = .certificates([.file(path: tls.serverCA, format: .pem)])
                config.serverCertificateVerification = .noHostnameVerification
            }
        } else {
            .plaintext
        }
        let target: any ResolvableTarget = host.contains(":")
            ? .ipv6(host: host, port: port) : (host.first?.isNumber == true ? .ipv4(host: host, port: port) : .dns(host: host, port: port))
        var config = HTTP2ClientTransport.Posix.Config.defaults
        config.connection.maxIdleTime = nil
        do {
            let transport = try HTTP2ClientTransport.Posix(target: target, transportSecurity: security, config: config)
            client = GRPCClient(transport: transport)
        } catch {
            throw .unavailable(address: "\(host):\(port)", reason: "\(error)")
        }
        var metadata = GRPCCore.Metadata()
        if let token { metadata.addString("Bearer \(token)", forKey: "authorization") }
        self.metadata = metadata
        thread = ClientThread(name: "remote-signer-client")
        let client = self.client
        Task(executorPreference: thread) { try? await client.runConnections() }
    }

    package func close() {
        client.beginGracefulShutdown()
    }

    /// The highest mark seen by this client (nil before the first answer about it).
    package var knownMark: UInt64? { known.withLock { $0 } }

    private func saw(_ height: UInt64) {
        known.withLock { $0 = max($0 ?? 0, height) }
    }

    private var options: CallOptions {
        var options = CallOptions.defaults
        options.timeout = Self.callTimeout
        options.waitForReady = false
        // A SignBlock carries, and a GetMark answers, one block's data: the wire limit of a block
        // and its header (gRPC's 4 MiB default is below a block's limit).
        options.maxRequestMessageBytes = Self.maxMessageBytes
        options.maxResponseMessageBytes = Self.maxMessageBytes
        return options
    }

    private func mapped(_ error: any Error) -> RemoteSignerError {
        guard let rpc = error as? RPCError else { return .unavailable(address: address, reason: "\(error)") }
        switch rpc.code {
        case .failedPrecondition, .unauthenticated, .permissionDenied, .invalidArgument:
            return .refused(address: address, reason: "\(rpc.code): \(rpc.message)")
        default:
            return .unavailable(address: address, reason: "\(rpc.code): \(rpc.message)")
        }
    }

    private func signature(_ bytes: Data) throws(RemoteSignerError) -> [UInt8] {
        guard bytes.count == 64 else {
            throw .badAnswer(address: address, reason: "a signature of \(bytes.count) bytes (expected 64)")
        }
        return [UInt8](bytes)
    }

    // MARK: Calls

    package func sign(_ message: [UInt8]) async throws(RemoteSignerError) -> [UInt8] {
        let signer = Evnode_V1_SignerService.Client(wrapping: client)
        let request = ClientRequest(message: Evnode_V1_SignRequest.with { $0.message = Data(message) }, metadata: metadata)
        let answer: Evnode_V1_SignResponse
        do {
            answer = try await signer.sign(request: request, options: options)
        } catch {
            throw mapped(error)
        }
        return try signature(answer.signature)
    }

    package func signBlock(header: [UInt8], data: [UInt8]) async throws(RemoteSignerError) -> [UInt8] {
        let marks = Evnodeswift_Signer_V1_SignerMarkService.Client(wrapping: client)
        let request = ClientRequest(message: Evnodeswift_Signer_V1_SignBlockRequest.with {
            $0.header = Data(header)
            $0.data = Data(data)
        }, metadata: metadata)
        let answer: Evnodeswift_Signer_V1_SignBlockResponse
        do {
            answer = try await marks.signBlock(request: request, options: options)
        } catch {
            throw mapped(error)
        }
        let signed = try signature(answer.signature)
        if let height = try? Header(decoding: header).height { saw(height) }
        return signed
    }

    /// The raw 32-byte Ed25519 public key (a 36-byte libp2p-encoded one is accepted too).
    package func publicKey() async throws(RemoteSignerError) -> [UInt8] {
        let signer = Evnode_V1_SignerService.Client(wrapping: client)
        let answer: Evnode_V1_GetPublicResponse
        do {
            answer = try await signer.getPublic(request: ClientRequest(message: .init(), metadata: metadata), options: options)
        } catch {
            throw mapped(error)
        }
        let key = [UInt8](answer.publicKey)
        if key.count == 32 { return key }
        if key.count == 36, let raw = Signer(address: [], pubKey: key).rawPublicKey { return raw }
        throw .badAnswer(address: address, reason: "a public key of \(key.count) bytes")
    }

    package func mark(withBlock: Bool) async throws(RemoteSignerError) -> RemoteMark {
        let marks = Evnodeswift_Signer_V1_SignerMarkService.Client(wrapping: client)
        let answer: Evnodeswift_Signer_V1_GetMarkResponse
        do {
            answer = try await marks.getMark(request: ClientRequest(message: .with { $0.withBlock = withBlock }, metadata: metadata),
                                             options: options)
        } catch {
            throw mapped(error)
        }
        var mark = RemoteMark(chainID: answer.chainID)
        guard answer.signedBefore else { return mark }
        mark.height = answer.lastSignedHeight
        saw(answer.lastSignedHeight)
        if !answer.header.isEmpty {
            let header: Header
            do throws(WireError) {
                header = try Header(decoding: [UInt8](answer.header))
                if !answer.data.isEmpty { mark.data = try BlockData(decoding: [UInt8](answer.data)) }
            } catch {
                throw .badAnswer(address: address, reason: "the block kept with the mark does not decode: \(error)")
            }
            guard header.height == answer.lastSignedHeight else {
                throw .badAnswer(address: address, reason: "the header kept at mark \(answer.lastSignedHeight) is for height \(header.height)")
            }
            // The signer field is the node's to fill (`RemoteSignerMark` knows the key).
            mark.signedHeader = SignedHeader(header: header, signature: try signature(answer.signature),
                                             signer: Signer(address: header.proposerAddress, pubKey: []))
        }
        return mark
    }

    // MARK: Blocking forms (for threads that may block; never the client's own)

    package func blockingSign(_ message: [UInt8]) throws(RemoteSignerError) -> [UInt8] {
        try thread.wait { () async throws(RemoteSignerError) in try await self.sign(message) }
    }

    package func blockingSignBlock(header: [UInt8], data: [UInt8]) throws(RemoteSignerError) -> [UInt8] {
        try thread.wait { () async throws(RemoteSignerError) in try await self.signBlock(header: header, data: data) }
    }

    package func blockingMark(withBlock: Bool) throws(RemoteSignerError) -> RemoteMark {
        try thread.wait { () async throws(RemoteSignerError) in try await self.mark(withBlock: withBlock) }
    }

    package func blockingPublicKey() throws(RemoteSignerError) -> [UInt8] {
        try thread.wait { () async throws(RemoteSignerError) in try await self.publicKey() }
    }
}

/// The remote signer as the block layer's `SigningBackend`: a refusal or no answer is a
/// `SigningError`, which stops production (`BuildError.signing`) — never retried into another
/// block at the same height.
package struct RemoteSigningBackend: SigningBackend {
    package let client: RemoteSignerClient

    package init(client: RemoteSignerClient) {
        self.client = client
    }

    package func sign(_ message: [UInt8]) throws(SigningError) -> [UInt8] {
        do throws(RemoteSignerError) {
            return try client.blockingSign(message)
        } catch {
            throw Self.signingError(error)
        }
    }

    private static func signingError(_ error: RemoteSignerError) -> SigningError {
        if case .refused = error { return SigningError(reason: error.description, refusedBySigner: true) }
        return SigningError(reason: error.description)
    }

    package func sign(header: [UInt8], data: BlockData) throws(SigningError) -> [UInt8] {
        do throws(RemoteSignerError) {
            return try client.blockingSignBlock(header: header, data: data.encoded())
        } catch {
            throw Self.signingError(error)
        }
    }
}

/// The remote signer's mark, in place of `signer.state` (issue 29): read from the signer at
/// start, before every block and in the catchup checks. Nothing is recorded here: the signer made
/// its mark durable before it answered the signature.
package struct RemoteSignerMark: SignerMark {
    package let client: RemoteSignerClient
    /// The signer's key as carried in signed messages (the kept header is rebuilt with it).
    package let signer: Signer

    package init(client: RemoteSignerClient, signer: Signer) {
        self.client = client
        self.signer = signer
    }

    /// The producer asks before every block. Once this client knows a mark (asked once, or
    /// raised by a header it had signed), that is the answer, without a call: the signer
    /// refuses any header at or below its own mark anyway, whoever raised it, and a refusal
    /// stops production just as the producer's own check would. Asking every 10 ms block
    /// cost a round trip per block for no extra safety.
    package func load() throws(ConfigError) -> UInt64? {
        if let known = client.knownMark { return known }
        do throws(RemoteSignerError) {
            return try client.blockingMark(withBlock: false).height
        } catch {
            throw .remoteMark(address: client.address, reason: error.description)
        }
    }

    package func loadRecord() throws(ConfigError) -> SignerHighWaterMark.Record? {
        do throws(RemoteSignerError) {
            return record(try client.blockingMark(withBlock: true))
        } catch {
            throw .remoteMark(address: client.address, reason: error.description)
        }
    }

    package func currentRecord() async throws(ConfigError) -> SignerHighWaterMark.Record? {
        do throws(RemoteSignerError) {
            return record(try await client.mark(withBlock: true))
        } catch {
            throw .remoteMark(address: client.address, reason: error.description)
        }
    }

    /// The signer recorded the height before it answered the signature; the block's data went
    /// with the signature request (`SignBlock`).
    package func record(_ height: UInt64, block: [UInt8]?) throws(ConfigError) {}

    /// The block kept beside the mark in `signer.state`'s form, when the signer kept the data
    /// too (a header signed through ev-node's `Sign` alone keeps none).
    func record(_ mark: RemoteMark) -> SignerHighWaterMark.Record? {
        guard let height = mark.height else { return nil }
        guard var signed = mark.signedHeader, let data = mark.data else { return .init(height: height) }
        signed.signer = signer
        return .init(height: height, block: SignedBlockBytes.encode(signed, data))
    }
}

/// The bearer token shared by `signer serve --token-file` and the node's
/// `signer.grpc_token_file`: the file's content with surrounding white space trimmed.
package enum SignerToken {
    /// A token is a secret of a few dozen bytes; a bigger file is not one.
    static let maxBytes = 4096

    package static func read(_ path: String) throws(ConfigError) -> String {
        let text: String
        do throws(FileIO.Failure) {
            text = try FileIO.readString(path, limit: maxBytes)
        } catch {
            throw .file(path: path, reason: error.description)
        }
        let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !token.isEmpty else { throw .file(path: path, reason: "the token file is empty") }
        guard token.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw .file(path: path, reason: "the token must be printable ASCII without spaces (it travels in an HTTP/2 header)")
        }
        return token
    }
}
