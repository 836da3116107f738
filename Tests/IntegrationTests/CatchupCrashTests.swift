import Store
import Execution
@testable import Config
import Foundation
import ProcessKit
import Testing
import TestSupport

/// Catch-up commits blocks through RocksDB's write-ahead log, unsynced (issue 18): a crash of
/// the process loses nothing the node had applied. A real `evnode start` full node syncs a
/// chain of `evnode-testkit make-chain` from a real `evnode local-da` and is killed with
/// SIGKILL in the middle of its catch-up, three times. After each kill its RocksDB store,
/// opened again, holds exactly a prefix of the chain: every block up to its height with the
/// reference chain's hash, nothing above, the state and the KV values of that height, at least
/// the height and the finality `/status` reported before the kill. Then the node resumes and
/// ends hash-for-hash and value-for-value with the chain that was made.
@Suite(.serialized, .timeLimit(.minutes(6)))
struct CatchupCrashTests {
    static let blocks: UInt64 = 6_000
    static let txsPerBlock = 10

    @Test func killedDuringCatchUpResumesWithNothingLostOrHalfWritten() async throws {
        try await Testnet.run(chainID: "catchup-crash") { net in
            let chain = try CatchupChain(net)
            let da = try await net.startDA(blockTime: "500ms")
            let referencePath = net.dir.sub("reference-store")
            try Self.makeChain(chain, da: da, store: referencePath)
            let reference = try Reference(path: referencePath)

            // Three kills at a quarter, half and three quarters of the chain.
            var kills: [(reported: UInt64, finalized: UInt64, stored: UInt64)] = []
            for quarter in UInt64(1)...3 {
                let node = try await chain.full.started(["--da.address", da.url])
                let target = Self.blocks * quarter / 4
                var last: StatusDocument?
                try await waitUntil("full node at \(target) before the kill", timeout: .seconds(180), every: .milliseconds(10)) {
                    if !node.isRunning { throw TestFailure("full node exited:\n\(node.output.suffix(4000))") }
                    last = try? await node.status()
                    return (last?.heights.store ?? 0) >= target
                }
                await node.stop(signal: SIGKILL)
                let reported = last?.heights.store ?? 0
                let finalized = last?.heights.finalized ?? 0
                let stored = try Self.checkPrefix(home: chain.full.home, reference: reference,
                                                  atLeastFinalized: finalized, label: "kill \(quarter)")
                kills.append((reported, finalized, stored))
                print("[catchup-crash] kill \(quarter): /status said store \(reported), finalized \(finalized); the store reopened at \(stored)")
            }
            // Every block the node reported applied was in its WAL when it was killed.
            for kill in kills {
                #expect(kill.stored >= kill.reported, "the store reopened below what /status reported: \(kills)")
            }

            let node = try await chain.full.started(["--da.address", da.url])
            try await node.waitForHeight(Self.blocks, timeout: .seconds(180))
            try await waitUntil("full node to finalize the whole chain", timeout: .seconds(60)) {
                try await node.status().heights.finalized >= Self.blocks
            }
            #expect(await node.stop() == 0)
            let stored = try Self.checkPrefix(home: chain.full.home, reference: reference, atLeastFinalized: Self.blocks,
                                              label: "after the resume")
            #expect(stored == Self.blocks)
        }
    }

    // MARK: the chain

    /// `make-chain` into `store` (kept as the reference), posted to `da`.
    static func makeChain(_ chain: CatchupChain, da: LocalDAProcess, store: String) throws {
        // Block n is made at genesis time + n µs: the last one must not be in the future.
        let genesisTime = try chain.sequencer.genesis.startTimeNanoseconds
        while UInt64(Date().timeIntervalSince1970 * 1e9) < genesisTime + blocks * 1_000 + 1_000_000 {
            usleep(10_000)
        }
        let made = try runCommand(BuiltProducts.testkit, [
            "make-chain", "--home", chain.sequencer.home, "--blocks", "\(blocks)", "--txs", "\(txsPerBlock)",
            "--da", da.url, "--interval-us", "1", "--store", store,
            "--passphrase-file", chain.sequencer.passphraseFile ?? ""], timeout: .seconds(300))
        guard made.status == 0 else { throw TestFailure("make-chain failed: \(made.stdout)\(made.stderr)") }
        print("[catchup-crash] \(made.stdout.split(separator: "\n").last ?? "")")
    }

