import Primitives
import Chain
import Store
import Execution
import Config
import Foundation
import ProcessKit
import Testing
import TestSupport

/// kill -9 in the middle of a stream of commits: the store reopens at the last complete batch,
/// its state root equals a replay of its blocks, and every block reads back.
///
/// The writer is `evnode-testkit crash-writer` (Sources/evnode-testkit), which commits blocks of
/// a fixed test chain in batches of varying size and prints "committed <height>" after each.
@Suite(.serialized) struct StoreCrashTests {
    /// Must match `CrashChain.batchSize` in Sources/evnode-testkit/main.swift.
    static func batchSize(startingAt height: UInt64) -> Int {
        [1, 5, 16, 1, 32, 2][Int(height % 6)]
    }

    static let killDelaysMicroseconds: [UInt32] = [0, 3_000, 11_000, 29_000, 61_000]

    /// Heights at which a batch of the writer ends, for a writer that started at `start`.
    static func batchEnds(from start: UInt64, through limit: UInt64) -> Set<UInt64> {
        var ends: Set<UInt64> = [start]
        var height = start
        while height < limit {
            height += UInt64(batchSize(startingAt: height + 1))
            ends.insert(height)
        }
        return ends
    }

    static func parseGenesis(_ line: String?) throws -> Genesis {
        let parts = (line ?? "").split(separator: " ").map(String.init)
        guard parts.count == 4, parts[0] == "genesis", let start = UInt64(parts[2]), let address = Hex.decode(parts[3]) else {
            throw TestFailure("unexpected first line from the writer: \(line ?? "<eof>")")
        }
        return Genesis(chainID: parts[1], startTimeNanoseconds: start, proposerAddress: address)
    }

    static func parseCommitted(_ line: String?) throws -> UInt64 {
        guard let line, line.hasPrefix("committed "), let height = UInt64(line.dropFirst("committed ".count)) else {
            throw TestFailure("unexpected line from the writer: \(line ?? "<eof>")")
        }
        return height
    }

    @Test func killNineMidStreamLeavesAConsistentStore() throws {
        let dir = TempDirectory("evnode-crash")
        let path = dir.sub("data")
        var start: UInt64 = 0

        for round in 0..<StoreCrashTests.killDelaysMicroseconds.count {
            let child = try ChildProcess(name: "crash-writer-\(round)", executable: BuiltProducts.testkit,
                                         arguments: ["crash-writer", "--store", path], logDirectory: dir.sub("logs"),
                                         separateStderr: true)
            let genesis = try StoreCrashTests.parseGenesis(try child.nextLine())
            var lastPrinted = start
            let target = start + 200
            while lastPrinted < target {
                let height = try StoreCrashTests.parseCommitted(try child.nextLine())
                #expect(height > lastPrinted)
                if round == 0 && lastPrinted == 0 {
                    // While the writer holds the store, another process cannot open it.
                    #expect {
                        try BlockStore.open(path: path)
                    } throws: { error in
                        guard case StoreError.locked(let p, _) = error else { return false }
                        return p == path
                    }
                }
                lastPrinted = height
            }
            // The writer is still committing: kill it wherever it is. The pause varies where
            // that is (building a block, inside a batch write, inside an fsync); it is fault
            // timing, not a wait for a condition.
            usleep(StoreCrashTests.killDelaysMicroseconds[round])
            #expect(child.kill9() == SIGKILL)

            let store = try BlockStore.open(path: path)
            defer { store.close() }
            let height = store.height
            #expect(height >= lastPrinted, "round \(round): reopened at \(height), writer had printed \(lastPrinted)")
            // Batches are atomic: the store ends exactly at the end of some batch.
            #expect(StoreCrashTests.batchEnds(from: start, through: height + 64).contains(height),
                    "round \(round): height \(height) is not the end of a batch")
            try StoreCrashTests.checkAgainstReplay(store, genesis: genesis, round: round, scratch: dir.sub("replay-\(round)"))
            start = height
        }
    }

    /// Applies the crashed store's blocks 1…height to a fresh store through validation and the
    /// executor, and compares: same state (root included), same KV values, every block readable.
    static func checkAgainstReplay(_ store: BlockStore, genesis: Genesis, round: Int, scratch: String) throws {
        let height = store.height
        let replay = try BlockStore.open(path: scratch)
        defer { replay.close() }
        let executor = KVExecutor(store: replay)
        try ChainExecution(store: replay, executor: executor).initialize(genesis: genesis)
        let applier = BlockApplier(store: replay, executor: executor, validator: BlockValidator(genesis: genesis))
        var batch: [(signedHeader: SignedHeader, data: BlockData)] = []
        for h in 1...height {
            let block = try #require(try store.block(at: h), "round \(round): block \(h) of \(height) missing")
            #expect(try store.height(forHash: block.signedHeader.header.hash) == h)
            batch.append(block)
            if batch.count == 64 || h == height {
                let result = try applier.apply(batch, now: BlockValidator.currentTime())
                #expect(result.failure == nil, "round \(round): \(String(describing: result.failure))")
                batch.removeAll()
            }
        }
        #expect(try store.block(at: height + 1) == nil)
        #expect(replay.state == store.state, "round \(round): replayed state differs")
        let crashedKV = KVExecutor(store: store)
        for k in 0..<53 {
            #expect(try crashedKV.value(forKey: "k\(k)") == executor.value(forKey: "k\(k)"))
        }
    }
}
