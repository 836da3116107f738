import Foundation
import Logging
import Synchronization
import HTTPClient

/// What can go wrong talking to etcd. `unavailable` is the one to wait out; the others mean
/// etcd answered something this node does not understand or refuses.
package enum EtcdError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No endpoint answered (each endpoint's last transport error, joined).
    case unavailable(String)
    /// An endpoint answered with an error status or an etcd error object.
    case refused(endpoint: String, path: String, status: Int, message: String)
    /// The answer was not the JSON the v3 gateway documents.
    case malformed(endpoint: String, path: String, reason: String)
    case cancelled

    package var description: String {
        switch self {
        case .unavailable(let why): return "etcd unavailable: \(why)"
        case let .refused(endpoint, path, status, message):
            return "etcd \(endpoint)\(path) refused the request (HTTP \(status)): \(message)"
        case let .malformed(endpoint, path, reason):
            return "malformed answer from etcd \(endpoint)\(path): \(reason)"
        case .cancelled: return "etcd request cancelled"
        }
    }
}

/// One key as etcd stores it.
package struct EtcdKeyValue: Sendable, Equatable {
    package var key: [UInt8]
    package var value: [UInt8]
    package var createRevision: Int64
    package var modRevision: Int64
    /// The lease the key is attached to; 0 for none.
    package var lease: Int64
}

/// A condition of a transaction (etcd `Compare`, always "equal").
package enum EtcdCompare: Sendable, Equatable {
    /// The key's create revision; 0 means "the key does not exist".
    case createRevision(key: [UInt8], equals: Int64)
    /// The revision of the key's last change; 0 means "the key does not exist".
    case modRevision(key: [UInt8], equals: Int64)
    case value(key: [UInt8], equals: [UInt8])
}

/// An operation of a transaction.
package enum EtcdOperation: Sendable, Equatable {
    case put(key: [UInt8], value: [UInt8], lease: Int64 = 0)
    case get(key: [UInt8])
    case delete(key: [UInt8])
}

/// The outcome of a transaction: which branch ran, and the keys its `get`s found (nil for
/// operations that are not gets, or gets of absent keys).
package struct EtcdTxnResult: Sendable, Equatable {
    package var succeeded: Bool
    package var revision: Int64
    package var found: [EtcdKeyValue?]
}

/// A change seen by a watch.
package struct EtcdWatchEvent: Sendable, Equatable {
    package enum Kind: Sendable, Equatable { case put, delete }
    package var kind: Kind
    package var key: [UInt8]
    package var value: [UInt8]
    package var modRevision: Int64
    /// The lease the key is attached to after a put (0 for none, and for deletions).
    package var lease: Int64 = 0
}

/// The answer of one watch long poll.
package struct EtcdWatchResult: Sendable, Equatable {
    package var events: [EtcdWatchEvent]
    /// The revision to watch from next time.
    package var nextRevision: Int64
    /// etcd compacted the history past the requested revision: re-read the key.
    package var compacted: Bool
}

