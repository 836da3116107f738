import Config
import Libp2p

extension PeerID {
    /// The peer id of a node key file, as the node derives its own (tests make keys with
    /// `KeyFile.generate()`).
    init(key: KeyFile) {
        self.init(publicKey: key.publicKey)
    }
}
