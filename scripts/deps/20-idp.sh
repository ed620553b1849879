#!/usr/bin/env bash
# The test OpenID Provider (test/idp, npm oidc-provider pinned in
# package-lock.json). Idempotent (see npm-ci.sh).
set -euo pipefail
exec bash "$(dirname "$0")/npm-ci.sh" test/idp oidc-provider
