/// What is wrong with a `signer.json` or the passphrase meant to unlock it: one line naming the
/// file and the problem, which the CLI prints before exiting with status 2.
package struct SignerFileError: Error, CustomStringConvertible, Equatable, Sendable {
    package enum Problem: Equatable, Sendable {
        /// The AES-GCM tag did not verify: the passphrase is not the one the file was written
        /// with, or the encrypted key, nonce or salt was altered (the cipher cannot tell which).
        case wrongPassphraseOrAltered
        /// Not JSON, a field that is not standard base64, or a field of the wrong length.
        case damaged(String)
        /// An ev-node file from before Argon2id (no `salt`): its key derivation is not read.
        case legacyWithoutSalt
        /// The decrypted key's public half, or the key itself, disagrees with `pub_key`.
        case publicKeyMismatch(String)
        case notFound
        case unreadable(String)
        case writeFailed(String)
        case alreadyExists
        case passphraseFileNotGiven
        case passphraseFileMissing(String)
        case passphraseFileUnreadable(String, String)
        case passphraseFileEmpty(String)
        case argon2(String)
    }

    /// The `signer.json` concerned.
    package let path: String
    package let problem: Problem

    package init(path: String, problem: Problem) {
        self.path = path
        self.problem = problem
    }

    package var description: String {
        switch problem {
        case .wrongPassphraseOrAltered:
            return "\(path): cannot decrypt the signer key: wrong passphrase, or the file was altered (AES-256-GCM authentication failed)"
        case let .damaged(what):
            return "\(path): damaged or truncated signer file: \(what)"
        case .legacyWithoutSalt:
            return "\(path): a legacy signer file without \"salt\" (ev-node before Argon2id); evnode does not read its key derivation: export the raw key with the ev-node that wrote it (`keys export`), then `evnode keys import --home HOME --evnode.signer.passphrase_file FILE --force <hex>`"
        case let .publicKeyMismatch(what):
            return "\(path): \(what) (file damaged or edited?)"
        case .notFound:
            return "\(path): no signer file here"
        case let .unreadable(reason):
            return "\(path): cannot read the signer file: \(reason)"
        case let .writeFailed(reason):
            return "\(path): cannot write the signer file: \(reason) (nothing written)"
        case .alreadyExists:
            return "\(path): already exists; refusing to overwrite it (use --force to replace it)"
        case .passphraseFileNotGiven:
            return "\(path): the file signer needs a passphrase: pass --evnode.signer.passphrase_file FILE"
        case let .passphraseFileMissing(file):
            return "\(path): passphrase file \(file) does not exist"
        case let .passphraseFileUnreadable(file, reason):
            return "\(path): cannot read passphrase file \(file): \(reason)"
        case let .passphraseFileEmpty(file):
            return "\(path): passphrase file \(file) is empty (white space is trimmed)"
        case let .argon2(reason):
            return "\(path): \(reason)"
        }
    }
}
