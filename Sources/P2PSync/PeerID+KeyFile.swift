import Config
import Libp2p

extension PeerID {
    /// The peer id of a node key file (`config/node_key.json`).
    package init(key: KeyFile) {
        self.init(publicKey: key.publicKey)
    }
}
