#!/usr/bin/env bash
# Bans unbounded C string functions in herald's sources (curl's and Redis's habit):
# sprintf, vsprintf, strcpy, strcat, gets, atoi, atol. Use snprintf, strbuf, strtol.
set -euo pipefail
cd "$(dirname "$0")/.."
if grep -nE '(^|[^_a-z])(sprintf|vsprintf|strcpy|strcat|gets|atoi|atol)\(' \
        daemon/*.c daemon/*.h channels/*.c channels/*.h tests/plugins/*.c; then
    echo "lint: banned function above (use snprintf, strbuf_*, strtol)" >&2
    exit 1
fi
echo "lint: ok"
