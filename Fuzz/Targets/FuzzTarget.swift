/// One fuzz target: a parser that input from outside reaches (a peer, a DA node, an execution
/// client, a file on disk) and the state machine that consumes what it parses, run on one input.
/// libFuzzer calls it through `evnode-fuzz` (built by `make fuzz`); the tests replay the committed
/// seeds and regression inputs through the same call (`Tests/FuzzTests`).
package struct FuzzTarget: Sendable {
    package let name: String
    /// What an input is, and what counts as a finding besides a crash.
    package let summary: String
    /// libFuzzer's `-max_len`: inputs are scripts (`ChunkScript`) where long runs of bytes are
    /// cheap to ask for, so a few KB reach every limit of the code under test.
    package let maxLength: Int
    private let body: @Sendable ([UInt8]) async throws(FuzzFinding) -> Reached

    init(name: String, summary: String, maxLength: Int = 16 << 10,
         body: @escaping @Sendable ([UInt8]) async throws(FuzzFinding) -> Reached) {
        self.name = name
        self.summary = summary
        self.maxLength = maxLength
        self.body = body
    }

    /// Runs the target on `input`: how far the input got (what the state machine did with it),
    /// or what it found (a crash ends the process instead).
    @discardableResult
    package func run(_ input: [UInt8]) async throws(FuzzFinding) -> Reached {
        try await body(input)
    }
}

/// How far one input got, as counts by name (blocks accepted, responses written, the error the
/// component ended with as `failed`...): what the tests check the seeds reach.
package typealias Reached = [String: Int]

/// A property the code must keep and did not, for one input: a bound exceeded, a decoded value
/// that does not encode back to itself. Reported like a crash.
package struct FuzzFinding: Error, CustomStringConvertible, Sendable {
    /// Which property: the same for every input that breaks it (`Fuzz/known-issues` names them).
    package let id: String
    package let what: String

    init(id: String, _ what: String) {
        self.id = id
        self.what = what
    }

    package var description: String { "[\(id)] \(what)" }
}

package enum FuzzTargets {
    /// Every target, in the order `make fuzz` runs them.
    package static let all: [FuzzTarget] = [
        multistream, noiseHandshake, noiseTransport, yamux, gossip, headerExchangeServer, headerExchangeClient,
        wire, daAnswers, engineAnswers, signerState, evmTransaction,
    ]

    package static func named(_ name: String) -> FuzzTarget? {
        all.first { $0.name == name }
    }
}
