import Foundation

// The node's RPC documents (SPEC §10) as the tests read them: decoded from the JSON with types of
// their own, not the node's, so that a renamed or retyped field fails a test.

/// `/status`.
package struct StatusDocument: Decodable, Sendable {
    package struct Heights: Decodable, Sendable {
        package let store: UInt64
        package let finalized: UInt64
        package let da_head: UInt64
        package let p2p_max: UInt64
    }

    package struct Catchup: Decodable, Sendable {
        package let active: Bool
        package let target: UInt64
        package let blocks_per_second: Double
        package let eta_seconds: Double?
        package let elapsed_seconds: Double
        package let da_head_reached: Bool
        package let waiting_to_apply: Int
        package let blocked_by: String?
    }

    /// The DA client's side (SPEC §10 `da`).
    package struct DA: Decodable, Sendable {
        package let failing: Bool
        package let last_error: String?
        package let auth_error: String?
        package let bad_blobs: Int
        package let held_data_bytes: Int
        package let gas_price: Double?
        package let fee_escalations: Int
        package let last_signer: String?
        package let submit_error: String?
        package let pending_blocks: UInt64
        package let max_pending_blocks: UInt64
        package let production_paused: Bool
        package let paused_reason: String?
        package let subscription: String
        package let subscription_notifications: Int
        /// A DA height that keeps failing (absent otherwise).
        package let stalled_da_height: UInt64?
        package let stalled_attempts: Int?
        package let stalled_seconds: Double?
        package let stalled_error: String?
    }

    package struct Execution: Decodable, Sendable {
        package let kind: String
        package let reachable: Bool
        package let last_error: String?
    }

    /// Present with `--raft.enable`.
    package struct HA: Decodable, Sendable {
        package let role: String
        package let node_id: String
        package let leader: String?
        package let lease_id: String?
        package let term: Int64?
        package let last_replicated_height: UInt64
        package let etcd_error: String?
    }

    package let mode: String
    package let phase: String
    package let reason: String?
    package let chain_id: String?
    package let heights: Heights
    package let catchup: Catchup
    package let peers: Int
    package let evidence: Int
    package let proposer: String
    package let app_hash: String
    package let ha: HA?
    package let da: DA?
    package let execution: Execution?
    package let peer_id: String?
    package let p2p_listen: [String]?

    /// One line for failure messages.
    package var summary: String {
        "phase \(phase), store \(heights.store), finalized \(heights.finalized), da_head \(heights.da_head), "
            + "p2p_max \(heights.p2p_max), peers \(peers)" + (catchup.blocked_by.map { ", blocked by: \($0)" } ?? "")
    }
}

/// `/blocks/{h}`.
package struct BlockDocument: Decodable, Sendable, Equatable {
    package let height: UInt64
    package let hash: String
    package let time_ns: UInt64
    package let proposer: String
    package let app_hash: String
    package let data_hash: String
    package let txs: [String]

    /// The transactions as UTF-8 text.
    package var txTexts: [String] {
        txs.map { String(decoding: Data(base64Encoded: $0) ?? Data(), as: UTF8.self) }
    }
}

/// One line of an `evnode` JSON log (`--log.format json`): message and metadata as strings.
package struct LogLine: Sendable {
    package let fields: [String: String]
    package var message: String { fields["msg"] ?? "" }
    package subscript(key: String) -> String? { fields[key] }

    package static func parse(_ text: String) -> [LogLine] {
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
package func metricValue(_ text: String, _ name: String) -> Double? {
    for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
        return Double(line.dropFirst(name.count + 1))
    }
    return nil
}
