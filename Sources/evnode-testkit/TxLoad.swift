// The production benchmark's HTTP tx load: a few client threads, each with a keep-alive
// connection, POSTing `key=value` txs to /tx at a fixed total rate, for a bounded time.

import ProcessKit
import Foundation
import Synchronization

final class TxLoad: Sendable {
    let port: Int
    let clients: Int
    /// Offered txs per second, over all clients.
    let rate: Int
    private let accepted = Atomic<Int>(0)
    private let refused = Atomic<Int>(0)
    private let failed = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    private let running = Atomic<Int>(0)

    init(port: Int, clients: Int, rate: Int) {
        self.port = port
        self.clients = max(1, clients)
        self.rate = max(1, rate)
    }

    var counts: (accepted: Int, refused: Int, failed: Int) {
        (accepted.load(ordering: .relaxed), refused.load(ordering: .relaxed), failed.load(ordering: .relaxed))
    }

    func start() {
        for client in 0..<clients {
            running.add(1, ordering: .relaxed)
            let thread = Thread { [self] in
                self.runClient(client)
                self.running.subtract(1, ordering: .relaxed)
            }
            thread.name = "bench-load-\(client)"
            thread.start()
        }
    }

    /// Stops the clients and waits (bounded) for them to finish their request in flight.
    func stop() {
        stopping.store(true, ordering: .relaxed)
        let deadline = now() + 10
        while running.load(ordering: .relaxed) > 0 && now() < deadline { usleep(5_000) }
    }

    private func runClient(_ client: Int) {
        let connection = LoopbackHTTPConnection(port: port)
        // Each client sends every `period` seconds, clients staggered across the period.
        let period = Double(clients) / Double(rate)
        var next = now() + period * Double(client) / Double(clients)
        var sequence = 0
        while !stopping.load(ordering: .relaxed) {
            let wait = next - now()
            if wait > 0 { usleep(UInt32(min(wait, 0.5) * 1e6)) ; continue }
            next += period
            // Behind schedule by more than a second (node stalled): drop the backlog, keep the rate.
            if now() - next > 1 { next = now() + period }
            sequence += 1
            let tx = Array("load\(client)-\(sequence % 5000)=v\(sequence)".utf8)
            do {
                let reply = try connection.post("/tx", body: tx)
                if reply.status == 202 {
                    accepted.add(1, ordering: .relaxed)
                } else {
                    refused.add(1, ordering: .relaxed)
                }
            } catch {
                failed.add(1, ordering: .relaxed)
                usleep(10_000)
            }
        }
    }
}
