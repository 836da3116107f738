import Foundation
import FuzzTargets
import Testing
import TestSupport

/// Every committed fuzz input replayed through the same entry point libFuzzer calls
/// (`evnode-fuzz replay`, a process per run so that a crash fails the test instead of the test
/// runner): each target's seed corpus (`Fuzz/corpus/<target>`) and every input a fuzzing run
/// turned up (`Fuzz/regressions/<target>`), which must neither crash nor break a property.
@Suite struct FuzzReplayTests {
    /// Findings known and being fixed elsewhere, by target (`Fuzz/known-issues`): a regression
    /// input that reports one is expected to fail, recorded as a known issue. When the fix lands
    /// the replay passes, the known issue is not recorded and the test fails until the line is
    /// removed.
    static let knownIssues: [String: [String: String]] = {
        let text = (try? String(contentsOf: root.appendingPathComponent("known-issues"), encoding: .utf8)) ?? ""
        var known: [String: [String: String]] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let fields = line.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
            guard fields.count == 3 else { continue }
            known[String(fields[0]), default: [:]][String(fields[1])] = String(fields[2]).trimmingCharacters(in: .whitespaces)
        }
        return known
    }()

    static let root = BuiltProducts.packageRoot.appendingPathComponent("Fuzz")
    static var driver: URL { BuiltProducts.binDirectory.appendingPathComponent("evnode-fuzz") }

    static func files(_ folder: URL) -> [URL] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { folder.appendingPathComponent($0) }
    }

    static func replay(_ target: String, _ paths: [URL]) throws -> CommandResult {
        try runCommand(driver, ["replay", target] + paths.map(\.path), timeout: .seconds(120))
    }

    static func describe(_ r: CommandResult) -> String {
        let lastInput = r.stdout.split(separator: "\n").last { $0.hasPrefix("replay ") } ?? "(none)"
        return "exit status \(r.status); last input: \(lastInput)\n\(r.stdout.suffix(2000))\n\(r.stderr.suffix(2000))"
    }

    @Test func everyTargetHasASeedCorpus() {
        for target in FuzzTargets.all {
            #expect(!Self.files(Self.root.appendingPathComponent("corpus/\(target.name)")).isEmpty,
                    "no seeds for \(target.name) in Fuzz/corpus/\(target.name)")
        }
        // Every folder belongs to a target (a renamed target leaves none behind).
        let names = Set(FuzzTargets.all.map(\.name))
        for kind in ["corpus", "regressions"] {
            for folder in Self.files(Self.root.appendingPathComponent(kind)) {
                #expect(names.contains(folder.lastPathComponent), "Fuzz/\(kind)/\(folder.lastPathComponent) is no target's")
            }
        }
        for target in Self.knownIssues.keys {
            #expect(names.contains(target), "Fuzz/known-issues names \(target), no target's")
        }
        for dictionary in Self.files(Self.root.appendingPathComponent("dictionaries")) {
            let name = dictionary.deletingPathExtension().lastPathComponent
            #expect(dictionary.pathExtension == "dict" && names.contains(name), "Fuzz/dictionaries/\(name) is no target's")
        }
    }

    @Test(arguments: FuzzTargets.all.map(\.name))
    func seedCorpusReplays(_ target: String) throws {
        let seeds = Self.files(Self.root.appendingPathComponent("corpus/\(target)"))
        try #require(!seeds.isEmpty)
        let result = try Self.replay(target, seeds)
        #expect(result.status == 0, "\(Self.describe(result))")
    }

    /// What chosen seeds must reach, so that fuzzing starts from inputs that get past the first
    /// checks: a harness or seed that stopped short (a signature no longer valid, a stream
    /// answered on the wrong network) would fuzz only the outer layer, silently.
    static let depth: [(seed: String, reached: [String: Int])] = [
        ("multistream/listener-tls-then-noise", ["selected": 1, "failed": 0]),
        ("noise-handshake/payload-valid", ["verified": 38, "failed": 0]),
        ("noise-transport/negotiate-and-session", ["negotiated": 1, "streams": 1, "delivered": 5]),
        ("yamux/listener-large-frame", ["streams": 1, "delivered": 131_200, "failed": 0]),
        ("gossip/stream-subscribe-and-blocks", ["headersAccepted": 3, "delivered": 3, "banned": 0]),
        ("gossip/resigned-blocks", ["headersAccepted": 3, "delivered": 3, "banned": 0]),
        ("gossip/resigned-duplicate", ["headersAccepted": 1, "penalty": 1, "banned": 0]),
        ("header-ex-server/range", ["responses": 12, "ok": 12, "reset": 0]),
        ("header-ex-server/over-limit", ["responses": 0, "reset": 1]),
        ("header-ex-client/head", ["proven": 12, "banned": 0, "failed": 0]),
        ("header-ex-client/head-not-found", ["proven": 0, "banned": 0, "failed": 0]),
        ("header-ex-client/range-4", ["headers": 4, "data": 4, "accepted": 4, "rejected": 0]),
        ("wire/signed-header-1", ["decoded": 3]),
        ("da-answers/walk", ["head": 1, "heights": 3, "headers": 3, "data": 2, "rejected": 0, "headReached": 1]),
        ("da-answers/subscription", ["heights": 2, "ended": 1]),
        ("engine-answers/payload", ["usable": 1]),
        ("signer-state/mark-with-block", ["parsed": 1, "keptBlock": 1]),
        ("evm-transaction/dynamic-fee", ["decoded": 1]),
        ("evm-transaction/set-code", ["decoded": 1]),
        ("evm-transaction/cut-short", ["decoded": 0]),
    ]

    @Test(arguments: depth.map(\.seed))
    func seedReachesWhatItIsFor(_ seed: String) throws {
        let expected = try #require(Self.depth.first { $0.seed == seed }?.reached)
        let target = String(seed.split(separator: "/")[0])
        let result = try Self.replay(target, [Self.root.appendingPathComponent("corpus/\(seed)")])
        try #require(result.status == 0, "\(Self.describe(result))")
        let line = try #require(result.stdout.split(separator: "\n").first { $0.hasPrefix("  reached ") })
        var reached: [String: Int] = [:]
        for pair in line.dropFirst("  reached ".count).split(separator: " ") {
            let kv = pair.split(separator: "=")
            if kv.count == 2, let v = Int(kv[1]) { reached[String(kv[0])] = v }
        }
        for (key, value) in expected {
            #expect(reached[key] == value, "\(seed): \(key) is \(reached[key].map(String.init) ?? "missing"), expected \(value)")
        }
    }

    @Test(arguments: FuzzTargets.all.map(\.name))
    func regressionsReplay(_ target: String) throws {
        let known = Self.knownIssues[target] ?? [:]
        var knownSeen: Set<String> = []
        for input in Self.files(Self.root.appendingPathComponent("regressions/\(target)")) {
            let key = "\(target)/\(input.lastPathComponent)"
            let result = try Self.replay(target, [input])
            // "FINDING <file>: [<id>] <what>"
            let reported = result.stdout.split(separator: "\n").compactMap { line -> String? in
                guard line.hasPrefix("FINDING "), let open = line.firstIndex(of: "["),
                      let close = line[open...].firstIndex(of: "]") else { return nil }
                return String(line[line.index(after: open)..<close])
            }
            if let id = reported.first(where: { known[$0] != nil }) {
                knownSeen.insert(id)
                withKnownIssue(Comment(rawValue: "\(id): \(known[id]!)")) {
                    #expect(result.status == 0, "\(key): \(Self.describe(result))")
                }
            } else {
                #expect(result.status == 0, "\(key): \(Self.describe(result))")
            }
        }
        // A known finding that no regression input reports any more is fixed (or has no input):
        // its line goes.
        for (id, what) in known where !knownSeen.contains(id) {
            Issue.record("Fuzz/known-issues lists \(target) \(id) (\(what)), but no regression input reports it")
        }
    }
}
