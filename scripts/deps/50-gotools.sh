#!/usr/bin/env bash
# Go tools used by `make test` / `make lint`, built from the module proxy into .tools/bin.
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.26.10}
mkdir -p .tools/bin
want_sc=v0.8.2
if ! [ -x .tools/bin/staticcheck ] || ! .tools/bin/staticcheck -version 2>/dev/null | grep -q "${want_sc#v}"; then
  GOBIN="$PWD/.tools/bin" go install "honnef.co/go/tools/cmd/staticcheck@$want_sc"
fi
