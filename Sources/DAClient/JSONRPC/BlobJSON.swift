import Foundation

/// Celestia's JSON conventions for the blob API, shared by the client and the local DA server.
///
/// Blob: `{"namespace": b64(29 bytes), "data": b64, "share_version": 0, "commitment": b64,
/// "index": n}`. Heights are JSON numbers in `blob.*`; headers carry them as decimal strings.
package struct BlobJSON: Codable, Sendable {
    package var namespace: String
    package var data: String
    var share_version: Int?
    package var commitment: String?
    package var index: Int?

    package init(_ blob: DABlob) {
        namespace = blob.namespace.base64
        data = Data(blob.data).base64EncodedString()
        share_version = blob.shareVersion
        commitment = Data(blob.commitment).base64EncodedString()
        index = blob.index
    }

    /// Validated blob; `context` names the blob in error texts (e.g. `result[3]`).
    /// A missing commitment is allowed only when `requireCommitment` is false (submissions).
    package func blob(context: String, requireCommitment: Bool) throws(BlobJSONError) -> DABlob {
        let ns: DANamespace
        do {
            ns = try DANamespace(base64: namespace)
        } catch {
            throw BlobJSONError("\(context).namespace: \(error)")
        }
        guard let bytes = Data(base64Encoded: data) else {
            throw BlobJSONError("\(context).data: not valid base64")
        }
        let version = share_version ?? 0
        guard version == 0 || version == 1 else {
            throw BlobJSONError("\(context).share_version: \(version) is not supported")
        }
        let commitmentBytes: [UInt8]
        if let commitment, !commitment.isEmpty {
            guard let c = Data(base64Encoded: commitment) else {
                throw BlobJSONError("\(context).commitment: not valid base64")
            }
            commitmentBytes = Array(c)
        } else if requireCommitment {
            throw BlobJSONError("\(context).commitment: missing")
        } else {
            commitmentBytes = []
        }
        return DABlob(namespace: ns, data: Array(bytes), shareVersion: version,
                      commitment: commitmentBytes, index: index ?? -1)
    }
}

package struct BlobJSONError: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}

/// A height written as a JSON number or as a decimal string (Celestia uses both).
package struct FlexibleHeight: Codable, Sendable, Equatable {
    package let value: UInt64

    package init(_ value: UInt64) { self.value = value }

    package init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let n = try? c.decode(UInt64.self) {
            value = n
            return
        }
        if let s = try? c.decode(String.self) {
            guard let n = UInt64(s) else {
                throw DecodingError.dataCorruptedError(in: c, debugDescription: "height \"\(s)\" is not a decimal number")
            }
            value = n
            return
        }
        throw DecodingError.dataCorruptedError(in: c, debugDescription: "expected a height (number or decimal string)")
    }

    package func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(value)
    }
}

/// `header.NetworkHead` / `header.GetByHeight` result: `{"height": "<decimal>", "header":
/// {"height": "<decimal>", "time": "<RFC 3339>"}}`. The spec puts the height at the top; real
/// Celestia headers have it inside `header`; the client accepts either (as string or number)
/// and the local DA writes both, as strings.
struct HeaderJSON: Decodable, Sendable {
    struct Inner: Decodable, Sendable {
        package var height: FlexibleHeight?
        package var time: String?
    }
    package var height: FlexibleHeight?
    package var header: Inner?
}

/// The local DA's header answer.
package struct HeaderJSONOut: Encodable, Sendable {
    package struct Inner: Encodable, Sendable {
        package var height: String
        package var time: String
    }
    package var height: String
    package var header: Inner

    package init(height: UInt64, time: String) {
        self.height = String(height)
        self.header = Inner(height: String(height), time: time)
    }
}

/// Describes a decoding failure as "path: what" for error messages.
package func describeDecodingError(_ error: any Error) -> String {
    guard let e = error as? DecodingError else { return "\(error)" }
    func path(_ keys: [any CodingKey]) -> String {
        var s = ""
        for k in keys {
            if let i = k.intValue { s += "[\(i)]" } else { s += s.isEmpty ? k.stringValue : ".\(k.stringValue)" }
        }
        return s.isEmpty ? "(top level)" : s
    }
    switch e {
    case let .typeMismatch(type, ctx):
        return "\(path(ctx.codingPath)): expected \(type)"
    case let .valueNotFound(type, ctx):
        return "\(path(ctx.codingPath)): expected \(type), found null"
    case let .keyNotFound(key, ctx):
        return "\(path(ctx.codingPath + [key])): missing"
    case let .dataCorrupted(ctx):
        let underlying = ctx.underlyingError.map { " (\($0))" } ?? ""
        return "\(path(ctx.codingPath)): \(ctx.debugDescription)\(underlying)"
    @unknown default:
        return "\(e)"
    }
}
