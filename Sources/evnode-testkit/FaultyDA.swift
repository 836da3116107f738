// `evnode-testkit faulty-da`: a misbehaving DA node for tests and the benchmark. An HTTP proxy on
// loopback in front of a real DA node (`evnode local-da`) that answers a fraction of the
// `blob.GetAll` calls with the faults public DA endpoints show: HTTP 500, truncated or malformed
// JSON, 50,000-deep nesting, wrong types, 3 s stalls, connection resets, 429 with Retry-After.
// Every other call, and the other answers, pass through unchanged (Authorization included).
// Faults are drawn from a seeded generator, so a run can be repeated.

import ProcessKit
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The faults the proxy answers with.
enum DAFault: String, CaseIterable {
    case http500 = "500"
    case truncated
    case malformed
    case deepNesting = "deep"
    case wrongTypes = "types"
    case stall
    case reset
    case rateLimited = "429"
}

/// SplitMix64: small, fast and the same on every machine for a given seed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

final class FaultyDAProxy: @unchecked Sendable {
    let upstreamPort: Int
    let faultRate: Double
    let faults: [DAFault]
    let stall: Double
    /// Every `blob.GetAll` at this DA height is answered `malformed` (a height that never reads).
    var failHeight: UInt64?
    /// `header.NetworkHead` is answered with this height (a lying or broken DA node), as written.
    var lyingHead: String?
    private let lock = NSLock()
    private var random: SeededGenerator
    private var counts: [DAFault: Int] = [:]
    private var calls = 0

    init(upstreamPort: Int, faultRate: Double, faults: [DAFault], seed: UInt64, stall: Double) {
        self.upstreamPort = upstreamPort
        self.faultRate = faultRate
        self.faults = faults
        self.stall = stall
        self.random = SeededGenerator(state: seed)
    }

    /// Draws the fault for one `blob.GetAll`, or nil to pass it through.
    private func draw() -> DAFault? {
        lock.lock()
        defer { lock.unlock() }
        calls += 1
        guard !faults.isEmpty, Double(random.next() >> 11) / Double(1 << 53) < faultRate else { return nil }
        let fault = faults[Int(random.next() % UInt64(faults.count))]
        counts[fault, default: 0] += 1
        return fault
    }

    func serve(listenHost: String, listenPort: Int) {
        let server = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard server >= 0 else { fail("faulty-da: socket: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(server, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(listenPort).bigEndian)
        address.sin_addr.s_addr = inet_addr(listenHost)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p in
                bind(server, p, length) == 0 && listen(server, 128) == 0 && getsockname(server, p, &length) == 0
            }
        }
        guard bound else { fail("faulty-da: cannot listen on \(listenHost):\(listenPort): errno \(errno)") }
        FileHandleOut.line("listening on \(listenHost):\(UInt16(bigEndian: address.sin_port))")
        while true {
            let client = accept(server, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                fail("faulty-da: accept: errno \(errno)")
            }
            setsockopt(client, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            Thread.detachNewThread { self.connection(client) }
        }
    }

    /// One client connection: requests in turn (keep-alive), each forwarded or faulted.
    private func connection(_ fd: Int32) {
        let reader = SocketReader(fd: fd)
        let upstream = LoopbackHTTPConnection(port: upstreamPort)
        defer { close(fd) }
        while let request = reader.readRequest() {
            let text = String(decoding: request.body.prefix(200), as: UTF8.self)
            let isGetAll = text.contains("\"blob.GetAll\"")
            if let lyingHead, text.contains("\"header.NetworkHead\"") {
                FileHandleOut.line("fault head header.NetworkHead \(lyingHead)")
                let body = "{\"jsonrpc\":\"2.0\",\"id\":\(request.id),\"result\":{\"height\":\"\(lyingHead)\","
                    + "\"header\":{\"height\":\"\(lyingHead)\",\"time\":\"2026-01-01T00:00:00Z\"}}}"
                guard respond(fd, status: 200, body: Array(body.utf8)) else { return }
                continue
            }
            var fault = isGetAll ? draw() : nil
            if isGetAll, let failHeight, Self.firstParameter(text) == failHeight {
                fault = .malformed
                FileHandleOut.line("fault height blob.GetAll \(failHeight)")
            } else if let fault {
                FileHandleOut.line("fault \(fault.rawValue) blob.GetAll")
            }
            switch fault {
            case .reset?:
                // SO_LINGER 0: close sends RST instead of FIN.
                var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
                return
            case .http500?:
                guard respond(fd, status: 500, body: Array("internal server error\n".utf8), type: "text/plain") else { return }
            case .rateLimited?:
                guard respond(fd, status: 429, body: Array("too many requests\n".utf8), type: "text/plain",
                              extra: ["Retry-After: 1"]) else { return }
            case .malformed?:
                guard respond(fd, status: 200, body: Array("{\"jsonrpc\":\"2.0\",\"id\":\(request.id),\"result\":[{<html>oops".utf8))
                else { return }
            case .deepNesting?:
                let depth = 50_000
                let body = Array("{\"jsonrpc\":\"2.0\",\"id\":\(request.id),\"result\":".utf8)
                    + [UInt8](repeating: UInt8(ascii: "["), count: depth) + [UInt8](repeating: UInt8(ascii: "]"), count: depth)
                    + [UInt8(ascii: "}")]
                guard respond(fd, status: 200, body: body) else { return }
            case .wrongTypes?:
                let body = "{\"jsonrpc\":\"2.0\",\"id\":\(request.id),\"result\":[{\"namespace\":42,\"data\":true,"
                    + "\"share_version\":\"zero\",\"commitment\":[1,2],\"index\":\"first\"}]}"
                guard respond(fd, status: 200, body: Array(body.utf8)) else { return }
            case .stall?, .truncated?, nil:
                if fault == .stall { usleep(UInt32(stall * 1_000_000)) }
                guard let reply = try? upstream.request("POST", request.path, body: request.body,
                                                        headers: request.forwardedHeaders) else {
                    _ = respond(fd, status: 502, body: Array("upstream DA unreachable\n".utf8), type: "text/plain")
                    return
                }
                var body = reply.body
                if fault == .truncated { body = Array(body.prefix(max(1, body.count / 2))) }
                guard respond(fd, status: reply.status, body: body) else { return }
            }
        }
    }

    /// The first positional parameter when it is a number (`blob.GetAll`'s DA height).
    static func firstParameter(_ text: String) -> UInt64? {
        guard let range = text.range(of: "\"params\":[") else { return nil }
        let digits = text[range.upperBound...].drop { $0 == " " }.prefix { $0.isNumber }
        return UInt64(digits)
    }

    private func respond(_ fd: Int32, status: Int, body: [UInt8], type: String = "application/json",
                         extra: [String] = []) -> Bool {
        var head = "HTTP/1.1 \(status) \(status == 200 ? "OK" : "Fault")\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\n"
        for line in extra { head += line + "\r\n" }
        head += "\r\n"
        return sendAll(fd, Array(head.utf8) + body)
    }

    private func sendAll(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            offset += n
        }
        return true
    }
}

