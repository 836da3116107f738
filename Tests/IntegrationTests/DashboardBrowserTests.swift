import Foundation
import ProcessKit
import Testing
import TestSupport

/// The dashboard in a browser evnode did not write (issue 30): headless Chromium (Debian's
/// `chromium`, from `make deps`) driven over its DevTools pipe by Tests/IntegrationTests/py/
/// dashboard_browser.py, which reads the DOM the page rendered from its event stream. Beside it,
/// `/health/ready` and `/health/live` of the same real processes in each phase they pass through.
@Suite(.serialized) struct DashboardBrowserTests {
    static let chromium = URL(fileURLWithPath: "/usr/bin/chromium")
    static var available: Bool { FileManager.default.isExecutableFile(atPath: chromium.path) }
    static var script: String {
        BuiltProducts.packageRoot.appendingPathComponent("Tests/IntegrationTests/py/dashboard_browser.py").path
    }
    /// Where to copy the screenshot of the catch-up visit (README's is made so:
    /// `EVNODE_DASHBOARD_SCREENSHOT=$PWD/docs/dashboard-catchup.png`).
    static let screenshotCopy = ProcessInfo.processInfo.environment["EVNODE_DASHBOARD_SCREENSHOT"]

    struct Visit: Decodable {
        struct Read: Decodable {
            let phase: String
            let store: String
            let reason: String
            let catchup: String
            let catchup_bar: String
            let conn: String
        }
        let visit: Int
        let expect: String
        let reads: [Read]
        let screenshot: String
    }

    /// The browser's report of visit `number`, once it printed it.
    static func visit(_ number: Int, of browser: ChildProcess, timeout: Duration) async throws -> Visit {
        var found: Visit?
        try await waitUntil("the browser's visit \(number)", timeout: timeout, every: .milliseconds(200)) {
            found = browser.lines.filter { $0.hasPrefix("{\"visit\": \(number),") }
                .compactMap { try? JSONDecoder().decode(Visit.self, from: Data($0.utf8)) }.first
            if found == nil, !browser.isRunning {
                throw TestFailure("the browser script ended (status \(browser.terminationStatus)): \(browser.output.suffix(2000))")
            }
            return found != nil
        }
        return found!
    }

    static func live(_ node: NodeProcess) async throws -> (Int, String) {
        let r = try await HTTP.get(node.rpc + "/health/live")
        return (r.status, r.text)
    }

