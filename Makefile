# evnode — see README.md. `make run` and `make test` work on a fresh Debian machine.
SWIFT        ?= swift
APT_PACKAGES := librocksdb-dev libcurl4-openssl-dev libargon2-dev pkg-config curl etcd-server python3-venv stunnel4 openssl protobuf-compiler chromium libp11-kit-dev softhsm2 opensc
# The EVM tests' execution client: py-evm (+ pycryptodome, its keccak backend) behind the Engine
# API server in Tests/EVM; eth-account signs the test transfers; coincurve makes py-evm's
# signature recovery native (10× faster blocks). A virtualenv in .build.
EVM_VENV     := .build/venv-evm
EVM_PYPI     := py-evm==0.12.1b1 pycryptodome==3.24.1 eth-account==0.14.0 coincurve==21.0.0
SUDO         := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
DEMO_HOME    ?= $(CURDIR)/demo

.PHONY: deps deps-evm build release test run bench bench-quick bench-ha bench-memory clean protos fuzz fuzz-build fuzz-ci
.PHONY: protos-rpc protos-signer check-layout

# Installs the C libraries only when one is missing; runs `apt-get update` only then.
deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	else \
	  echo "deps: all present ($(APT_PACKAGES))"; \
	fi
	@$(MAKE) --no-print-directory deps-evm
	@$(MAKE) --no-print-directory $(RPC_VENV)/.installed
	@$(MAKE) --no-print-directory $(LIBP2P_VENV)/.installed
	@$(MAKE) --no-print-directory $(HOME_VENV)/.installed

# Idempotent: the virtualenv is made once and the packages installed only when one is missing.
deps-evm:
	@if [ ! -x $(EVM_VENV)/bin/python ]; then python3 -m venv $(EVM_VENV); fi
	@if ! $(EVM_VENV)/bin/python -c "import eth, Crypto, eth_account, coincurve" 2>/dev/null; then \
	  echo "installing into $(EVM_VENV): $(EVM_PYPI)"; \
	  $(EVM_VENV)/bin/pip install -q $(EVM_PYPI); \
	else \
	  echo "deps-evm: py-evm test EL present ($(EVM_VENV))"; \
	fi

# The py-libp2p test peer (Tests/IntegrationTests/py) runs in its own virtualenv: libp2p 0.8.1
# pins protobuf 6.33.x, which the peer's messages are built with (from descriptors, no codegen).
# prometheus_client parses the node's /metrics in the observability test.
LIBP2P_VENV := $(CURDIR)/.build/venv-libp2p
$(LIBP2P_VENV)/.installed:
	python3 -m venv $(LIBP2P_VENV)
	$(LIBP2P_VENV)/bin/pip install -q 'libp2p==0.8.1' 'protobuf>=6.33,<6.34' 'prometheus_client==0.26.0'
	touch $@

# The RPC tests' independent clients (Tests/IntegrationTests/py/rpc_client.py): Google's grpcio,
# stubs generated at test time by grpcio-tools from Protos/, grpcio-reflection's client. Its own
# virtualenv: grpcio-tools 1.85 generates code for protobuf 7, py-libp2p pins protobuf 6.33.
RPC_VENV := $(CURDIR)/.build/venv-rpc
$(RPC_VENV)/.installed:
	python3 -m venv $(RPC_VENV)
	$(RPC_VENV)/bin/pip install -q 'grpcio==1.85.1' 'grpcio-tools==1.85.1' 'grpcio-reflection==1.85.1'
	touch $@

# The independent ev-node home writer/reader (Tests/IntegrationTests/py/evnode_home.py): Argon2id
# and AES-GCM from PyPI, not from evnode's code, in a virtualenv of its own.
HOME_VENV := $(CURDIR)/.build/venv-home
$(HOME_VENV)/.installed:
	python3 -m venv $(HOME_VENV)
	$(HOME_VENV)/bin/pip install -q 'argon2-cffi==25.1.0' 'cryptography==50.0.2'
	touch $@