/// etcd's v3 API through its HTTP/JSON gateway (`/v3/...`, keys and values base64, 64-bit
/// numbers as strings), over the same libcurl connections as the DA client.
///
/// Several endpoints may be given (members of one cluster): a request goes to the endpoint that
/// last answered, and on a transport failure to the next one, each tried once per request.
package final class EtcdClient: Sendable {
    package let endpoints: [String]
    private let clients: [HTTPPostClient]
    private let current = Atomic<Int>(0)

    package init(endpoints: [String], requestTimeout: Duration = .seconds(2)) throws(EtcdError) {
        precondition(!endpoints.isEmpty, "etcd needs at least one endpoint")
        self.endpoints = endpoints
        var clients: [HTTPPostClient] = []
        for endpoint in endpoints {
            do {
                // Two for watch long polls (leader key, replicated block), two for requests, so a
                // keep-alive never waits behind a long poll.
                clients.append(try HTTPPostClient(baseURL: endpoint, connections: 4,
                                                  connectTimeout: min(requestTimeout, .seconds(1)),
                                                  requestTimeout: requestTimeout))
            } catch {
                throw .unavailable("cannot set up an HTTP client for \(endpoint): \(error)")
            }
        }
        self.clients = clients
    }

    package func shutdown() async {
        for client in clients { await client.shutdown() }
    }

    // MARK: Leases

    /// Grants a lease; returns its id and the TTL etcd granted (it may raise a short one).
    package func grantLease(ttlSeconds: Int64) async throws(EtcdError) -> (id: Int64, ttl: Int64) {
        let reply: LeaseGrantReply = try await call("/v3/lease/grant", LeaseGrantRequest(TTL: String(ttlSeconds)))
        guard let id = reply.ID.flatMap(Int64.init), id != 0, let ttl = reply.TTL.flatMap(Int64.init), ttl > 0 else {
            throw .malformed(endpoint: endpoint, path: "/v3/lease/grant", reason: "no lease id or TTL in the answer")
        }
        return (id, ttl)
    }

    /// Renews a lease; returns the TTL it now has, 0 when etcd no longer knows it (expired or revoked).
    package func keepAlive(lease: Int64) async throws(EtcdError) -> Int64 {
        let reply: StreamEnvelope<LeaseKeepAliveReply> = try await call(
            "/v3/lease/keepalive", LeaseIDRequest(ID: String(lease)))
        guard let result = reply.result else {
            throw .malformed(endpoint: endpoint, path: "/v3/lease/keepalive", reason: "no result in the answer")
        }
        return result.TTL.flatMap(Int64.init) ?? 0
    }

    /// Ends a lease at once, deleting its keys. Revoking a lease etcd no longer knows is not an error.
    package func revoke(lease: Int64) async throws(EtcdError) {
        do {
            let _: EmptyReply = try await call("/v3/lease/revoke", LeaseIDRequest(ID: String(lease)))
        } catch {
            if case .refused(_, _, _, let message) = error, message.contains("lease not found") { return }
            throw error
        }
    }

    // MARK: Keys

    /// Drops the history before `revision` (values of keys overwritten since stay only until then).
    package func compact(revision: Int64) async throws(EtcdError) {
        do {
            let _: EmptyReply = try await call("/v3/kv/compaction", CompactionRequest(revision: String(revision)))
        } catch {
            // Compacting to a revision already compacted is what another leader did already.
            if case .refused(_, _, _, let message) = error, message.contains("compacted") { return }
            throw error
        }
    }

    /// The key's current value (nil when absent) and the store's revision.
    package func get(_ key: [UInt8]) async throws(EtcdError) -> (kv: EtcdKeyValue?, revision: Int64) {
        let reply: RangeReply = try await call("/v3/kv/range", RangeRequest(key: Self.b64(key)))
        let kv = try reply.kvs?.first.map { kv throws(EtcdError) in try decode(kv, path: "/v3/kv/range") }
        return (kv, reply.header?.revision.flatMap(Int64.init) ?? 0)
    }

    /// Runs `success` if every comparison holds, else `failure`, atomically.
    package func transaction(if compares: [EtcdCompare], then success: [EtcdOperation],
                            else failure: [EtcdOperation]) async throws(EtcdError) -> EtcdTxnResult {
        let request = TxnRequest(compare: compares.map(Self.encode), success: success.map(Self.encode),
                                 failure: failure.map(Self.encode))
        let reply: TxnReply = try await call("/v3/kv/txn", request)
        var found: [EtcdKeyValue?] = []
        for response in reply.responses ?? [] {
            if let range = response.response_range {
                found.append(try range.kvs?.first.map { kv throws(EtcdError) in try decode(kv, path: "/v3/kv/txn") })
            } else {
                found.append(nil)
            }
        }
        return EtcdTxnResult(succeeded: reply.succeeded ?? false,
                             revision: reply.header?.revision.flatMap(Int64.init) ?? 0, found: found)
    }

    /// Waits up to `timeout` for changes of `key` (or of every key in [`key`, `rangeEnd`)) from
    /// `revision` on (a long poll of etcd's watch stream: returns at the first batch of events,
    /// or with none when the time is up).
    package func watch(_ key: [UInt8], rangeEnd: [UInt8]? = nil, fromRevision revision: Int64,
                      timeout: Duration) async throws(EtcdError) -> EtcdWatchResult {
        let path = "/v3/watch"
        let body = Self.json(WatchRequest(create_request: .init(key: Self.b64(key), range_end: rangeEnd.map(Self.b64),
                                                                start_revision: String(revision))))
        let reply = try await send(path) { client throws(HTTPError) in
            // The first line confirms the watch; the second carries the first events.
            try await client.postStream(path: path, body: body, lines: 2, timeout: timeout)
        }
        var result = EtcdWatchResult(events: [], nextRevision: revision, compacted: false)
        // A long poll that timed out may end in the middle of a message: only complete lines count.
        let complete = reply.lastIndex(of: 0x0A).map { reply[...$0] } ?? []
        for line in complete.split(separator: 0x0A) where !line.isEmpty {
            let envelope: StreamEnvelope<WatchReply>
            do {
                envelope = try JSONDecoder().decode(StreamEnvelope<WatchReply>.self, from: Data(line))
            } catch {
                throw .malformed(endpoint: endpoint, path: path, reason: "\(error)")
            }
            if let message = envelope.error?.message {
                throw .refused(endpoint: endpoint, path: path, status: 200, message: message)
            }
            guard let watch = envelope.result else { continue }
            if let compact = watch.compact_revision.flatMap(Int64.init), compact > 0 {
                result.compacted = true
                result.nextRevision = compact
                return result
            }
            for event in watch.events ?? [] {
                let kv = try decode(event.kv, path: path)
                result.events.append(EtcdWatchEvent(kind: event.type == "DELETE" ? .delete : .put, key: kv.key,
                                                    value: kv.value, modRevision: kv.modRevision, lease: kv.lease))
                result.nextRevision = max(result.nextRevision, kv.modRevision + 1)
            }
        }
        return result
    }

    // MARK: Transport

    private var endpoint: String { endpoints[current.load(ordering: .relaxed) % endpoints.count] }

    private func call<Request: Encodable, Reply: Decodable>(_ path: String, _ request: Request) async throws(EtcdError) -> Reply {
        let body = Self.json(request)
        let bytes = try await send(path) { client throws(HTTPError) in
            try await client.post(path: path, body: body)
        }
        do {
            if let failure = try? JSONDecoder().decode(GatewayError.self, from: Data(bytes)), let message = failure.message {
                throw EtcdError.refused(endpoint: endpoint, path: path, status: 200, message: message)
            }
            return try JSONDecoder().decode(Reply.self, from: Data(bytes))
        } catch let error as EtcdError {
            throw error
        } catch {
            throw .malformed(endpoint: endpoint, path: path, reason: "\(error)")
        }
    }

    /// Sends through the current endpoint, moving on to the next ones on transport failures.
    /// Answers other than 200 are etcd refusing (its error text is passed on).
    private func send(_ path: String, _ perform: (HTTPPostClient) async throws(HTTPError) -> HTTPReply) async throws(EtcdError) -> [UInt8] {
        let start = current.load(ordering: .relaxed)
        var failures: [String] = []
        for offset in 0..<clients.count {
            let index = (start + offset) % clients.count
            let client = clients[index]
            do {
                let reply = try await perform(client)
                if offset > 0 { current.store(index, ordering: .relaxed) }
                guard reply.status == 200 else {
                    let text = String(decoding: reply.body.prefix(300), as: UTF8.self)
                    let message = (try? JSONDecoder().decode(GatewayError.self, from: Data(reply.body)))?.message ?? text
                    if reply.status >= 500 || reply.status == 429 {
                        failures.append("\(client.baseURL): HTTP \(reply.status) \(message)")
                        continue
                    }
                    throw EtcdError.refused(endpoint: client.baseURL, path: path, status: reply.status, message: message)
                }
                return reply.body
            } catch let error as EtcdError {
                throw error
            } catch let error as HTTPError {
                if case .cancelled = error { throw .cancelled }
                failures.append("\(client.baseURL): \(Self.transportText(error))")
            } catch {
                failures.append("\(client.baseURL): \(error)")
            }
        }
        throw .unavailable(failures.joined(separator: "; "))
    }

    private static func transportText(_ error: HTTPError) -> String {
        if case let .transport(_, message, _) = error { return message }
        return error.description
    }

    private func decode(_ kv: KVJSON, path: String) throws(EtcdError) -> EtcdKeyValue {
        guard let key = kv.key.flatMap({ Data(base64Encoded: $0) }) else {
            throw .malformed(endpoint: endpoint, path: path, reason: "a key is missing or not base64")
        }
        var value: [UInt8] = []
        if let text = kv.value {
            guard let bytes = Data(base64Encoded: text) else {
                throw .malformed(endpoint: endpoint, path: path, reason: "a value is not base64")
            }
            value = Array(bytes)
        }
        return EtcdKeyValue(key: Array(key), value: value,
                            createRevision: kv.create_revision.flatMap(Int64.init) ?? 0,
                            modRevision: kv.mod_revision.flatMap(Int64.init) ?? 0,
                            lease: kv.lease.flatMap(Int64.init) ?? 0)
    }

    // MARK: JSON shapes of the gateway

    static func b64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    /// The end of the range of every key that starts with `prefix` (etcd's `range_end` for a
    /// prefix: the prefix with its last byte below 0xFF incremented).
    package static func prefixEnd(_ prefix: [UInt8]) -> [UInt8] {
        var end = prefix
        while let last = end.last {
            if last < 0xFF {
                end[end.count - 1] = last + 1
                return end
            }
            end.removeLast()
        }
        return [0]  // every key
    }

    private static func json<T: Encodable>(_ value: T) -> [UInt8] {
        // Encoding these plain structs of strings cannot fail.
        Array((try? JSONEncoder().encode(value)) ?? Data("{}".utf8))
    }

    private static func encode(_ compare: EtcdCompare) -> CompareJSON {
        switch compare {
        case let .createRevision(key, revision):
            return CompareJSON(key: b64(key), target: "CREATE", result: "EQUAL", create_revision: String(revision),
                               mod_revision: nil, value: nil)
        case let .modRevision(key, revision):
            return CompareJSON(key: b64(key), target: "MOD", result: "EQUAL", create_revision: nil,
                               mod_revision: String(revision), value: nil)
        case let .value(key, value):
            return CompareJSON(key: b64(key), target: "VALUE", result: "EQUAL", create_revision: nil,
                               mod_revision: nil, value: b64(value))
        }
    }

    private static func encode(_ operation: EtcdOperation) -> OperationJSON {
        switch operation {
        case let .put(key, value, lease):
            return OperationJSON(request_put: .init(key: b64(key), value: b64(value), lease: lease == 0 ? nil : String(lease)))
        case let .get(key):
            return OperationJSON(request_range: .init(key: b64(key)))
        case let .delete(key):
            return OperationJSON(request_delete_range: .init(key: b64(key)))
        }
    }
}

