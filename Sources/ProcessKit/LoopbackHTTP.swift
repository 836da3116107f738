// A minimal blocking HTTP/1.1 client for loopback: keep-alive, Content-Length or chunked
// bodies, a deadline per exchange. The benchmark drives nodes with it from threads of its own
// (the tx load, /status polls, /blocks reads) without pulling in an HTTP stack that would cost
// the node CPU; the tests' `HTTP` runs it on a thread of its own. A client independent of the
// node's (libcurl, NIO).

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

package struct HTTPFailure: Error, CustomStringConvertible {
    package let description: String
    package init(description: String) { self.description = description }
}

package struct LoopbackReply: Sendable {
    package var status: Int
    package var body: [UInt8]
    package var text: String { String(decoding: body, as: UTF8.self) }
}

/// One keep-alive connection to `127.0.0.1:port`, reconnecting when the server closed it.
/// Not thread-safe: one per thread.
package final class LoopbackHTTPConnection {
    package let port: Int
    /// The longest one exchange (send, then the whole reply) may take.
    package let timeout: Duration
    private var fd: Int32 = -1
    private var buffer: [UInt8] = []

    package init(port: Int, timeout: Duration = .seconds(60)) {
        self.port = port
        self.timeout = timeout
    }

    /// One request to an `http://127.0.0.1:PORT/path` (or `localhost`) URL on a fresh connection.
    package static func request(_ method: String, url: String, body: [UInt8] = [], headers: [String] = [],
                               timeout: Duration = .seconds(15)) throws -> LoopbackReply {
        guard let parsed = URLComponents(string: url), parsed.scheme == "http",
              parsed.host == "127.0.0.1" || parsed.host == "localhost", let port = parsed.port else {
            throw HTTPFailure(description: "\(url): only http://127.0.0.1:PORT URLs are loopback")
        }
        var target = parsed.percentEncodedPath.isEmpty ? "/" : parsed.percentEncodedPath
        if let query = parsed.percentEncodedQuery { target += "?" + query }
        let connection = LoopbackHTTPConnection(port: port, timeout: timeout)
        defer { connection.disconnect() }
        return try connection.exchange(method, target, body, headers + ["Connection: close"])
    }

    deinit { disconnect() }

    package func get(_ path: String) throws -> LoopbackReply {
        try request("GET", path, body: [])
    }

    package func post(_ path: String, body: [UInt8]) throws -> LoopbackReply {
        try request("POST", path, body: body)
    }

    /// `headers`: extra request header lines (`Name: value`), e.g. a proxied `Authorization`.
    package func request(_ method: String, _ path: String, body: [UInt8], headers: [String] = []) throws -> LoopbackReply {
        // A kept-alive connection may have been closed by the server: one fresh retry.
        do {
            return try exchange(method, path, body, headers)
        } catch {
            disconnect()
            return try exchange(method, path, body, headers)
        }
    }

    private func exchange(_ method: String, _ path: String, _ body: [UInt8], _ extra: [String]) throws -> LoopbackReply {
        if fd < 0 { try connect() }
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\n"
        for line in extra { head += line + "\r\n" }
        if method == "POST" || !body.isEmpty {
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
        return LoopbackReply(status: status, body: replyBody)
    }

    private func connect() throws {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { throw HTTPFailure(description: "socket: errno \(errno)") }
        var one: Int32 = 1
        setsockopt(s, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        let (seconds, attoseconds) = timeout.components
        var limit = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
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

    package func disconnect() {
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
            guard n >= 0 else {
                let e = errno
                throw HTTPFailure(description: e == EAGAIN ? "no reply from 127.0.0.1:\(port) within \(timeout)" : "recv: errno \(e)")
            }
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
