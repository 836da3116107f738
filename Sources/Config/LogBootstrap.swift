import Primitives
import Foundation
import Logging

/// A swift-log handler writing one line per record to stderr, as text or JSON lines.
package struct EvnodeLogHandler: LogHandler {
    package var metadata: Logger.Metadata = [:]
    package var logLevel: Logger.Level
    let label: String
    let format: LogFormat

    package init(label: String, level: Logger.Level, format: LogFormat) {
        self.label = label
        self.logLevel = level
        self.format = format
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata {
            merged.merge(extra) { _, new in new }
        }
        let time = RFC3339.format(unixNanoseconds: UInt64(Date().timeIntervalSince1970 * 1e9))
        let line: String
        switch format {
        case .text:
            var s = "\(time) \(event.level.rawValue.uppercased()) \(label): \(event.message)"
            for key in merged.keys.sorted() {
                s += " \(key)=\(merged[key]!)"
            }
            line = s + "\n"
        case .json:
            var s = "{\"time\":\"\(time)\",\"level\":\"\(event.level.rawValue)\",\"logger\":\(jsonQuoted(label)),\"msg\":\(jsonQuoted("\(event.message)"))"
            for key in merged.keys.sorted() {
                s += ",\(jsonQuoted(key)):\(jsonQuoted("\(merged[key]!)"))"
            }
            line = s + "}\n"
        }
        FileHandle.standardError.write(Data(line.utf8))
    }
}

package enum LogBootstrap {
    /// Installs the process-wide log handler. Call once, before any component logs.
    package static func bootstrap(level: String, format: LogFormat) {
        let lvl = Logger.Level(rawValue: level) ?? .info
        LoggingSystem.bootstrap { label in
            EvnodeLogHandler(label: label, level: lvl, format: format)
        }
    }
}