// The gateway's JSON, field names as etcd spells them.
private struct LeaseGrantRequest: Encodable { let TTL: String }
private struct LeaseIDRequest: Encodable { let ID: String }
private struct LeaseGrantReply: Decodable { let ID: String?; let TTL: String? }
private struct LeaseKeepAliveReply: Decodable { let ID: String?; let TTL: String? }
private struct EmptyReply: Decodable {}
private struct GatewayError: Decodable { let error: String?; let message: String?; let code: Int? }
private struct StreamEnvelope<T: Decodable>: Decodable { let result: T?; let error: GatewayError? }
private struct ResponseHeader: Decodable { let revision: String? }
private struct KVJSON: Decodable {
    let key: String?
    let value: String?
    let create_revision: String?
    let mod_revision: String?
    let lease: String?
}
private struct RangeRequest: Encodable { let key: String }
private struct CompactionRequest: Encodable { let revision: String }
private struct RangeReply: Decodable { let header: ResponseHeader?; let kvs: [KVJSON]? }
private struct CompareJSON: Encodable {
    let key: String
    let target: String
    let result: String
    let create_revision: String?
    let mod_revision: String?
    let value: String?
}
private struct OperationJSON: Encodable {
    struct Put: Encodable { let key: String; let value: String; let lease: String? }
    struct Key: Encodable { let key: String }
    var request_put: Put? = nil
    var request_range: Key? = nil
    var request_delete_range: Key? = nil
}
private struct TxnRequest: Encodable {
    let compare: [CompareJSON]
    let success: [OperationJSON]
    let failure: [OperationJSON]
}
private struct TxnReply: Decodable {
    struct Response: Decodable { let response_range: RangeReply? }
    let header: ResponseHeader?
    let succeeded: Bool?
    let responses: [Response]?
}
private struct WatchRequest: Encodable {
    struct Create: Encodable { let key: String; let range_end: String?; let start_revision: String }
    let create_request: Create
}
private struct WatchReply: Decodable {
    struct Event: Decodable { let type: String?; let kv: KVJSON }
    let events: [Event]?
    let compact_revision: String?
}
