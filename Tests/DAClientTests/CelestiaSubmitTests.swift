import DAClient
import Submission
import Config
import Foundation
import Logging
import ProcessKit
import Synchronization
import Testing
import TestSupport

/// The submission options and the subscription against a real `evnode local-da` process.
@Suite struct CelestiaSubmitTests {
    let headers = namespace("s-headers")

    @Test func minGasPriceRefusesWithCelestiaNodesTextAndAcceptsEnough() async throws {
        try await withLocalDA(arguments: ["--block-time", "1h", "--min-gas-price", "0.004"]) { _, client, _ in
            let blob = [DABlob(namespace: headers, data: bytes("fee"))]
            do throws(DAError) {
                _ = try await client.submit(blob, options: DATxConfig(gasPrice: 0.002))
                Issue.record("a gas price below the minimum was accepted")
            } catch {
                #expect(error.description.contains("insufficient fees; got:"))
                #expect(SubmitFailure.classify(error) == .feeTooLow(estimatedPrice: nil))
            }
            let height = try await client.submit(blob, options: DATxConfig(gasPrice: 0.004))
            #expect(try await client.getAll(height: height, namespaces: [headers]).map(\.data) == [bytes("fee")])
            // No price: the DA node estimates (the local DA at its minimum).
            _ = try await client.submit(blob, options: DATxConfig())
        }
    }

    /// Options as other clients write them: celestia-node's default gas price -1 ("not set")
    /// means estimate; a gas limit near 2^64 is refused by the fee rule, not by a crash.
    @Test func negativeGasPriceMeansEstimateAndHugeNumbersDoNotCrashTheDA() async throws {
        try await withLocalDA(arguments: ["--block-time", "1h", "--min-gas-price", "50"]) { da, client, _ in
            func submit(_ options: String) throws -> [String: Any] {
                let body = "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"blob.Submit\",\"params\":[[{\"namespace\":\"\(headers.base64)\","
                    + "\"data\":\"aGk=\",\"share_version\":0}],\(options)]}"
                let r = try runCurl(["-X", "POST", "--data-binary", body, da.url])
                return try #require(try JSONSerialization.jsonObject(with: Data(r.output.utf8)) as? [String: Any], "\(r.output)")
            }
            #expect(try submit("{\"gas_price\":-1}")["result"] is Int)
            #expect(try submit("{\"gas_price\":-1,\"is_gas_price_set\":true}")["result"] is Int)
            let huge = try submit("{\"gas_price\":0.5,\"gas\":18446744073709551615}")
            let message = (huge["error"] as? [String: Any])?["message"] as? String ?? ""
            #expect(message.contains("insufficient fees; got:"), "\(huge)")
            #expect(try submit("{\"gas_price\":1e300,\"gas\":18446744073709551615}")["result"] is Int)
            #expect(try await client.networkHead().height >= 3, "the DA still serves")
        }
    }

    @Test func subscriptionNotifiesEveryNewHeight() async throws {
        try await withLocalDA(arguments: ["--block-time", "1h"]) { da, client, _ in
            let seen = Mutex<[UInt64]>([])
            let sub = DAHeadSubscription(options: .init(url: da.url, namespace: headers),
                                         logger: Logger(label: "test")) { h in seen.withLock { $0.append(h) } }
            let task = Task { await sub.run() }
            defer { task.cancel() }
            try await waitUntil("subscription live") { sub.status.state == .live }
            let h1 = try await client.submit([DABlob(namespace: headers, data: bytes("a"))])
            let h2 = try await client.submit([DABlob(namespace: namespace("other"), data: bytes("b"))])
            try await waitUntil("both heights notified") { seen.withLock { $0.contains(h1) && $0.contains(h2) } }
            #expect(sub.status.notifications >= 2)
        }
    }

    @Test func aNodeWithoutSubscribeMeansPolling() async throws {
        try await withLocalDA(arguments: ["--block-time", "1h", "--no-subscribe"]) { da, _, _ in
            let sub = DAHeadSubscription(options: .init(url: da.url, namespace: headers), logger: Logger(label: "test")) { _ in }
            let task = Task { await sub.run() }
            defer { task.cancel() }
            try await waitUntil("fallen back to polling") {
                sub.status.state == .polling && (sub.status.lastError ?? "").contains("method not found")
            }
        }
    }
}

@Suite struct HeadSubscriptionURLTests {
    @Test func webSocketURLsAndIPHosts() {
        #expect(DAHeadSubscription.webSocketURL("http://127.0.0.1:26658/") == "ws://127.0.0.1:26658/")
        #expect(DAHeadSubscription.webSocketURL("https://rpc.example.org/celestia") == "wss://rpc.example.org/celestia")
        #expect(DAHeadSubscription.hasIPAddressHost("https://10.0.0.5:26658/"))
        #expect(DAHeadSubscription.hasIPAddressHost("https://[::1]:26658/"))
        #expect(!DAHeadSubscription.hasIPAddressHost("https://localhost:26658/"))
        #expect(!DAHeadSubscription.hasIPAddressHost("https://rpc.celestia.example:443/"))
    }
}
