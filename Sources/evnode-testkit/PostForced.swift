// `evnode-testkit post-forced`: what users do while a sequencer is away — raw transactions posted
// as blobs to the forced-inclusion namespace, epoch after epoch — with the node's own DA client.
// The catch-up-from-base benchmark runs it between the sequencer's stop and its return.

import DAClient
import Foundation

/// `evnode-testkit post-forced --da URL --namespace NAME --epochs N --txs-per-epoch M --epoch-size E`:
/// N times, one submission of M forced transactions (`cfb<epoch>.<index>=v`, accepted by the KV
/// filter) followed by E − 1 submissions of one filler blob to another namespace, so that on a
/// local DA without a block timer (each submission is one height) every epoch of E heights holds
/// exactly one forced submission, wherever the first one lands. Prints
/// `posted epochs=N txs=T first=H last=H head=H`.
func postForced(_ args: [String]) async {
    guard let url = option("--da", in: args), let name = option("--namespace", in: args) else {
        fail("post-forced needs --da URL and --namespace NAME")
    }
    let epochs = intOption("--epochs", in: args, default: 10)
    let perEpoch = intOption("--txs-per-epoch", in: args, default: 10)
    let epochSize = intOption("--epoch-size", in: args, default: 2)
    guard epochs >= 1, perEpoch >= 1, epochSize >= 1 else {
        fail("post-forced: --epochs, --txs-per-epoch and --epoch-size must be at least 1")
    }
    let client: CelestiaDAClient
    do {
        client = try CelestiaDAClient(options: DAClientOptions(url: url.hasSuffix("/") ? url : url + "/"))
    } catch {
        fail("post-forced: \(error)")
    }
    let forced = DANamespace(name: name)
    let filler = DANamespace(name: name + "-filler")
    var first: UInt64 = 0
    var last: UInt64 = 0
    var head: UInt64 = 0
    do {
        for epoch in 0..<epochs {
            let blobs = (0..<perEpoch).map { DABlob(namespace: forced, data: Array("cfb\(epoch).\($0)=v".utf8)) }
            last = try await client.submit(blobs)
            if first == 0 { first = last }
            head = last
            for _ in 1..<epochSize {
                head = try await client.submit([DABlob(namespace: filler, data: Array("filler".utf8))])
            }
        }
    } catch {
        await client.shutdown()
        fail("post-forced: submitting to \(url): \(error)")
    }
    await client.shutdown()
    FileHandleOut.line("posted epochs=\(epochs) txs=\(epochs * perEpoch) first=\(first) last=\(last) head=\(head)")
}
