import Primitives
import DAClient
import Foundation

/// Why a `blob.Submit` failed, as far as what to do next is concerned.
///
/// Recognised by the texts a real celestia-node returns, taken from the sources that produce them:
/// - too-low fee: celestia-app `app/errors/insufficient_gas_price.go` matches
///   `insufficient fees; got: <n>utia required: <n>utia` (cosmos-sdk's ante handler, wrapped in
///   `ErrInsufficientFee`, text `insufficient fee`); celestia-node `state/txclient/tx_client.go`
///   prefixes `failed to submit blobs due to insufficient gas price in txconfig` or
///   `… insufficient estimated gas price <price>`;
/// - gas price cap: celestia-node `ErrGasPriceExceedsLimit`,
///   `state: estimated gas price exceeds max gas price in tx config`;
/// - mempool full: cosmos-sdk `ErrMempoolIsFull` / CometBFT, `mempool is full`;
/// - tx too large: cosmos-sdk `ErrTxTooLarge`, `tx too large`;
/// - sequence mismatch: cosmos-sdk `ErrWrongSequence` (`incorrect account sequence`), celestia-app's
///   parser `account sequence mismatch`;
/// - not included in time: ev-node's `timed out waiting for tx to be included in a block`, Go's
///   `context deadline exceeded`, celestia-app's `eviction poll timeout: transaction … was evicted`,
///   cosmos-sdk `tx already in mempool`, and our own request timeout (libcurl code 28).
package enum SubmitFailure: Sendable, Equatable, CustomStringConvertible {
    /// The fee was below the DA network's minimum. `estimatedPrice` is the price the DA node
    /// estimated, when it says so (then escalation starts from it).
    case feeTooLow(estimatedPrice: Double?)
    /// The DA node would have to pay more than the configured max gas price.
    case priceAboveMax
    case mempoolFull
    /// The transaction is over the network's size limit: split the batch.
    case txTooLarge
    case sequenceMismatch
    /// Submitted but not included in time (or the answer never came): may still land.
    case notIncluded
    /// The DA node did not answer (connection refused, 5xx, 429): nothing about the fee.
    case unavailable
    /// Anything else: retried with backoff and named in the log.
    case other

    package var description: String {
        switch self {
        case .feeTooLow: return "fee too low"
        case .priceAboveMax: return "gas price above the max"
        case .mempoolFull: return "mempool full"
        case .txTooLarge: return "tx too large"
        case .sequenceMismatch: return "account sequence mismatch"
        case .notIncluded: return "not included in time"
        case .unavailable: return "DA node unavailable"
        case .other: return "unrecognised error"
        }
    }

    /// Whether a higher gas price may help.
    package var escalates: Bool {
        switch self {
        case .feeTooLow, .mempoolFull, .notIncluded: return true
        default: return false
        }
    }

    /// Texts, as celestia-node, celestia-app and cosmos-sdk produce them.
    package enum Text {
        package static let insufficientFees = "insufficient fees; got:"
        package static let insufficientFee = "insufficient fee"
        package static let insufficientGasPriceInTxConfig = "failed to submit blobs due to insufficient gas price in txconfig"
        package static let insufficientEstimatedGasPrice = "insufficient estimated gas price"
        package static let gasPriceExceedsLimit = "estimated gas price exceeds max gas price"
        package static let mempoolFull = "mempool is full"
        package static let txTooLarge = "tx too large"
        package static let incorrectSequence = "incorrect account sequence"
        package static let sequenceMismatch = "account sequence mismatch"
        package static let timedOut = "timed out waiting for tx to be included in a block"
        package static let contextDeadline = "context deadline exceeded"
        package static let evicted = "was evicted"
        package static let alreadyInMempool = "tx already in mempool"
    }

    /// libcurl's "operation timed out".
    static let curlTimeout = 28

    package static func classify(_ error: DAError) -> SubmitFailure {
        switch error {
        case let .rpc(_, _, message):
            return classify(message: message)
        case let .httpStatus(status, body, _):
            let byText = classify(message: body)
            return byText == .other && (status >= 500 || status == 429) ? .unavailable : byText
        case let .transport(code, _, _) where code == curlTimeout:
            return .notIncluded
        case .transport:
            return .unavailable
        case .blobTooLarge:
            return .txTooLarge
        default:
            return .other
        }
    }

    package static func classify(message: String) -> SubmitFailure {
        let m = message.lowercased()
        if m.contains(Text.gasPriceExceedsLimit) { return .priceAboveMax }
        if m.contains(Text.insufficientEstimatedGasPrice) {
            return .feeTooLow(estimatedPrice: number(after: Text.insufficientEstimatedGasPrice, in: m))
        }
        if m.contains(Text.insufficientFees) || m.contains(Text.insufficientFee)
            || m.contains(Text.insufficientGasPriceInTxConfig) {
            return .feeTooLow(estimatedPrice: nil)
        }
        if m.contains(Text.mempoolFull) { return .mempoolFull }
        if m.contains(Text.txTooLarge) { return .txTooLarge }
        if m.contains(Text.incorrectSequence) || m.contains(Text.sequenceMismatch) { return .sequenceMismatch }
        if m.contains(Text.timedOut) || m.contains(Text.contextDeadline) || m.contains(Text.evicted)
            || m.contains(Text.alreadyInMempool) {
            return .notIncluded
        }
        return .other
    }

    /// The first decimal number after `marker` (celestia-node formats the estimate with `%f`).
    private static func number(after marker: String, in text: String) -> Double? {
        guard let range = text.range(of: marker) else { return nil }
        let rest = text[range.upperBound...].drop { $0 == " " }
        let digits = rest.prefix { $0.isNumber || $0 == "." }
        return Double(digits)
    }
}

