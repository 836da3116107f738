# evnode — see README.md. `make run` and `make test` work on a fresh Debian machine.
SWIFT        ?= swift
APT_PACKAGES := librocksdb-dev libcurl4-openssl-dev pkg-config curl
SUDO         := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
DEMO_HOME    ?= $(CURDIR)/demo

.PHONY: deps build release test run clean

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

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# Builds the executables too: integration tests start real `evnode` processes.
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

run: release
	@bash scripts/run-demo.sh "$(DEMO_HOME)" "$$($(SWIFT) build -c release --show-bin-path)/evnode"

clean:
	rm -rf .build demo