# Regenerates Sources/Libp2p/Generated (libp2p's own messages) and Sources/P2PSync/Generated
# (go-header's exchange) from Protos/ (committed; not part of the build).
# Needs protoc-gen-swift: `swift build -c release --product protoc-gen-swift` in a checkout of
# apple/swift-protobuf 1.39.0, then PROTOC_GEN_SWIFT=<its .build/release/protoc-gen-swift>.
PROTOC_GEN_SWIFT ?= protoc-gen-swift
protos:
	protoc --plugin=protoc-gen-swift=$(PROTOC_GEN_SWIFT) --swift_out=Sources/Libp2p/Generated \
	  --swift_opt=Visibility=Internal -IProtos Protos/crypto.proto Protos/identify.proto Protos/noise.proto Protos/pubsub.proto
	protoc --plugin=protoc-gen-swift=$(PROTOC_GEN_SWIFT) --swift_out=Sources/P2PSync/Generated \
	  --swift_opt=Visibility=Internal -IProtos Protos/header_request.proto

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# Builds the executables too: integration tests start real `evnode` processes. Unit and module
# tests run in parallel; the integration tests (several nodes and a DA each) run one at a time so
# that two cores are not asked to run a dozen nodes at once.
# Every process a test starts carries EVNODE_TEST_RUN; the run fails if one outlives the tests.
TEST_RUN_ID := $(shell date +%s%N)
# The leftover check runs whatever the tests did: a failing run must not hide a process it left.
test: deps check-layout
	$(SWIFT) build --build-tests
	status=0; \
	EVNODE_TEST_RUN=$(TEST_RUN_ID) $(SWIFT) test --skip-build --skip IntegrationTests || status=1; \
	EVNODE_TEST_RUN=$(TEST_RUN_ID) $(SWIFT) test --skip-build --no-parallel --filter IntegrationTests || status=1; \
	scripts/leftover-processes.sh $(TEST_RUN_ID) || status=1; \
	exit $$status

# README's module graph and Package.swift in step (issue 33): a target, its folder, every arrow.
check-layout:
	python3 scripts/check-layout.py

# Fuzzing (README "Fuzzing"): `evnode-fuzz` built with libFuzzer and AddressSanitizer in a
# scratch path of its own (.build-fuzz, so the normal build is untouched), then each target run
# for FUZZ_SECONDS (FUZZ_TARGETS: a subset). Crashes land in .build-fuzz/run/crashes/ and fail it.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
FUZZ_SCRATCH := .build-fuzz
# The coverage flags are spelled out: with -O and -sanitize=address, swiftc 6.3 drops the ones
# -sanitize=fuzzer implies, and libFuzzer would fuzz blind. The build runs without make's own
# variables in its environment: SwiftPM rebuilds this package from scratch (8 min here) when
# the environment differs from the last build's, and FUZZ_SECONDS=… would be such a difference.
FUZZ_BUILD   := env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES -u MAKE_TERMOUT -u MAKE_TERMERR \
                -u FUZZ_SECONDS -u FUZZ_TARGETS $(SWIFT) build -c release --product evnode-fuzz --scratch-path $(FUZZ_SCRATCH) \
                --sanitize fuzzer --sanitize address -Xswiftc -DEVNODE_LIBFUZZER \
                -Xswiftc -sanitize-coverage=edge,inline-8bit-counters,pc-table,trace-cmp

fuzz-build: deps
	$(FUZZ_BUILD)

fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash scripts/fuzz.sh "$$($(FUZZ_BUILD) --show-bin-path)/evnode-fuzz" $(FUZZ_TARGETS)

# What CI runs after `make test`: every target briefly.
fuzz-ci: FUZZ_SECONDS := 20
fuzz-ci: fuzz

run: release
	@bash scripts/run-demo.sh "$(DEMO_HOME)" "$$($(SWIFT) build -c release --show-bin-path)/evnode"

# Benchmarks (SPEC §11): figures with their same-run baselines; JSON in bench-results/.
# `bench` takes a few minutes on 2 cores, `bench-quick` about one. See README "Benchmarks".
bench: release
	"$$($(SWIFT) build -c release --show-bin-path)/evnode-testkit" bench-all --out bench-results
	"$$($(SWIFT) build -c release --show-bin-path)/evnode-testkit" bench-evm --blocks 2000 --txs 10 --out bench-results

bench-quick: release
	"$$($(SWIFT) build -c release --show-bin-path)/evnode-testkit" bench-all --quick --out bench-results
	"$$($(SWIFT) build -c release --show-bin-path)/evnode-testkit" bench-evm --blocks 200 --txs 10 --out bench-results

