#!/usr/bin/env bash
# Install what herald needs to build, test and run its demo, on Debian 12.
# Idempotent and quiet when everything is already present.
#   scripts/deps.sh            build + test + demo packages (Debian)
#   scripts/deps.sh --npm      also the npm tools (Prism, playwright-core) under .deps/
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

want_npm=0
for arg in "$@"; do
    case "$arg" in
        --npm) want_npm=1 ;;
        -h|--help) sed -n '2,5s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "deps: unknown option $arg" >&2; exit 2 ;;
    esac
done

# --- Debian packages ---------------------------------------------------------
# build: compiler, cmake, the libraries of herald's stack (README);
# test:  cmocka, redis-server/redis-tools, python3 + python3-redis (e2e tests
#        run under /usr/bin/python3), python3-aiosmtpd (SMTP peer),
#        python3-cryptography (signs SendGrid's ECDSA webhook events),
#        chromium (the preference page's browser test, driven by playwright-core),
#        fonts-noto-cjk (the Korean pages rendered in that test: without it, boxes),
#        python3-jsonschema (docs/schemas checked against the examples);
# build: python3-yaml (docs/openapi.yaml embedded as JSON, cmake/openapi_json.py);
# package: libsystemd-dev (sd_notify), dpkg-dev + fakeroot (scripts/package.sh),
#        systemd (systemd-analyze verify), prometheus (promtool checks the alert rules);
# demo:  jq, curl.
debs=(build-essential cmake pkg-config
      libuv1-dev libhiredis-dev libjansson-dev libcurl4-openssl-dev
      node-llhttp libinih-dev libssl-dev libcmocka-dev
      redis-server redis-tools python3 python3-redis python3-aiosmtpd python3-cryptography chromium jq curl tzdata
      python3-yaml python3-jsonschema fonts-noto-cjk
      libsystemd-dev dpkg-dev fakeroot systemd prometheus)

missing=()
for p in "${debs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    log=$(mktemp)
    # apt's chatter (debconf notes included) goes to a log shown only on failure.
    if ! { $sudo apt-get update -qq && \
           $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
        cat "$log" >&2; rm -f "$log"
        echo "deps: apt-get failed" >&2
        exit 1
    fi
    rm -f "$log"
fi

# A Debian redis-server package starts a system instance; herald never uses it
# (every script and test starts its own on a free loopback port).

# --- npm tools (only with --npm) ---------------------------------------------
# Installed under .deps/ (git-ignored), never globally, with the ordinary npm
# client. The list is filled in by the issue that brings the provider mocks
# (@stoplight/prism-cli) and the browser tests (playwright-core).
# A tool counts as present when its package.json under .deps/node_modules names
# the pinned version; npm runs only for what is missing or at another version.
npm_tools=(@stoplight/prism-cli@5.14.2 playwright-core@1.65.1)
if [ "$want_npm" -eq 1 ] && [ ${#npm_tools[@]} -gt 0 ]; then
    npm_missing=()
    for t in "${npm_tools[@]}"; do
        name=${t%@*} version=${t##*@}
        pkg="$here/.deps/node_modules/$name/package.json"
        if ! [ -f "$pkg" ] || ! grep -q "\"version\": *\"$version\"" "$pkg"; then
            npm_missing+=("$t")
        fi
    done
    if [ ${#npm_missing[@]} -gt 0 ]; then
        command -v npm >/dev/null || { echo "deps: npm is needed for ${npm_missing[*]} (apt-get install npm)" >&2; exit 1; }
        echo "deps: installing ${npm_missing[*]} under .deps/" >&2
        mkdir -p "$here/.deps"
        log=$(mktemp)
        if ! npm install --no-audit --no-fund --prefix "$here/.deps" "${npm_missing[@]}" >"$log" 2>&1; then
            cat "$log" >&2; rm -f "$log"
            echo "deps: npm install failed" >&2
            exit 1
        fi
        rm -f "$log"
    fi
fi
