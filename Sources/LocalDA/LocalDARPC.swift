import Primitives
import DAClient
import Config
import Foundation
import Logging
import NIOPosix

/// The local DA's JSON-RPC 2.0 dispatcher: one request body in, one response body out.
///
/// Every failure becomes a JSON-RPC error object; nothing a client sends can crash the server or
/// change the chain unless it is a valid `blob.Submit`. The semantic errors carry Celestia's
/// texts (`DAError.Text`), which clients recognise.
struct LocalDARPC: Sendable {
    package let chain: LocalDAChain
    /// Runs the synced appends off Swift's cooperative threads.
    package let writer: NIOThreadPool
    package let maxBlobSize: Int
    /// Submissions offering less (utia per gas unit) are refused with celestia-node's text; 0 = any.
    package var minGasPrice: Double = 0
    package var logger: Logger? = nil
    package let clock: @Sendable () -> UInt64

    private struct Fault: Error {
        let code: Int
        let message: String

        static func invalidParams(_ message: String) -> Fault { Fault(code: RPCErrorCode.invalidParams, message: message) }
        static func application(_ message: String) -> Fault { Fault(code: RPCErrorCode.application, message: message) }
    }

    private struct RequestHead: Decodable {
        var jsonrpc: String?
        var id: RPCID?
        var method: String?
    }

    private struct Envelope<P: Decodable>: Decodable {
        var params: P?
    }

    private struct SubmitParams: Decodable {
        var blobs: [BlobJSON]
        var options: TxOptions?
        init(from decoder: any Decoder) throws {
            var c = try decoder.unkeyedContainer()
            blobs = try c.decode([BlobJSON].self)
            if !c.isAtEnd { options = try c.decodeIfPresent(TxOptions.self) }
        }
    }

    /// The TxConfig fields the local DA looks at (celestia-node's JSON names).
    private struct TxOptions: Decodable {
        var gas_price: Double?
        var is_gas_price_set: Bool?
        var gas: UInt64?
        var signer_address: String?
        var key_name: String?
    }

    private struct GetAllParams: Decodable {
        var height: FlexibleHeight
        var namespaces: [String]
        init(from decoder: any Decoder) throws {
            var c = try decoder.unkeyedContainer()
            height = try c.decode(FlexibleHeight.self)
            namespaces = try c.decode([String].self)
        }
    }

    private struct GetParams: Decodable {
        var height: FlexibleHeight
        var namespace: String
        var commitment: String
        init(from decoder: any Decoder) throws {
            var c = try decoder.unkeyedContainer()
            height = try c.decode(FlexibleHeight.self)
            namespace = try c.decode(String.self)
            commitment = try c.decode(String.self)
        }
    }

    private struct HeightParams: Decodable {
        var height: FlexibleHeight
        init(from decoder: any Decoder) throws {
            var c = try decoder.unkeyedContainer()
            height = try c.decode(FlexibleHeight.self)
        }
    }

    private struct Success<R: Encodable>: Encodable {
        let jsonrpc = "2.0"
        let id: RPCID
        let result: R
    }

    private struct Failure: Encodable {
        let jsonrpc = "2.0"
        let id: RPCID
        let error: RPCErrorObject
    }

    /// Answers one HTTP request body.
    package func respond(to body: Data) async -> [UInt8] {
        let decoder = JSONDecoder()
        let head: RequestHead
        do {
            head = try decoder.decode(RequestHead.self, from: body)
        } catch {
            if (try? JSONSerialization.jsonObject(with: body, options: [.fragmentsAllowed])) is [Any] {
                return failure(.null, Fault(code: RPCErrorCode.invalidRequest, message: "batch requests are not supported"))
            }
            return failure(.null, Fault(code: RPCErrorCode.parseError, message: "parse error: \(describeDecodingError(error))"))
        }
        let id = head.id ?? .null
        if let version = head.jsonrpc, version != "2.0" {
            return failure(id, Fault(code: RPCErrorCode.invalidRequest, message: "jsonrpc must be \"2.0\""))
        }
        guard let method = head.method else {
            return failure(id, Fault(code: RPCErrorCode.invalidRequest, message: "method is missing"))
        }
        do {
            switch method {
            case DAMethod.submit:
                let p: SubmitParams = try params(body, decoder)
                return try success(id, await submit(p))
            case DAMethod.getAll:
                let p: GetAllParams = try params(body, decoder)
                return try success(id, getAll(p))
            case DAMethod.get:
                let p: GetParams = try params(body, decoder)
                return try success(id, get(p))
            case DAMethod.networkHead:
                return try success(id, headerJSON(chain.head))
            case DAMethod.getByHeight:
                let p: HeightParams = try params(body, decoder)
                return try success(id, header(at: p.height.value))
            default:
                return failure(id, Fault(code: RPCErrorCode.methodNotFound, message: "method not found: \(method)"))
            }
        } catch let fault as Fault {
            return failure(id, fault)
        } catch {
            return failure(id, Fault(code: RPCErrorCode.internalError, message: "\(error)"))
        }
    }

    private func params<P: Decodable>(_ body: Data, _ decoder: JSONDecoder) throws -> P {
        let envelope: Envelope<P>
        do {
            envelope = try decoder.decode(Envelope<P>.self, from: body)
        } catch {
            throw Fault.invalidParams("invalid params: \(describeDecodingError(error))")
        }
        guard let p = envelope.params else { throw Fault.invalidParams("invalid params: params is missing") }
        return p
    }

    // MARK: Methods

