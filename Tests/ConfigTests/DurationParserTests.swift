import Primitives
import Testing

@Suite struct DurationParserTests {
    @Test(arguments: [
        ("100ms", UInt64(100_000_000)), ("30s", 30_000_000_000), ("1m", 60_000_000_000),
        ("1m30s", 90_000_000_000), ("1h2m3s", 3_723_000_000_000), ("1.5s", 1_500_000_000),
        ("250us", 250_000), ("7ns", 7), ("0", 0), ("0s", 0), ("2h", 7_200_000_000_000),
    ])
    func parses(text: String, nanoseconds: UInt64) throws {
        #expect(try DurationParser.nanoseconds(text) == nanoseconds)
    }

    @Test func rejectsBadInput() {
        #expect(throws: DurationParser.Failure.unknownUnit("x")) { try DurationParser.nanoseconds("3x") }
        #expect(throws: DurationParser.Failure.missingUnit("30")) { try DurationParser.nanoseconds("30") }
        #expect(throws: DurationParser.Failure.negative) { try DurationParser.nanoseconds("-1s") }
        #expect(throws: DurationParser.Failure.empty) { try DurationParser.nanoseconds("") }
        #expect(throws: DurationParser.Failure.malformedNumber("1.2.3")) { try DurationParser.nanoseconds("1.2.3s") }
        #expect(throws: DurationParser.Failure.malformedNumber("s")) { try DurationParser.nanoseconds("s") }
        #expect(throws: DurationParser.Failure.overflow) { try DurationParser.nanoseconds("999999999999h") }
    }

    @Test func formatsRoundTrip() throws {
        for text in ["1m30s", "250ms", "6s", "1h", "0s", "15us", "3ns"] {
            #expect(DurationParser.format(nanoseconds: try DurationParser.nanoseconds(text)) == text)
        }
    }
}
