import Foundation

// The node's RPC documents (SPEC §10) as the tests read them: decoded from the JSON with types of
// their own, not the node's, so that a renamed or retyped field fails a test.

/// `/status`.
public struct StatusDocument: Decodable, Sendable {
    public struct Heights: Decodable, Sendable {
        public let store: UInt64
        public let finalized: UInt64
        public let da_head: UInt64
        public let p2p_max: UInt64
    }

    public struct Catchup: Decodable, Sendable {
        public let active: Bool
        public let target: UInt64
        public let blocks_per_second: Double
        public let eta_seconds: Double?
        public let elapsed_seconds: Double
        public let da_head_reached: Bool
        public let waiting_to_apply: Int
        public let blocked_by: String?
    }

    /// The DA client's side (SPEC §10 `da`).
    public struct DA: Decodable, Sendable {
        public let failing: Bool
        public let last_error: String?
        public let auth_error: String?
        public let bad_blobs: Int
        public let held_data_bytes: Int
        public let gas_price: Double?
        public let fee_escalations: Int
        public let last_signer: String?
        public let submit_error: String?
        public let pending_blocks: UInt64
        public let max_pending_blocks: UInt64
        public let production_paused: Bool
        public let paused_reason: String?
        public let subscription: String
        public let subscription_notifications: Int
        /// A DA height that keeps failing (absent otherwise).
        public let stalled_da_height: UInt64?
        public let stalled_attempts: Int?
        public let stalled_seconds: Double?
        public let stalled_error: String?
    }

    public struct Execution: Decodable, Sendable {
        public let kind: String
        public let reachable: Bool
        public let last_error: String?
    }

    /// Present with `--raft.enable`.
    public struct HA: Decodable, Sendable {
        public let role: String
        public let node_id: String
        public let leader: String?
        public let lease_id: String?
        public let term: Int64?
        public let last_replicated_height: UInt64
        public let etcd_error: String?
    }

    public let mode: String
    public let phase: String
    public let reason: String?
    public let chain_id: String?
    public let heights: Heights
    public let catchup: Catchup
    public let peers: Int
    public let evidence: Int
    public let proposer: String
    public let app_hash: String
    public let ha: HA?
    public let da: DA?
    public let execution: Execution?
    public let peer_id: String?
    public let p2p_listen: [String]?

    /// One line for failure messages.
    public var summary: String {
        "phase \(phase), store \(heights.store), finalized \(heights.finalized), da_head \(heights.da_head), "
            + "p2p_max \(heights.p2p_max), peers \(peers)" + (catchup.blocked_by.map { ", blocked by: \($0)" } ?? "")
    }
}

/// `/blocks/{h}`.
public struct BlockDocument: Decodable, Sendable, Equatable {
    public let height: UInt64
    public let hash: String
    public let time_ns: UInt64
    public let proposer: String
    public let app_hash: String
    public let data_hash: String
    public let txs: [String]

    /// The transactions as UTF-8 text.
    public var txTexts: [String] {
        txs.map { String(decoding: Data(base64Encoded: $0) ?? Data(), as: UTF8.self) }
    }
}

/// One line of an `evnode` JSON log (`--log.format json`): message and metadata as strings.
public struct LogLine: Sendable {
    public let fields: [String: String]
    public var message: String { fields["msg"] ?? "" }
    public subscript(key: String) -> String? { fields[key] }

    public static func parse(_ text: String) -> [LogLine] {
        text.split(separator: "\n").compactMap { line in
            guard line.hasPrefix("{"),
                  let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            var fields: [String: String] = [:]
            for (k, v) in object { fields[k] = "\(v)" }
            return LogLine(fields: fields)
        }
    }
}

/// The value of the unlabelled Prometheus sample `name`, nil when absent.
public func metricValue(_ text: String, _ name: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
        return Double(line.dropFirst(name.count + 1))
    }
    return nil
}
