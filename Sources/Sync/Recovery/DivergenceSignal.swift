import Chain
import Execution

/// A divergence reported by the sync pipeline, reduced to a height where the stored chain and
/// DA's differ. Only DA (authoritative) blocks make one: P2P blocks are soft.
package struct DivergenceSignal: Sendable, Equatable {
    package enum Kind: Sendable, Equatable {
        /// DA holds another block at a height we stored.
        case conflict
        /// DA's next block links to another block than our head.
        case brokenLink
        /// DA's next block links to our head but expects another state root: the executor state
        /// is not what the proposer computed, and no rollback to a common block can change that.
        case stateRoot(stored: [UInt8], authoritative: [UInt8])
    }

    package var kind: Kind
    package var point: DivergencePoint
    package var origin: BlockOrigin

    package init(kind: Kind, point: DivergencePoint, origin: BlockOrigin) {
        self.kind = kind
        self.point = point
        self.origin = origin
    }

    /// The divergence a pipeline event reports, if any.
    package init?(_ event: SyncEvent) {
        switch event {
        case .conflict(let height, _, let candidate):
            guard candidate.origin.isDA else { return nil }
            self.init(kind: .conflict,
                      point: DivergencePoint(height: height, authoritativeHash: candidate.signedHeader.header.hash,
                                             authoritativeHeader: candidate.signedHeader),
                      origin: candidate.origin)
        case .rejected(let height, let origin, .invalid(let error)):
            guard event.isDADivergence else { return nil }
            switch error {
            case .lastHeaderHashMismatch(_, let link, _):
                self.init(kind: .brokenLink, point: DivergencePoint(height: height - 1, authoritativeHash: link),
                          origin: origin)
            case .appHashMismatch(_, let appHash, let expected):
                self.init(kind: .stateRoot(stored: expected, authoritative: appHash),
                          point: DivergencePoint(height: height - 1, authoritativeHash: []), origin: origin)
            default:
                return nil
            }
        default:
            return nil
        }
    }
}
