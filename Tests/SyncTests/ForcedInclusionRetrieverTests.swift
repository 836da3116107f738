import DAClient
import Sync
import Chain
import Foundation
import ProcessKit
import Testing
import TestSupport

/// The forced-inclusion retriever against a real `evnode local-da` process, with ev-node's own
/// numbers: da_start_height 10, epoch 2 (epoch 1 = DA 10…11).
@Suite struct ForcedInclusionRetrieverTests {
    let forced = namespace("fi")
    let other = namespace("t-headers")
    let epochs = ForcedInclusionEpochs(startHeight: 10, size: 2)

    /// Submits filler blobs (another namespace) until the DA head is `height`.
    func advance(_ client: CelestiaDAClient, to height: UInt64) async throws {
        while try await client.networkHead().height < height {
            _ = try await client.submit([DABlob(namespace: other, data: bytes("filler"))])
        }
        #expect(try await client.networkHead().height == height)
    }

    @Test func readsAnEpochAtItsEndOnlyInOrderWithTheEventTime() async throws {
        try await withLocalDA(arguments: ["--block-time", "1h", "--max-blob-size", "\(6 << 20)"]) { _, client, _ in
            let retriever = ForcedInclusionRetriever(client: client, namespace: forced, epochs: epochs)
            try await advance(client, to: 9)
            await #expect(throws: ForcedInclusionError.beforeStart(daHeight: 9, startHeight: 10)) {
                try await retriever.read(at: 9)
            }
            // DA 10: two forced txs and a blob in another namespace (local DA refuses empty blobs,
            // which the retriever would skip).
            let at10 = try await client.submit([DABlob(namespace: forced, data: bytes("a=1")),
                                                DABlob(namespace: other, data: bytes("not forced")),
                                                DABlob(namespace: forced, data: bytes("garbage"))])
            #expect(at10 == 10)
            #expect(try await retriever.read(at: 10) == .notEpochEnd(daHeight: 10))
            // The epoch's end is not produced yet: from the future, not a fault.
            await #expect(throws: ForcedInclusionError.heightFromFuture(daHeight: 11)) {
                try await retriever.read(at: 11)
            }
            // DA 11: one tx over ev-node's 5 MiB blob size (dropped) and one more.
            let oversize = [UInt8](repeating: UInt8(ascii: "x"), count: ForcedInclusionRules.maxTxBytes + 1)
            let at11 = try await client.submit([DABlob(namespace: forced, data: oversize),
                                                DABlob(namespace: forced, data: bytes("b=2"))])
            #expect(at11 == 11)
            let end = try await client.header(height: 11)
            let read = try await retriever.read(at: 11)
            #expect(read == .epoch(ForcedInclusionEpoch(daHeights: 10...11, txs: [bytes("a=1"), bytes("garbage"), bytes("b=2")],
                                                        droppedOversize: 1, endTime: end.timeNanoseconds)))
            // Epoch 2 (12…13) holds nothing: read at its end once produced, empty.
            try await advance(client, to: 13)
            guard case .epoch(let second) = try await retriever.read(at: 13) else {
                Issue.record("DA 13 ends epoch 2")
                return
            }
            #expect(second.daHeights == 12...13 && second.txs.isEmpty && second.droppedOversize == 0)
        }
    }

    @Test func aDAFaultIsAnErrorNeverAnEmptyEpoch() async throws {
        // A DA node that is not there: the epoch is unread (ev-node would hand out an empty one).
        let client = try CelestiaDAClient(options: DAClientOptions(url: "http://127.0.0.1:\(try freeLoopbackPort())/", retry: .none))
        let retriever = ForcedInclusionRetriever(client: client, namespace: forced, epochs: epochs)
        do {
            _ = try await retriever.read(at: 11)
            Issue.record("a dead DA node must fail the read")
        } catch {
            guard case .unavailable(daHeight: 11, let cause) = error else {
                Issue.record("expected a DA fault at 11, got \(error)")
                await client.shutdown()
                return
            }
            #expect(cause.contains("127.0.0.1"), "the fault names the DA node: \(cause)")
        }
        await client.shutdown()
    }
}
