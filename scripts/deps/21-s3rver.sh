#!/usr/bin/env bash
# s3rver (npm, pinned in test/s3/package-lock.json): the S3-compatible
# server the audit backup's S3 integration tests talk to on loopback.
# Idempotent (see npm-ci.sh).
set -euo pipefail
exec bash "$(dirname "$0")/npm-ci.sh" test/s3 .bin/s3rver
