@testable import DAClient
@testable import Submission
import Testing

@Suite struct SubmitFailureTests {
    func rpc(_ message: String) -> DAError { .rpc(method: DAMethod.submit, code: 1, message: message) }

    /// Texts as celestia-node, celestia-app and cosmos-sdk produce them (see `SubmitFailure`).
    @Test func celestiaNodeTextsAreRecognised() {
        #expect(SubmitFailure.classify(rpc(
            "failed to submit blobs due to insufficient gas price in txconfig: insufficient fees; got: 65utia required: 260utia: insufficient fee"))
            == .feeTooLow(estimatedPrice: nil))
        #expect(SubmitFailure.classify(rpc(
            "failed to submit blobs due to insufficient estimated gas price 0.002000: insufficient fees; got: 130utia required: 260utia: insufficient fee"))
            == .feeTooLow(estimatedPrice: 0.002))
        #expect(SubmitFailure.classify(rpc("state: estimated gas price exceeds max gas price in tx config")) == .priceAboveMax)
        #expect(SubmitFailure.classify(rpc("broadcast tx error: hash AB error: mempool is full: number of txs 5000 (max: 5000) code: 20"))
            == .mempoolFull)
        #expect(SubmitFailure.classify(rpc("tx too large")) == .txTooLarge)
        #expect(SubmitFailure.classify(rpc("account sequence mismatch, expected 12, got 11: incorrect account sequence"))
            == .sequenceMismatch)
        #expect(SubmitFailure.classify(rpc("timed out waiting for tx to be included in a block")) == .notIncluded)
        #expect(SubmitFailure.classify(rpc("context deadline exceeded")) == .notIncluded)
        #expect(SubmitFailure.classify(rpc("eviction poll timeout: transaction AB was evicted ")) == .notIncluded)
        #expect(SubmitFailure.classify(.transport(code: 28, message: "Operation timed out", url: "u")) == .notIncluded)
        #expect(SubmitFailure.classify(rpc("something new")) == .other)
        #expect(SubmitFailure.classify(.transport(code: 7, message: "Couldn't connect", url: "u")) == .unavailable)
        #expect(SubmitFailure.classify(.httpStatus(status: 503, body: "busy", url: "u")) == .unavailable)
        #expect(SubmitFailure.classify(.blobTooLarge(message: "x")) == .txTooLarge)
    }

    @Test func ladderRaisesByTheMultiplierNeverAboveTheMax() {
        var l = GasPriceLadder(base: 0.001, multiplier: 2, max: 0.005)
        #expect(l.escalate() == .raised(from: 0.001, to: 0.002))
        #expect(l.escalate() == .raised(from: 0.002, to: 0.004))
        #expect(l.escalate() == .raised(from: 0.004, to: 0.005))
        #expect(l.escalate() == .atMax(0.005))
        #expect(l.current == 0.005)
        // Steps down only after a run of successes, never below the configured price.
        for _ in 0..<9 { l.relax() }
        #expect(l.current == 0.005)
        l.relax()
        #expect(l.current == 0.0025)
        for _ in 0..<20 { l.relax() }
        #expect(l.current == 0.001)
    }

    @Test func estimatedPricesEscalateFromWhatTheNodeSaid() {
        var l = GasPriceLadder(base: nil, multiplier: 1.5, max: 1)
        #expect(l.escalate() == .estimated)
        #expect(l.current == nil)
        #expect(l.escalate(estimatedPrice: 0.004) == .raised(from: nil, to: 0.006))
        for _ in 0..<10 { l.relax() }
        #expect(l.current == nil, "back to the DA node's estimate")
        var off = GasPriceLadder(base: 0.002, multiplier: 1, max: 1)
        #expect(off.escalate() == .off && off.current == 0.002)
    }

    @Test func signersRotate() {
        var r = SignerRotation(addresses: ["a", "b", "c"])
        #expect([r.take(), r.take(), r.take(), r.take()] == ["a", "b", "c", "a"])
        var none = SignerRotation(addresses: [])
        #expect(none.take() == nil)
    }
}
