import Chain
import Synchronization

/// Why a tx was not queued.
package enum MempoolError: Error, Sendable, Equatable, CustomStringConvertible {
    case emptyTx
    case txTooLarge(size: Int, limit: Int)
    /// The mempool is at its bound; the tx was not queued (try again later).
    case full(txs: Int, bytes: Int)

    package var description: String {
        switch self {
        case .emptyTx: return "empty tx"
        case .txTooLarge(let size, let limit): return "tx of \(size) bytes is over the limit of \(limit)"
        case .full(let txs, let bytes): return "mempool full (\(txs) txs, \(bytes) bytes)"
        }
    }
}

/// A bounded FIFO of pending txs, safe to use from many threads (RPC handlers submit, the block
/// producer takes).
package final class Mempool: Sendable {
    package let maxTxs: Int
    package let maxBytes: Int
    package let maxTxBytes: Int

    private struct Queue {
        var txs: [[UInt8]] = []
        var head = 0
        var bytes = 0
        var count: Int { txs.count - head }
    }

    private let queue = Mutex(Queue())

    package init(maxTxs: Int = 100_000, maxBytes: Int = 64 << 20, maxTxBytes: Int = 1 << 20) {
        self.maxTxs = maxTxs
        self.maxBytes = maxBytes
        self.maxTxBytes = min(maxTxBytes, WireLimits.maxTxBytesPerBlock)
    }

    package func submit(_ tx: [UInt8]) throws(MempoolError) {
        guard !tx.isEmpty else { throw .emptyTx }
        guard tx.count <= maxTxBytes else { throw .txTooLarge(size: tx.count, limit: maxTxBytes) }
        try queue.withLock { (q) throws(MempoolError) in
            guard q.count < maxTxs, q.bytes + tx.count <= maxBytes else {
                throw .full(txs: q.count, bytes: q.bytes)
            }
            q.txs.append(tx)
            q.bytes += tx.count
        }
    }

    /// Removes and returns up to `max` txs totalling at most `maxBytes`, oldest first. A tx that
    /// does not fit stays at the front for the next block.
    package func take(max: Int, maxBytes: Int) -> [[UInt8]] {
        queue.withLock { q in
            var out: [[UInt8]] = []
            var taken = 0
            while out.count < max, q.head < q.txs.count {
                let tx = q.txs[q.head]
                guard taken + tx.count <= maxBytes else { break }
                taken += tx.count
                out.append(tx)
                q.txs[q.head] = []
                q.head += 1
            }
            q.bytes -= taken
            // Compact now and then so the array does not grow without bound.
            if q.head == q.txs.count {
                q.txs.removeAll(keepingCapacity: q.txs.count <= 4096)
                q.head = 0
            } else if q.head > 1024 && q.head * 2 > q.txs.count {
                q.txs.removeFirst(q.head)
                q.head = 0
            }
            return out
        }
    }

    package var count: Int { queue.withLock { $0.count } }
    package var byteCount: Int { queue.withLock { $0.bytes } }
}
