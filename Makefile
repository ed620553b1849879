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

.PHONY: all build deps demo test test-short check-format check-tidy lint bench fuzz clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/gatehouse

deps:
	bash scripts/install-deps.sh

demo: deps build
	$(BIN) demo

# The whole suite, with real peers (oidc-provider, Dex, Pebble, redis-server,
# nginx, Chromium). Missing peers fail here; only -short may skip them.
test: deps check-format check-tidy
	$(GO) vet ./...
	.tools/bin/staticcheck ./...
	$(GO) test -race -count=1 -timeout 30m ./...
	$(GO) run ./cmd/gatehouse policy test --coverage --threshold 100 examples/policies
	$(GO) run ./cmd/gatehouse policy test examples/quickstart/policies

test-short:
	$(GO) test -short -count=1 ./...

check-format:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

check-tidy:
	@$(GO) mod tidy -diff >/dev/null || (echo "go.mod/go.sum are not tidy: run go mod tidy"; $(GO) mod tidy -diff; exit 1)

# lint = what test checks plus govulncheck against an offline database built
# from golang.org/x/vulndb (its online database cannot be reached here).
lint: deps check-format check-tidy
	$(GO) vet ./...
	.tools/bin/staticcheck ./...
	bash scripts/vulndb.sh
	.tools/bin/govulncheck -db file://$(CURDIR)/.tools/vulndb ./...

bench: deps build
	bash scripts/bench.sh

clean:
	rm -rf bin test-artifacts
