import Chain
import Foundation
import TestSupport
import NIOConcurrencyHelpers
@testable import P2PSync

/// What P2P tests read of the shared test chain: its blocks as `P2PBlock`s (built on demand,
/// in order), a validator of signed blocks, and its store served as a node serves its own.
extension TestChain {
    var signedBlockValidator: SignedBlockValidator { SignedBlockValidator(genesis: genesis) }
    var source: StoreBlockSource { StoreBlockSource(store: store) }

    func block(height: UInt64) throws -> P2PBlock {
        try build(to: height)
        let (signed, data) = try store.block(at: height)!
        return P2PBlock(signedHeader: signed, data: data)
    }

    func blocks(_ range: ClosedRange<UInt64>) throws -> [P2PBlock] {
        try range.map { try block(height: $0) }
    }

    /// Block `height` with its signature damaged: a forgery under the proposer's own key.
    func badlySigned(height: UInt64) throws -> P2PBlock {
        try build(to: height)
        var (signed, data) = try store.block(at: height)!
        signed.signature[0] ^= 0xff
        return P2PBlock(signedHeader: signed, data: data)
    }

    /// Block `height` with its header signed by a key that is not the genesis proposer.
    func forged(height: UInt64) throws -> P2PBlock {
        try build(to: height)
        let (signed, data) = try store.block(at: height)!
        let impostor = BlockSigner(keyFile: .generate())
        var header = signed.header
        header.proposerAddress = impostor.address
        let forged = try impostor.sign(header: header)
        return P2PBlock(signedHeader: forged, data: data)
    }
}

/// A `BlockSource` wrapper that records the requests it served (to check the 64-block bound).
final class RecordingSource: BlockSource {
    private let inner: any BlockSource
    private let counts = NIOLockedValueBox<(requests: Int, largest: Int)>((0, 0))

    init(_ inner: any BlockSource) {
        self.inner = inner
    }

    var requests: Int { counts.withLockedValue { $0.requests } }
    var largestRequest: Int { counts.withLockedValue { $0.largest } }

    func currentHeight() -> UInt64 { inner.currentHeight() }

    func blocks(from: UInt64, count: Int) async throws -> [P2PBlock] {
        counts.withLockedValue { c in
            c.requests += 1
            c.largest = max(c.largest, count)
        }
        return try await inner.blocks(from: from, count: count)
    }
}

/// An in-memory `BlockSource` for the store states RocksDB cannot be made to show on demand: a
/// store that fails to read, or one that claims a height whose blocks it does not have.
final class MemoryBlockSource: BlockSource {
    private struct State {
        var blocks: [UInt64: P2PBlock] = [:]
        var height: UInt64 = 0
        var failing = false
        var stalled = false
        var stalledReads = 0
    }

    private let state = NIOLockedValueBox(State())

    init(_ blocks: [P2PBlock] = []) {
        add(blocks)
    }

    func add(_ blocks: [P2PBlock]) {
        state.withLockedValue { s in
            for b in blocks {
                s.blocks[b.height] = b
                s.height = max(s.height, b.height)
            }
        }
    }

    /// Makes `currentHeight` claim `height` regardless of what is held (a store that lost blocks).
    func claim(height: UInt64) {
        state.withLockedValue { $0.height = height }
    }

    /// Makes reads throw, like a failing disk.
    func setFailing(_ failing: Bool) {
        state.withLockedValue { $0.failing = failing }
    }

    /// Makes reads hang until released, like a disk that stopped answering: a peer that never
    /// answers a request.
    func setStalled(_ stalled: Bool) {
        state.withLockedValue { $0.stalled = stalled }
    }

    /// Reads that found the source stalled.
    var stalledReads: Int { state.withLockedValue { $0.stalledReads } }

    func currentHeight() -> UInt64 { state.withLockedValue { $0.height } }

    struct ReadFailure: Error {}

    func blocks(from: UInt64, count: Int) async throws -> [P2PBlock] {
        let stalled = state.withLockedValue { s -> Bool in
            if s.stalled { s.stalledReads += 1 }
            return s.stalled
        }
        while stalled, state.withLockedValue({ $0.stalled }) {
            try await Task.sleep(for: .milliseconds(20))
        }
        return try state.withLockedValue { s in
            if s.failing { throw ReadFailure() }
            var out: [P2PBlock] = []
            var h = from
            while out.count < count, let b = s.blocks[h] {
                out.append(b)
                h += 1
            }
            return out
        }
    }
}
