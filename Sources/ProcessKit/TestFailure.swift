/// What a test helper throws: a sentence naming what went wrong (a process that exited, a
/// deadline that passed, an answer that was not what the test needs).
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
