#!/usr/bin/env bash
# Benchmarks (figures and ratios, never pass/fail): builds an optimised tree in
# build-rel/ and runs each benchmark program. Quote medians: machines are noisy.
#   scripts/bench.sh            all benchmarks
#   scripts/bench.sh policy     only the policy benchmark
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
scripts/deps.sh
cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF >/dev/null
cmake --build build-rel -j"$(nproc)" --target bench_policy >/dev/null

what=${1:-all}
if [ "$what" = all ] || [ "$what" = policy ]; then
    echo "==== policy (pure decision engine vs. parsing a profile) ===="
    build-rel/bench_policy 20000000 5
fi
