#!/usr/bin/env bash
# Installs every peer that `make test` and `make demo` need, idempotently:
# Debian packages, the npm oidc-provider, Pebble, Dex and staticcheck built
# from the Go module proxy into .tools/bin. Each part lives in
# scripts/deps/*.sh. The downloads (apt, npm: 0x-2x) and the Go builds
# (3x-5x: CPU) run side by side, which saves minutes on a new machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.26.10}
mkdir -p .tools
run_group() { # run the scripts in order, log to a file, fail on the first error
  local log=$1; shift
  for f in "$@"; do
    [ -f "$f" ] || continue
    if ! bash "$f" >>"$log" 2>&1; then
      echo "install-deps: $f failed:" >&2; tail -30 "$log" >&2; return 1
    fi
  done
}
: > .tools/deps-fetch.log; : > .tools/deps-build.log
run_group .tools/deps-fetch.log scripts/deps/[0-2]*.sh & fetch=$!
run_group .tools/deps-build.log scripts/deps/[3-9]*.sh & build=$!
rc=0
wait $fetch || rc=1
wait $build || rc=1
exit $rc
