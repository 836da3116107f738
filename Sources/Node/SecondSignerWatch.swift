import Primitives
import Chain
import Synchronization

/// A header validly signed by this chain's proposer key, shown by another source at or above
/// the height this node was to sign next.
package struct SecondSignerSighting: Sendable, Equatable, CustomStringConvertible {
    package var height: UInt64
    package var hash: [UInt8]
    /// Who showed it: the peer, and how (a gossiped block, a head answer).
    package var source: String
    /// The store's height when it was seen (this node was to sign the next one).
    package var storeHeight: UInt64

    package var description: String {
        "a header signed by this chain's proposer key at height \(height) (hash \(Hex.encode(hash))) came from \(source) while this node, at height \(storeHeight), was to sign height \(storeHeight + 1): another process is signing with this key; production stopped (stop the other signer, then restart this node with --catchup-timeout so that it syncs that chain before it signs)"
    }
}

/// While an aggregator outside HA produces, nobody else may sign with its key. Every validly
/// signed header the node is shown — gossiped blocks that arrive while it aggregates, and the
/// proofs behind peers' head answers — goes through `saw`; one above the store, i.e. at or
/// above the height this node signs next, is a second live signer (SPEC §6: never two
/// signatures at one height): the aggregator stops producing and the node exits with status 3.
///
/// No false alarm from this node's own blocks: a block is stored before it leaves the process
/// (mark → store → publish), so anything a peer can show of it is at or below the store by the
/// time it arrives. An HA group is the exception the watch is never armed for: its members
/// share the key by design and etcd's fence, not this watch, keeps them from signing one height
/// twice (a deposed leader sees its successor's blocks above its store and steps down).
///
/// Sightings are kept while the watch is not armed (the highest one): what arrives between the
/// catchup's last check and the start of production is still judged, against the store height
/// at the moment the watch is armed.
final class SecondSignerWatch: Sendable {
    private struct State {
        var armed = false
        /// The highest header seen above the store at the time it was seen.
        var highest: SecondSignerSighting?
        var fired: SecondSignerSighting?
    }

    private let storeHeight: @Sendable () -> UInt64
    /// This node's signing key: only a header of this key above the store is a second signer.
    /// Another key's header is the chain's next proposer after a rotation (ev-node v1.2), which
    /// the producer's own check (`ProductionError.notProposer`) hands production to. Nil: any.
    private let key: [UInt8]?
    private let state = Mutex(State())
    private let alarms: AsyncStream<SecondSignerSighting>
    private let alarm: AsyncStream<SecondSignerSighting>.Continuation

    init(storeHeight: @escaping @Sendable () -> UInt64, key: [UInt8]? = nil) {
        self.storeHeight = storeHeight
        self.key = key
        (alarms, alarm) = AsyncStream.makeStream(of: SecondSignerSighting.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// A header validly signed (the caller verified it) at `height` by `proposer` (nil: by the
    /// proposer key, unnamed).
    func saw(height: UInt64, hash: [UInt8], proposer: [UInt8]? = nil, source: String) {
        if let key, let proposer, proposer != key { return }
        let store = storeHeight()
        guard height > store else { return }
        let sighting = SecondSignerSighting(height: height, hash: hash, source: source, storeHeight: store)
        let fire = state.withLock { s -> Bool in
            if s.highest.map({ height > $0.height }) ?? true { s.highest = sighting }
            guard s.armed, s.fired == nil else { return false }
            s.fired = sighting
            return true
        }
        if fire { alarm.yield(sighting) }
    }

    /// Production starts: from now on a sighting above the store stops it. One kept from
    /// before counts if it is still above the store.
    func arm() {
        let store = storeHeight()
        let fired = state.withLock { s -> SecondSignerSighting? in
            s.armed = true
            guard s.fired == nil, let kept = s.highest, kept.height > store else { return nil }
            s.fired = kept
            return kept
        }
        if let fired { alarm.yield(fired) }
    }

    func disarm() {
        state.withLock { $0.armed = false }
    }

    /// The first sighting while armed, nil if none yet.
    var fired: SecondSignerSighting? { state.withLock { $0.fired } }

    /// Waits for the first sighting while armed; nil when the waiting task is cancelled.
    func nextAlarm() async -> SecondSignerSighting? {
        for await sighting in alarms { return sighting }
        return nil
    }
}
