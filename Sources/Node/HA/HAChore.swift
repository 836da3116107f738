/// Work on etcd that nobody waits for: revoking the lease of a lost election (it holds no key;
/// left alone it expires after its TTL) and compacting etcd's history. `HAGroup` queues them;
/// `HAGroup.runChores`, a child of the HA runtime's lease keeper, does them one at a time.
enum HAChore: Sendable {
    case revoke(lease: Int64)
    case compact(through: Int64)

    /// How many chores may wait: a chore dropped beyond that costs nothing lasting (a lease
    /// expires by itself, the next compaction covers the history this one would have).
    static let queueLimit = 64
}
