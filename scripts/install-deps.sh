#!/usr/bin/env bash
# Installs every peer that `make test` and `make demo` need, idempotently:
# Debian packages, the npm oidc-provider, Pebble and Dex built from the Go
# module proxy into .tools/bin. Each part lives in scripts/deps/*.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.26.10}
for f in scripts/deps/*.sh; do
  [ -f "$f" ] || continue
  bash "$f"
done
