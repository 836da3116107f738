@testable import Config
import Crypto
import NIOCore
@testable import P2PSync
import Testing

@Suite("P2P bounded state")
struct BoundsTests {
    static func key(_ n: Int) -> HashKey {
        var bytes = [UInt8](repeating: 0, count: 32)
        withUnsafeBytes(of: UInt64(n).bigEndian) { bytes.replaceSubrange(24..<32, with: $0) }
        return HashKey(bytes)!
    }

    @Test("the seen-set never holds more than its capacity and forgets the oldest first")
    func seenSetBound() {
        var seen = SeenSet(capacity: 100)
        for n in 0..<1000 {
            let inserted = seen.insert(Self.key(n))
            #expect(inserted)
            #expect(seen.count <= 100)
        }
        #expect(seen.count == 100)
        #expect(!seen.contains(Self.key(899)))
        #expect(seen.contains(Self.key(900)))
        #expect(seen.contains(Self.key(999)))
        // A repeat is reported and does not evict anything.
        let repeated = seen.insert(Self.key(950))
        #expect(!repeated)
        #expect(seen.contains(Self.key(900)))
    }

    @Test("header hashes must be exactly 32 bytes to enter the seen-set")
    func hashKeyLength() {
        #expect(HashKey([UInt8](repeating: 1, count: 31)) == nil)
        #expect(HashKey([UInt8](repeating: 1, count: 33)) == nil)
        #expect(HashKey([UInt8](repeating: 1, count: 32)) != HashKey([UInt8](repeating: 2, count: 32)))
    }

    @Test("bans expire, and the list stays within its capacity")
    func banList() {
        let now = NIODeadline.now()
        var bans = BanList(capacity: 3)
        bans.ban(.address("10.0.0.1"), until: now + .seconds(10), now: now)
        bans.ban(.address("10.0.0.2"), until: now + .seconds(1), now: now)
        bans.ban(.address("10.0.0.3"), until: now + .seconds(20), now: now)
        bans.ban(.address("10.0.0.4"), until: now + .seconds(30), now: now)
        #expect(bans.entries.count == 3)
        // The entry expiring soonest made room.
        #expect(!bans.isBanned(.address("10.0.0.2"), now: now))
        #expect(bans.isBanned(.address("10.0.0.4"), now: now))
        #expect(bans.isBanned(.address("10.0.0.1"), now: now + .seconds(9)))
        #expect(!bans.isBanned(.address("10.0.0.1"), now: now + .seconds(11)))
    }

    @Test("the token bucket refills at its rate, caps at its capacity and reports its debt")
    func tokenBucket() {
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var bucket = TokenBucket(rate: 100, capacity: 50, now: t0)
        let afterBurst = bucket.take(50, now: t0)
        #expect(afterBurst == 0)
        let inDebt = bucket.take(20, now: t0)
        #expect(inDebt == -20)
        #expect(bucket.timeUntilSolvent == .milliseconds(200))
        // One second later: +100 tokens, capped at 50.
        let refilled = bucket.take(0, now: t0 + .seconds(1))
        #expect(refilled == 50)
    }

    @Test("redial backoff doubles up to its cap and resets")
    func backoff() {
        var backoff = Backoff(initial: .milliseconds(100), maximum: .seconds(1))
        var delays: [Duration] = []
        for _ in 0..<8 { delays.append(backoff.next()) }
        #expect(delays[0] >= .milliseconds(80) && delays[0] <= .milliseconds(120))
        #expect(delays[3] >= .milliseconds(640) && delays[3] <= .milliseconds(960))
        #expect(delays.allSatisfy { $0 <= .milliseconds(1200) })
        backoff.reset()
        let first = backoff.next()
        #expect(first <= .milliseconds(120))
    }

    @Test("a handshake signature binds the key, both nonces and the chain id")
    func handshakeTranscript() {
        let key = KeyFile.generate()
        let mine = HandshakeTranscript.freshNonce()
        let theirs = HandshakeTranscript.freshNonce()
        let signature = HandshakeTranscript.sign(key: key.privateKey, chainID: "c", verifierNonce: theirs, signerNonce: mine)
        #expect(HandshakeTranscript.verify(signature: signature, publicKey: key.publicKey, chainID: "c",
                                           verifierNonce: theirs, signerNonce: mine))
        #expect(!HandshakeTranscript.verify(signature: signature, publicKey: key.publicKey, chainID: "d",
                                            verifierNonce: theirs, signerNonce: mine))
        #expect(!HandshakeTranscript.verify(signature: signature, publicKey: key.publicKey, chainID: "c",
                                            verifierNonce: HandshakeTranscript.freshNonce(), signerNonce: mine))
        #expect(!HandshakeTranscript.verify(signature: signature, publicKey: KeyFile.generate().publicKey,
                                            chainID: "c", verifierNonce: theirs, signerNonce: mine))
        #expect(!HandshakeTranscript.verify(signature: [1, 2, 3], publicKey: key.publicKey, chainID: "c",
                                            verifierNonce: theirs, signerNonce: mine))
    }

    @Test("range responses are cut to the contiguous prefix that fits the peer's frame limit")
    func responseFitting() throws {
        let chain = try TestChain(txBytes: 1000)
        let blocks = try chain.blocks(1...10)
        let firstThree = blocks[0..<3].reduce(0) { $0 + $1.wireSize }
        #expect(P2PService.fitting(blocks, from: 1, count: 10, frameLimit: 1 << 20).count == 10)
        #expect(P2PService.fitting(blocks, from: 1, count: 4, frameLimit: 1 << 20).count == 4)
        #expect(P2PService.fitting(blocks, from: 1, count: 10, frameLimit: 12 + firstThree).count == 3)
        #expect(P2PService.fitting(blocks, from: 1, count: 10, frameLimit: 11 + firstThree).count == 2)
        #expect(P2PService.fitting(blocks, from: 2, count: 10, frameLimit: 1 << 20).isEmpty) // not from height 2
        var gap = blocks
        gap.remove(at: 5)
        #expect(P2PService.fitting(gap, from: 1, count: 10, frameLimit: 1 << 20).count == 5)
    }
}
