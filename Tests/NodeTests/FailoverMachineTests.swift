@testable import Node
import Testing

/// The failover rules alone: no threads, stores or processes. The expected transitions are
/// written out here as a table of their own, and every (role, reachable state, event) is
/// checked against it: each legal step lands where the table says, each other one is refused
/// naming the state and the event, and changes nothing.
@Suite struct FailoverMachineTests {
    typealias M = FailoverMachine

    struct Step: Hashable, CustomStringConvertible {
        let role: M.Role
        let from: String
        let event: String
        var description: String { "\(role): \(from) --\(event)-->" }
    }

    static let events: [M.Event] = M.Following.allCases.map { .follow($0) } + [.caughtUp, .produce, .halt(reason: "x")]

    static func name(_ state: M.State) -> String {
        switch state {
        case .starting: return "starting"
        case .following(let why): return "following(\(why))"
        case .caughtUp: return "caughtUp"
        case .producing: return "producing"
        case .halted: return "halted"
        }
    }

    static func name(_ event: M.Event) -> String {
        switch event {
        case .follow(let why): return "follow(\(why))"
        case .caughtUp: return "caughtUp"
        case .produce: return "produce"
        case .halt: return "halt"
        }
    }

    /// SPEC §6, role by role (halt, legal from every state but halted, is added below).
    static let legal: [Step: String] = {
        var t: [Step: String] = [
            Step(role: .full, from: "starting", event: "follow(chain)"): "following(chain)",

            Step(role: .aggregator, from: "starting", event: "produce"): "producing",
            Step(role: .aggregator, from: "producing", event: "follow(afterRotation)"): "following(afterRotation)",

            Step(role: .aggregatorWithCatchup, from: "starting", event: "follow(catchingUp)"): "following(catchingUp)",
            Step(role: .aggregatorWithCatchup, from: "following(catchingUp)", event: "follow(catchingUp)"): "following(catchingUp)",
            Step(role: .aggregatorWithCatchup, from: "following(catchingUp)", event: "caughtUp"): "caughtUp",
            Step(role: .aggregatorWithCatchup, from: "caughtUp", event: "produce"): "producing",
            Step(role: .aggregatorWithCatchup, from: "producing", event: "follow(afterRotation)"): "following(afterRotation)",

            Step(role: .promotable, from: "starting", event: "follow(awaitingKey)"): "following(awaitingKey)",
            Step(role: .promotable, from: "following(awaitingKey)", event: "follow(awaitingKey)"): "following(awaitingKey)",
            Step(role: .promotable, from: "following(awaitingKey)", event: "caughtUp"): "caughtUp",
            Step(role: .promotable, from: "caughtUp", event: "produce"): "producing",
            Step(role: .promotable, from: "producing", event: "follow(awaitingKey)"): "following(awaitingKey)",

            Step(role: .ha, from: "starting", event: "follow(haFollower)"): "following(haFollower)",
            Step(role: .ha, from: "following(haFollower)", event: "follow(haFollower)"): "following(haFollower)",
            Step(role: .ha, from: "following(haFollower)", event: "produce"): "producing",
            Step(role: .ha, from: "producing", event: "follow(haFollower)"): "following(haFollower)",

            Step(role: .based, from: "starting", event: "produce"): "producing",
        ]
        for role in M.Role.allCases {
            for from in ["starting", "caughtUp", "producing"] + M.Following.allCases.map({ "following(\($0))" }) {
                t[Step(role: role, from: from, event: "halt")] = "halted"
            }
        }
        return t
    }()

    /// Every state a role can reach, with the events that lead there from `starting`.
    static func reachable(_ role: M.Role) -> [(path: [M.Event], machine: M)] {
        var seen: Set<String> = []
        var queue: [(path: [M.Event], machine: M)] = [([], M(role: role))]
        var out: [(path: [M.Event], machine: M)] = []
        while !queue.isEmpty {
            let (path, machine) = queue.removeFirst()
            guard seen.insert(name(machine.state)).inserted else { continue }
            out.append((path, machine))
            for event in events {
                var next = machine
                if (try? next.event(event)) != nil { queue.append((path + [event], next)) }
            }
        }
        return out
    }

    @Test(arguments: M.Role.allCases)
    func everyStepIsTheTablesLegalOneOrRefused(_ role: M.Role) throws {
        let states = Self.reachable(role)
        var taken: Set<Step> = []
        for (path, machine) in states {
            for event in Self.events {
                var m = machine
                let step = Step(role: role, from: Self.name(machine.state), event: Self.name(event))
                if let to = Self.legal[step] {
                    let phase = try m.event(event)
                    #expect(Self.name(m.state) == to, "\(step) after \(path)")
                    #expect(phase == m.state.phase)
                    taken.insert(step)
                } else {
                    #expect(throws: M.Refused(role: role, from: machine.state, event: event), "\(step) must be refused") {
                        try m.event(event)
                    }
                    #expect(m == machine, "a refused \(step) changed the state")
                }
            }
        }
        // Every legal step of this role was reached: the table holds no transition the
        // machine cannot take.
        let reached = Set(states.map { Self.name($0.machine.state) })
        let expected = Set(Self.legal.keys.filter { $0.role == role && reached.contains($0.from) })
        #expect(taken == expected)
        let unreached = Self.legal.keys.filter { $0.role == role && $0.event != "halt" && !taken.contains($0) }
        #expect(unreached.isEmpty, "legal steps the machine never took: \(unreached)")
    }

    @Test(arguments: M.Role.allCases)
    func haltedStaysHaltedWithItsFirstReason(_ role: M.Role) throws {
        for (_, machine) in Self.reachable(role) where Self.name(machine.state) != "halted" {
            var m = machine
            #expect(try m.event(.halt(reason: "first")) == .halted)
            for event in Self.events {
                #expect(throws: M.Refused.self) { try m.event(event) }
            }
            #expect(m.state == .halted(reason: "first"))
        }
    }

    /// The phases a catchup aggregator shows, in order, as the node walks them.
    @Test func aCatchupAggregatorWalksItsPhases() throws {
        var m = M(role: .aggregatorWithCatchup)
        #expect(m.state.phase == .starting)
        #expect(try m.event(.follow(.catchingUp)) == .syncing)
        #expect(try m.event(.follow(.catchingUp)) == .syncing)
        #expect(try m.event(.caughtUp) == .caughtUp)
        #expect(try m.event(.produce) == .aggregating)
        #expect(try m.event(.follow(.afterRotation)) == .syncing)
        // Following as a full node after the rotation: never producing again.
        #expect(throws: M.Refused.self) { try m.event(.produce) }
        #expect(throws: M.Refused.self) { try m.event(.caughtUp) }
    }

    /// No producing role skips its gate: a catchup aggregator or a promotable node cannot go
    /// from following straight to producing, nor a full node ever produce.
    @Test func noRoleProducesPastItsGate() {
        for role in [M.Role.aggregatorWithCatchup, .promotable, .full] {
            for (_, machine) in Self.reachable(role) where machine.state != .caughtUp {
                var m = machine
                #expect(throws: M.Refused.self, "\(role) produced from \(machine.state)") { try m.event(.produce) }
            }
        }
    }
}