    /// The chain as made: header hashes, state roots and, per height, the KV writes.
    struct Reference {
        var hashes: [[UInt8]] = []
        /// State root after each height (index 0: after height 1).
        var roots: [[UInt8]] = []
        /// (height, key, value) of every `key=value` tx, in order.
        var writes: [(height: UInt64, key: String, value: String)] = []

        init(path: String) throws {
            let store = try BlockStore.open(path: path)
            defer { store.close() }
            let top = store.height
            guard top == CatchupCrashTests.blocks else { throw TestFailure("reference store at \(top)") }
            for h in UInt64(1)...top {
                guard let (signed, data) = try store.block(at: h) else { throw TestFailure("reference lacks \(h)") }
                hashes.append(signed.header.hash)
                if h > 1 { roots.append(signed.header.appHash) }
                for tx in data.txs {
                    let text = String(decoding: tx, as: UTF8.self)
                    guard let eq = text.firstIndex(of: "=") else { continue }
                    writes.append((h, String(text[..<eq]), String(text[text.index(after: eq)...])))
                }
            }
            roots.append(store.state!.appHash)
        }

        /// Each key's value after `height`.
        func values(at height: UInt64) -> [String: String] {
            var out: [String: String] = [:]
            for w in writes where w.height <= height { out[w.key] = w.value }
            return out
        }
    }

    /// Opens the stopped node's store and checks it holds exactly the reference chain's
    /// heights 1…h (h its height) and nothing above, with the state and KV values of h, and a
    /// finalized height ≥ `atLeastFinalized` (finality reported before the kill survives it).
    /// Returns h.
    static func checkPrefix(home: String, reference: Reference, atLeastFinalized: UInt64,
                            label: String) throws -> UInt64 {
        let store = try BlockStore.open(path: HomeLayout(home: home).storeDirectory)
        defer { store.close() }
        let h = store.height
        let state = try #require(store.state, "\(label): no state")
        #expect(h <= blocks, "\(label)")
        #expect(store.finalizedHeight <= h, "\(label): finalized \(store.finalizedHeight) above the store height \(h)")
        #expect(store.finalizedHeight >= atLeastFinalized,
                "\(label): finalized \(store.finalizedHeight), /status had reported \(atLeastFinalized)")
        if h > 0 {
            for height in UInt64(1)...h {
                let (signed, data) = try #require(try store.block(at: height), "\(label): block \(height) missing below \(h)")
                #expect(signed.header.hash == reference.hashes[Int(height) - 1], "\(label): height \(height)")
                #expect(data.metadata?.height == height, "\(label): data at \(height)")
                if height % 997 == 0 || height == h {
                    #expect(try store.height(forHash: signed.header.hash) == height, "\(label): hash index of \(height)")
                }
            }
            #expect(state.lastHeaderHash == reference.hashes[Int(h) - 1], "\(label)")
            #expect(state.appHash == reference.roots[Int(h) - 1], "\(label): state root at \(h)")
        }
        #expect(try store.signedHeader(at: h + 1) == nil, "\(label): a header above the store height")
        #expect(try store.encodedBlockData(at: h + 1) == nil, "\(label): data above the store height")
        let kv = KVExecutor(store: store)
        var mismatches = 0
        for (key, value) in reference.values(at: h) where try kv.value(forKey: key) != Array(value.utf8) {
            mismatches += 1
        }
        #expect(mismatches == 0, "\(label): \(mismatches) KV values differ from the chain's at \(h)")
        return h
    }
}
