import Node
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// `evnode status --watch`: reads the node's `GET /events` (the dashboard's stream) and shows
/// each snapshot — on a terminal as a block redrawn in place with a progress bar, otherwise
/// (a pipe, a log) as one plain line per update. Returns when the node ends the stream.
struct StatusWatch {
    let base: String
    let json: Bool

    func run() async throws {
        guard let url = URLComponents(string: base), let host = url.host, url.scheme == "http" else {
            throw StatusFailure("--watch needs an http:// RPC address, not \(base)")
        }
        let port = url.port ?? 80
        let terminal = isatty(STDOUT_FILENO) == 1
        let channel: NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>
        do {
            channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connectTimeout(.seconds(5))
                .connect(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHTTPClientHandlers()
                        return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            throw StatusFailure("cannot reach the node at \(base): \(error)")
        }
        try await channel.executeThenClose { inbound, outbound in
            var headers = HTTPHeaders()
            headers.add(name: "Host", value: "\(host):\(port)")
            headers.add(name: "Accept", value: "text/event-stream")
            try await outbound.write(.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: "/events", headers: headers)))
            try await outbound.write(.end(nil))
            var screen = Screen(terminal: terminal)
            var parser = EventStreamParser()
            let decoder = JSONDecoder()
            for try await part in inbound {
                switch part {
                case .head(let head):
                    guard head.status == .ok else {
                        throw StatusFailure("\(base)/events answered \(head.status.code) \(head.status.reasonPhrase)")
                    }
                case .body(let buffer):
                    for event in try parser.feed(buffer.readableBytesView) where event.name == "snapshot" {
                        if json {
                            Screen.emit(event.data + "\n")
                            continue
                        }
                        guard let snapshot = try? decoder.decode(DashboardSnapshot.self, from: Data(event.data.utf8)) else {
                            throw StatusFailure("\(base)/events sent a snapshot that is not evnode's JSON")
                        }
                        screen.show(snapshot)
                    }
                case .end:
                    screen.ended()
                    return
                }
            }
            screen.ended()
        }
    }
}

/// Draws snapshots: in place on a terminal (cursor up over the previous block), as lines elsewhere.
struct Screen {
    let terminal: Bool
    private var drawnLines = 0

    init(terminal: Bool) {
        self.terminal = terminal
    }

    mutating func show(_ s: DashboardSnapshot) {
        if !terminal {
            Self.emit(Self.line(s) + "\n")
            return
        }
        let lines = Self.block(s)
        var out = drawnLines > 0 ? "\u{1B}[\(drawnLines)A" : ""
        for line in lines { out += "\u{1B}[2K" + line + "\n" }
        Self.emit(out)
        drawnLines = lines.count
    }

    func ended() {
        Self.emit("the node ended the stream (stopped)\n")
    }

    /// Straight to the file descriptor: each update is seen at once, even through a pipe.
    static func emit(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    static func clock(_ t: Double) -> String {
        let f = DateFormatter()
        f.dateFormat = "HH:mm:ss"
        return f.string(from: Date(timeIntervalSince1970: t))
    }

    /// One line per update, for pipes and logs.
    static func line(_ s: DashboardSnapshot) -> String {
        let st = s.status, h = st.heights
        var line = "\(clock(s.time)) phase=\(st.phase.rawValue) store=\(h.store) finalized=\(h.finalized) da_head=\(h.da_head) p2p_max=\(h.p2p_max) peers=\(st.peers) blocks_per_s=\(String(format: "%.1f", s.blocks_per_second))"
        if st.catchup.active {
            line += " catchup=\(h.store)/\(st.catchup.target) eta_s=\(st.catchup.eta_seconds.map { String(Int($0)) } ?? "-")"
        }
        if let da = s.submissions { line += " da_pending=\(da.pending_blocks)" }
        if let reason = st.reason { line += " reason=\"\(reason)\"" }
        return line
    }

    /// The block redrawn on a terminal.
    static func block(_ s: DashboardSnapshot) -> [String] {
        let st = s.status, h = st.heights
        var lines = [
            "\(st.chain_id)  \(st.mode)  phase \(st.phase.rawValue)\(st.reason.map { " — \($0)" } ?? "")   \(clock(s.time))",
            "store \(h.store)  finalized \(h.finalized)  DA head \(h.da_head)  peers' max \(h.p2p_max)  \(String(format: "%.1f", s.blocks_per_second)) blocks/s",
        ]
        if st.catchup.active, st.catchup.target > 0 {
            let fraction = min(1, Double(h.store) / Double(st.catchup.target))
            let width = 40
            let filled = Int(fraction * Double(width))
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            let eta = st.catchup.eta_seconds.map { "\(Int($0)) s" } ?? "-"
            lines.append("catchup [\(bar)] \(String(format: "%.1f", fraction * 100))%  \(h.store)/\(st.catchup.target)  \(String(format: "%.0f", st.catchup.blocks_per_second)) blocks/s  ETA \(eta)")
            if let blocked = st.catchup.blocked_by { lines.append("waiting for: \(blocked)") }
        }
        lines.append("peers \(st.peers)  evidence \(st.evidence)\(s.signer_mark.map { "  signer's mark \($0)" } ?? "")")
        if let da = s.submissions {
            let failures = da.failures.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            lines.append("DA pending \(da.pending_blocks) blocks  last DA height \(da.last_da_height.map(String.init) ?? "-")  failures \(failures.isEmpty ? "none" : failures)")
        }
        if let ha = st.ha { lines.append("HA \(ha.node_id) is \(ha.role)  leader \(ha.leader ?? "-")") }
        return lines
    }
}
