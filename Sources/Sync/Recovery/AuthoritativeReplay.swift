/// The authoritative source recovery replays from: the DA follower.
package protocol AuthoritativeReplay: Sendable {
    /// Delivers the authoritative blocks above `height` again (called after a rollback to it).
    func rewind(after height: UInt64)
}

extension DAFollower: AuthoritativeReplay {}
