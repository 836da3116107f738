// A minimal blocking HTTP/1.1 client for loopback: keep-alive, Content-Length or chunked
// bodies. The benchmark drives nodes with it from threads of its own (the tx load, /status
// polls, /blocks reads) without pulling in an HTTP stack that would cost the node CPU.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct HTTPFailure: Error, CustomStringConvertible {
    let description: String
}

struct HTTPReply {
    var status: Int
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }
}

/// One keep-alive connection to `127.0.0.1:port`, reconnecting when the server closed it.
/// Not thread-safe: one per thread.
final class LoopbackHTTPConnection {
    let port: Int
    private var fd: Int32 = -1
    private var buffer: [UInt8] = []

    init(port: Int) {
        self.port = port
    }

    deinit { disconnect() }

    func get(_ path: String) throws -> HTTPReply {
        try request("GET", path, body: [])
    }

    func post(_ path: String, body: [UInt8]) throws -> HTTPReply {
        try request("POST", path, body: body)
    }

    /// `headers`: extra request header lines (`Name: value`), e.g. a proxied `Authorization`.
    func request(_ method: String, _ path: String, body: [UInt8], headers: [String] = []) throws -> HTTPReply {
        // A kept-alive connection may have been closed by the server: one fresh retry.
        do {
            return try exchange(method, path, body, headers)
        } catch {
            disconnect()
            return try exchange(method, path, body, headers)
        }
    }

    private func exchange(_ method: String, _ path: String, _ body: [UInt8], _ extra: [String]) throws -> HTTPReply {
        if fd < 0 { try connect() }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n"
        for line in extra { head += line + "\r\n" }
        if method == "POST" {
            if !extra.contains(where: { $0.lowercased().hasPrefix("content-type:") }) {
                head += "Content-Type: application/octet-stream\r\n"
            }
            head += "Content-Length: \(body.count)\r\n"
        }
        head += "\r\n"
        try sendAll(Array(head.utf8) + body)
        let (status, headers) = try readHead()
        var replyBody: [UInt8]
        if let length = headers["content-length"].flatMap({ Int($0) }) {
            replyBody = try readExactly(length)
        } else if headers["transfer-encoding"]?.lowercased() == "chunked" {
            replyBody = try readChunked()
        } else {
            replyBody = try readToEnd()
            disconnect()
        }
        if headers["connection"]?.lowercased() == "close" { disconnect() }
        return HTTPReply(status: status, body: replyBody)
    }

    private func connect() throws {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { throw HTTPFailure(description: "socket: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            let e = errno
            close(s)
            throw HTTPFailure(description: "connect to 127.0.0.1:\(port): errno \(e)")
        }
        fd = s
        buffer.removeAll(keepingCapacity: true)
    }

    func disconnect() {
        if fd >= 0 { close(fd) }
        fd = -1
        buffer.removeAll(keepingCapacity: true)
    }

    private func sendAll(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw HTTPFailure(description: "send: errno \(errno)") }
            offset += n
        }
    }

    /// Reads more bytes into the buffer; false at end of stream.
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { throw HTTPFailure(description: "recv: errno \(errno)") }
            if n == 0 { return false }
            buffer.append(contentsOf: chunk[0..<n])
            return true
        }
    }

    private func readLine() throws -> String {
        while true {
            if let i = buffer.firstIndex(of: 10) {
                var line = Array(buffer[0..<i])
                buffer.removeFirst(i + 1)
                if line.last == 13 { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            guard try fill() else { throw HTTPFailure(description: "connection closed in the middle of a reply") }
        }
    }

    private func readHead() throws -> (Int, [String: String]) {
        let statusLine = try readLine()
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else {
            throw HTTPFailure(description: "bad status line \"\(statusLine)\"")
        }
        var headers: [String: String] = [:]
        while true {
            let line = try readLine()
            if line.isEmpty { break }
            if let colon = line.firstIndex(of: ":") {
                let name = line[..<colon].lowercased()
                let value = line[line.index(after: colon)...].drop { $0 == " " }
                headers[name] = String(value)
            }
        }
        return (status, headers)
    }

    private func readExactly(_ count: Int) throws -> [UInt8] {
        while buffer.count < count {
            guard try fill() else { throw HTTPFailure(description: "connection closed in the middle of a body") }
        }
        let out = Array(buffer[0..<count])
        buffer.removeFirst(count)
        return out
    }

    private func readChunked() throws -> [UInt8] {
        var out: [UInt8] = []
        while true {
            let sizeLine = try readLine()
            guard let size = Int(sizeLine.split(separator: ";").first ?? "", radix: 16) else {
                throw HTTPFailure(description: "bad chunk size \"\(sizeLine)\"")
            }
            if size == 0 {
                while try !readLine().isEmpty {}
                return out
            }
            out += try readExactly(size)
            _ = try readLine()
        }
    }

    private func readToEnd() throws -> [UInt8] {
        while try fill() {}
        let out = buffer
        buffer.removeAll()
        return out
    }
}

/// A free TCP port on 127.0.0.1 (bound to port 0 and released; the caller binds it next).
func freeLoopbackPort() -> Int {
    let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(s) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { p -> Bool in
            bind(s, p, length) == 0 && getsockname(s, p, &length) == 0
        }
    }
    guard bound else { fail("cannot bind a loopback port: errno \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
}
