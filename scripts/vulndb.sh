#!/usr/bin/env bash
# govulncheck with an offline vulnerability database (its online one cannot be
# reached here): the OSV files of golang.org/x/vulndb at a pinned version,
# indexed by its own cmd/indexdb into .tools/vulndb. Used by `make lint`.
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOTOOLCHAIN=${GOTOOLCHAIN:-go1.26.10}
VULNDB=v0.0.0-20261105234957-e22db6528018
VULN=v1.9.0
mkdir -p .tools/bin
stamp=.tools/vulndb/.version
if [ -x .tools/bin/govulncheck ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$VULNDB $VULN" ]; then exit 0; fi
GOBIN="$PWD/.tools/bin" go install "golang.org/x/vuln/cmd/govulncheck@$VULN"
GOBIN="$PWD/.tools/bin" go install "golang.org/x/vulndb/cmd/indexdb@$VULNDB"
src=$(go mod download -json "golang.org/x/vulndb@$VULNDB" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
rm -rf .tools/vulndb
.tools/bin/indexdb -vulns "$src/data/osv" -out .tools/vulndb
echo "$VULNDB $VULN" > "$stamp"