/// The gas price the submitter offers, raised step by step while the network refuses it.
///
/// Starts at the configured price (nil: the DA node estimates). A failure that a higher fee may
/// fix multiplies the price by the multiplier, never above the max. After `relaxAfter`
/// successes in a row it steps back down by the same factor, never below the configured price,
/// so one busy hour does not make every later submission pay the peak — and a price that was
/// just found to be needed is not given up after one success (which would fail every other
/// submission).
package struct GasPriceLadder: Sendable, Equatable {
    package let base: Double?
    package let multiplier: Double
    package let max: Double
    package private(set) var current: Double?
    package let relaxAfter: Int
    private var successes = 0

    package init(base: Double?, multiplier: Double, max: Double, relaxAfter: Int = 10) {
        self.relaxAfter = Swift.max(1, relaxAfter)
        self.base = base
        self.multiplier = Swift.max(1, multiplier)
        self.max = max
        self.current = base.map { Swift.min($0, max) }
    }

    package enum Step: Sendable, Equatable {
        /// The price went from `from` (nil: estimated) to `to`.
        case raised(from: Double?, to: Double)
        /// Already at the max: nothing higher may be offered.
        case atMax(Double)
        /// No price to raise: the DA node estimates and did not say what it estimated.
        case estimated
        /// The multiplier is 1: escalation is off.
        case off
    }

    /// Raises the price after `failure`. `estimatedPrice` (from the DA node's error) replaces an
    /// unknown current price.
    package mutating func escalate(estimatedPrice: Double? = nil) -> Step {
        guard multiplier > 1 else { return .off }
        let wasEstimated = current == nil
        guard let from = current ?? estimatedPrice else { return .estimated }
        if from >= max { return .atMax(max) }
        let to = Swift.min(from * multiplier, max)
        current = to
        successes = 0
        return .raised(from: wasEstimated ? nil : from, to: to)
    }

    /// After a success: every `relaxAfter` successes in a row, one step back toward the
    /// configured price.
    package mutating func relax() {
        guard let c = current, multiplier > 1, c != base else { return }
        successes += 1
        guard successes >= relaxAfter else { return }
        successes = 0
        // Escalated from the DA node's estimate: go back to letting it estimate.
        guard let floor = base else {
            current = nil
            return
        }
        let next = c / multiplier
        current = next <= floor ? base : next
    }
}

/// The `signer_address` of each submission: the configured addresses in turn, so that
/// consecutive submissions never wait on one account's sequence (as ev-node does).
package struct SignerRotation: Sendable, Equatable {
    package let addresses: [String]
    private var next = 0

    package init(addresses: [String]) {
        self.addresses = addresses
    }

    /// The address for the next submission, or nil when none are configured.
    package mutating func take() -> String? {
        guard !addresses.isEmpty else { return nil }
        defer { next = (next + 1) % addresses.count }
        return addresses[next]
    }
}

/// How long the submitter waits before it posts a failed batch again.
///
/// A submission that was not included in time (`SubmitFailure.notIncluded`: the DA node timed
/// out waiting for inclusion, evicted the transaction, or never answered) may still sit in the
/// DA network's mempool and land later. ev-node's `da.mempool_ttl` is how many DA blocks such a
/// transaction may stay there: only once they have passed is it treated as dropped and posted
/// again, so that it is not paid for twice. The TTL counts from when the attempt was sent, in DA
/// block times. Every other failure, and any failure with a TTL of 0, waits the ordinary backoff.
package struct ResubmitDelay: Sendable, Equatable {
    package let mempoolTTL: UInt64
    package let daBlockTime: Duration

    package init(mempoolTTL: UInt64, daBlockTime: Duration) {
        self.mempoolTTL = mempoolTTL
        self.daBlockTime = daBlockTime
    }

    /// The TTL as a duration (saturating: a TTL no one could wait out is a very long wait, not a crash).
    package var ttl: Duration {
        let nanos = daBlockTime.nanosecondsClamped.multipliedReportingOverflow(by: mempoolTTL)
        return .nanoseconds(Int64(clamping: nanos.overflow ? UInt64.max : nanos.partialValue))
    }

    /// The wait after `failure`, given the backoff's next delay and how long ago the failed
    /// attempt was sent.
    package func delay(after failure: SubmitFailure, backoff: Duration, sentAgo: Duration) -> Duration {
        guard failure == .notIncluded, mempoolTTL > 0 else { return backoff }
        return max(backoff, ttl - sentAgo)
    }
}
