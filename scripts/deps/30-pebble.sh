#!/usr/bin/env bash
# Pebble, Let's Encrypt's small ACME test server, for the ACME integration
# tests of proxy/certs. Built from the Go module proxy into .tools/bin;
# skipped when the binary there already is the pinned version.
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.26.10}
PEBBLE_VERSION=v2.10.3
BIN=.tools/bin/pebble
if [ -x "$BIN" ] && go version -m "$BIN" 2>/dev/null | grep -q "mod[[:space:]]*github.com/letsencrypt/pebble/v2[[:space:]]*${PEBBLE_VERSION}"; then
  exit 0
fi
mkdir -p .tools/bin
# Build outside the module so that its go.mod is neither read nor changed.
( cd /tmp && GOBIN="$OLDPWD/.tools/bin" GOFLAGS=-mod=mod go install "github.com/letsencrypt/pebble/v2/cmd/pebble@${PEBBLE_VERSION}" )
go version -m "$BIN" | grep -q "github.com/letsencrypt/pebble/v2[[:space:]]*${PEBBLE_VERSION}" || { echo "30-pebble.sh: $BIN is not pebble ${PEBBLE_VERSION}" >&2; exit 1; }