/// One HTTP request as the proxy needs it.
struct ProxiedRequest {
    var path: String
    var body: [UInt8]
    /// Header lines passed on upstream.
    var forwardedHeaders: [String]
    /// The JSON-RPC id (a number), so that faulty answers are otherwise well-formed.
    var id: String
}

/// Reads HTTP/1.1 requests with a Content-Length body from a socket.
final class SocketReader {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(fd: Int32) { self.fd = fd }

    private func fill() -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            buffer.append(contentsOf: chunk[0..<n])
            return true
        }
    }

    /// The next request, or nil when the client closed the connection (or sent garbage).
    func readRequest() -> ProxiedRequest? {
        var headEnd: Int?
        while headEnd == nil {
            if buffer.count >= 4 {
                for i in 0...(buffer.count - 4) where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
                    headEnd = i
                    break
                }
            }
            if headEnd == nil {
                guard buffer.count < 1 << 20, fill() else { return nil }
            }
        }
        let head = String(decoding: buffer[0..<headEnd!], as: UTF8.self)
        buffer.removeFirst(headEnd! + 4)
        var lines = head.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ")
        guard requestLine.count >= 2 else { return nil }
        var length = 0
        var forwarded = ["Content-Type: application/json"]
        for line in lines {
            let lower = line.lowercased()
            if lower.hasPrefix("content-length:") {
                length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
            } else if lower.hasPrefix("authorization:") {
                forwarded.append(line)
            }
        }
        while buffer.count < length {
            guard fill() else { return nil }
        }
        let body = Array(buffer[0..<length])
        buffer.removeFirst(length)
        var id = "1"
        let text = String(decoding: body.prefix(200), as: UTF8.self)
        if let range = text.range(of: "\"id\":") {
            let digits = text[range.upperBound...].prefix { $0.isNumber }
            if !digits.isEmpty { id = String(digits) }
        }
        return ProxiedRequest(path: String(requestLine[1]), body: body, forwardedHeaders: forwarded, id: id)
    }
}

/// `evnode-testkit faulty-da --upstream URL [--listen HOST:PORT] [--fault-rate R] [--seed N]
/// [--faults 500,truncated,…] [--stall-ms MS] [--fail-height H] [--head H]`
func faultyDA(_ args: [String]) {
    guard let upstream = option("--upstream", in: args) else { fail("faulty-da needs --upstream http://127.0.0.1:PORT") }
    guard upstream.hasPrefix("http://127.0.0.1:"), let upstreamPort = Int(upstream.dropFirst("http://127.0.0.1:".count)
        .prefix { $0.isNumber }) else {
        fail("faulty-da: --upstream must be http://127.0.0.1:PORT, got \(upstream)")
    }
    let listen = option("--listen", in: args) ?? "127.0.0.1:0"
    guard let colon = listen.lastIndex(of: ":"), let listenPort = Int(listen[listen.index(after: colon)...]) else {
        fail("faulty-da: --listen must be HOST:PORT, got \(listen)")
    }
    let rateText = option("--fault-rate", in: args) ?? "0.3"
    guard let rate = Double(rateText), (0...1).contains(rate) else { fail("faulty-da: --fault-rate must be in 0…1, got \(rateText)") }
    var faults = DAFault.allCases
    if let list = option("--faults", in: args) {
        faults = list.split(separator: ",").map { name in
            guard let f = DAFault(rawValue: String(name)) else {
                fail("faulty-da: unknown fault \(name) (known: \(DAFault.allCases.map(\.rawValue).joined(separator: ",")))")
            }
            return f
        }
    }
    signal(SIGTERM) { _ in _exit(0) }
    signal(SIGINT) { _ in _exit(0) }
    signal(SIGPIPE, SIG_IGN)
    let proxy = FaultyDAProxy(upstreamPort: upstreamPort, faultRate: rate, faults: faults,
                              seed: UInt64(intOption("--seed", in: args, default: 1)),
                              stall: Double(intOption("--stall-ms", in: args, default: 3000)) / 1000)
    if let text = option("--fail-height", in: args) {
        guard let height = UInt64(text) else { fail("faulty-da: --fail-height must be a DA height, got \(text)") }
        proxy.failHeight = height
    }
    proxy.lyingHead = option("--head", in: args)
    proxy.serve(listenHost: String(listen[..<colon]), listenPort: listenPort)
}
