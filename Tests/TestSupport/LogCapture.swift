import Logging
import Synchronization

/// Collects log lines (level and message) for assertions on what the log says.
package final class LogCapture: Sendable {
    package init() {}

    package let lines = Mutex<[(Logger.Level, String)]>([])

    package var logger: Logger {
        Logger(label: "test.capture") { _ in CapturingHandler(capture: self) }
    }

    package var all: [(Logger.Level, String)] { lines.withLock { $0 } }

    struct CapturingHandler: LogHandler {
        let capture: LogCapture
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }

        func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String,
                 file: String, function: String, line: UInt) {
            let text = "\(message)" + (metadata.map { " \($0)" } ?? "")
            capture.lines.withLock { $0.append((level, text)) }
        }
    }
}
