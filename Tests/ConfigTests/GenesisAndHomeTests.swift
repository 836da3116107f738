import Primitives
import Foundation
import Testing
@testable import Config
import KeyStore

@Suite struct TimestampTests {
    @Test func roundTripsNanoseconds() throws {
        #expect(try RFC3339.unixNanoseconds("2023-11-14T22:13:20.000000000Z") == 1_700_000_000_000_000_000)
        #expect(RFC3339.format(unixNanoseconds: 1_700_000_000_000_000_000) == "2023-11-14T22:13:20.000000000Z")
        #expect(try RFC3339.unixNanoseconds("2023-11-14T22:13:20.5Z") == 1_700_000_000_500_000_000)
        #expect(try RFC3339.unixNanoseconds("2023-11-15T00:13:20+02:00") == 1_700_000_000_000_000_000)
        #expect(try RFC3339.unixNanoseconds("2024-02-29T00:00:00Z") == 1_709_164_800_000_000_000)
        let t: UInt64 = 1_763_900_000_123_456_789
        #expect(try RFC3339.unixNanoseconds(RFC3339.format(unixNanoseconds: t)) == t)
    }

    @Test(arguments: ["", "2023-11-14", "2023-13-01T00:00:00Z", "2023-02-30T00:00:00Z", "2023-11-14T22:13:20",
                      "2023-11-14T25:00:00Z", "2023-11-14T22:13:20.Z", "2023-11-14T22:13:20Zjunk"])
    func rejects(text: String) {
        #expect(throws: RFC3339.Failure.self) { try RFC3339.unixNanoseconds(text) }
    }

    /// Unix nanoseconds in 64 bits end in July 2554; a later time (a DA node's header can carry
    /// any, `Fuzz/regressions/da-answers/head-time-past-2554`) is an error, not an overflow trap.
    @Test func timesPast2554AreErrors() throws {
        #expect(RFC3339.latest == "2554-07-21T23:34:33.709551615Z")
        #expect(try RFC3339.unixNanoseconds(RFC3339.latest) == .max)
        for text in ["2554-07-21T23:34:33.709551616Z", "2554-07-21T23:34:34Z", "4046-11-14T22:13:20.000000001Z",
                     "9999-12-31T23:59:59.999999999Z", "2554-07-22T00:00:00+00:01"] {
            #expect(throws: RFC3339.Failure.self, "\(text)") { try RFC3339.unixNanoseconds(text) }
        }
        #expect(try RFC3339.unixNanoseconds("2554-07-22T00:00:00+01:00") < .max)
    }
}

@Suite struct GenesisTests {
    let proposer = [UInt8](repeating: 7, count: 32)

    @Test func roundTrips() throws {
        let g = Genesis(chainID: "evnode-vectors", startTimeNanoseconds: 1_700_000_000_000_000_000,
                        proposerAddress: proposer, daStartHeight: 12)
        #expect(try Genesis.parse(g.jsonText(), path: "g") == g)
    }

    @Test func acceptsTheSpecExample() throws {
        let text = """
        {"chain_id": "c-1", "start_time": "2023-11-14T22:13:20.000000000Z", "initial_height": 1,
         "proposer_address": "\(Data(proposer).base64EncodedString())", "da_start_height": "5"}
        """
        let g = try Genesis.parse(text, path: "g")
        #expect(g.startTimeNanoseconds == 1_700_000_000_000_000_000 && g.daStartHeight == 5)
    }

    @Test func rejectsBadFields() {
        let good = Data(proposer).base64EncodedString()
        let cases = [
            "not json",
            "[]",
            #"{"start_time": "2023-11-14T22:13:20Z", "proposer_address": "\#(good)"}"#,
            #"{"chain_id": "", "start_time": "2023-11-14T22:13:20Z", "proposer_address": "\#(good)"}"#,
            #"{"chain_id": "c", "start_time": "yesterday", "proposer_address": "\#(good)"}"#,
            #"{"chain_id": "c", "start_time": "2023-11-14T22:13:20Z", "proposer_address": "AAAA"}"#,
            #"{"chain_id": "c", "start_time": "2023-11-14T22:13:20Z", "proposer_address": "\#(good)", "initial_height": 0}"#,
            #"{"chain_id": "c", "start_time": "2023-11-14T22:13:20Z", "proposer_address": "\#(good)", "initial_height": -3}"#,
            #"{"chain_id": "c d", "start_time": "2023-11-14T22:13:20Z", "proposer_address": "\#(good)"}"#,
        ]
        for text in cases {
            #expect(throws: ConfigError.self, "\(text)") { try Genesis.parse(text, path: "g") }
        }
    }
}

