import Testing
@testable import Config

@Suite struct AddressTests {
    @Test func hostPorts() throws {
        #expect(try HostPort(parsing: "127.0.0.1:7676") == HostPort(host: "127.0.0.1", port: 7676))
        #expect(try HostPort(parsing: "[::1]:80") == HostPort(host: "::1", port: 80))
        #expect(try HostPort(parsing: "node-a.example:1") == HostPort(host: "node-a.example", port: 1))
        #expect(try HostPort(parsing: "0.0.0.0:0", allowPortZero: true).port == 0)
        #expect(throws: HostPort.Failure.missingPort) { try HostPort(parsing: "localhost") }
        #expect(throws: HostPort.Failure.badPort("0")) { try HostPort(parsing: "localhost:0") }
        #expect(throws: HostPort.Failure.badPort("70000")) { try HostPort(parsing: "localhost:70000") }
        #expect(throws: HostPort.Failure.emptyHost) { try HostPort(parsing: ":80") }
        #expect(throws: HostPort.Failure.badHost("a b")) { try HostPort(parsing: "a b:80") }
        #expect(throws: HostPort.Failure.badHost("::1")) { try HostPort(parsing: "::1:80") }
    }

    @Test func endpoints() throws {
        let e = try HTTPEndpoint(parsing: "http://127.0.0.1:7980")
        #expect(e.hostPort == HostPort(host: "127.0.0.1", port: 7980))
        #expect(e.url == "http://127.0.0.1:7980/")
        #expect(try HTTPEndpoint(parsing: "https://da.example/rpc").hostPort.port == 443)
        #expect(try HTTPEndpoint(parsing: "https://da.example/rpc").path == "/rpc")
        #expect(throws: HTTPEndpoint.Failure.badScheme("127.0.0.1:7980")) { try HTTPEndpoint(parsing: "127.0.0.1:7980") }
        #expect(throws: HTTPEndpoint.Failure.badAuthority(.badPort("x"))) { try HTTPEndpoint(parsing: "http://h:x") }
    }
}
