#!/usr/bin/env bash
# npm-ci.sh DIR BIN_OR_MODULE: installs the npm packages pinned in
# DIR/package-lock.json (node and npm from Debian when missing).
# Idempotent: npm ci runs only when DIR/node_modules is missing, lacks
# BIN_OR_MODULE (a path inside node_modules), or is older than the lock.
# Not a deps step itself (install-deps.sh runs scripts/deps/[0-9]*.sh):
# 20-idp.sh and 21-s3rver.sh call it.
set -euo pipefail
cd "$(dirname "$0")/../../$1"
if ! command -v npm >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
stamp=node_modules/.gatehouse-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -e "node_modules/$2" ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
