/// What a test helper throws: a sentence naming what went wrong (a process that exited, a
/// deadline that passed, an answer that was not what the test needs).
package struct TestFailure: Error, CustomStringConvertible {
    package let description: String
    package init(_ description: String) { self.description = description }
}
