import DAClient
import Chain
import Config
import Foundation
import ProcessKit
import Testing
import TestSupport

// Liveness under a flaky DA (issue 14): real `evnode` processes behind `evnode-testkit faulty-da`,
// a proxy that answers a share of `blob.GetAll` with faults, with spam posted into the chain's
// namespace on the real local DA.

/// Blobs anyone can post into a chain's namespace: junk bytes, a header signed by another key,
/// a header naming the proposer with a bad signature, data signed by another key, data naming
/// the proposer with a bad signature (with and without a metadata height).
func spamBlobs(namespace: DANamespace, chainID: String, proposer: Signer, height: UInt64) throws -> [DABlob] {
    let stranger = BlockSigner(keyFile: KeyFile.generate())
    let header = Header(height: height, time: UInt64(Date().timeIntervalSince1970 * 1e9),
                        lastHeaderHash: [UInt8](repeating: 1, count: 32), dataHash: BlockData.dataHash(of: [Array("k=spam".utf8)]),
                        appHash: [UInt8](repeating: 3, count: 32), proposerAddress: proposer.address, chainID: chainID)
    var foreignHeader = header
    foreignHeader.proposerAddress = stranger.address
    let forged = DAHeaderEnvelope(header: header, signature: [UInt8](repeating: 0x5a, count: 64), signer: proposer,
                                  envelopeSignature: [UInt8](repeating: 0x5b, count: 64))
    let data = BlockData(metadata: Metadata(chainID: chainID, height: height, time: header.time, lastDataHash: []),
                         txs: [Array("k=spam".utf8)])
    return [
        DABlob(namespace: namespace, data: Array("junk \(height) ".utf8) + [UInt8](repeating: 0xee, count: 300)),
        DABlob(namespace: namespace, data: try stranger.envelope(for: try stranger.sign(header: foreignHeader)).encoded()),
        DABlob(namespace: namespace, data: forged.encoded()),
        DABlob(namespace: namespace, data: try stranger.sign(data: data).encoded()),
        DABlob(namespace: namespace, data: SignedData(data: data, signature: [UInt8](repeating: 7, count: 64), signer: proposer).encoded()),
        DABlob(namespace: namespace, data: SignedData(data: BlockData(metadata: nil, txs: [Array("k=junk".utf8)]),
                                                      signature: [UInt8](repeating: 8, count: 64), signer: proposer).encoded()),
    ]
}

