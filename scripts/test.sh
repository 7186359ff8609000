#!/usr/bin/env bash
# Build herald and run its whole test suite.
#   scripts/test.sh            deps, build/ + every ctest label, then build-asan/
#                              (AddressSanitizer + UBSan, warnings as errors) + unit|integration|e2e
#                              (label package, the install and .deb tests, runs in the first pass only)
#   scripts/test.sh --quick    skip the sanitizer pass
# Works from any directory; every server a test needs is started by the test
# itself on a free loopback port. Exits non-zero if any build or test fails.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

quick=0
for arg in "$@"; do
    case "$arg" in
        --quick) quick=1 ;;
        -h|--help) sed -n '2,8s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "test.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
    esac
done

cd "$HERALD_ROOT"
jobs=2
started=$SECONDS
failures=()

elapsed() {
    printf '(%ds)\n' $((SECONDS - $1))
}

section "dependencies (scripts/deps.sh)"
scripts/deps.sh --npm
echo "ok"

# run_pass NAME DIR LABEL_REGEX CMAKE_ARGS...: configure, build, ctest.
run_pass() {
    local name=$1 dir=$2 labels=$3 t
    shift 3
    section "$name: configure + build into $dir/"
    t=$SECONDS
    local log
    log=$(mktemp)
    if ! cmake -S . -B "$dir" "$@" >"$log" 2>&1; then
        cat "$log" >&2
        rm -f "$log"
        failures+=("$name: cmake configure")
        return 1
    fi
    rm -f "$log"
    if ! cmake --build "$dir" -j "$jobs"; then
        failures+=("$name: build")
        return 1
    fi
    elapsed "$t"

    section "$name: ctest${labels:+ (labels $labels)}"
    t=$SECONDS
    local args=(--test-dir "$dir" --output-on-failure -j "$jobs")
    [ -n "$labels" ] && args+=(-L "$labels")
    if ! ctest "${args[@]}"; then
        failures+=("$name: tests (see above; logs in $dir/Testing/Temporary/LastTest.log)")
    fi
    elapsed "$t"
}

run_pass "release" build "" -DCMAKE_BUILD_TYPE=RelWithDebInfo || true

if [ "$quick" -eq 0 ]; then
    # Sanitizer findings must fail the test, never scroll by.
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    run_pass "sanitizers" build-asan '^(unit|integration|e2e)$' \
        -DCMAKE_BUILD_TYPE=Debug -DHERALD_SANITIZE=address,undefined -DHERALD_WERROR=ON || true
else
    section "sanitizers: skipped (--quick)"
fi

section "summary $(elapsed "$started")"
if [ ${#failures[@]} -gt 0 ]; then
    printf 'FAILED: %s\n' "${failures[@]}"
    exit 1
fi
echo "all passed"
