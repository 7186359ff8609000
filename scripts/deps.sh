#!/usr/bin/env bash
# Install what herald needs to build, test and run its demo, on Debian 12.
# Idempotent and quiet when everything is already present.
#   scripts/deps.sh            build + test + demo packages (Debian)
#   scripts/deps.sh --npm      also the npm tools (Prism, playwright-core) under .deps/
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

debs=(build-essential cmake pkg-config
      libuv1-dev libhiredis-dev libjansson-dev libcurl4-openssl-dev
      node-llhttp libinih-dev libssl-dev libcmocka-dev
      redis-server redis-tools python3 python3-aiosmtpd jq)

missing=()
for p in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq >/dev/null
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# A Debian redis-server package starts a system instance; herald never uses it
# (every script and test starts its own on a free loopback port).
