// Issue 29's production row: the same 10 ms production run as the file signer's, with every
// header signed through `evnode signer serve` on loopback (its mark made durable per header),
// in the same `bench-all` run so that the two figures compare.

import Config
import Foundation
import ProcessKit
import KeyStore

extension BenchDriver {
    /// Serves the aggregator's key from a signer home of its own (signer.json, genesis, and the
    /// file signer's mark), then runs `produce` on the same home with `signer_type grpc`: the
    /// node signs on from the store's height.
    func produceThroughRemoteSigner(home: String) {
        step("production through the remote signer (loopback gRPC, token): \(plan.blockTimeMilliseconds) ms blocks")
        let layout = HomeLayout(home: home)
        let signerHome = "\(work)/remote-signer"
        let passphraseFile = "\(work)/remote-signer-passphrase"
        let tokenFile = "\(work)/remote-signer-token"
        do {
            try? FileManager.default.removeItem(atPath: signerHome)
            try FileManager.default.createDirectory(atPath: signerHome + "/config", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: layout.genesisFile, toPath: signerHome + "/config/genesis.json")
            try "bench-remote-signer\n".write(toFile: passphraseFile, atomically: true, encoding: .utf8)
            try "bench-token\n".write(toFile: tokenFile, atomically: true, encoding: .utf8)
            let key = try KeyFile.load(path: layout.signerKeyFile)
            try SignerFile.write(key, passphrase: Passphrase(bytes: Array("bench-remote-signer".utf8), file: passphraseFile),
                                 path: signerHome + "/config/signer.json", overwrite: true)
            // The key goes on from where the file signer left it: the signer takes over its mark
            // (as an operator moving a key would, with `evnode signer reset`). Without it the
            // signer refuses the DA submitter's data blobs for the file signer's last blocks,
            // which it never signed a header for, and the run halts.
            if let mark = try SignerHighWaterMark(path: layout.signerStateFile).load() {
                try FileManager.default.createDirectory(atPath: signerHome + "/data", withIntermediateDirectories: true)
                try SignerHighWaterMark(path: signerHome + "/data/signer.state").replace(with: mark)
            }
        } catch {
            fail("remote signer home \(signerHome): \(error)")
        }
        let port = loopbackPort()
        let signer = launchChild(name: "remote-signer", executable: evnode,
                                  arguments: ["signer", "serve", "--home", signerHome, "--listen", "127.0.0.1:\(port)",
                                              "--passphrase-file", passphraseFile, "--token-file", tokenFile],
                                  logDirectory: work)
        defer { signer.terminate() }
        waitFor("the remote signer to listen", timeout: 30, process: signer) {
            signer.output.contains("listening on 127.0.0.1:\(port)")
        }
        results.productionRemoteSigner = produce(
            home: home, blockTimeMilliseconds: plan.blockTimeMilliseconds,
            extra: ["--evnode.signer.signer_type", "grpc", "--evnode.signer.grpc_address", "127.0.0.1:\(port)",
                    "--evnode.signer.grpc_token_file", tokenFile])
    }
}

extension BenchResults {
    /// Table rows of the remote-signer run beside the file signer's of the same run.
    var remoteSignerRows: [(String, String, String, Double?)] {
        let p = productionRemoteSigner, f = production
        return [
            ("production \(plan.blockTimeMilliseconds) ms, remote signer: missed slots",
             "\(fixed(p.missedSlotPercent, 2))% (\(p.missedSlots) of \(p.blocks + p.missedSlots))",
             "file signer \(fixed(f.missedSlotPercent, 2))%; target < 1%", nil),
            ("production \(plan.blockTimeMilliseconds) ms, remote signer: block interval p50 / p99",
             "\(fixed(p.intervalP50Milliseconds, 2)) / \(fixed(p.intervalP99Milliseconds, 2)) ms",
             "file signer \(fixed(f.intervalP50Milliseconds, 2)) / \(fixed(f.intervalP99Milliseconds, 2)) ms",
             p.intervalP99Milliseconds / max(1e-9, f.intervalP99Milliseconds)),
        ]
    }

    var remoteSignerRatios: [String: Double] {
        ["production_remote_signer_interval_p99_to_file_signer": productionRemoteSigner.intervalP99Milliseconds
            / max(1e-9, production.intervalP99Milliseconds)]
    }
}
