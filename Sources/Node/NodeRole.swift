import Production

/// What this node runs, with the parts each role needs riding in it: a producing role cannot be
/// written without its producer and submitter (an aggregator that would exit 0 without
/// producing, defect 10 of the 2026-12-07 review), nor an HA role without its etcd group. Built
/// from `NodeConfig.Role` by `EvNode`; the failover driver runs it.
enum NodeRole: Sendable {
    /// Syncs from DA and peers; never signs.
    case full
    /// Produces from the first moment.
    case aggregator(AggregatorRuntime)
    /// Syncs until every catchup condition holds (SPEC §6), then produces.
    case aggregatorWithCatchup(AggregatorRuntime, timeout: Duration)
    /// Follows; leads while `namesThisNode` (the stored state's next proposer is this node's key)
    /// and the promotion conditions hold, with `timeout` as the catchup's.
    case promotable(AggregatorRuntime, timeout: Duration, namesThisNode: @Sendable () -> Bool)
    /// Follows etcd's replicated block while campaigning; leads, each block fenced through etcd.
    case ha(HARuntime, AggregatorRuntime)
    /// Derives the chain from the forced-inclusion namespace (no sync phase: the chain is DA's,
    /// and based blocks from peers carry no signature to check).
    case based(BasedSequencer)
}

extension NodeRole {
    /// The role as the failover rules see it.
    var kind: FailoverMachine.Role {
        switch self {
        case .full: return .full
        case .aggregator: return .aggregator
        case .aggregatorWithCatchup: return .aggregatorWithCatchup
        case .promotable: return .promotable
        case .ha: return .ha
        case .based: return .based
        }
    }
}
