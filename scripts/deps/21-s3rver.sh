#!/usr/bin/env bash
# s3rver (npm, pinned in test/s3/package-lock.json): the S3-compatible
# server the audit backup's S3 integration test talks to on loopback.
# Idempotent: npm ci runs only when node_modules is missing or older than
# the lock file.
set -euo pipefail
cd "$(dirname "$0")/../../test/s3"
if ! command -v npm >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
stamp=node_modules/.gatehouse-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x node_modules/.bin/s3rver ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
echo "$want" > "$stamp"