@Suite(.serialized) struct FaultyDATests {
    /// A full node whose only source is a DA answering 30 % of `blob.GetAll` calls with faults,
    /// with spam in the namespace, ends with the aggregator's chain hash for hash, within a
    /// deadline, and logs the trouble as one episode with summaries — not a line per retry.
    @Test func fullNodeBehindAFaultyDAEndsWithTheAggregatorsChain() async throws {
        try await Testnet.run(chainID: "faulty-da-chain") { net in
            let da = try await net.startDA()
            let aggregator = try net.makeNode(name: "aggregator", aggregator: true, blockTime: "100ms")
            try await aggregator.start()
            let proposer = BlockSigner(keyFile: try aggregator.signerKey()).signer
            let namespace = DANamespace(name: net.chainID + "-headers")
            let client = try CelestiaDAClient(options: DAClientOptions(url: da.url))
            // Spam while the chain grows: a batch every few blocks, each at a DA height of its own.
            var spamPosts = 0
            try await waitUntil("the aggregator to reach height 150 with spam posted beside it", timeout: .seconds(90),
                                every: .milliseconds(400)) {
                let height = try await aggregator.status().heights.store
                _ = try await client.submit(try spamBlobs(namespace: namespace, chainID: net.chainID,
                                                          proposer: proposer, height: height + 1))
                spamPosts += 1
                return height >= 150
            }
            await client.shutdown()
            let proxy = try await net.startFaultyDA(faultRate: 0.3, seed: 14)
            // On failure the proxy's ChildProcess is killed when released.
            let full = try net.makeNode(name: "full", aggregator: false, genesisFrom: aggregator,
                                        extra: ["--da.address", proxy.url])
            let began = ContinuousClock.now
            try await full.start()
            let target = try await aggregator.waitForStatus("blocks 1…150 DA-included", timeout: .seconds(60)) {
                $0.heights.finalized >= 150
            }.heights.finalized
            try await full.waitForStatus("store at \(target) from the faulty DA alone", timeout: .seconds(100)) {
                $0.heights.store >= target
            }
            let took = ContinuousClock.now - began
            try await expectSameChain(aggregator, full, through: target)
            print("faulty-da: the full node reached \(target) in \(took) behind \(proxy.faults.values.reduce(0, +)) faults \(proxy.faults)")

            let faults = proxy.faults
            let faultCount = faults.values.reduce(0, +)
            #expect(faultCount >= 20, "the proxy answered \(faultCount) faults (\(faults)): too few to mean anything")
            let log = full.allLogs.split(separator: "\n")
            let started = log.filter { $0.contains("DA is failing") }.count
            let summaries = log.filter { $0.contains("DA unavailable for") }.count
            let perRetry = log.filter { $0.contains("DA request failed, retrying") || $0.contains("DA unavailable; retrying") }.count
            #expect(started >= 1, "the first fault is reported")
            #expect(perRetry == 0, "no line per retry")
            let allowed = 3 + Int(took.components.seconds / 30) * 2
            #expect(started + summaries <= allowed,
                    "\(started) episode starts and \(summaries) summaries for \(faultCount) faults in \(took): not a line per fault")
            #expect(spamPosts > 5)
            let doc = try await full.statusObject()
            let bad = (doc["da"] as? [String: Any])?["bad_blobs"] as? Int ?? 0
            #expect(bad >= spamPosts, "the spam is counted as bad blobs (\(bad) for \(spamPosts) posts of 6)")
            await proxy.child.stop()
        }
    }

    /// A full node behind a DA that is both slow (every answer 100 ms late) and faulty (20 % of
    /// `blob.GetAll` answered with faults, 429s among them) ends with the aggregator's chain hash
    /// for hash: the adaptive fetch window grows over the latency and shrinks on the faults, and
    /// the per-height retries, hedges and in-order hand-over hold through both.
    @Test func fullNodeBehindASlowAndFaultyDAEndsWithTheAggregatorsChain() async throws {
        try await Testnet.run(chainID: "slow-faulty-da-chain") { net in
            _ = try await net.startDA()
            let aggregator = try net.makeNode(name: "aggregator", aggregator: true, blockTime: "50ms")
            try await aggregator.start()
            let target = try await aggregator.waitForStatus("blocks 1…200 DA-included", timeout: .seconds(90)) {
                $0.heights.finalized >= 200
            }.heights.finalized
            try await net.restartDA(extra: ["--response-delay", "100ms"])
            let proxy = try await net.startFaultyDA(faultRate: 0.2, seed: 18)
            let full = try net.makeNode(name: "full", aggregator: false, genesisFrom: aggregator,
                                        extra: ["--da.address", proxy.url])
            let began = ContinuousClock.now
            try await full.start()
            try await full.waitForStatus("store at \(target) from the slow, faulty DA alone", timeout: .seconds(150)) {
                $0.heights.store >= target
            }
            let took = ContinuousClock.now - began
            try await expectSameChain(aggregator, full, through: target)
            let faults = proxy.faults
            let da = try await full.statusObject()["da"] as? [String: Any]
            let peak = da?["fetch_window_peak"] as? Int ?? 0
            print("slow+faulty DA: the full node reached \(target) in \(took) behind \(faults.values.reduce(0, +)) faults \(faults), fetch window peak \(peak)")
            #expect(faults.values.reduce(0, +) >= 5, "the proxy answered faults (\(faults))")
            #expect(peak >= 1 && peak <= 64, "/status shows the fetch window (\(da ?? [:]))")
            await proxy.child.stop()
        }
    }

    /// A DA node refusing the node's token (HTTP 401): one ERROR line, `/status` names it,
    /// readiness is 503 with the reason; the node keeps retrying, and once the DA node accepts the
    /// token (rotated on its side) it syncs and becomes ready.
    @Test func refusedCredentialsShowInStatusAndReadinessAndAreRetried() async throws {
        try await Testnet.run(chainID: "catchup-auth") { net in
            let chain = try CatchupChain(net)
            let da = try await net.startDA(blockTime: "500ms", extra: ["--auth-token", "old-token"])
            let full = try await chain.full.started(["--da.address", da.url, "--da.auth-token", "new-token",
                                                     "--da.block-time", "300ms"])

            var daStatus: [String: Any] = [:]
            try await waitUntil("/status to name the refused credentials", timeout: .seconds(30)) {
                guard let d = try await full.statusObject()["da"] as? [String: Any] else { return false }
                daStatus = d
                return d["auth_error"] is String
            }
            #expect((daStatus["auth_error"] as? String)?.contains("401") == true, "\(daStatus)")
            let ready = try await full.readiness()
            #expect(ready.status == 503)
            #expect(ready.text.contains("credentials"), "readiness says why: \(ready.text)")

            // Several retries later, still one ERROR line.
            try await waitUntil("the node to retry", timeout: .seconds(30)) {
                let doc = try await full.statusObject()
                return ((doc["da"] as? [String: Any])?["failed_attempts"] as? Int ?? 0) >= 5
            }
            let errors = full.log.filter { $0["level"] == "error" && $0.message.contains("refuses this node's credentials") }
            #expect(errors.count == 1, "said once at error level, got \(errors.count)")
            #expect(full.isRunning)

            // The token is rotated on the DA side: the same node, untouched, syncs and becomes ready.
            // Ready is ev-node's too (a block, and a recent one): the sequencer produces meanwhile.
            try await net.restartDA(blockTime: "500ms", extra: ["--auth-token", "new-token"])
            _ = try await chain.sequencer.started(["--da.address", da.url, "--da.auth-token", "new-token",
                                                   "--da.block-time", "300ms"])
            try await waitUntil("the node to become ready with the rotated token", timeout: .seconds(60)) {
                let r = try await full.readiness()
                return r.status == 200
            }
            let doc = try await full.statusObject()
            #expect((doc["da"] as? [String: Any])?["auth_error"] == nil)
            #expect(await full.stop() == 0)
        }
    }

    // MARK: A DA node that lies or cannot answer one height (issue 27, M4 and its minor)

    /// A DA node whose `header.NetworkHead` says 2^64−1 (a broken node, or a man in the middle on
    /// plain http): the node does not trap (it used to compute `head + 1` on the second fetch);
    /// it names the implausible head as a DA error in `/status`, keeps retrying, and keeps
    /// serving, and once the DA node answers honestly again it syncs.
    @Test func anImplausibleDAHeadIsAnErrorNotACrash() async throws {
        try await Testnet.run(chainID: "lying-da-head") { net in
            _ = try await net.startDA()
            let aggregator = try net.makeNode(name: "aggregator", aggregator: true, blockTime: "100ms")
            try await aggregator.start()
            let target = try await aggregator.waitForStatus("blocks DA-included", timeout: .seconds(60)) {
                $0.heights.finalized >= 10
            }.heights.finalized
            let liar = try await net.startFaultyDA(faultRate: 0, seed: 27, extra: ["--head", "18446744073709551615"])
            let full = try net.makeNode(name: "full", genesisFrom: aggregator, daURL: liar.url)
            try await full.start()
            var lastError = ""
            try await waitUntil("/status to name the implausible head", timeout: .seconds(30)) {
                lastError = try await full.status().da?.last_error ?? ""
                return lastError.contains("implausible")
            }
            #expect(lastError.contains("18446744073709551615"), "\(lastError)")
            try await waitUntil("the node to ask for the head again and again", timeout: .seconds(30)) {
                (liar.faults["head"] ?? 0) >= 3
            }
            #expect(full.isRunning, "\(full.output.suffix(2000))")
            #expect(try await full.status().phase == "syncing")
            await liar.stop()

            // The same node, restarted behind the honest DA, follows to the aggregator's chain.
            #expect(await full.stop() == 0)
            let da = try #require(net.da)
            try await full.start(flags: full.flags.map { $0 == liar.url ? da.url : $0 })
            try await full.waitForStatus("store at \(target) from the honest DA", timeout: .seconds(60)) {
                $0.heights.store >= target
            }
            try await expectSameChain(aggregator, full, through: target)
        }
    }

    /// A DA node that answers every `blob.GetAll` at one DA height with malformed JSON while the
    /// heights around it read fine: the follower cannot go past it (it may hold blocks) and must
    /// say so — an ERROR naming the DA height and the error, repeated while it lasts, and
    /// `da.stalled_*` in `/status` — not retry in silence; once the height reads, the stall ends.
    @Test func aDAHeightThatKeepsFailingIsNamedInStatusAndTheLog() async throws {
        try await Testnet.run(chainID: "stalled-da-height") { net in
            let da = try await net.startDA()
            let aggregator = try net.makeNode(name: "aggregator", aggregator: true, blockTime: "100ms")
            try await aggregator.start()
            let target = try await aggregator.waitForStatus("blocks DA-included", timeout: .seconds(60)) {
                $0.heights.finalized >= 10
            }.heights.finalized
            let stuck: UInt64 = 3
            let proxy = try await net.startFaultyDA(faultRate: 0, seed: 27, extra: ["--fail-height", "\(stuck)"])
            // No peers: DA is its only source, so the stall is visible in the store too.
            let full = try net.makeNode(name: "full", genesisFrom: aggregator, daURL: proxy.url, jsonLogs: true)
            try await full.start()
            let stalled = try await full.waitForStatus("/status to name the stalled DA height", timeout: .seconds(60)) {
                $0.da?.stalled_da_height != nil
            }
            let doc = try #require(stalled.da)
            #expect(doc.stalled_da_height == stuck, "\(stalled.summary)")
            #expect((doc.stalled_attempts ?? 0) >= 5)
            #expect(doc.stalled_error?.contains("DA height \(stuck)") == true, "\(doc.stalled_error ?? "")")
            let errors = full.log.filter { $0["level"] == "error" && $0.message.contains("DA height \(stuck) cannot be read") }
            #expect(errors.count >= 1, "\(full.output.suffix(3000))")
            #expect(full.isRunning)

            // The DA node answers that height again: the stall ends, the node syncs and says so.
            await proxy.stop()
            #expect(await full.stop() == 0)
            try await full.start(flags: full.flags.map { $0 == proxy.url ? da.url : $0 })
            let synced = try await full.waitForStatus("store at \(target) once DA height \(stuck) reads", timeout: .seconds(60)) {
                $0.heights.store >= target
            }
            #expect(synced.da?.stalled_da_height == nil)
            try await expectSameChain(aggregator, full, through: target)
        }
    }
}
