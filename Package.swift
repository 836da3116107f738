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
        // The generic libcurl HTTP client (keep-alive connections on threads of their own), used
        // by the DA client and the EVM executor alike.
        .target(name: "HTTPClient", dependencies: [
            "CCurlShim",
            .product(name: "NIOPosix", package: "swift-nio"),
        ], swiftSettings: strict),

        // Counters, gauges and histograms on atomics, the Prometheus text format, and ev-node's
        // series: handed to the components where each event happens. No dependencies.
        .target(name: "Telemetry", swiftSettings: strict),

        .target(name: "Config", dependencies: [
            .product(name: "Yams", package: "Yams"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: strict),
        // The signer's key files: ev-node's encrypted signer.json (Argon2id + AES-256-GCM), the
        // legacy plaintext signer.key, `keys export/import`. Its own target so that only what
        // unlocks a signer links libargon2, not everything that imports Config.
        .target(name: "KeyStore", dependencies: [
            "Config", "CArgon2",
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: strict),
        // The block layer: sub-targets inside Sources/Block, in the order blocks flow through
        // them (README "Layout"). `Block` re-exports them all; dependents import `Block`.
        // Block types, wire codec, hashing, signing, validation, and the executor seam.
        .target(name: "Chain", dependencies: [
            "Config",
            .product(name: "Crypto", package: "swift-crypto"),
        ], path: "Sources/Block", exclude: ["Block.swift", "Store", "Execution", "Sync", "Recovery", "Production"],
           sources: ["Chain", "Wire", "Signing", "Validation", "Executor"], swiftSettings: strict),
        // RocksDB and the block store: blocks, state and executor writes committed together;
        // the double-sign evidence log (its own key range).
        .target(name: "Store", dependencies: [
            "Chain", "Config", "CRocksDB",
            .product(name: "Logging", package: "swift-log"),
        ], path: "Sources/Block/Store", swiftSettings: strict),
        // Validate → execute → commit (the applier), the KV executor, the mempool, the reconcile.
        .target(name: "Execution", dependencies: [
            "Chain", "Store", "Config",
            .product(name: "Logging", package: "swift-log"),
        ], path: "Sources/Block/Execution", swiftSettings: strict),
        // Blocks in: the sync pipeline, proven peer heights, recovery (ancestor search,
        // authoritative headers).
        .target(name: "Sync", dependencies: [
            "Chain", "Store", "Execution", "Config", "Telemetry",
            .product(name: "Logging", package: "swift-log"),
        ], path: "Sources/Block",
           exclude: ["Block.swift", "Chain", "Wire", "Signing", "Validation", "Executor", "Store", "Execution", "Production"],
           sources: ["Sync", "Recovery"], swiftSettings: strict),
        // Blocks out: the builder and the producer.
        .target(name: "Production", dependencies: [
            "Chain", "Store", "Execution", "Config", "Telemetry",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], path: "Sources/Block/Production", swiftSettings: strict),
        .target(name: "Block", dependencies: ["Chain", "Store", "Execution", "Sync", "Production"],
                path: "Sources/Block",
                exclude: ["Chain", "Wire", "Signing", "Validation", "Executor", "Store", "Execution", "Sync", "Recovery",
                          "Production"],
                sources: ["Block.swift"], swiftSettings: strict),
        .target(name: "DA", dependencies: [
            "Config", "Block", "HTTPClient", "CRocksDB", "Telemetry",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
            .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
        ], swiftSettings: strict),
        .target(name: "P2PSync", dependencies: [
            "Config", "Block", "Telemetry",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "DequeModule", package: "swift-collections"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
        ], swiftSettings: strict),
        // The EVM executor: drives an execution client (ev-reth) over the Engine API.
        .target(name: "EVM", dependencies: [
            "Config", "Block", "HTTPClient",
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
            "SignerAPI", "Block", "Config", "Telemetry", "CPKCS11",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ], swiftSettings: strict),
        .target(name: "Node", dependencies: [
            "Config", "Block", "DA", "P2PSync", "EVM", "HTTPClient", "Telemetry", "RPCAPI", "RemoteSigner",
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "GRPCCore", package: "grpc-swift-2"),
            .product(name: "GRPCNIOTransportHTTP2", package: "grpc-swift-nio-transport"),
            .product(name: "GRPCProtobuf", package: "grpc-swift-protobuf"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: strict),
        .executableTarget(name: "evnode", dependencies: [
            "Config", "KeyStore", "Block", "DA", "P2PSync", "Node", "RemoteSigner",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
        ], swiftSettings: strict),

        // Child processes by PID (reaped by whoever started them, killed when the starter exits),
        // free loopback ports, waits with deadlines and a loopback HTTP client: the one kit the
        // tests and the benchmark share. Linked only by TestSupport and evnode-testkit.
        .target(name: "ProcessKit", swiftSettings: strict),

        // Internal helper processes for tests (e.g. a store writer the crash test SIGKILLs).
        // Tests find it next to themselves in .build/<config>/: run `swift build` first.
        // Also the benchmark driver (`make bench`): makes a chain, runs nodes, measures.
        .executableTarget(name: "evnode-testkit", dependencies: [
            "ProcessKit", "Block", "Config", "KeyStore", "CRocksDB", "DA", "EVM",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: strict),

        // Fuzzing (README "Fuzzing"): the fuzz targets — each a parser that outside input reaches
        // and the state machine behind it — as a library the tests replay inputs through, and
        // `evnode-fuzz`: a libFuzzer binary when `make fuzz` builds it with -sanitize=fuzzer
        // (in .build-fuzz), an input replayer in every other build.
        .target(name: "FuzzTargets", dependencies: [
            "Block", "Config", "DA", "EVM", "HTTPClient", "P2PSync",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], path: "Fuzz/Targets", swiftSettings: strict),
        .executableTarget(name: "evnode-fuzz", dependencies: ["FuzzTargets"], path: "Fuzz/Driver",
                          swiftSettings: strict),

        // What every test target shares: temp directories, free ports, child processes by PID,
        // waits with deadlines, HTTP over curl, the signed test chain, and the launchers of the
        // local DA, the faulty-DA proxy, etcd, the py-evm EL — and `Testnet`, the one harness
        // for tests that run nodes as real processes. Only test targets depend on it.
        .target(name: "TestSupport", dependencies: [
            "ProcessKit", "Block", "Config", "KeyStore", "DA",
        ], path: "Tests/TestSupport", swiftSettings: strict),

        .testTarget(name: "ConfigTests", dependencies: ["Config", "KeyStore"]),
        .testTarget(name: "RemoteSignerTests", dependencies: ["ProcessKit",
            "RemoteSigner", "Block", "Config", "TestSupport",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .testTarget(name: "KeyStoreTests", dependencies: ["ProcessKit", "KeyStore", "Config", "TestSupport"]),
        .testTarget(name: "BlockTests", dependencies: ["ProcessKit",
            "Block", "Config", "TestSupport",
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .testTarget(name: "DATests", dependencies: ["ProcessKit",
            "DA", "Block", "Config", "HTTPClient", "TestSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "EVMTests", dependencies: ["ProcessKit",
            "EVM", "Block", "Config", "HTTPClient", "TestSupport",
            .product(name: "Logging", package: "swift-log"),
        ]),
        .testTarget(name: "P2PSyncTests", dependencies: ["ProcessKit", "P2PSync", "Block", "Config", "TestSupport"]),
        .testTarget(name: "NodeTests", dependencies: ["ProcessKit",
            "Node", "Block", "Config", "DA", "P2PSync", "TestSupport", "Telemetry", "RPCAPI",
            .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            .product(name: "Logging", package: "swift-log"),
        ]),
        // Replays the fuzz corpus and every regression input through `evnode-fuzz replay`.
        .testTarget(name: "FuzzTests", dependencies: ["ProcessKit", "FuzzTargets", "TestSupport"]),
        // Starts real `evnode` processes; needs the executable built first.
        .testTarget(name: "IntegrationTests", dependencies: ["ProcessKit", "Config", "KeyStore", "Block", "DA", "P2PSync", "TestSupport",
                                                            "RemoteSigner", "SignerAPI"]),
    ]
)
