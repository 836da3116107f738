/// Why a frame or message from a peer could not be decoded. Every case names what was wrong;
/// receiving any of them disconnects and bans the sender.
package enum WireDecodeError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A frame whose length field is zero (it must at least hold the type byte).
    case emptyFrame
    /// The length field announces more than the receiver accepts; the body is never read.
    case frameTooLarge(length: UInt32, limit: Int)
    case unknownMessageType(UInt8)
    /// The payload ended before `field` of `message` was complete.
    case truncated(message: String, field: String)
    /// The payload had bytes left over after the last field of `message`.
    case trailingBytes(message: String, count: Int)
    /// A numeric field was outside what the protocol allows.
    case outOfBounds(message: String, field: String, value: UInt64, allowed: String)
    /// A field had the right size but not a valid value (for example text that is not UTF-8).
    case invalidField(message: String, field: String, reason: String)

    package var description: String {
        switch self {
        case .emptyFrame:
            return "frame with length 0"
        case .frameTooLarge(let length, let limit):
            return "frame of \(length) bytes exceeds the limit of \(limit) bytes"
        case .unknownMessageType(let t):
            return "unknown message type \(t)"
        case .truncated(let message, let field):
            return "\(message): payload ends inside \(field)"
        case .trailingBytes(let message, let count):
            return "\(message): \(count) unexpected bytes after the last field"
        case .outOfBounds(let message, let field, let value, let allowed):
            return "\(message): \(field) = \(value), allowed \(allowed)"
        case .invalidField(let message, let field, let reason):
            return "\(message): \(field) \(reason)"
        }
    }
}
