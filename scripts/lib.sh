# scripts/lib.sh - shell helpers shared by herald's scripts (source it, do not run it).
#
#   . "$(dirname "$0")/lib.sh"
#   lib_cleanup_on_exit             # trap: stop everything started below on any exit
#   port=$(free_port)
#   start_redis "$dir"              # sets REDIS_PORT, REDIS_PID, REDIS_URL
#   spawn_bg LOGFILE cmd args...    # sets SPAWNED_PID
#   stop_pid PID [SECONDS]          # SIGTERM, wait, SIGKILL after SECONDS; returns the exit status
#
# Every process started through these helpers is recorded and killed by the
# cleanup trap, whatever way the script ends. No fixed ports: the kernel picks
# a free one (bind to port 0), so several runs can share a machine.

# shellcheck shell=bash

HERALD_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Debian's interpreter, which has python3-redis (scripts/deps.sh), whatever is first on PATH.
HERALD_PY=/usr/bin/python3
[ -x "$HERALD_PY" ] || HERALD_PY=python3

LIB_PIDS=()      # processes to stop at exit, newest last
LIB_TMPDIRS=()   # directories to remove at exit

# section TITLE: a header a reader can find in a long log.
section() {
    printf '\n==== %s ====\n' "$*"
}

# say MESSAGE: one line of progress on stderr.
say() {
    printf '%s\n' "$*" >&2
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# free_port: print a TCP port on 127.0.0.1 that is free right now, drawn
# below the kernel's ephemeral range: a port the kernel picks itself is also
# the local end it gives the next outgoing connection, which could take it
# before our server binds (tests/e2e/harness.py's free_port does the same).
free_port() {
    "$HERALD_PY" -c 'import random, socket
try:
    high = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    high = 32768
rng = random.SystemRandom()
while True:
    port = rng.randrange(10000, max(11000, high))
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    print(port)
    break'
}

# make_tmpdir PREFIX: print a new temporary directory removed at exit.
# (Call it without $(...) capture when the removal matters: a subshell cannot
# register the directory. Use `make_tmpdir herald; dir=$LIB_LAST_TMPDIR`.)
make_tmpdir() {
    LIB_LAST_TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/${1:-herald}.XXXXXX")
    LIB_TMPDIRS+=("$LIB_LAST_TMPDIR")
}

# spawn_bg LOGFILE CMD [ARGS...]: start CMD in the background, stdout and
# stderr to LOGFILE, record it for the cleanup. Sets SPAWNED_PID.
spawn_bg() {
    local log=$1
    shift
    "$@" >"$log" 2>&1 &
    SPAWNED_PID=$!
    LIB_PIDS+=("$SPAWNED_PID")
}

# alive PID: is the process still running (and not a zombie)?
alive() {
    local state
    [ -n "${1:-}" ] || return 1
    state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# stop_pid PID [SECONDS=10]: SIGTERM, wait up to SECONDS, then SIGKILL.
# Returns the process's exit status when it is our child (137 if killed).
stop_pid() {
    local pid=$1 limit=${2:-10} i rc=0
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < limit * 10; i++)); do
        alive "$pid" || break
        sleep 0.1
    done
    if alive "$pid"; then
        say "process $pid did not stop within ${limit}s; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || rc=$?
    lib_forget "$pid"
    return "$rc"
}

lib_forget() {
    local keep=() p
    for p in "${LIB_PIDS[@]}"; do
        [ "$p" = "$1" ] || keep+=("$p")
    done
    LIB_PIDS=("${keep[@]}")
}

# start_redis DIR [PORT]: a private redis-server on 127.0.0.1 (a free port
# unless given), no persistence, data dir DIR, in the background; waits until
# it answers PING. Sets REDIS_PORT, REDIS_PID, REDIS_URL and prints the pid.
start_redis() {
    local dir=$1 port=${2:-} i tries=100
    [ -n "$port" ] || port=$(free_port)
    [ -n "${HERALD_REDIS_WRAP:-}" ] && tries=600
    mkdir -p "$dir"
    command -v redis-server >/dev/null || die "redis-server is not installed (run scripts/deps.sh)"
    # shellcheck disable=SC2086 # HERALD_REDIS_WRAP: words of a command to run it under (bench.sh's callgrind)
    spawn_bg "$dir/redis.log" ${HERALD_REDIS_WRAP:-} redis-server --bind 127.0.0.1 --port "$port" \
        --save '' --appendonly no --dir "$dir" --daemonize no --protected-mode yes
    REDIS_PID=$SPAWNED_PID
    REDIS_PORT=$port
    REDIS_URL="redis://127.0.0.1:$port/0"
    for ((i = 0; i < tries; i++)); do
        if [ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then
            echo "$REDIS_PID"
            return 0
        fi
        alive "$REDIS_PID" || break
        sleep 0.1
    done
    cat "$dir/redis.log" >&2 2>/dev/null || true
    die "redis-server did not start on port $port"
}

stop_redis() {
    [ -n "${REDIS_PID:-}" ] || return 0
    stop_pid "$REDIS_PID" 10 || true
    REDIS_PID=
}

# wait_until SECONDS CMD [ARGS...]: poll CMD every 0.2 s until it succeeds;
# returns 1 if it never did within SECONDS.
wait_until() {
    local limit=$1 i
    shift
    for ((i = 0; i < limit * 5; i++)); do
        "$@" && return 0
        sleep 0.2
    done
    return 1
}

# lib_cleanup: stop every recorded process (newest first), remove temp dirs.
lib_cleanup() {
    local i pid
    for ((i = ${#LIB_PIDS[@]} - 1; i >= 0; i--)); do
        pid=${LIB_PIDS[$i]}
        alive "$pid" && kill -TERM "$pid" 2>/dev/null
    done
    for ((i = 0; i < 50; i++)); do
        local any=0
        for pid in "${LIB_PIDS[@]}"; do alive "$pid" && any=1; done
        [ "$any" -eq 0 ] && break
        sleep 0.1
    done
    for pid in "${LIB_PIDS[@]}"; do
        alive "$pid" && kill -KILL "$pid" 2>/dev/null
    done
    LIB_PIDS=()
    local d
    for d in "${LIB_TMPDIRS[@]}"; do
        [ -n "$d" ] && rm -rf -- "$d"
    done
    LIB_TMPDIRS=()
}

# lib_cleanup_on_exit: install the trap. The exit status of the script is kept.
lib_cleanup_on_exit() {
    trap 'rc=$?; trap - EXIT; lib_cleanup; exit $rc' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}
