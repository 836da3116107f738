import Synchronization

/// A monotonically increasing count. One relaxed atomic add per event: cheap enough for the
/// sync pipeline's apply loop and the P2P read path.
package final class CounterCell: Sendable {
    private let count = Atomic<UInt64>(0)

    package init() {}

    package func add(_ n: UInt64 = 1) {
        count.wrappingAdd(n, ordering: .relaxed)
    }

    package func add(_ n: Int) {
        if n > 0 { add(UInt64(n)) }
    }

    package var value: UInt64 { count.load(ordering: .relaxed) }
}

/// A value that goes up and down, stored as the bits of a Double.
package final class GaugeCell: Sendable {
    private let bits = Atomic<UInt64>(Double(0).bitPattern)

    package init() {}

    package func set(_ value: Double) {
        bits.store(value.bitPattern, ordering: .relaxed)
    }

    package func set(_ value: UInt64) { set(Double(value)) }
    package func set(_ value: Int) { set(Double(value)) }

    package var value: Double { Double(bitPattern: bits.load(ordering: .relaxed)) }
}

/// A Prometheus histogram with fixed upper bounds. Each observation is two relaxed atomic adds
/// and a compare-exchange loop on the sum: no lock, so observing from a hot path never waits.
/// A scrape reads the cells one by one, so it may see an observation in `count` before its
/// bucket; Prometheus tolerates that (the next scrape is consistent again).
package final class HistogramCell: Sendable {
    package let upperBounds: [Double]
    /// Observations per bucket, not cumulative (the last one is +Inf).
    private let buckets: [CounterCell]
    private let total = CounterCell()
    private let sumBits = Atomic<UInt64>(Double(0).bitPattern)

    package init(upperBounds: [Double]) {
        self.upperBounds = upperBounds.sorted()
        buckets = (0...upperBounds.count).map { _ in CounterCell() }
    }

    package func observe(_ value: Double) {
        let index = upperBounds.firstIndex { value <= $0 } ?? upperBounds.count
        buckets[index].add(1)
        total.add(1)
        var current = sumBits.load(ordering: .relaxed)
        while true {
            let next = (Double(bitPattern: current) + value).bitPattern
            let (exchanged, original) = sumBits.compareExchange(expected: current, desired: next, ordering: .relaxed)
            if exchanged { return }
            current = original
        }
    }

    package func observe(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        observe(Double(seconds) + Double(attoseconds) / 1e18)
    }

    package var count: UInt64 { total.value }
    package var sum: Double { Double(bitPattern: sumBits.load(ordering: .relaxed)) }

    /// Cumulative counts per upper bound, then the +Inf bucket.
    package var cumulativeCounts: [UInt64] {
        var running: UInt64 = 0
        return buckets.map { cell in
            running &+= cell.value
            return running
        }
    }
}

/// Cells of one metric keyed by the values of its variable labels (e.g. `peer_id`). The values
/// may come from strangers (peer ids), so the family holds at most `capacity` series; values
/// beyond that share one series labelled `overflowValue`. The lock is taken when a series is
/// looked up (a new connection, say), never per event: callers keep the cell.
package final class LabeledCells<Cell: Sendable>: Sendable {
    package let labelNames: [String]
    package let capacity: Int
    package let overflowValue: String
    private let make: @Sendable () -> Cell
    private let cells = Mutex<[(values: [String], cell: Cell)]>([])

    package init(labelNames: [String], capacity: Int, overflowValue: String = "other",
                make: @escaping @Sendable () -> Cell) {
        self.labelNames = labelNames
        self.capacity = max(1, capacity)
        self.overflowValue = overflowValue
        self.make = make
    }

    /// The cell for these label values (one per label name), made on first use.
    package func cell(_ values: [String]) -> Cell {
        precondition(values.count == labelNames.count, "one value per label")
        return cells.withLock { list in
            if let found = list.first(where: { $0.values == values }) { return found.cell }
            let key = list.count < capacity ? values : values.map { _ in overflowValue }
            if let found = list.first(where: { $0.values == key }) { return found.cell }
            let cell = make()
            list.append((key, cell))
            return cell
        }
    }

    /// Forgets the series with these values (e.g. a gauge of a peer that left).
    package func remove(_ values: [String]) {
        cells.withLock { $0.removeAll { $0.values == values } }
    }

    package var all: [(values: [String], cell: Cell)] { cells.withLock { $0 } }
}