@Suite struct HomeTests {
    let aggregatorFlag = ["node.aggregator": RawSetting(value: "true", source: "--evnode.node.aggregator")]

    func tempHome() -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evnode-cfg-\(UUID().uuidString)").path
        return dir
    }

    @Test func initWritesAHomeThatStartCanLoad() throws {
        let home = tempHome()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let r = try HomeInitializer.initialize(home: home, chainID: "chain-a", settings: aggregatorFlag,
                                               startTimeNanoseconds: 1_700_000_000_000_000_000)
        #expect(FileIO.mode(r.layout.signerKeyFile) == 0o600)
        #expect(FileIO.mode(r.layout.nodeKeyFile) == 0o600)
        let setup = try NodeSetup.load(home: home, flags: [:])
        #expect(setup.config.aggregator)
        #expect(setup.genesis.chainID == "chain-a")
        #expect(setup.signer?.address == setup.genesis.proposerAddress)
        #expect(setup.keyPermissionWarnings().isEmpty)
        // refuses to overwrite
        #expect(throws: ConfigError.self) {
            try HomeInitializer.initialize(home: home, chainID: "chain-b", startTimeNanoseconds: 1)
        }
        #expect(try Genesis.load(path: r.layout.genesisFile).chainID == "chain-a")
    }

    @Test func keyFileDetectsDamage() throws {
        let home = tempHome()
        defer { try? FileManager.default.removeItem(atPath: home) }
        try FileIO.makeDirectories(home)
        let key = KeyFile.generate()
        let path = home + "/k.key"
        try key.save(path: path)
        #expect(try KeyFile.load(path: path).publicKey == key.publicKey)
        let other = KeyFile.generate()
        let tampered = key.jsonText().replacingOccurrences(
            of: Data(key.publicKey).base64EncodedString(), with: Data(other.publicKey).base64EncodedString())
        try FileIO.writeAtomically(path, tampered, mode: 0o600)
        #expect(throws: ConfigError.self) { try KeyFile.load(path: path) }
        try FileIO.writeAtomically(path, "{}", mode: 0o600)
        #expect(throws: ConfigError.self) { try KeyFile.load(path: path) }
    }

    @Test func aggregatorNeedsTheGenesisProposerKey() throws {
        let home = tempHome()
        defer { try? FileManager.default.removeItem(atPath: home) }
        let r = try HomeInitializer.initialize(home: home, chainID: "chain-a", startTimeNanoseconds: 1)
        // Replace genesis with another proposer: this signer may no longer produce.
        var g = r.genesis
        g.proposerAddress = [UInt8](repeating: 1, count: 32)
        try FileIO.writeAtomically(r.layout.genesisFile, g.jsonText())
        let flags = ["node.aggregator": RawSetting(value: "true", source: "--aggregator")]
        #expect(throws: ConfigError.self) { try NodeSetup.load(home: home, flags: flags) }
        _ = try NodeSetup.load(home: home, flags: [:])   // a full node does not sign: fine
        #expect(throws: ConfigError.self) { try NodeSetup.load(home: home + "/nope", flags: [:]) }
    }
}

@Suite struct SignerHighWaterMarkTests {
    @Test func recordsAndLoads() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evnode-hwm-\(UUID().uuidString)").path
        try FileIO.makeDirectories(dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let mark = SignerHighWaterMark(path: dir + "/signer.state")
        #expect(try mark.load() == nil)
        try mark.record(41)
        #expect(try mark.load() == 41)
        try mark.record(42)
        #expect(try mark.load() == 42)
        #expect(FileIO.mode(mark.path) == 0o600)
        try FileIO.writeAtomically(mark.path, "{\"last_signed_height\": -1}")
        #expect(throws: ConfigError.self) { try mark.load() }
        try FileIO.writeAtomically(mark.path, "")
        #expect(throws: ConfigError.self) { try mark.load() }
    }

