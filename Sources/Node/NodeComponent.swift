/// A part of the node that runs as a child task of a phase or of the node itself. A failure is
/// blamed on the part that ran the failing child (`NodeFailure.init(component:underlying:)`),
/// never on whichever part happens to catch it.
package enum NodeComponent: String, Sendable, CustomStringConvertible {
    case syncer = "syncer"
    case daFollower = "DA follower"
    case daClient = "DA client"
    case peerFetch = "peer fetch"
    case divergenceRecovery = "divergence recovery"
    case gossipRelay = "gossip relay"
    case catchupGate = "catchup gate"
    case producer = "block producer"
    case submitter = "DA submitter"
    case secondSignerWatch = "second-signer watch"
    case aggregator = "aggregator"
    case haLeases = "HA lease keeper"
    case haReplication = "HA replication"
    case haCampaign = "HA campaign"
    case haRoles = "HA role loop"
    case haLeadership = "HA leadership watch"
    case haEtcdClient = "HA etcd client"
    case failover = "failover state machine"
    case rpc = "RPC server"
    case p2p = "P2P"
    case metricsRefresher = "metrics refresher"
    case prometheus = "Prometheus listener"
    case heapTrim = "heap trim"
    case statePruning = "state pruning"
    case blockPruning = "block pruning"
    case daSubscription = "DA head subscription"
    case forcedInclusionServer = "forced-inclusion server"
    /// The node's service group itself (an error no named service threw).
    case serviceGroup = "a node service"

    package var description: String { rawValue }
}
