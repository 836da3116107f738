@testable import Config
import NIOCore
@testable import P2PSync
import Testing

@Suite("P2P height announcements", .serialized)
struct HeightAnnouncementTests {
    @Test("a node whose store grows announces its latest height by itself, a few times a second rather than once per block")
    func storeGrowthIsAnnounced() async throws {
        let chain = try TestChain()
        try chain.build(to: 5)
        let settings = P2PSettings.test
        let b = try await TestNode.start("B", chain: chain, source: chain.source, settings: settings)
        let a = try await TestNode.start("A", chain: chain, peers: [b.port])
        // A raw peer records every status B sends it.
        let raw = try await RawPeer.connect(port: b.port, from: "127.0.0.41")
        _ = try await raw.handshake(chainID: chain.chainID, key: .generate())
        try await waitUntil("A learns B's height 5 at the handshake") { a.service.maxPeerHeight == 5 }
        try await waitUntil("B registered the raw peer") { b.service.peers.count == 2 }

        // The store grows and nobody calls announce(): first in steps, each seen by A…
        let started = ContinuousClock.now
        for step in stride(from: UInt64(50), through: 200, by: 50) {
            try chain.build(to: step)
            try await waitUntil("A sees B's new height \(step)", timeout: .seconds(60)) { a.service.maxPeerHeight == step }
        }
        // …then a fast catch-up of hundreds of blocks in one go.
        try chain.build(to: 600)
        try await waitUntil("A sees B's new height 600", timeout: .seconds(60)) { a.service.maxPeerHeight == 600 }
        try await waitUntil("the raw peer got 600") { Self.statuses(raw).last == 600 }
        let elapsed = ContinuousClock.now - started

        let heights = Self.statuses(raw)
        #expect(heights.first == 5, "the handshake status")
        #expect([50, 100, 150, 200].allSatisfy(heights.contains), "\(heights)")
        #expect(heights == heights.sorted(), "announcements never go back: \(heights)")
        #expect(Set(heights).count == heights.count, "only changes are announced: \(heights)")
        // At most one announcement per interval (the sleeps between checks only ever run long),
        // plus the handshake status and one for a partly elapsed interval.
        let bound = Int(elapsed / settings.heightAnnounceInterval) + 2
        #expect(heights.count <= bound, "\(heights.count) statuses in \(elapsed), interval \(settings.heightAnnounceInterval)")
        #expect(heights.count < 100, "not one message per block: \(heights.count) for 595 blocks")

        // Nothing more is sent while the height stays put.
        try await waitUntil("a quiet interval passes") {
            ContinuousClock.now - started > elapsed + settings.heightAnnounceInterval * 3
        }
        #expect(Self.statuses(raw).count == heights.count)

        await raw.close()
        await a.stop()
        await b.stop()
    }

    @Test("an explicit announce() and the automatic one never reach a peer out of order")
    func explicitAndAutomaticInOrder() async throws {
        let chain = try TestChain()
        try chain.build(to: 1)
        let b = try await TestNode.start("B", chain: chain, source: chain.source)
        let raw = try await RawPeer.connect(port: b.port, from: "127.0.0.42")
        _ = try await raw.handshake(chainID: chain.chainID, key: .generate())
        try await waitUntil("B registered the raw peer") { b.service.peers.count == 1 }
        // The way an aggregator publishes: store the block, then announce it at once, while the
        // automatic announcer polls the same store concurrently.
        for height in UInt64(2)...60 {
            try chain.build(to: height)
            b.service.announce(height: height)
        }
        try await waitUntil("the raw peer got 60") { Self.statuses(raw).last == 60 }
        let heights = Self.statuses(raw)
        #expect(heights == heights.sorted(), "\(heights)")
        await raw.close()
        await b.stop()
    }

    static func statuses(_ raw: RawPeer) -> [UInt64] {
        raw.messages.compactMap { message in
            if case .status(let height, _) = message { return height }
            return nil
        }
    }
}
