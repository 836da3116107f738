import Store

/// What DA's confirmations make final once the DA follower processed a DA height (its
/// inclusion tracker works it out; `DAFinalityRecorder` writes it): the DA inclusions of the
/// newly final blocks in height order, the finalized height they reach, and the DA height a
/// restart resumes reading from.
package struct DAFinality: Sendable {
    package var inclusions: [(height: UInt64, inclusion: DAInclusion)]
    package var finalizedHeight: UInt64
    package var resumeDAHeight: UInt64

    package init(inclusions: [(height: UInt64, inclusion: DAInclusion)], finalizedHeight: UInt64, resumeDAHeight: UInt64) {
        self.inclusions = inclusions
        self.finalizedHeight = finalizedHeight
        self.resumeDAHeight = resumeDAHeight
    }
}
