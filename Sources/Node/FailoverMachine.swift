/// The failover rules without the I/O (SPEC §6): which phase may follow which, for which role,
/// and that `halted` is the end. A value type after swift-nio's state machines: the driver
/// (`FailoverDriver`, which runs the syncer, the gate, the producer and etcd) tells it
/// each step it is about to take, and enters the phase it answers, or refuses the step.
///
/// The legal transitions, all of them:
///
///     from          event                        to            roles
///     starting      follow(.chain)               following     full
///     starting      follow(.catchingUp)          catchingUp    aggregator with catchup
///     starting      follow(.awaitingKey)         awaitingKey   promotable
///     starting      follow(.haFollower)          haFollowing   HA
///     starting      produce                      producing     aggregator, based
///     catchingUp    follow(.catchingUp)          catchingUp    (the re-check failed: sync again)
///     awaitingKey   follow(.awaitingKey)         awaitingKey   (the same)
///     catchingUp    caughtUp                     caughtUp      aggregator with catchup
///     awaitingKey   caughtUp                     caughtUp      promotable
///     caughtUp      produce                      producing
///     haFollowing   follow(.haFollower)          haFollowing   (a bootstrap re-check refused)
///     haFollowing   produce                      producing     HA (elected, store at etcd's head)
///     producing     follow(.afterRotation)       following     aggregator, aggregator with catchup
///     producing     follow(.awaitingKey)         awaitingKey   promotable (the chain named another key)
///     producing     follow(.haFollower)          haFollowing   HA (stepped down)
///     any but halted   halt(reason)              halted        every role
///
/// Anything else is refused with `Refused`, naming the state and the event; in `halted` every
/// event is refused (a part still winding down cannot move a halted node anywhere).
struct FailoverMachine: Sendable, Equatable {
    /// The role, as far as the rules care (the parts ride in `NodeRole`).
    enum Role: Sendable, Equatable, CaseIterable {
        case full, aggregator, aggregatorWithCatchup, promotable, ha, based
    }

    /// Why the node follows the chain.
    enum Following: Sendable, Equatable, CaseIterable {
        /// A full node, for good.
        case chain
        /// An aggregator with catchup, before producing.
        case catchingUp
        /// A promotable node, until the chain names its key.
        case awaitingKey
        /// An HA member, while it campaigns.
        case haFollower
        /// An aggregator whose key the chain rotated away: a full node from now on.
        case afterRotation
    }

    enum State: Sendable, Equatable {
        case starting
        case following(Following)
        case caughtUp
        case producing
        case halted(reason: String)

        /// The phase `/status`, metrics and logs show for it.
        var phase: NodePhase {
            switch self {
            case .starting: return .starting
            case .following: return .syncing
            case .caughtUp: return .caughtUp
            case .producing: return .aggregating
            case .halted: return .halted
            }
        }
    }

    enum Event: Sendable, Equatable {
        case follow(Following)
        /// Every catchup condition held, checked again after the syncer stopped.
        case caughtUp
        case produce
        case halt(reason: String)
    }

    /// A step the rules do not allow from the current state.
    struct Refused: Error, Sendable, Equatable, CustomStringConvertible {
        let role: Role
        let from: State
        let event: Event
        var description: String { "failover: \(event) is not allowed from \(from) for role \(role)" }
    }

    let role: Role
    private(set) var state: State = .starting

    init(role: Role) {
        self.role = role
    }

    /// Takes the step, returning the phase the node enters; refuses an illegal one and stays.
    mutating func event(_ event: Event) throws(Refused) -> NodePhase {
        guard let next = next(after: event) else { throw Refused(role: role, from: state, event: event) }
        state = next
        return next.phase
    }

    private func next(after event: Event) -> State? {
        if case .halted = state { return nil }
        switch (state, event) {
        case (_, .halt(let reason)):
            return .halted(reason: reason)
        case (.starting, .follow(let why)):
            return why == Self.firstFollowing(of: role) ? .following(why) : nil
        case (.starting, .produce):
            return role == .aggregator || role == .based ? .producing : nil
        case (.following(let now), .follow(let why)):
            // Syncing again after a re-check refused: the same reason, for the roles that check.
            return now == why && (why == .catchingUp || why == .awaitingKey || why == .haFollower) ? state : nil
        case (.following(let now), .caughtUp):
            return (now == .catchingUp && role == .aggregatorWithCatchup) || (now == .awaitingKey && role == .promotable)
                ? .caughtUp : nil
        case (.caughtUp, .produce):
            return .producing
        case (.following(.haFollower), .produce):
            return role == .ha ? .producing : nil
        case (.producing, .follow(let why)):
            return why == Self.followingAfterProducing(of: role) ? .following(why) : nil
        default:
            return nil
        }
    }

    /// How each role follows first, if it does.
    private static func firstFollowing(of role: Role) -> Following? {
        switch role {
        case .full: return .chain
        case .aggregatorWithCatchup: return .catchingUp
        case .promotable: return .awaitingKey
        case .ha: return .haFollower
        case .aggregator, .based: return nil
        }
    }

    /// How each role follows once it stops producing without halting, if it can.
    private static func followingAfterProducing(of role: Role) -> Following? {
        switch role {
        case .aggregator, .aggregatorWithCatchup: return .afterRotation
        case .promotable: return .awaitingKey
        case .ha: return .haFollower
        case .full, .based: return nil
        }
    }
}
