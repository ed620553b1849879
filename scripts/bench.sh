#!/usr/bin/env bash
# make bench: Gatehouse vs a bare httputil.ReverseProxy on the same upstream,
# side by side in one run. Prints a table and, last, `ratio_rps=<x> ratio_p99=<y>`.
# Extra flags go to the harness, e.g. scripts/bench.sh -rows public,policy -h2.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.26.10}
go build -o bin/bench ./scripts/bench
exec bin/bench -gatehouse bin/gatehouse "$@"
