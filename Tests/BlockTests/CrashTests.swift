import Block
import Config
import Foundation
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
        try replay.initialize(genesis: genesis, executor: executor)
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

/// kill -9 while blocks are committed as a catch-up commits them (`.deferred`: no WAL, on disk
/// at checkpoints), with a synced finality write every fourth batch and unsynced bookkeeping
/// after every batch. The store reopens at the end of some batch at or above the last finality
/// written (a synced write first makes every deferred block before it durable), finality never
/// above the blocks, the bookkeeping never ahead of the blocks, and the blocks replay to the
/// same state. Kills land at several delays and checkpoint intervals.
/// Nested in `StoreCrashTests`, whose `.serialized` keeps the two writers from running at the
/// same time (both fsync hard; the producer tests running beside them keep a block time).
extension StoreCrashTests {
@Suite struct DeferredDurabilityCrashTests {
    @Test func killNineDuringDeferredCommitsLeavesAPrefixOfTheWrites() throws {
        let dir = TempDirectory("evnode-crash-deferred")
        let path = dir.sub("data")
        var start: UInt64 = 0
        for (round, delay) in StoreCrashTests.killDelaysMicroseconds.enumerated() {
            let checkpointMs = [50, 1_000, 60_000][round % 3]
            let child = try ChildProcess(name: "deferred-writer-\(round)", executable: BuiltProducts.testkit,
                                         arguments: ["crash-writer", "--store", path, "--deferred",
                                                     "--checkpoint-ms", "\(checkpointMs)"],
                                         logDirectory: dir.sub("logs"), separateStderr: true)
            let genesis = try StoreCrashTests.parseGenesis(try child.nextLine())
            var applied = start
            var finalized: UInt64 = 0
            while applied < start + 200 {
                let line = try #require(try child.nextLine(), "round \(round): the writer ended")
                if line.hasPrefix("finalized "), let f = UInt64(line.dropFirst("finalized ".count)) {
                    finalized = f
                } else if line.hasPrefix("applied "), let h = UInt64(line.dropFirst("applied ".count)) {
                    #expect(h > applied)
                    applied = h
                } else {
                    Issue.record("round \(round): unexpected line \(line)")
                    break
                }
            }
            // Fault timing, not a wait: where the kill lands varies with the pause.
            usleep(delay)
            #expect(child.kill9() == SIGKILL)

            let store = try BlockStore.open(path: path)
            defer { store.close() }
            let height = store.height
            #expect(height >= finalized, "round \(round): reopened at \(height), finality \(finalized) had been synced")
            #expect(store.finalizedHeight >= finalized && store.finalizedHeight <= height,
                    "round \(round): finalized \(store.finalizedHeight), synced \(finalized), height \(height)")
            #expect(StoreCrashTests.batchEnds(from: start, through: height + 64).contains(height),
                    "round \(round): height \(height) is not the end of a batch")
            let mark = try store.metadata("crash-writer").flatMap { UInt64(String(decoding: $0, as: UTF8.self)) } ?? 0
            #expect(mark <= height, "round \(round): bookkeeping at \(mark) survived blocks lost above \(height)")
            try StoreCrashTests.checkAgainstReplay(store, genesis: genesis, round: round, scratch: dir.sub("replay-\(round)"))
            start = height
        }
    }

    /// A store left by the logged write path (every commit in the WAL, as the stores of earlier
    /// builds are; killed -9 so its WAL must be replayed) takes deferred commits from a writer
    /// that then stops after deferred batches it did not finalize (no checkpoint for a minute):
    /// kill -9 loses exactly those batches, and the store reopens at its last finality.
    @Test func killNineLosesExactlyTheDeferredBlocksSinceTheLastCheckpoint() throws {
        let dir = TempDirectory("evnode-crash-deferred-pause")
        let path = dir.sub("data")
        let logged = try ChildProcess(name: "logged-writer", executable: BuiltProducts.testkit,
                                      arguments: ["crash-writer", "--store", path], logDirectory: dir.sub("logs"),
                                      separateStderr: true)
        _ = try StoreCrashTests.parseGenesis(try logged.nextLine())
        var start: UInt64 = 0
        while start < 100 { start = try StoreCrashTests.parseCommitted(try logged.nextLine()) }
        #expect(logged.kill9() == SIGKILL)
        let child = try ChildProcess(name: "deferred-writer", executable: BuiltProducts.testkit,
                                     arguments: ["crash-writer", "--store", path, "--deferred", "--checkpoint-ms", "60000",
                                                 "--pause-after", "\(start + 200)"],
                                     logDirectory: dir.sub("logs"), separateStderr: true)
        let genesis = try StoreCrashTests.parseGenesis(try child.nextLine())
        var finalized: UInt64 = 0
        var paused: UInt64 = 0
        while paused == 0 {
            let line = try #require(try child.nextLine(), "the writer ended")
            if line.hasPrefix("finalized ") { finalized = UInt64(line.dropFirst("finalized ".count)) ?? 0 }
            if line.hasPrefix("paused ") { paused = UInt64(line.dropFirst("paused ".count)) ?? 0 }
        }
        #expect(child.kill9() == SIGKILL)
        let store = try BlockStore.open(path: path)
        defer { store.close() }
        #expect(finalized > start && paused > finalized)
        #expect(store.height == finalized, "reopened at \(store.height): last finality \(finalized), applied \(paused)")
        #expect(store.finalizedHeight == finalized)
        let mark = try store.metadata("crash-writer").flatMap { UInt64(String(decoding: $0, as: UTF8.self)) } ?? 0
        #expect(mark == finalized, "bookkeeping written after the last checkpoint survived: \(mark)")
        try StoreCrashTests.checkAgainstReplay(store, genesis: genesis, round: 0, scratch: dir.sub("replay"))
    }
}
}
