import Chain
import Synchronization

/// What the authoritative source (DA) says each height's block is: the first validly signed
/// header it holds per height — DA order decides between conflicting DA blobs (SPEC §7).
///
/// Shared by the DA follower (which records what it reads), the sync pipeline (which never holds
/// a soft P2P block that contradicts it) and divergence recovery (which walks its links back to
/// the common ancestor). Heights at or below the finalized height are dropped (`forget`), so it
/// holds the unfinalized stretch only; `capacity` bounds it even when finality stalls.
package final class AuthoritativeHeaders: Sendable {
    package struct Entry: Sendable, Equatable {
        package let signedHeader: SignedHeader
        package let hash: [UInt8]
        /// DA height of the header blob.
        package let daHeight: UInt64

        package var lastHeaderHash: [UInt8] { signedHeader.header.lastHeaderHash }
    }

    package enum Outcome: Sendable, Equatable {
        /// The first header for its height: now authoritative.
        case recorded
        /// The same header again (DA re-read, or the same blob twice).
        case alreadyKnown
        /// Another header was first at this height; it stays authoritative.
        case conflicts(first: Entry)
        /// At or below the forgotten (finalized) height: not this ledger's business.
        case final
        /// The ledger is full; nothing was recorded.
        case full
    }

    package let capacity: Int
    private let box: Mutex<Storage>

    private struct Storage {
        var entries: [UInt64: Entry] = [:]
        /// Every entry is above it.
        var floor: UInt64 = 0
    }

    package init(capacity: Int = 200_000) {
        precondition(capacity > 0, "capacity must be positive")
        self.capacity = capacity
        box = Mutex(Storage())
    }

    /// Records `signedHeader` (the caller verified its signatures) seen at `daHeight`.
    package func record(_ signedHeader: SignedHeader, daHeight: UInt64) -> Outcome {
        let height = signedHeader.header.height
        let hash = signedHeader.header.hash
        return box.withLock { s -> Outcome in
            if height <= s.floor { return .final }
            if let first = s.entries[height] {
                return first.hash == hash ? .alreadyKnown : .conflicts(first: first)
            }
            guard s.entries.count < capacity else { return .full }
            s.entries[height] = Entry(signedHeader: signedHeader, hash: hash, daHeight: daHeight)
            return .recorded
        }
    }

    /// Makes `signedHeader` the height's entry in place of the one recorded first: for a header
    /// of the proposer the chain expects replacing one of another key (ev-node's DA
    /// replacement), never between two headers of one key.
    package func replace(_ signedHeader: SignedHeader, daHeight: UInt64) {
        let height = signedHeader.header.height
        box.withLock { s in
            guard height > s.floor else { return }
            s.entries[height] = Entry(signedHeader: signedHeader, hash: signedHeader.header.hash, daHeight: daHeight)
        }
    }

    package func entry(at height: UInt64) -> Entry? {
        box.withLock { $0.entries[height] }
    }

    package func hash(at height: UInt64) -> [UInt8]? {
        box.withLock { $0.entries[height]?.hash }
    }

    package var count: Int { box.withLock { $0.entries.count } }

    /// Drops heights at or below `height` (finalized: never rolled back, never contested).
    package func forget(through height: UInt64) {
        box.withLock { s in
            guard height > s.floor else { return }
            if height - s.floor <= UInt64(s.entries.count) {
                for h in (s.floor + 1)...height { s.entries.removeValue(forKey: h) }
            } else {
                s.entries = s.entries.filter { $0.key > height }
            }
            s.floor = height
        }
    }

    /// The lowest DA height holding a header for a height above `height`: where DA must be read
    /// again to replay the authoritative chain after a rollback to `height`.
    package func lowestDAHeight(above height: UInt64) -> UInt64? {
        box.withLock { s in
            var lowest: UInt64?
            for (h, e) in s.entries where h > height {
                lowest = min(lowest ?? .max, e.daHeight)
            }
            return lowest
        }
    }
}
