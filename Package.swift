// swift-tools-version:6.1
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "evnode",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "evnode", targets: ["evnode"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-protobuf", from: "1.39.0"),
        .package(url: "https://github.com/grpc/grpc-swift-2", from: "2.4.3"),
        .package(url: "https://github.com/grpc/grpc-swift-nio-transport", from: "2.9.2"),
        .package(url: "https://github.com/grpc/grpc-swift-protobuf", from: "2.4.1"),
    ],
    targets: [
        // C libraries from Debian (installed by `make deps`).
        .systemLibrary(name: "CRocksDB", pkgConfig: "rocksdb",
                       providers: [.apt(["librocksdb-dev"])]),
        // Argon2id for the encrypted signer.json (the reference implementation, libargon2-dev).
        .systemLibrary(name: "CArgon2", pkgConfig: "libargon2",
                       providers: [.apt(["libargon2-dev"])]),
        // curl_easy_setopt/getinfo are variadic: Swift needs typed wrappers.
        .target(name: "CCurlShim",
                linkerSettings: [.linkedLibrary("curl")]),

        // The shared primitives every layer uses and none owns: hex, Base58, durations, RFC 3339
        // timestamps, durable file writes, retry delays, the wake-up signal. No dependencies.
        .target(name: "Primitives", swiftSettings: strict),
        // The generic libcurl HTTP client (keep-alive connections on threads of their own), used
        // by the DA client, the EVM executor and the etcd client alike.
        .target(name: "HTTPClient", dependencies: [
            "CCurlShim",
            .product(name: "NIOPosix", package: "swift-nio"),
        ], swiftSettings: strict),
        // Counters, gauges and histograms on atomics, the Prometheus text format, and ev-node's
        // series: handed to the components where each event happens. No dependencies.
        .target(name: "Telemetry", swiftSettings: strict),
        // Child processes by PID (reaped by whoever started them, killed when the starter exits),
        // free loopback ports, waits with deadlines and a loopback HTTP client: the one kit the
        // tests and the benchmark share. Linked only by TestSupport and evnode-testkit.
        .target(name: "ProcessKit", swiftSettings: strict),
        // Settings, their loader and flags, the home layout, genesis, the node's configuration and
        // the key files that are configuration.
        .target(name: "Config", dependencies: [
            "Primitives",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
        ], swiftSettings: strict),
        // The signer's key files: ev-node's encrypted signer.json (Argon2id + AES-256-GCM), the
        // legacy plaintext signer.key, `keys export/import`. Its own target so that only what
        // unlocks a signer links libargon2, not everything that imports Config.
        .target(name: "KeyStore", dependencies: [
            "CArgon2", "Config", "Primitives",
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: strict),
        // Block types, wire codec, hashing, signing, validation, and the executor seam.
        .target(name: "Chain", dependencies: [
            "Config", "Primitives",
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: strict),
        // RocksDB and the block store: blocks, state and executor writes committed together;
        // the double-sign evidence log (its own key range).
        .target(name: "Store", dependencies: [
            "CRocksDB", "Chain", "Config", "Primitives",
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // Validate → execute → commit (the applier), the KV executor, the mempool, the reconcile.
        .target(name: "Execution", dependencies: [
            "Chain", "Config", "Primitives", "Store",
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // Talking to a DA node, with no block in sight: the Celestia JSON-RPC client, the head
        // subscription, paced and hedged range retrieval, namespaces, blobs, DA errors.
        .target(name: "DAClient", dependencies: [
            "Config", "HTTPClient", "Primitives",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ], swiftSettings: strict),
        // Blocks in: the sync pipeline, proven peer heights, the DA follower's walk and inclusion
        // tracking, forced-inclusion retrieval and verification, recovery (ancestor search,
        // authoritative headers, divergence recovery).
        .target(name: "Sync", dependencies: [
            "Chain", "DAClient", "Execution", "Primitives", "Store", "Telemetry",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], swiftSettings: strict),
        // Blocks out: the builder, the clock, the producer, the based sequencer.
        .target(name: "Production", dependencies: [
            "Chain", "Config", "Execution", "Primitives", "Store", "Telemetry",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], swiftSettings: strict),
        // Blocks out to DA: the submitter, its batching policy, its failure classes and its log.
        .target(name: "Submission", dependencies: [
            "Chain", "Config", "DAClient", "Execution", "Primitives", "Store", "Telemetry",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: strict),
        // `evnode local-da`: the development DA node (JSON-RPC, WebSocket heads, RocksDB). Linked
        // by the CLI, evnode-testkit and tests only, never by Node.
        .target(name: "LocalDA", dependencies: [
            "CRocksDB", "Config", "DAClient", "Primitives", "Store",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
        ], swiftSettings: strict),
        // The etcd v3 client (its JSON gateway) the HA aggregators lease and replicate through.
        .target(name: "Etcd", dependencies: [
            "HTTPClient",
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // The libp2p stack ev-node speaks, with no block in sight: multiaddrs, peer ids, the Host
        // (TCP, multistream-select, Noise, yamux, identify, ping), FloodSub, the byte budgets and
        // limits that bound what strangers make it hold. What it counts goes to an observer.
        .target(name: "Libp2p", dependencies: [
            "Primitives",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "DequeModule", package: "swift-collections"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], swiftSettings: strict),
        // The P2P sync service on libp2p: gossip of blocks, go-header's exchange (client and
        // server), peer gating and bans, the signed-block validator.
        .target(name: "P2PSync", dependencies: [
            "Chain", "Config", "Libp2p", "Primitives", "Store", "Sync", "Telemetry",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], swiftSettings: strict),
        // The EVM executor: drives an execution client (ev-reth) over the Engine API.
        .target(name: "EVM", dependencies: [
            "Chain", "Config", "Execution", "HTTPClient", "Primitives", "Store",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        // ev-node's RPC messages and services (evnode.v1) and gRPC reflection, generated from
        // Protos/ by `make protos-rpc` and committed (the protobuf build plugin is not used).
        .target(name: "RPCAPI", dependencies: [
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
        ]),
        // The remote signer's gRPC messages and services: ev-node's evnode.v1.SignerService and
        // evnode's own SignerMarkService, generated from Protos/ by `make protos-signer` and
        // committed (clients and servers both: the node calls, `evnode signer serve` answers).
        .target(name: "SignerAPI", dependencies: [
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
        ]),
        // PKCS#11 for the remote signer's key in a token: Debian's p11-kit header (libp11-kit-dev),
        // the token's module loaded with dlopen by path.
        .target(name: "CPKCS11",
                linkerSettings: [.linkedLibrary("dl")]),
        // The remote signer (issue 29): the fence where the key is (what it signs, its durable
        // mark), the gRPC server of `evnode signer serve`, and the node's client of it.
        .target(name: "RemoteSigner", dependencies: [
            "CPKCS11", "Chain", "Config", "Primitives", "SignerAPI", "Telemetry",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], swiftSettings: strict),
        // Assembly of a node by role, failover and HA, RPC and the dashboard, metrics.
        .target(name: "Node", dependencies: [
            "Chain", "Config", "DAClient", "EVM", "Etcd", "Execution", "HTTPClient", "P2PSync", "Primitives", "Production", "RPCAPI", "RemoteSigner", "Store", "Submission", "Sync", "Telemetry",
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], swiftSettings: strict),
        // The CLI.
        .executableTarget(name: "evnode", dependencies: [
            "Chain", "Config", "Execution", "KeyStore", "Libp2p", "LocalDA", "Node", "P2PSync", "Primitives", "RemoteSigner", "Store",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
        ], swiftSettings: strict),

        // Internal helper processes for tests (e.g. a store writer the crash test SIGKILLs).
        // Tests find it next to themselves in .build/<config>/: run `swift build` first.
        // Also the benchmark driver (`make bench`): makes a chain, runs nodes, measures.
        .executableTarget(name: "evnode-testkit", dependencies: [
            "CRocksDB", "Chain", "Config", "DAClient", "EVM", "Execution", "KeyStore", "Primitives", "ProcessKit", "Production", "Store", "Submission",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),

        // Fuzzing (README "Fuzzing"): the fuzz targets — each a parser that outside input reaches
        // and the state machine behind it — as a library the tests replay inputs through, and
        // `evnode-fuzz`: a libFuzzer binary when `make fuzz` builds it with -sanitize=fuzzer
        // (in .build-fuzz), an input replayer in every other build.
        .target(name: "FuzzTargets", dependencies: [
            "Chain", "Config", "DAClient", "EVM", "HTTPClient", "Libp2p", "P2PSync", "Primitives", "Sync",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], path: "Fuzz/Targets", swiftSettings: strict),
        .executableTarget(name: "evnode-fuzz", dependencies: [
            "FuzzTargets",
        ], path: "Fuzz/Driver", swiftSettings: strict),

        // What every test target shares: temp directories, free ports, child processes by PID,
        // waits with deadlines, HTTP over curl, the signed test chain, and the launchers of the
        // local DA, the faulty-DA proxy, etcd, the py-evm EL — and `Testnet`, the one harness
        // for tests that run nodes as real processes. Only test targets depend on it.
        .target(name: "TestSupport", dependencies: [
            "Chain", "Config", "DAClient", "Execution", "KeyStore", "Primitives", "ProcessKit", "Production", "Store", "Sync",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ], path: "Tests/TestSupport", swiftSettings: strict),

        .testTarget(name: "PrimitivesTests", dependencies: [
            "Primitives",
        ], swiftSettings: strict),
        .testTarget(name: "ExecutionTests", dependencies: [
            "Chain", "Config", "Execution", "Primitives", "Store", "TestSupport",
        ], swiftSettings: strict),
        .testTarget(name: "ConfigTests", dependencies: [
            "Config", "KeyStore", "Primitives",
        ], swiftSettings: strict),
        .testTarget(name: "KeyStoreTests", dependencies: [
            "Config", "KeyStore", "Primitives", "TestSupport",
        ], swiftSettings: strict),
        .testTarget(name: "ChainTests", dependencies: [
            "Chain", "Config", "Primitives", "TestSupport",
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: strict),
        .testTarget(name: "StoreTests", dependencies: [
            "Chain", "Config", "Execution", "Primitives", "ProcessKit", "Store", "TestSupport",
        ], swiftSettings: strict),
        .testTarget(name: "SyncTests", dependencies: [
            "Chain", "Config", "DAClient", "Execution", "Primitives", "ProcessKit", "Production", "Store", "Submission", "Sync", "TestSupport",
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        .testTarget(name: "ProductionTests", dependencies: [
            "Chain", "Config", "DAClient", "Execution", "Primitives", "ProcessKit", "Production", "Store", "Submission", "Sync", "TestSupport",
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        .testTarget(name: "DAClientTests", dependencies: [
            "Config", "DAClient", "HTTPClient", "LocalDA", "Primitives", "ProcessKit", "Submission", "TestSupport",
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        .testTarget(name: "LocalDATests", dependencies: [
            "DAClient", "Primitives", "ProcessKit", "TestSupport",
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        .testTarget(name: "EVMTests", dependencies: [
            "Chain", "Config", "EVM", "HTTPClient", "Primitives", "ProcessKit", "Production", "Store", "TestSupport",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
        ], swiftSettings: strict),
        .testTarget(name: "Libp2pTests", dependencies: [
            "Config", "Libp2p", "Primitives", "ProcessKit", "TestSupport",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], swiftSettings: strict),
        .testTarget(name: "P2PSyncTests", dependencies: [
            "Chain", "Config", "Libp2p", "P2PSync", "Primitives", "ProcessKit", "Store", "Sync", "Telemetry", "TestSupport",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], swiftSettings: strict),
        .testTarget(name: "RemoteSignerTests", dependencies: [
            "Chain", "Config", "Primitives", "RemoteSigner", "TestSupport",
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: strict),
        .testTarget(name: "NodeTests", dependencies: [
            "Chain", "Config", "DAClient", "Etcd", "Execution", "Libp2p", "Node", "P2PSync", "Primitives", "ProcessKit", "Production", "RPCAPI", "Store", "Submission", "Sync", "Telemetry", "TestSupport",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], swiftSettings: strict),
        // Replays the fuzz corpus and every regression input through `evnode-fuzz replay`.
        .testTarget(name: "FuzzTests", dependencies: [
            "FuzzTargets", "TestSupport",
        ], swiftSettings: strict),
        // Starts real `evnode` processes; needs the executable built first.
        .testTarget(name: "IntegrationTests", dependencies: [
            "Chain", "Config", "DAClient", "Execution", "KeyStore", "Libp2p", "P2PSync", "Primitives", "ProcessKit", "RemoteSigner", "Store", "Sync", "TestSupport",
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: strict),
    ]
)
