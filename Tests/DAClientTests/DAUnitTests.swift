@testable import Primitives
@testable import DAClient
@testable import LocalDA
import Foundation
import Testing
import TestSupport
import HTTPClient

@Suite struct NamespaceTests {
    @Test func derivedFromNameAsSpecified() throws {
        // SHA-256("test") = 9f86d081884c7d659a2feaa0c55ad015…; the namespace keeps its first 10 bytes.
        let ns = DANamespace(name: "test")
        #expect(ns.bytes.count == 29)
        #expect(ns.bytes[0] == 0)
        #expect(ns.bytes[1...18].allSatisfy { $0 == 0 })
        #expect(Array(ns.bytes[19...]) == [0x9f, 0x86, 0xd0, 0x81, 0x88, 0x4c, 0x7d, 0x65, 0x9a, 0x2f])
        #expect(ns.base64 == "AAAAAAAAAAAAAAAAAAAAAAAAAJ+G0IGITH1lmi8=")
        #expect(try DANamespace(base64: ns.base64) == ns)
        #expect(DANamespace(name: "a-headers") != DANamespace(name: "a-data"))
    }

    @Test func rejectsMalformedNamespaces() {
        #expect(throws: DANamespace.Failure.wrongSize(28)) { try DANamespace(bytes: [UInt8](repeating: 0, count: 28)) }
        var v1 = [UInt8](repeating: 0, count: 29)
        v1[0] = 1
        #expect(throws: DANamespace.Failure.unsupportedVersion(1)) { try DANamespace(bytes: v1) }
        var prefix = [UInt8](repeating: 0, count: 29)
        prefix[5] = 7
        #expect(throws: DANamespace.Failure.nonZeroPrefix) { try DANamespace(bytes: prefix) }
        #expect(throws: DANamespace.Failure.notBase64) { try DANamespace(base64: "***") }
    }
}

@Suite struct ErrorMappingTests {
    @Test func semanticErrorsAreRecognisedByText() {
        let future = DAError.classify(method: "blob.GetAll", height: 9, code: 1,
                                      message: "header: given height is from the future: networkHeight: 5, requestedHeight: 9")
        #expect(future == .heightFromFuture(method: "blob.GetAll", height: 9,
                                            message: "header: given height is from the future: networkHeight: 5, requestedHeight: 9"))
        #expect(DAError.classify(method: "blob.GetAll", height: 4, code: 1, message: "blob: not found")
            == .notFound(method: "blob.GetAll", height: 4, message: "blob: not found"))
        #expect(DAError.classify(method: "blob.Submit", height: nil, code: 1, message: "blob: over size limit")
            == .blobTooLarge(message: "blob: over size limit"))
        #expect(DAError.classify(method: "blob.Submit", height: nil, code: 1, message: "insufficient funds")
            == .rpc(method: "blob.Submit", code: 1, message: "insufficient funds"))
    }

    @Test func onlyTransportAndServerErrorsAreRetried() {
        #expect(DAError.transport(code: 7, message: "Failed to connect", url: "u").isRetryable)
        #expect(DAError.transport(code: 28, message: "timeout", url: "u").isRetryable)
        #expect(!DAError.transport(code: 3, message: "bad URL", url: "u").isRetryable)
        #expect(DAError.httpStatus(status: 503, body: "", url: "u").isRetryable)
        #expect(!DAError.httpStatus(status: 401, body: "", url: "u").isRetryable)
        #expect(!DAError.notFound(method: "m", height: 1, message: "").isRetryable)
        #expect(!DAError.heightFromFuture(method: "m", height: 1, message: "").isRetryable)
        #expect(!DAError.blobTooLarge(message: "").isRetryable)
        #expect(!DAError.malformedResponse(method: "m", reason: "").isRetryable)
    }

    @Test func backoffGrowsExponentiallyUpToTheCap() {
        let policy = RetryPolicy(maxAttempts: 10, initialDelay: .milliseconds(100), maxDelay: .seconds(1))
        let delays = (1...6).map { policy.delay(afterAttempt: $0) }
        #expect(delays == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800),
                           .seconds(1), .seconds(1)])
        var backoff = Backoff(policy: policy)
        #expect(backoff.nextDelay() == .milliseconds(100))
        #expect(backoff.nextDelay() == .milliseconds(200))
        backoff.reset()
        #expect(backoff.nextDelay() == .milliseconds(100))
    }
}

/// Bad answers from a DA node get a typed error that says what was wrong.
@Suite struct ResponseDecodingTests {
    let ns = DANamespace(name: "decode")

    func decodeBlobs(_ json: String, status: Int = 200, id: Int64 = 7) throws(DAError) -> [BlobJSON]? {
        try CelestiaDAClient.decode(HTTPReply(status: status, body: Array(json.utf8)), method: "blob.GetAll",
                                    id: id, height: 3, url: "http://x/", as: [BlobJSON].self)
    }

