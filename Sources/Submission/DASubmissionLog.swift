import Primitives
import DAClient
import Foundation
import Synchronization
import Telemetry

/// One `blob.Submit` attempt as ev-node's DA visualizer lists it (`/da/submissions`).
package struct DASubmissionRecord: Sendable, Equatable {
    /// ev-node's status texts (`pkg/rpc/server/da_visualization.go`'s status code names).
    package enum Status: String, Sendable, Equatable {
        case success = "Success"
        case error = "Error"
        case tooBig = "Too Big"
        case notIncludedInBlock = "Not Included In Block"
        case alreadyInMempool = "Already In Mempool"
        case contextCanceled = "Context Canceled"
        case contextDeadline = "Context Deadline"

        package init(_ reason: DASubmitterFailureReason) {
            switch reason {
            case .tooBig: self = .tooBig
            case .notIncludedInBlock: self = .notIncludedInBlock
            case .alreadyInMempool: self = .alreadyInMempool
            case .contextCanceled: self = .contextCanceled
            case .timeout: self = .contextDeadline
            case .alreadyRejected, .insufficientFee, .unknown: self = .error
            }
        }
    }

    /// DA height that includes the blobs; 0 for a failed attempt.
    package var daHeight: UInt64
    package var blobSize: UInt64
    package var timestamp: Date
    /// Gas price offered; 0 when the DA node estimated it (ev-node records 0 always).
    package var gasPrice: Double
    package var status: Status
    package var message: String?
    package var numBlobs: UInt64
    /// ev-node's blob ids, hex: the DA height (8 bytes, little-endian) ‖ the blob's commitment.
    /// Only for an included submission.
    package var blobIDs: [String]
    /// Hex of the namespace of the first blob.
    package var namespace: String

    package init(daHeight: UInt64, blobs: [DABlob], gasPrice: Double?, status: Status, message: String?,
                at timestamp: Date = Date()) {
        self.daHeight = daHeight
        blobSize = UInt64(blobs.reduce(0) { $0 + $1.data.count })
        self.timestamp = timestamp
        self.gasPrice = gasPrice ?? 0
        self.status = status
        self.message = message
        numBlobs = UInt64(blobs.count)
        blobIDs = status == .success ? blobs.map { Hex.encode(Self.blobID(daHeight: daHeight, commitment: $0.commitment)) } : []
        namespace = blobs.first.map { Hex.encode($0.namespace.bytes) } ?? ""
    }

    package var id: String { "submission_\(daHeight)_\(Int(timestamp.timeIntervalSince1970))" }

    package static func blobID(daHeight: UInt64, commitment: [UInt8]) -> [UInt8] {
        (0..<8).map { UInt8(truncatingIfNeeded: daHeight >> (8 * $0)) } + commitment
    }

    /// The DA height and commitment of a blob id; nil when it is too short to hold both.
    package static func splitBlobID(_ id: [UInt8]) -> (daHeight: UInt64, commitment: [UInt8])? {
        guard id.count > 8 else { return nil }
        let height = id.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) }
        return (height, Array(id.dropFirst(8)))
    }
}

/// The last `capacity` submission attempts, oldest first. Written once per `blob.Submit`, read
/// by the DA visualizer and the dashboard.
package final class DASubmissionLog: Sendable {
    /// ev-node keeps the last 100 as well.
    package static let defaultCapacity = 100
    package let capacity: Int
    private let records = Mutex<[DASubmissionRecord]>([])

    package init(capacity: Int = defaultCapacity) {
        self.capacity = max(1, capacity)
    }

    package func record(_ record: DASubmissionRecord) {
        records.withLock { list in
            list.append(record)
            if list.count > capacity { list.removeFirst(list.count - capacity) }
        }
    }

    package var all: [DASubmissionRecord] { records.withLock { $0 } }
}

extension SubmitFailure {
    /// ev-node's reason label for this failure of `error`: the fee reasons are
    /// `insufficient_fee`, a size refusal `too_big`, celestia's "already in mempool"
    /// `already_in_mempool`, other not-included answers `not_included_in_block`, our request
    /// timeout `timeout`, cancellation `context_canceled`; the rest (mempool full, sequence
    /// mismatch, DA node down, unrecognised) `unknown`.
    package func evNodeReason(of error: DAError) -> DASubmitterFailureReason {
        switch error {
        case .cancelled: return .contextCanceled
        case .blobTooLarge: return .tooBig
        case let .transport(code, _, _) where code == Self.curlTimeout: return .timeout
        default: break
        }
        switch self {
        case .feeTooLow, .priceAboveMax: return .insufficientFee
        case .txTooLarge: return .tooBig
        case .notIncluded:
            return error.description.lowercased().contains(Text.alreadyInMempool) ? .alreadyInMempool : .notIncludedInBlock
        case .mempoolFull, .sequenceMismatch, .unavailable, .other: return .unknown
        }
    }
}
