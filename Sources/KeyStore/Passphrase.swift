import Primitives

/// The passphrase that unlocks `signer.json`: the content of `--evnode.signer.passphrase_file`
/// with surrounding white space removed exactly as Go's `strings.TrimSpace` removes it (ev-node
/// trims that way, so "secret\n" and "secret" are one passphrase; a different trim would turn a
/// correct passphrase file into "wrong passphrase" for some operators).
package struct Passphrase: Sendable {
    package let bytes: [UInt8]
    /// The file it came from, for error messages.
    package let file: String

    /// More than this is not a passphrase file (and is not read into memory).
    package static let maxFileBytes = 64 * 1024

    package init(bytes: [UInt8], file: String) {
        self.bytes = bytes
        self.file = file
    }

    /// Reads and trims `file`; a missing, unreadable, oversized or (after trimming) empty file is
    /// an error naming it. `signerFile` is the key file it is meant to unlock, named in the error.
    package static func read(file: String, for signerFile: String) throws(SignerFileError) -> Passphrase {
        guard !file.isEmpty else {
            throw SignerFileError(path: signerFile, problem: .passphraseFileNotGiven)
        }
        let raw: [UInt8]
        do {
            guard try FileIO.existence(file) else {
                throw SignerFileError(path: signerFile, problem: .passphraseFileMissing(file))
            }
            raw = try FileIO.readBytes(file, limit: maxFileBytes)
        } catch let error as SignerFileError {
            throw error
        } catch {
            throw SignerFileError(path: signerFile, problem: .passphraseFileUnreadable(file, "\(error)"))
        }
        let trimmed = GoTrimSpace.trim(raw)
        guard !trimmed.isEmpty else {
            throw SignerFileError(path: signerFile, problem: .passphraseFileEmpty(file))
        }
        return Passphrase(bytes: trimmed, file: file)
    }
}

/// Go's `strings.TrimSpace` on bytes: drops leading and trailing runes for which `unicode.IsSpace`
/// holds, decoding UTF-8 from each end; an invalid UTF-8 sequence stops the trim (Go decodes it as
/// U+FFFD, which is not space), and the middle is kept byte for byte.
package enum GoTrimSpace {
    /// `unicode.IsSpace`: the Latin-1 spaces (\t \n \v \f \r, space, U+0085, U+00A0) and the other
    /// code points with the Unicode White_Space property.
    static func isSpace(_ scalar: UInt32) -> Bool {
        switch scalar {
        case 0x09...0x0D, 0x20, 0x85, 0xA0: return true
        case 0x1680, 0x2000...0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000: return true
        default: return false
        }
    }

    package static func trim(_ bytes: [UInt8]) -> [UInt8] {
        var start = 0
        var end = bytes.count
        while start < end, let (scalar, length) = decodeFirst(bytes, start, end), isSpace(scalar) {
            start += length
        }
        while start < end, let (scalar, length) = decodeLast(bytes, start, end), isSpace(scalar) {
            end -= length
        }
        return Array(bytes[start..<end])
    }

    /// The scalar starting at `i` and its length in bytes, or nil when the bytes there are not
    /// valid UTF-8.
    static func decodeFirst(_ b: [UInt8], _ i: Int, _ end: Int) -> (UInt32, Int)? {
        let lead = b[i]
        let length: Int
        var scalar: UInt32
        switch lead {
        case 0x00...0x7F: return (UInt32(lead), 1)
        case 0xC2...0xDF: length = 2; scalar = UInt32(lead & 0x1F)
        case 0xE0...0xEF: length = 3; scalar = UInt32(lead & 0x0F)
        case 0xF0...0xF4: length = 4; scalar = UInt32(lead & 0x07)
        default: return nil
        }
        guard i + length <= end else { return nil }
        for k in 1..<length {
            let c = b[i + k]
            guard c & 0xC0 == 0x80 else { return nil }
            scalar = scalar << 6 | UInt32(c & 0x3F)
        }
        // Overlong forms, surrogates and values above U+10FFFF are invalid.
        let minimum: UInt32 = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000
        guard scalar >= minimum, scalar <= 0x10FFFF, !(0xD800...0xDFFF).contains(scalar) else { return nil }
        return (scalar, length)
    }

    /// The scalar ending just before `end`, or nil when those bytes are not valid UTF-8.
    static func decodeLast(_ b: [UInt8], _ start: Int, _ end: Int) -> (UInt32, Int)? {
        // A scalar is at most 4 bytes: find its lead byte, then decode forwards.
        var i = end - 1
        while i > start, end - i < 4, b[i] & 0xC0 == 0x80 { i -= 1 }
        guard let (scalar, length) = decodeFirst(b, i, end), i + length == end else { return nil }
        return (scalar, length)
    }
}
