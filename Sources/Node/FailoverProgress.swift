import Synchronization

/// The failover rules as the driver's tasks share them: one lock around the value, held only
/// to take a step (the phase is entered, and logged, outside it).
final class FailoverProgress: Sendable {
    private let machine: Mutex<FailoverMachine>

    init(role: FailoverMachine.Role) {
        machine = Mutex(FailoverMachine(role: role))
    }

    var state: FailoverMachine.State { machine.withLock { $0.state } }

    /// Takes `event`, returning the phase to enter; refuses an illegal step and changes nothing.
    func step(_ event: FailoverMachine.Event) throws(FailoverMachine.Refused) -> NodePhase {
        try machine.withLock { (m: inout FailoverMachine) throws(FailoverMachine.Refused) -> NodePhase in
            try m.event(event)
        }
    }
}
