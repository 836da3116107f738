import Chain
import Store
import Production
import DAClient
import Submission
import Config
import Logging
@testable import Node

extension AggregatorRuntime {
    /// A producer and a submitter over the test's store and DA, as a node builds them for its
    /// producing roles (`ha`: fenced through etcd and gated on the leadership, as an HA member's
    /// are). Real parts: a role that reaches production in a test produces.
    static func forTests(store: BlockStore, executor: any Executor, signer: BlockSigner, mark: any SignerMark,
                         client: CelestiaDAClient, namespace: DANamespace, ha: HARuntime? = nil,
                         logger: Logger) -> AggregatorRuntime {
        let producer = BlockProducer(store: store, executor: executor, signer: signer, mark: mark,
                                     timing: .init(blockTime: .milliseconds(50)),
                                     fence: ha.map { HAFence(runtime: $0) }, logger: logger) { _ in }
        let options = SubmitterOptions(headerNamespace: namespace, dataNamespace: namespace, maxBlobSize: 1 << 20,
                                       interval: .milliseconds(50))
        var gate: (@Sendable () -> Bool)?
        if let ha { gate = { ha.mayPublish } }
        let submitter = DASubmitter(client: client, store: store, executor: executor, signer: signer, options: options,
                                    publishGate: gate, logger: logger)
        return AggregatorRuntime(producer: producer, submitter: submitter, logger: logger)
    }
}