    @Test func keepsTheSignedBlockBesideTheMark() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evnode-hwm-\(UUID().uuidString)").path
        try FileIO.makeDirectories(dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let mark = SignerHighWaterMark(path: dir + "/signer.state")
        let block: [UInt8] = Array(0...255) + [0, 0, 7]
        try mark.record(9, block: block)
        #expect(try mark.loadRecord() == SignerHighWaterMark.Record(height: 9, block: block))
        #expect(try mark.load() == 9)
        // `signer reset` writes the height alone: no block.
        try mark.replace(with: 5)
        #expect(try mark.loadRecord() == SignerHighWaterMark.Record(height: 5, block: nil))
        for damaged in ["{\"last_signed_height\": 9, \"block\": \"not base64!\"}",
                        "{\"last_signed_height\": 9, \"other\": 1}",
                        "{\"last_signed_height\": 9, \"block\": 12}"] {
            try FileIO.writeAtomically(mark.path, damaged)
            #expect(throws: ConfigError.self, "\(damaged)") { try mark.load() }
        }
    }

    /// Records are appended lines; the last is the mark. A torn append (an unterminated last
    /// line after a durable one) is skipped, a damaged line elsewhere fails closed, and the file
    /// is rewritten whole past its size bound or after a torn tail.
    @Test func appendsLinesSkipsATornTailAndFailsClosedOnDamage() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evnode-hwm-\(UUID().uuidString)").path
        try FileIO.makeDirectories(dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let mark = SignerHighWaterMark(path: dir + "/signer.state")
        func text() throws -> String { try FileIO.readString(mark.path) }
        try mark.record(1)
        try mark.record(2, block: [1, 2, 3])
        #expect(try text() == "{\"last_signed_height\": 1}\n{\"last_signed_height\": 2, \"block\": \"AQID\"}\n")
        #expect(try mark.loadRecord() == .init(height: 2, block: [1, 2, 3]))

        // Bounded: past compactionBytes the file holds the newest line alone.
        let block = [UInt8](repeating: 7, count: 5_000)
        for h in UInt64(3)...60 { try mark.record(h, block: block) }
        let size = try FileIO.readBytes(mark.path).count
        #expect(size < SignerHighWaterMark.compactionBytes)
        #expect(try mark.loadRecord() == .init(height: 60, block: block))

        // Torn appends: a prefix of a line, or zeros where the data never reached the disk.
        for torn in ["{\"last_signed_height\": 8", "{\"last_signed_height\": 81, \"block\": \"AQ", "\0\0\0\0"] {
            try FileIO.writeAtomically(mark.path, "{\"last_signed_height\": 7}\n" + torn)
            #expect(try mark.load() == 7, "\(torn.debugDescription)")
            try mark.record(8)
            #expect(try text() == "{\"last_signed_height\": 8}\n", "no append after a torn tail")
        }
        // Written by hand without the final newline: a whole line, not a torn one.
        try FileIO.writeAtomically(mark.path, "{\"last_signed_height\": 12}")
        #expect(try mark.load() == 12)
        try mark.record(13)
        #expect(try mark.load() == 13)
        // An unterminated line with nothing durable before it is damage.
        try FileIO.writeAtomically(mark.path, "{\"last_signed_height\": 1")
        #expect(throws: ConfigError.self) { try mark.load() }
        // A damaged line that is not the last: fail closed, naming it.
        try FileIO.writeAtomically(mark.path, "{\"last_signed_height\": 1}\nxx\n{\"last_signed_height\": 3}\n")
        #expect { try mark.load() } throws: { "\($0)".contains("line 2") }
        // `signer reset` replaces everything with one line.
        try mark.replace(with: 2)
        #expect(try text() == "{\"last_signed_height\": 2}\n")
        #expect(FileIO.mode(mark.path) == 0o600)
    }

