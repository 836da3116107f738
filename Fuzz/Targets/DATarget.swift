import DAClient
import HTTPClient
import NIOPosix

/// What a DA node answers (or whoever sits between it and a node reading it over plain http).
extension FuzzTargets {
    static let daAnswers = FuzzTarget(
        name: "da-answers",
        summary: "DA node answers. First byte % 3 = 0: a DA walk — the first piece answers header.NetworkHead "
            + "(request id 0), the next ones blob.GetAll for DA heights 1, 2, … (request id = the height; a marked "
            + "piece comes with HTTP 500), heights beyond them are 'from the future'; the answers go through the "
            + "client's decoding, the fetch window paced by the head, and the follower's blob checks. 1: the "
            + "pieces are blob.Subscribe text frames. 2: the rest is a blob.Submit answer (request id 1)") { input throws(FuzzFinding) in
        guard let mode = input.first else { return [:] }
        switch mode % 3 {
        case 0:
            return await walk(ChunkScript(decoding: input.dropFirst()).pieces)
        case 1:
            let frames = ChunkScript(decoding: input.dropFirst()).chunks.map { String(decoding: $0, as: UTF8.self) }
            let (heights, ended) = DAAnswerDrivers.subscription(frames)
            return ["heights": heights.count, "ended": ended ? 1 : 0]
        default:
            let height = try? DAAnswerDrivers.submitted(HTTPReply(status: 200, body: Array(input.dropFirst())), id: 1)
            return ["submitted": height == nil ? 0 : 1]
        }
    }

    /// A follower's walk over DA heights 1… against a DA node answering with `pieces`.
    private static func walk(_ pieces: [ChunkScript.Piece]) async -> Reached {
        guard let first = pieces.first else { return [:] }
        var reached: Reached = ["head": 0, "heights": 0, "headers": 0, "data": 0, "rejected": 0, "headReached": 0, "failed": 0]
        let client = ScriptedDAClient(answers: Array(pieces.dropFirst()))
        let pacer = DAFetchPacer(maximum: 8)
        if let head = try? DAAnswerDrivers.networkHead(HTTPReply(status: first.marked ? 500 : 200, body: first.bytes), id: 0) {
            pacer.headKnown(head.height)
            reached["head"] = 1
        }
        let namespaces = [Fixtures.headerNamespace, Fixtures.dataNamespace]
        let heights = client.retrieve(heights: 1...UInt64(pieces.count + 8), namespaces: namespaces, pacer: pacer,
                                      retry: nil) { _, blobs in
            // The follower checks each height's blobs on the blocking pool, as they arrive.
            try await NIOThreadPool.singleton.runIfActive {
                DAAnswerDrivers.check(blobs, validator: Fixtures.validator, headerNamespace: Fixtures.headerNamespace,
                                      dataNamespace: Fixtures.dataNamespace)
            }
        }
        do {
            for try await event in heights {
                switch event {
                case .height(_, let checked):
                    reached["heights", default: 0] += 1
                    reached["headers", default: 0] += checked.headers
                    reached["data", default: 0] += checked.data
                    reached["rejected", default: 0] += checked.rejected
                case .headReached:
                    reached["headReached"] = 1
                }
                if reached["headReached"] == 1 { break }
            }
        } catch {
            // A malformed answer ends a walk without retries; the follower would retry that height.
            reached["failed"] = 1
        }
        return reached
    }
}

/// A DA node whose answer to `blob.GetAll` at height h is `answers[h - 1]`, read by the client's
/// own decoding; heights past the answers are "from the future".
struct ScriptedDAClient: DAClient {
    let answers: [ChunkScript.Piece]

    func getAll(height: UInt64, namespaces: [DANamespace]) async throws(DAError) -> [DABlob] {
        guard height >= 1, height <= UInt64(answers.count) else {
            throw .heightFromFuture(method: DAMethod.getAll, height: height, message: "given height is from the future")
        }
        let answer = answers[Int(height - 1)]
        return try DAAnswerDrivers.getAll(HTTPReply(status: answer.marked ? 500 : 200, body: answer.bytes),
                                          id: Int64(height), height: height, namespaces: namespaces)
    }

    func submit(_ blobs: [DABlob]) async throws(DAError) -> UInt64 { throw .setup("the fuzz DA takes no submissions") }

    func get(height: UInt64, namespace: DANamespace, commitment: [UInt8]) async throws(DAError) -> DABlob {
        throw .setup("the fuzz DA answers GetAll only")
    }

    func networkHead() async throws(DAError) -> DAHeader { throw .setup("the fuzz DA's head is read by the target") }

    func header(height: UInt64) async throws(DAError) -> DAHeader { throw .setup("the fuzz DA answers GetAll only") }
}