# Only the HA failover figure (also part of `bench`): 20 kill -9s of the leader with heartbeats,
# 5 on the lease-only path; about two minutes. Needs etcd-server (`make deps`).
bench-ha: release
	"$$($(SWIFT) build -c release --show-bin-path)/evnode-testkit" bench-ha --out bench-results

# Issue 18's memory figures, out of CI (most of an hour on 2 cores): RSS from 50% to 100% of a
# 1,000,000-block catch-up and from minute 5 to minute 30 of 10 ms production under 2,000 tx/s,
# each sample with the node's memory metrics (glibc heap, RocksDB). BENCH_MEMORY_FLAGS can pass
# e.g. --blocks 200000 --production-seconds 600, --no-catchup or --no-production.
bench-memory: release
	"$$($(SWIFT) build -c release --show-bin-path)/evnode-testkit" bench-memory --out bench-results $(BENCH_MEMORY_FLAGS)

clean:
	rm -rf .build $(FUZZ_SCRATCH) demo

# Regenerates Sources/RPCAPI/Generated (ev-node's evnode.v1 messages and services, gRPC
# reflection) and the descriptor set reflection serves; committed, not part of the build. Needs
# protoc-gen-swift (above) and protoc-gen-grpc-swift-2, from a checkout of grpc/grpc-swift-protobuf
# 2.4.1: `swift build -c release --product protoc-gen-grpc-swift-2 && swift build -c release
# --product protoc-gen-swift` there builds both.
PROTOC_GEN_GRPC_SWIFT ?= protoc-gen-grpc-swift-2
RPC_PROTOS := Protos/evnode/v1/evnode.proto Protos/evnode/v1/state.proto Protos/evnode/v1/state_rpc.proto \
  Protos/evnode/v1/p2p_rpc.proto Protos/evnode/v1/config.proto \
  Protos/grpc/reflection/v1/reflection.proto Protos/grpc/reflection/v1alpha/reflection.proto
protos-rpc:
	rm -rf Sources/RPCAPI/Generated && mkdir -p Sources/RPCAPI/Generated
	protoc --plugin=protoc-gen-swift=$(PROTOC_GEN_SWIFT) --plugin=protoc-gen-grpc-swift-2=$(PROTOC_GEN_GRPC_SWIFT) \
	  --swift_out=Sources/RPCAPI/Generated --swift_opt=Visibility=Public,FileNaming=PathToUnderscores \
	  --grpc-swift-2_out=Sources/RPCAPI/Generated \
	  --grpc-swift-2_opt=Visibility=Public,Client=false,Server=true,FileNaming=PathToUnderscores \
	  -IProtos $(RPC_PROTOS)
	# evnode.proto and state.proto declare no service: their gRPC files are empty.
	rm -f Sources/RPCAPI/Generated/evnode_v1_evnode.grpc.swift Sources/RPCAPI/Generated/evnode_v1_state.grpc.swift
	protoc -IProtos --include_imports --descriptor_set_out=/dev/stdout $(RPC_PROTOS) | python3 scripts/descriptor-set-swift.py \
	  > Sources/RPCAPI/Generated/DescriptorSet.swift

# Regenerates Sources/SignerAPI/Generated: ev-node's evnode.v1.SignerService and evnode's own
# SignerMarkService (the remote signer, issue 29), clients and servers both; committed, not part
# of the build. Same plugins as protos-rpc.
SIGNER_PROTOS := Protos/evnode/v1/signer.proto Protos/evnodeswift/signer/v1/mark.proto
protos-signer:
	rm -rf Sources/SignerAPI/Generated && mkdir -p Sources/SignerAPI/Generated
	protoc --plugin=protoc-gen-swift=$(PROTOC_GEN_SWIFT) --plugin=protoc-gen-grpc-swift-2=$(PROTOC_GEN_GRPC_SWIFT) \
	  --swift_out=Sources/SignerAPI/Generated --swift_opt=Visibility=Public,FileNaming=PathToUnderscores \
	  --grpc-swift-2_out=Sources/SignerAPI/Generated \
	  --grpc-swift-2_opt=Visibility=Public,Client=true,Server=true,FileNaming=PathToUnderscores \
	  -IProtos $(SIGNER_PROTOS)