    @Test func acceptsAWellFormedAnswer() throws {
        let blob = DABlob(namespace: ns, data: bytes("hi"))
        let json = "{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":[\(CelestiaDAClient.blobJSONText(blob))]}"
        let decoded = try #require(try decodeBlobs(json))
        #expect(try decoded[0].blob(context: "r", requireCommitment: true) == blob)
        #expect(try decodeBlobs("{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":null}") == nil)
    }

    @Test func namesWhatIsWrong() {
        func reason(_ json: String, status: Int = 200) -> DAError? {
            do {
                _ = try decodeBlobs(json, status: status)
                return nil
            } catch {
                return error
            }
        }
        #expect(reason("not json") == .malformedResponse(method: "blob.GetAll",
                                                         reason: "(top level): The given data was not valid JSON."))
        #expect(reason("{\"jsonrpc\":\"2.0\",\"id\":8,\"result\":[]}")
            == .malformedResponse(method: "blob.GetAll", reason: "response id 8 does not match request id 7"))
        #expect(reason("{\"jsonrpc\":\"1.0\",\"id\":7,\"result\":[]}")
            == .malformedResponse(method: "blob.GetAll", reason: "jsonrpc is \"1.0\", expected \"2.0\""))
        #expect(reason("{\"jsonrpc\":\"2.0\",\"id\":7,\"result\":[{\"namespace\":5}]}")
            == .malformedResponse(method: "blob.GetAll", reason: "result[0].namespace: expected String"))
        #expect(reason("<html>bad gateway</html>", status: 502)
            == .httpStatus(status: 502, body: "<html>bad gateway</html>", url: "http://x/"))
        #expect(reason("{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":1,\"message\":\"blob: not found\"}}", status: 500)
            == .notFound(method: "blob.GetAll", height: 3, message: "blob: not found"))
        #expect(reason("too big", status: 413) == .blobTooLarge(message: "HTTP 413: request body too large for the DA node"))
    }

    @Test func blobFieldsAreValidated() {
        let good = BlobJSON(DABlob(namespace: ns, data: bytes("x")))
        var badData = good
        badData.data = "%%%"
        #expect(throws: BlobJSONError.self) { try badData.blob(context: "b", requireCommitment: true) }
        var shortNamespace = good
        shortNamespace.namespace = Data([0, 1, 2]).base64EncodedString()
        do {
            _ = try shortNamespace.blob(context: "b", requireCommitment: true)
            Issue.record("a 3-byte namespace was accepted")
        } catch {
            #expect(error.description == "b.namespace: namespace is 3 bytes, expected 29")
        }
        var noCommitment = good
        noCommitment.commitment = nil
        #expect(throws: BlobJSONError.self) { try noCommitment.blob(context: "b", requireCommitment: true) }
        #expect(throws: Never.self) { try noCommitment.blob(context: "b", requireCommitment: false) }
    }
}

/// The local DA's persistence on a real RocksDB.
@Suite struct LocalDAChainTests {
    @Test func appendsPersistAcrossReopen() throws {
        let dir = TempDirectory("evnode-chain")
        let ns = DANamespace(name: "chain")
        let path = dir.path + "/db"
        do {
            let chain = try LocalDAChain(path: path, now: { 1_000 })
            #expect(chain.head == DAHeader(height: 1, timeNanoseconds: 1_000))
            let two = try chain.append(blobs: [DABlob(namespace: ns, data: bytes("a")), DABlob(namespace: ns, data: bytes("b"))],
                                       now: 500)  // clock went backwards: time still grows
            #expect(two == DAHeader(height: 2, timeNanoseconds: 1_001))
            _ = try chain.append(blobs: [], now: 5_000)
        }
        let reopened = try LocalDAChain(path: path, now: { 9_999 })
        #expect(reopened.head == DAHeader(height: 3, timeNanoseconds: 5_000))
        let block = try #require(try reopened.block(at: 2))
        #expect(block.blobs.map(\.data) == [bytes("a"), bytes("b")])
        #expect(block.blobs.map(\.index) == [0, 1])
        #expect(try reopened.block(at: 3)?.blobs.isEmpty == true)
        #expect(try reopened.block(at: 4) == nil)
        #expect(try reopened.block(at: 0) == nil)
    }

    @Test func damagedRecordsAreReportedNotMisread() throws {
        let ns = DANamespace(name: "chain")
        let record = LocalDAChain.encode(LocalDABlock(height: 5, timeNanoseconds: 1,
                                                      blobs: [DABlob(namespace: ns, data: bytes("abc"))]))
        #expect(try LocalDAChain.decode(record, height: 5).blobs.count == 1)
        #expect(throws: LocalDAChain.Failure.self) { try LocalDAChain.decode(Array(record.dropLast()), height: 5) }
        #expect(throws: LocalDAChain.Failure.self) { try LocalDAChain.decode(record + [0], height: 5) }
    }
}
