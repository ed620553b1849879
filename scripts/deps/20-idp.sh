#!/usr/bin/env bash
# The test OpenID Provider (test/idp, npm oidc-provider pinned in
# package-lock.json). Idempotent: npm ci runs only when node_modules is
# missing or older than the lock file.
set -euo pipefail
cd "$(dirname "$0")/../../test/idp"
command -v npm >/dev/null || { echo "20-idp.sh: npm is missing (apt-get install nodejs npm)" >&2; exit 1; }
stamp=node_modules/.gatehouse-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d node_modules/oidc-provider ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
