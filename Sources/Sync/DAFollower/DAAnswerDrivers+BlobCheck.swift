import Chain
import DAClient

/// The fuzz driver of the follower's blob checks: the DA answer drivers' step that needs blocks,
/// here because the checker is the follower's (Sync), not the client's.
extension DAAnswerDrivers {
    /// What the follower's blob checks made of one DA height's blobs (both passes).
    package struct CheckedBlobs: Sendable, Equatable {
        package var headers = 0
        package var data = 0
        package var rejected = 0
    }

    /// The follower's checks of one DA height's blobs: decoding, the proposer's signatures, data
    /// claimed by the headers of the same height.
    package static func check(_ blobs: [DABlob], validator: BlockValidator, headerNamespace: DANamespace,
                              dataNamespace: DANamespace) -> CheckedBlobs {
        let checker = DABlobChecker(validator: validator, headerNamespace: headerNamespace, dataNamespace: dataNamespace)
        var counts = CheckedBlobs()
        for checked in checker.check(blobs) {
            switch checked {
            case .header: counts.headers += 1
            case .data: counts.data += 1
            case .rejected: counts.rejected += 1
            }
        }
        return counts
    }
}
