#!/usr/bin/env bash
# Dex, the second OIDC provider of the integration tests (the path without
# amr/acr: Gatehouse must not loop on step-up). `go install dex@version` fails
# because Dex's go.mod has replace directives, so a throw-away wrapper module
# outside the repo requires Dex and its api/v2 module and builds cmd/dex from
# the Go module proxy into .tools/bin/dex. No Dex code lands in this repo.
# Idempotent: skipped when .tools/bin/dex is already this version.
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.26.10}
DEX_VERSION=v0.0.0-20260303133905-11d2eeb52b42
DEX_API_VERSION=v2.4.0
out="$PWD/.tools/bin"
stamp="$out/dex.version"
if [ -x "$out/dex" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$DEX_VERSION" ]; then
  exit 0
fi
mkdir -p "$out"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-dex.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
cat > go.mod <<MOD
module gatehouse.local/dexbuild

go 1.26.0

require (
	github.com/dexidp/dex $DEX_VERSION
	github.com/dexidp/dex/api/v2 $DEX_API_VERSION
)
MOD
cat > tools.go <<'SRC'
//go:build tools

package tools

import _ "github.com/dexidp/dex/cmd/dex"
SRC
echo "building dex $DEX_VERSION (takes a few minutes)..." >&2
go mod download github.com/dexidp/dex github.com/dexidp/dex/api/v2
# Resolve the full dependency graph of cmd/dex into this wrapper module.
GOFLAGS=-mod=mod go get "github.com/dexidp/dex/cmd/dex@$DEX_VERSION" >/dev/null 2>&1 || GOFLAGS=-mod=mod go get github.com/dexidp/dex/cmd/dex
CGO_ENABLED=1 GOFLAGS=-mod=mod go build -trimpath -o "$out/dex.tmp" github.com/dexidp/dex/cmd/dex
mv "$out/dex.tmp" "$out/dex"
echo "$DEX_VERSION" > "$stamp"
echo "dex installed in $out/dex" >&2