    private func submit(_ p: SubmitParams) async throws -> UInt64 {
        guard !p.blobs.isEmpty else { throw Fault.invalidParams("invalid params: no blobs to submit") }
        var blobs: [DABlob] = []
        blobs.reserveCapacity(p.blobs.count)
        var total = 0
        for (i, raw) in p.blobs.enumerated() {
            var blob: DABlob
            do {
                blob = try raw.blob(context: "params[0][\(i)]", requireCommitment: false)
            } catch {
                throw Fault.invalidParams("invalid params: \(error.description)")
            }
            guard !blob.data.isEmpty else { throw Fault.invalidParams("invalid params: params[0][\(i)].data is empty") }
            // The client's commitment (Celestia computes a Merkle root) is replaced by ours.
            blob.commitment = DABlob.commitment(namespace: blob.namespace, data: blob.data)
            total += blob.data.count
            blobs.append(blob)
        }
        if total > maxBlobSize {
            throw Fault.application("\(DAError.Text.overSizeLimit): the submission holds \(total) bytes of blob data, the limit is \(maxBlobSize)")
        }
        try checkFee(p.options, bytes: total)
        let chain = self.chain
        let now = clock()
        let appended = try await writer.runIfActive { [blobs] in
            try chain.append(blobs: blobs, now: now)
        }
        return appended.height
    }

    /// A fee below `minGasPrice` is refused as celestia-node refuses it: its txclient prefix
    /// around cosmos-sdk's ante-handler text, which celestia-app's `IsInsufficientFee` matches.
    /// Without a gas price the node "estimates" the minimum, like a real one on a quiet network.
    private func checkFee(_ options: TxOptions?, bytes: Int) throws {
        let signer = options?.signer_address ?? options?.key_name ?? "default"
        // celestia-node's default gas price is -1, "not set": a negative price means estimate.
        let given = (options?.is_gas_price_set ?? true) ? options?.gas_price.flatMap { $0 >= 0 ? $0 : nil } : nil
        let set = given != nil
        let price = given ?? minGasPrice
        // Roughly celestia-app's blob gas: a fixed part plus 8 gas per byte of blob shares.
        let gas = options?.gas ?? UInt64(65_000 + 8 * ((bytes + 477) / 478) * 512)
        // In utia; compared as doubles so that no client's numbers can overflow an integer.
        let fee = (price * Double(gas)).rounded(.up)
        let required = (minGasPrice * Double(gas)).rounded(.up)
        if minGasPrice > 0, fee < required {
            logger?.info("refused a submission: gas price below the minimum", metadata: [
                "gas_price": "\(DATxConfig.decimal(price))", "min_gas_price": "\(DATxConfig.decimal(minGasPrice))",
                "signer": "\(signer)"])
            throw Fault.application("failed to submit blobs due to insufficient gas price in txconfig: "
                + "insufficient fees; got: \(String(format: "%.0f", fee))utia required: \(String(format: "%.0f", required))utia: insufficient fee")
        }
        logger?.info("accepted a submission", metadata: [
            "gas_price": "\(set ? DATxConfig.decimal(price) : "estimated")", "signer": "\(signer)", "bytes": "\(bytes)"])
    }

    private func checkHeight(_ height: UInt64) throws -> LocalDABlock {
        guard height >= 1 else { throw Fault.invalidParams("invalid params: height must be at least 1") }
        guard let block = try chain.block(at: height) else {
            throw Fault.application("\(DAError.Text.heightFromFuture): height \(height) is above the head \(chain.head.height)")
        }
        return block
    }

    private func namespace(_ text: String, _ context: String) throws -> DANamespace {
        do {
            return try DANamespace(base64: text)
        } catch {
            throw Fault.invalidParams("invalid params: \(context): \(error)")
        }
    }

    private func getAll(_ p: GetAllParams) throws -> [BlobJSON] {
        guard !p.namespaces.isEmpty else { throw Fault.invalidParams("invalid params: no namespaces given") }
        var wanted = Set<DANamespace>()
        for (i, text) in p.namespaces.enumerated() { wanted.insert(try namespace(text, "params[1][\(i)]")) }
        let block = try checkHeight(p.height.value)
        let found = block.blobs.filter { wanted.contains($0.namespace) }
        guard !found.isEmpty else { throw Fault.application(DAError.Text.notFound) }
        return found.map(BlobJSON.init)
    }

    private func get(_ p: GetParams) throws -> BlobJSON {
        let ns = try namespace(p.namespace, "params[1]")
        guard let commitment = Data(base64Encoded: p.commitment) else {
            throw Fault.invalidParams("invalid params: params[2]: commitment is not valid base64")
        }
        let block = try checkHeight(p.height.value)
        guard let blob = block.blobs.first(where: { $0.namespace == ns && $0.commitment == Array(commitment) }) else {
            throw Fault.application(DAError.Text.notFound)
        }
        return BlobJSON(blob)
    }

    private func header(at height: UInt64) throws -> HeaderJSONOut {
        let block = try checkHeight(height)
        return headerJSON(DAHeader(height: block.height, timeNanoseconds: block.timeNanoseconds))
    }

    private func headerJSON(_ header: DAHeader) -> HeaderJSONOut {
        HeaderJSONOut(height: header.height, time: RFC3339.format(unixNanoseconds: header.timeNanoseconds))
    }

    // MARK: Encoding

    private func success<R: Encodable>(_ id: RPCID, _ result: R) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        return Array(try encoder.encode(Success(id: id, result: result)))
    }

    private func failure(_ id: RPCID, _ fault: Fault) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        let body = Failure(id: id, error: RPCErrorObject(code: fault.code, message: fault.message))
        // Encoding a struct of strings and numbers cannot fail.
        return (try? Array(encoder.encode(body))) ?? Array("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32603,\"message\":\"encoding failed\"}}".utf8)
    }
}
