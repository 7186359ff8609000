#!/usr/bin/env bash
# Fuzzes herald's parsers of outside input with clang's libFuzzer (+ASan/UBSan).
#   scripts/fuzz.sh [SECONDS_PER_TARGET (default 60)] [TARGET...]
# Targets: job profile consent template tz feedback page (tests/fuzz/fuzz_targets.c).
# New interesting inputs go to build-fuzz/corpus/<target>; copy a crashing
# input into tests/fuzz/corpus/<target>/ once fixed, so ctest replays it forever.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(job profile consent template tz feedback page)
command -v clang >/dev/null || { echo "fuzz: clang is needed (apt-get install clang)" >&2; exit 2; }
mkdir -p build-fuzz
# herald_pure's sources (CMakeLists.txt), and the feedback parser.
srcs=(daemon/util.c daemon/job.c daemon/template.c daemon/profile.c daemon/policy.c daemon/tz.c daemon/quiet.c
      daemon/pagerender.c daemon/channel.c daemon/progress.c daemon/precond.c daemon/mergepatch.c daemon/l10n.c
      daemon/config_text.c daemon/grant.c channels/plugin_feedback.c)
for t in "${targets[@]}"; do
    T=$(echo "$t" | tr a-z A-Z)
    clang -g -O1 -std=c11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -DFUZZ_"$T" -Idaemon -Ichannels \
        tests/fuzz/fuzz_targets.c "${srcs[@]}" $(pkg-config --cflags --libs jansson libcrypto) -o build-fuzz/fuzz_"$t"
    mkdir -p build-fuzz/corpus/"$t"
    echo "==== fuzz $t for ${secs}s ===="
    build-fuzz/fuzz_"$t" -max_total_time="$secs" -max_len=65536 build-fuzz/corpus/"$t" tests/fuzz/corpus/"$t" 2>&1 |
        grep -E "^#[0-9]+.*(DONE|pulse)|ERROR|SUMMARY|Done" | tail -3
done
