// Helper processes for tests, and the benchmark driver. Not part of the node.
//
//   evnode-testkit crash-writer --store DIR [--max-height N]
//       Opens (or creates) a block store for a fixed test chain and commits blocks in batches
//       forever (or up to N), printing "committed <height>" after each batch is durable in the
//       WAL. The crash test SIGKILLs it mid-stream. The first line is
//       "genesis <chain-id> <start-ns> <proposer-address-hex>".
//
//   evnode-testkit foreign-rocksdb --path DIR
//       Creates a plain RocksDB database holding one key: a database that is not a block store.
//
//   evnode-testkit bench --dir DIR [--blocks N] [--txs K] [--batch B]
//       Builds N signed blocks, then applies them (verify, validate, execute, commit in batches
//       of B) to a fresh store and prints the rates. A rough local check, not a test.
//
//   evnode-testkit make-chain --home DIR [--blocks N] [--txs K] [--da URL] [--interval-us U] [--store DIR]
//       Builds N blocks of K txs signed with the home's signer key (block n at genesis start +
//       (n-1)·U µs) and posts them to the DA node with the node's DA submitter, as the home's
//       aggregator would have; records the signer's high-water mark N. The home's store is not
//       touched (a throwaway store is used): the home looks like a sequencer that lost its disk.
//
//   evnode-testkit bench-all [--quick] [--out DIR] [--blocks N] [--txs K] [--tx-rate R]
//                            [--production-seconds S] [--evnode PATH] [--keep]
//       The benchmark of `make bench` / `make bench-quick` (see README "Benchmarks").
//
//   evnode-testkit bench-da-latency [--seconds S] [--evnode PATH] [--keep]
//       Only bench-all's "DA inclusion → applied" figure (blob.Subscribe vs polling, 6 s DA blocks).

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "crash-writer": crashWriter(arguments)
case "bench": bench(arguments)
case "foreign-rocksdb": foreignRocksDB(arguments)
case "make-chain": await makeChain(arguments)
case "bench-all": benchAll(arguments)
case "bench-da-latency": benchDALatency(arguments)
default:
    fail("usage: evnode-testkit crash-writer | foreign-rocksdb | bench | make-chain | bench-all | bench-da-latency (see the comment in main.swift)")
}