    /// A sequencer that lost its disk catches up from a slow DA, then produces. Chromium loads
    /// the dashboard during the catch-up and again while aggregating, and reads the phase and a
    /// store height that moves; `/health/ready` says "catching up", then READY. Then a full node
    /// without peers follows from DA (READY) until DA goes away (503 naming DA).
    @Test(.timeLimit(.minutes(5)), .enabled(if: available, "make deps installs Debian's chromium"))
    func chromiumSeesCatchupThenProductionAndHealthFollowsEachPhase() async throws {
        try await Testnet.run(chainID: "dashboard-chain") { net in
            let chain = try CatchupChain(net)
            let da = try await net.startDA(blockTime: "500ms")
            let original = try await CatchupTests.makeHistoryThenLoseTheDisk(chain, da: da, count: 40, daBlockTime: "100ms")
            let n = UInt64(original.count)
            // Every DA answer takes 300 ms and the node reads one DA height at a time: a catch-up
            // long enough for a browser to start and watch it.
            try await net.restartDA(blockTime: "500ms", extra: ["--response-delay", "300ms"])
            let node = try await chain.sequencer.started(CatchupTests.recovering(da.url, ["--da.fetch-parallelism", "1"]))
            let browserDir = net.dir.sub("browser")
            try FileManager.default.createDirectory(atPath: browserDir, withIntermediateDirectories: true)
            let browser = try net.startProcess(name: "dashboard-browser", executable: URL(fileURLWithPath: "/usr/bin/python3"),
                                               arguments: ["-u", Self.script, "--chromium", Self.chromium.path, "--url", node.rpc + "/",
                                                           "--visit", "syncing", "--visit", "aggregating", "--dir", browserDir,
                                                           "--timeout", "90"])

            // Syncing: an answer read between two statuses that both say "catching up".
            var catchingUp: (ready: (Int, String), live: (Int, String))?
            try await waitUntil("health read while the node catches up", timeout: .seconds(90), every: .milliseconds(100)) {
                let before = try await node.status()
                guard before.phase == "syncing", before.catchup.active, before.heights.store > 0 else { return false }
                let ready = try await node.readiness()
                let live = try await Self.live(node)
                let after = try await node.status()
                guard after.phase == "syncing", after.catchup.active else { return false }
                catchingUp = (ready, live)
                return true
            }
            let syncing = try #require(catchingUp)
            #expect(syncing.ready.0 == 503 && syncing.ready.1.hasPrefix("UNREADY: catching up (height "), "\(syncing.ready)")
            #expect(syncing.live == (200, "OK\n"), "\(syncing.live)")

            let duringCatchup = try await Self.visit(1, of: browser, timeout: .seconds(120))
            print("[browser] catch-up: \(duringCatchup.reads.map { "\($0.phase) \($0.store) (\($0.catchup))" })")
            #expect(duringCatchup.reads.map(\.phase) == ["syncing", "syncing"])
            let first = UInt64(duringCatchup.reads[0].store) ?? 0, second = UInt64(duringCatchup.reads[1].store) ?? 0
            // The first read may come before the first block (0): the page loaded early.
            #expect(second > first && second <= n, "store heights read: \(first), \(second)")
            // The progress bar and its words: "h of target (x%)".
            #expect(duringCatchup.reads[1].catchup.hasPrefix("\(second) of "), "\(duringCatchup.reads[1].catchup)")
            #expect(duringCatchup.reads[1].conn == "live")
            if let copy = Self.screenshotCopy {
                try? FileManager.default.removeItem(atPath: copy)
                try FileManager.default.copyItem(atPath: duringCatchup.screenshot, toPath: copy)
            }

            // Aggregating: READY (a block within 5 × block time), live.
            try await node.waitForPhase("aggregating")
            try await waitUntil("the aggregator READY", timeout: .seconds(30)) { try await node.readiness() == (200, "READY\n") }
            #expect(try await Self.live(node) == (200, "OK\n"))
            let producing = try await Self.visit(2, of: browser, timeout: .seconds(120))
            print("[browser] aggregating: \(producing.reads.map { "\($0.phase) \($0.store)" })")
            #expect(producing.reads.map(\.phase) == ["aggregating", "aggregating"])
            let third = UInt64(producing.reads[0].store) ?? 0, fourth = UInt64(producing.reads[1].store) ?? 0
            #expect(third >= n && fourth > third, "store heights read: \(third), \(fourth)")
            #expect(producing.reads[1].catchup == "caught up; producing" && producing.reads[1].catchup_bar == "100%")
            #expect(try await browser.waitForExit("the browser script to end", timeout: .seconds(30)) == 0,
                    "\(browser.output.suffix(2000))")
            for png in [duringCatchup.screenshot, producing.screenshot] {
                let bytes = try Data(contentsOf: URL(fileURLWithPath: png))
                #expect(bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) && bytes.count > 5_000, "\(png): \(bytes.count) bytes")
            }

            // A full node without peers: DA is its only source. Caught up, READY; DA gone, 503
            // naming the DA (after ev-node's window, 5 s here), and still live.
            try await net.restartDA(blockTime: "500ms")
            let full = try await chain.full.started(["--da.address", da.url, "--da.block-time", "500ms",
                                                     "--evnode.node.readiness_window_seconds", "5"])
            try await full.waitForStatus("the full node past the history") { $0.heights.store > n }
            try await waitUntil("the full node READY", timeout: .seconds(30)) { try await full.readiness() == (200, "READY\n") }
            #expect(try await Self.live(full) == (200, "OK\n"))
            await net.stopDA()
            var cutOff = (0, "")
            try await waitUntil("the full node UNREADY without DA", timeout: .seconds(30), every: .milliseconds(200)) {
                cutOff = try await full.readiness()
                return cutOff.0 == 503
            }
            #expect(cutOff.1.hasPrefix("UNREADY: node not executing blocks; DA unavailable for "), "\(cutOff.1)")
            #expect(cutOff.1.contains(" s and no peers: "), "\(cutOff.1)")
            #expect(try await Self.live(full) == (200, "OK\n"))
        }
    }
}
