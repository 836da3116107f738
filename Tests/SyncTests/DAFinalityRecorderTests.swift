import Chain
import Execution
import Store
@testable import Sync
import Testing
import TestSupport

/// The sync side's write of what the DA follower found final, on a real store.
@Suite struct DAFinalityRecorderTests {
    @Test func recordsInclusionsFinalityAndTheResumeHeight() throws {
        let chain = try TestChain()
        try chain.build(to: 3)
        let recorder = DAFinalityRecorder(store: chain.store, executor: chain.executor)
        #expect(recorder.resumeDAHeight() == nil)
        try recorder.record(DAFinality(inclusions: [(1, DAInclusion(headerDAHeight: 7, dataDAHeight: 8)),
                                                    (2, DAInclusion(headerDAHeight: 9))],
                                       finalizedHeight: 2, resumeDAHeight: 10))
        #expect(chain.store.finalizedHeight == 2)
        #expect(try chain.store.daInclusion(at: 1) == DAInclusion(headerDAHeight: 7, dataDAHeight: 8))
        #expect(try chain.store.daInclusion(at: 2) == DAInclusion(headerDAHeight: 9))
        #expect(recorder.resumeDAHeight() == 10)
        #expect(try chain.store.metadata("da_follower_resume_height") == [0, 0, 0, 0, 0, 0, 0, 10],
                "the key and encoding a node of an earlier version resumes from")

        // Worked out before a rollback took the store below it: finality waits for the replay.
        try recorder.record(DAFinality(inclusions: [], finalizedHeight: 5, resumeDAHeight: 12))
        #expect(chain.store.finalizedHeight == 2 && recorder.resumeDAHeight() == 12)
    }
}
