# Gatehouse. `make demo` runs the whole system on loopback; `make test` runs
# every test against real peers. Both install what they need first.
#
# The machine's Go 1.26.8 has known vulnerabilities in net/http and
# crypto/x509; the go command fetches 1.26.10 through the module proxy.
export GOTOOLCHAIN := go1.26.10
GO ?= go
BIN := bin/gatehouse
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: all build deps demo test test-short lint bench fuzz clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/gatehouse

deps:
	bash scripts/install-deps.sh

demo: deps build
	$(BIN) demo

# The whole suite, with real peers (oidc-provider, Dex, Pebble, redis-server,
# nginx, Chromium). Missing peers fail here; only -short may skip them.
test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...

test-short:
	$(GO) test -short -count=1 ./...

lint:
	$(GO) vet ./...
	test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...

bench: deps build
	bash scripts/bench.sh

clean:
	rm -rf bin test-artifacts
