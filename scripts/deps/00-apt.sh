#!/usr/bin/env bash
# Debian packages used by tests and the demo. Skips apt entirely when all are present.
set -euo pipefail
pkgs=(redis-server nginx-light chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packaged services must not run on their own: tests start their own on loopback.
for s in redis-server nginx; do $SUDO systemctl disable --now "$s" >/dev/null 2>&1 || true; $SUDO service "$s" stop >/dev/null 2>&1 || true; done
