// Helper processes for tests, and the benchmark driver. Not part of the node.
//
//   evnode-testkit crash-writer --store DIR [--max-height N]
//       Opens (or creates) a block store for a fixed test chain and commits blocks in batches
//       forever (or up to N), printing "committed <height>" after each batch is durable in the
//       WAL. The crash test SIGKILLs it mid-stream. The first line is
//       "genesis <chain-id> <start-ns> <proposer-address-hex>".
//
//   evnode-testkit crash-producer --home DIR --published FILE [--blocks N] [--crash STEP --at H] [--passphrase-file F]
//       The node's BlockProducer on an `evnode init --aggregator` home, with a crash point:
//       SIGKILLs itself right after STEP (after-mark, after-commit, after-publish) of height H.
//       Published blocks are appended to FILE. See CrashProducer.swift.
//
//   evnode-testkit foreign-rocksdb --path DIR
//       Creates a plain RocksDB database holding one key: a database that is not a block store.
//
//   evnode-testkit bench --dir DIR [--blocks N] [--txs K] [--batch B]
//       Builds N signed blocks, then applies them (verify, validate, execute, commit in batches
//       of B) to a fresh store and prints the rates. A rough local check, not a test.
//
//   evnode-testkit make-chain --home DIR [--blocks N] [--txs K] [--da URL] [--interval-us U] [--store DIR] [--passphrase-file F]
//       Builds N blocks of K txs signed with the home's signer key (block n at genesis start +
//       (n-1)·U µs) and posts them to the DA node with the node's DA submitter, as the home's
//       aggregator would have; records the signer's high-water mark N. The home's store is not
//       touched (a throwaway store is used): the home looks like a sequencer that lost its disk.
//
//   evnode-testkit faulty-da --upstream http://127.0.0.1:PORT [--listen HOST:PORT] [--fault-rate R]
//                            [--seed N] [--faults 500,truncated,malformed,deep,types,stall,reset,429] [--stall-ms MS]
//       A misbehaving DA node: proxies to the upstream DA and answers the fraction R of
//       blob.GetAll calls with faults (see FaultyDA.swift). Prints "listening on HOST:PORT",
//       then "fault <kind> blob.GetAll" per fault.
//
//   evnode-testkit bench-all [--quick] [--out DIR] [--blocks N] [--txs K] [--tx-rate R]
//                            [--production-seconds S] [--evnode PATH] [--keep]
//       The benchmark of `make bench` / `make bench-quick` (see README "Benchmarks").
//
//   evnode-testkit bench-evm [--blocks N] [--txs K] [--out DIR] [--root REPO] [--keep]
//       EVM catch-up over the py-evm test EL ÷ the same chain's execution inside the EL alone
//       (README "EVM rollups"). Needs `make deps` (the virtualenv in .build/venv-evm).
//   evnode-testkit bench-da-latency [--seconds S] [--evnode PATH] [--keep]
//       Only bench-all's "DA inclusion → applied" figure (blob.Subscribe vs polling, 6 s DA blocks).
//   evnode-testkit bench-slow-da [--blocks N] [--evnode PATH] [--keep]
//       Only bench-all's "catch-up over a 100 ms DA" figure (DA heights/s ÷ 1/RTT).
//   evnode-testkit bench-ha [--kills N] [--baseline-kills M] [--evnode PATH] [--out DIR] [--keep]
//       Only bench-all's HA failover figure: kill -9 of the leader → the next leader's first
//       block, heartbeats on vs the lease-only path (see HAFailoverBench.swift). Needs etcd-server.
//   evnode-testkit bench-memory [--blocks N] [--production-seconds S] [--tx-rate R] [--no-catchup]
//                               [--no-production] [--out DIR] [--keep]
//       `make bench-memory`: RSS over a 1,000,000-block catch-up and 30 min of 10 ms production,
//       with the node's memory metrics per sample (MemoryBench.swift).
//   evnode-testkit bench-production [--seconds S] [--tx-rate R] [--block-times 10,5] [--home DIR] [--keep]
//       Only bench-all's production figures, on a fresh aggregator home (ProductionBench.swift).
//   evnode-testkit bench-catchup-from-base [--epochs N] [--txs-per-epoch M] [--evnode PATH] [--keep]
//       Only bench-all's "catch-up from base" figure: a returning sequencer replays M forced txs
//       per epoch over N epochs, against a plain DA catch-up of the same chain (CatchUpFromBaseBench.swift).
//   evnode-testkit post-forced --da URL --namespace NAME [--epochs N] [--txs-per-epoch M] [--epoch-size E]
//       Posts M forced txs per epoch of E DA heights, N times, to a local DA (PostForced.swift).

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "crash-writer": crashWriter(arguments)
case "crash-producer": await crashProducer(arguments)
case "bench": bench(arguments)
case "foreign-rocksdb": foreignRocksDB(arguments)
case "make-chain": await makeChain(arguments)
case "bench-all": benchAll(arguments)
case "faulty-da": faultyDA(arguments)
case "bench-evm": await benchEVM(arguments)
case "bench-da-latency": benchDALatency(arguments)
case "bench-slow-da": benchSlowDA(arguments)
case "bench-ha": benchHA(arguments)
case "bench-memory": benchMemory(arguments)
case "bench-production": benchProduction(arguments)
case "bench-catchup-from-base": benchCatchUpFromBase(arguments)
case "post-forced": await postForced(arguments)
default:
    fail("usage: evnode-testkit crash-writer | crash-producer | foreign-rocksdb | bench | make-chain | faulty-da | bench-all | bench-evm | bench-da-latency | bench-slow-da | bench-ha | bench-memory | bench-production | bench-catchup-from-base | post-forced (see the comment in main.swift)")
}