    /// Only "no such file" means "no mark": any other failure to look at the file fails closed.
    @Test func aMarkThatCannotBeLookedAtIsAnErrorNotAbsence() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evnode-hwm-\(UUID().uuidString)").path
        try FileIO.makeDirectories(dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // A regular file where the config directory should be: stat fails with ENOTDIR.
        try FileIO.writeAtomically(dir + "/config", "not a directory")
        let mark = SignerHighWaterMark(path: dir + "/config/signer.state")
        #expect(throws: ConfigError.self) { try mark.load() }
        #expect(try SignerHighWaterMark(path: dir + "/absent.state").load() == nil)
    }
}

extension SignerHighWaterMarkTests {
    /// Issue 27: `record` only raises the mark — a lower height or the same height again is
    /// refused with both heights named, and the file keeps its mark; `replace` (signer reset)
    /// is the one way down.
    @Test func recordNeverLowersTheMarkNorRecordsAHeightTwice() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evnode-hwm-\(UUID().uuidString)").path
        try FileIO.makeDirectories(dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let mark = SignerHighWaterMark(path: dir + "/signer.state")
        try mark.record(10, block: [1, 2, 3])
        #expect(throws: ConfigError.markNotRaised(path: mark.path, height: 9, mark: 10)) { try mark.record(9) }
        #expect(throws: ConfigError.markNotRaised(path: mark.path, height: 10, mark: 10)) { try mark.record(10, block: [4]) }
        #expect(try mark.loadRecord() == .init(height: 10, block: [1, 2, 3]))
        let message = ConfigError.markNotRaised(path: mark.path, height: 9, mark: 10).description
        #expect(message.contains("height 9") && message.contains("is 10") && message.contains("never goes down"), "\(message)")
        try mark.record(11)
        #expect(try mark.load() == 11)
        try mark.replace(with: 3)
        try mark.record(4)
        #expect(try mark.load() == 4)
        // A mark that cannot be read refuses every record: what was signed is unknown.
        try FileIO.writeAtomically(mark.path, "{\"last_signed_height\": x}\n")
        #expect(throws: ConfigError.self) { try mark.record(100) }
    }

    /// The mark is read before every block and parsed only when the file's bytes changed: a
    /// change by another writer — even one of the same length — is seen at the next load.
    @Test func aMarkChangedByAnotherWriterIsSeenAtOnce() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evnode-hwm-\(UUID().uuidString)").path
        try FileIO.makeDirectories(dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let producer = SignerHighWaterMark(path: dir + "/signer.state")
        let other = SignerHighWaterMark(path: dir + "/signer.state")
        try producer.record(10)
        #expect(try producer.load() == 10)
        try other.replace(with: 99)
        #expect(try producer.load() == 99)
        #expect(throws: ConfigError.markNotRaised(path: producer.path, height: 11, mark: 99)) { try producer.record(11) }
        try FileIO.writeAtomically(producer.path, "{\"last_signed_height\": 98}\n")
        #expect(try producer.load() == 98)
        try FileManager.default.removeItem(atPath: producer.path)
        #expect(try producer.load() == nil)
        try producer.record(1)
        #expect(try other.load() == 1)
    }

    /// Issue 27: a crafted `signer.state` is an error (or a plain, huge mark), never a trap.
    @Test func craftedStatesAreErrorsNotTraps() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("evnode-hwm-\(UUID().uuidString)").path
        try FileIO.makeDirectories(dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let mark = SignerHighWaterMark(path: dir + "/signer.state")
        for crafted in ["{\"last_signed_height\": 0, \"block\": \"AAAAAA==\"}\n",
                        "{\"last_signed_height\": 18446744073709551616}\n",
                        "{\"last_signed_height\": 1, \"block\": \"\"}\n{\"last_signed_height\": 0, \"block\": \"AQ==\"}\n"] {
            try FileIO.writeAtomically(mark.path, crafted)
            #expect(throws: ConfigError.self, "\(crafted)") { try mark.loadRecord() }
        }
        // The largest height is a valid mark: nothing can be signed above it.
        try FileIO.writeAtomically(mark.path, "{\"last_signed_height\": 18446744073709551615}\n")
        #expect(try mark.load() == UInt64.max)
        #expect(throws: ConfigError.markNotRaised(path: mark.path, height: 5, mark: .max)) { try mark.record(5) }
    }
}
