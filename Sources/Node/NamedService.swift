import ServiceLifecycle

/// One of the node's services, run so that a failure of its own names it: the service group
/// only says that some service threw, and the node must say which part stopped (defect 2).
struct NamedService: Service, CustomStringConvertible {
    let component: NodeComponent
    let service: any Service

    init(_ component: NodeComponent, _ service: any Service) {
        self.component = component
        self.service = service
    }

    func run() async throws {
        do {
            try await service.run()
        } catch let cancelled as CancellationError {
            throw cancelled
        } catch {
            throw NodeFailure(component: component, underlying: error)
        }
    }

    /// The group's log lines name the service as before.
    var description: String { String(describing: service) }
}
