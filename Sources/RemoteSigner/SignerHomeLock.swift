import Primitives
import Config
#if canImport(Glibc)
import Glibc
#endif

/// An exclusive `flock` on `DIR/data/signer.lock`, held for the life of `signer serve`: two
/// signer processes on one home would each check the mark and then both sign one height. The
/// kernel drops the lock when the process ends, however it ends (kill -9 included), so a stale
/// lock never blocks a restart.
package final class SignerHomeLock: Sendable {
    package let path: String
    private let descriptor: Int32

    package init(path: String) throws(ConfigError) {
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw .file(path: path, reason: FileIO.errnoText()) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            close(fd)
            if code == EWOULDBLOCK {
                throw .conflict("\(path) is locked: another `evnode signer serve` runs on this home; two signers sharing one mark could both sign one height")
            }
            throw .file(path: path, reason: FileIO.errnoText(code))
        }
        self.path = path
        descriptor = fd
    }

    deinit {
        close(descriptor)
    }
}
