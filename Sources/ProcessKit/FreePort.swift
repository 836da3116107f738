#if canImport(Glibc)
import Glibc
#endif

/// A loopback TCP port for a process to listen on, free a moment ago. Taken below the kernel's
/// ephemeral range (32768…), so no outgoing connection (curl, P2P dials) can take it between
/// this probe and the process's bind, and never one of `taken` (ports handed out already).
/// Where a process can bind port 0 and report what it got, prefer that.
package func freeLoopbackPort(avoiding taken: Set<Int> = []) throws -> Int {
    for _ in 0..<200 {
        let port = Int.random(in: 20_000..<32_000)
        if taken.contains(port) { continue }
        if canBind(port: port) { return port }
    }
    throw TestFailure("no free loopback port found in 20000…31999")
}

private func canBind(port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return false }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let length = socklen_t(MemoryLayout<sockaddr_in>.size)
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 }
    }
}
