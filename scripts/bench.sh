#!/usr/bin/env bash
# Benchmarks (figures and ratios, never pass/fail). Builds an optimised tree in
# build-rel/ and runs:
#   policy   the pure decision engine against parsing a profile (bench_policy)
#   webhook  the cost of decrypting a person's contact data per message
#            (bench_seal), then N fresh recipients (a Redis SET used as recipients_key) through the
#            webhook plugin to a local nginx answering 202, every policy check
#            and audit record on; herald's messages/s and peak RSS, and in the
#            same run a plain libcurl multi loop (64 in flight, one thread, same
#            body size as herald's, sampled by nginx) against the same nginx;
#            the ratio herald / reference, and the CPU per message of each
#            process, which explains it.
#   scale    Redis memory: bytes per person at rest (N people with two
#            channels, consent for both and five attributes), what one
#            campaign adds per person, and what is left of it once its
#            retention passed ([retention] grace = 0s) (not run by "all")
#   cluster  messages per second through the webhook plugin to nginx on a
#            Redis Cluster of 3 masters (REPLICAS=1 replica each, so
#            [redis] wait_replicas = 1 WAITs each batch) against one
#            redis-server, in one run: same N people, same machine, the
#            ratio printed (not run by "all")
#   scripts/bench.sh [all|policy|webhook|scale|cluster]     (env: N=200000 (scale: 100000) RUNS=3;
#   CAMPAIGN=<id>: scale's campaign id, "scale" by default, e.g. one of 32 characters)
# PROFILE=1 builds with frame pointers into build-prof/ and records each herald
# run with `perf record -g`, and redis-server flat (perf-*.data files are left
# in build-prof/); PERF_CG="--call-graph dwarf,16384 -F 2000" records herald's
# call chains through libc and libcurl too (they have no frame pointers).
# CALLGRIND=1 runs herald and the reference under valgrind's callgrind and
# prints instructions per message instead of rates: exact and repeatable on
# a noisy machine, for comparing two versions of herald (user space only,
# start-up included; N=20000 takes a minute; valgrind hides the CPU's SHA
# instructions from OpenSSL, so HMAC weighs more than on the real CPU). The
# .out files are left in the build directory for callgrind_annotate.
# PLAIN=1 runs webhook with no [privacy] key_file: contact data stored in
# clear, as before encryption at rest; the difference to a default run is
# the cost of the encryption (decrypting, keyed digests).
# SYSCALLS=1 counts herald's system calls per message by kind (strace -c;
# it slows herald down: rates are not comparable then).
# PREFILL=K gives every person K past campaigns before the run (their
# history ring and once-only records, as herald keeps them: at most 50 and
# 13), as people who have been customers for a while have: what a longer
# person hash costs Redis per message.
# SCRIPTS=1 splits redis-server's time per message by script (each EVALSHA
# named by its daemon/lua file) and command, from its SLOWLOG with every
# command logged; a script's time includes the commands it calls, which are
# listed too, with those sent alone (it slows Redis a little and holds every
# command of the run in memory: keep N at 20000 or less).
# FLOOR=1 then measures, on the people imported again, redis-server's CPU
# per message for the commands a message's life needs in herald's data model
# (lookup, reservation, handoff, outcome, audit record) sent as plain
# commands, without scripts: the floor that herald's scripts stand on, and
# the summary says how much of herald's Redis CPU is above it. Then the same
# commands with the reservation's and the outcome's issued from two lean
# scripts (the least a message path of scripts costs; a cluster needs
# scripts: MULTI may not span slots) and reading the recipients (SSCAN).
# With CALLGRIND=1 every figure of it is instructions per message, as
# herald's runs' are: what the scripts add, without what sharing the cores
# with herald and nginx costs each instruction. CALLGRIND=1 also prints
# herald's instructions per message by file (libcurl, libc, herald...)
# against the reference loop's.
# BATCH=<n> sets herald's [daemon] batch (512 here), MAX_IN_FLIGHT=<n> its
# max_in_flight (2048 here), CONCURRENCY=<n> the
# provider's concurrency (64, as the reference's requests in flight) and
# LOOKAHEAD=<n> its lookahead (by default the concurrency).
# webhook also prints, per process, the share of herald's run it spent
# waiting for a CPU (runnable, not running: /proc/<pid>/schedstat), which
# says how far the run was from the "processes share the cores" model.
# Quote medians: the machines are shared and noisy.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
. scripts/lib.sh
scripts/deps.sh
need=()
command -v nginx >/dev/null || need+=(nginx-light)
[ "${CALLGRIND:-0}" = 1 ] && ! command -v valgrind >/dev/null && need+=(valgrind)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
bdir=build-rel cflags=""
if [ "${PROFILE:-0}" = 1 ]; then bdir=build-prof cflags="-fno-omit-frame-pointer"; fi
cmake -S . -B "$bdir" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DCMAKE_C_FLAGS="$cflags" >/dev/null
cmake --build "$bdir" -j"$(nproc)" >/dev/null

what=${1:-all}
if [ "$what" = all ] || [ "$what" = policy ]; then
    echo "==== policy (pure decision engine vs. parsing a profile) ===="
    "$bdir"/bench_policy 20000000 5
fi
[ "$what" = all ] || [ "$what" = webhook ] || [ "$what" = scale ] || [ "$what" = cluster ] || exit 0

if [ "$what" = scale ]; then N=${N:-100000}; else N=${N:-200000}; fi # scale: the issue's 100k people
RUNS=${RUNS:-3}
lib_cleanup_on_exit
make_tmpdir herald-bench
tmp=$LIB_LAST_TMPDIR
if [ "$what" = webhook ] || [ "$what" = all ]; then
    echo "==== encryption at rest (bench_seal: one core, the daemon's read of a stored person) ===="
    "$bdir"/bench_seal 200000 5
fi
[ "$what" = scale ] || [ "$what" = cluster ] || echo "==== webhook: $N recipients through herald to nginx, $RUNS runs ===="

nport=$(free_port)
mkdir -p "$tmp/nginx/logs"
cat >"$tmp/nginx/nginx.conf" <<NGINX
worker_processes 1;
daemon off;
error_log $tmp/nginx/logs/error.log warn;
pid $tmp/nginx/nginx.pid;
events { worker_connections 1024; }
http {
    # The size of herald's bodies, for the reference to send the same: a
    # few requests of each connection are logged (a map lookup per request).
    map \$connection_requests \$sample { 100 1; 1000 1; 10000 1; default 0; }
    log_format body "\$content_length";
    access_log $tmp/nginx/logs/body.log body if=\$sample;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$nport;
        location / { client_body_buffer_size 64k; return 202 '{"id":"nginx"}'; }
    }
}
NGINX
spawn_bg "$tmp/nginx/out.log" nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf"
npid=$SPAWNED_PID
wait_until 10 curl -s -o /dev/null -X POST "http://127.0.0.1:$nport/" || die "nginx did not start"

# Under CALLGRIND=1 redis-server runs under callgrind too, counting only
# while a campaign runs (callgrind_control switches it on and off).
if [ "${CALLGRIND:-0}" = 1 ]; then
    rm -f "$here/$bdir"/callgrind-redis.out*
    export HERALD_REDIS_WRAP="valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$here/$bdir/callgrind-redis.out"
fi
start_redis "$tmp/redis" >/dev/null
unset HERALD_REDIS_WRAP
aport=$(free_port)
cat >"$tmp/herald.conf" <<CONF
[daemon]
plugin_dir = $here/$bdir/channels
locales_dir = $here/config/locales
log_level = warn
max_in_flight = ${MAX_IN_FLIGHT:-2048}
batch = ${BATCH:-512}
[redis]
url = $REDIS_URL
audit_maxlen = 100000
[admin]
listen = 127.0.0.1:$aport
token = bench-admin-token-0123456789
link_secret = bench-link-secret-0123456789
[public]
public_url = https://prefs.example.com
[channel email]
providers = hook
[provider hook]
plugin = webhook
url = http://127.0.0.1:$nport/herald
secret = bench-webhook-secret-0123456789
concurrency = ${CONCURRENCY:-64}
${LOOKAHEAD:+lookahead = $LOOKAHEAD}
CONF
if [ "${PLAIN:-0}" != 1 ]; then # contact data encrypted, as in production
    (umask 077 && echo "bench1 $(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$tmp/keys")
    printf '[privacy]\nkey_file = %s\n' "$tmp/keys" >>"$tmp/herald.conf"
fi
chmod 600 "$tmp/herald.conf" # it holds secrets: herald refuses a config others may read

if [ "$what" = scale ]; then
    cid=${CAMPAIGN:-scale}
    echo "==== scale: Redis bytes per person, $N people, campaign $cid ===="
    printf '[retention]\ngrace = 0s\nsweep_every = 1s\n' >>"$tmp/herald.conf"
    /usr/bin/python3 - "$tmp/people.jsonl" "$N" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(json.dumps({"id": "p%07d" % i, "email": "person.number%07d@example.com" % i, "phone": "+4670%07d" % i,
                            "tz": "Europe/Stockholm", "locale": "sv", "channels": ["email", "sms"],
                            "attributes": {"first_name": "Person%d" % i, "last_name": "Svensson", "city": "Gothenburg",
                                           "plan": "gold", "age": 41},
                            "consent": [{"channel": "email", "granted": True, "source": "signup"},
                                        {"channel": "sms", "granted": True, "source": "signup"}]}) + "\n")
PY
    used() { redis-cli -p "$REDIS_PORT" INFO memory | tr -d '\r' | awk -F: '/^used_memory:/ {print $2}'; }
    per() { /usr/bin/python3 -c "print(round(($2 - $1) / $N))"; }
    m0=$(used)
    "$bdir"/heraldctl --config "$tmp/herald.conf" import "$tmp/people.jsonl" >/dev/null
    m1=$(used)
    echo "at rest: $(per "$m0" "$m1") bytes per person (goal <= 700)"
    /usr/bin/python3 - "$REDIS_PORT" "$N" <<'PY'
import redis, sys
r = redis.Redis(port=int(sys.argv[1]), decode_responses=True)
n, used, enc = int(sys.argv[2]), 0, {}
sample = ["herald:r:{p%07d}" % i for i in range(0, n, max(1, n // 1000))]  # first names of every length
size = sum(r.memory_usage(k, samples=0) for k in sample) / len(sample)
encs = sorted({r.object("encoding", k) for k in sample})
print("       herald:r:{ID}: %.0f bytes on average (%s, %d fields)" % (size, "/".join(encs), r.hlen(sample[-1])))
for b in r.scan_iter("herald:addr:*", count=1000):
    used += r.memory_usage(b, samples=0)
    e = r.object("encoding", b)
    enc[e] = enc.get(e, 0) + 1
print("       address index: %d bytes per person (%s)" % (round(used / n), ", ".join(
    "%d keys %s" % (c, e) for e, c in sorted(enc.items()))))
PY
    /usr/bin/python3 - "$REDIS_PORT" "$N" <<'PY'
import redis, sys
r = redis.Redis(port=int(sys.argv[1]))
ids = ["p%07d" % i for i in range(int(sys.argv[2]))]
for k in range(0, len(ids), 10000):
    r.sadd("herald:lists:scale", *ids[k:k + 10000])
PY
    m2=$(used)
    spawn_bg "$tmp/herald-scale.log" "$bdir"/herald --config "$tmp/herald.conf"
    hpid=$SPAWNED_PID
    wait_until 60 curl -sf "http://127.0.0.1:$aport/healthz" -o /dev/null || die "herald did not become healthy"
    exp=$(date -u -d "@$(( $(date +%s) + 600 ))" +%Y-%m-%dT%H:%M:%SZ)
    cat >"$tmp/job-scale.json" <<JOB
{"id": "$cid", "topic": "news", "channels": ["email"], "expires_at": "$exp",
 "display_name": {"en": "The scale campaign", "sv": "Skalkampanjen"},
 "content": {"email": {"subject": "Hello {{first_name}}", "text": "Dear {{first_name}}, a campaign. {{unsubscribe_url}}"}},
 "recipients_key": "herald:lists:scale"}
JOB
    "$bdir"/heraldctl --config "$tmp/herald.conf" enqueue "$tmp/job-scale.json" >/dev/null
    until "$bdir"/heraldctl --config "$tmp/herald.conf" campaign "$cid" | grep -q '"state": "done"'; do
        alive "$hpid" || die "herald stopped during the run (see $tmp/herald-scale.log)"
        sleep 0.5
    done
    m3=$(used)
    audit=$(redis-cli -p "$REDIS_PORT" MEMORY USAGE herald:audit SAMPLES 0 | tr -d '\r')
    echo "one campaign: $(per "$m2" "$m3") bytes per person, of which the audit stream $(per 0 "$audit")"
    /usr/bin/python3 - "$REDIS_PORT" "$cid" <<'PY'
import redis, sys
r = redis.Redis(port=int(sys.argv[1]), decode_responses=True)
k = "herald:r:{p0000001}"
rec, e = r.hget(k, "c:" + sys.argv[2]) or "", r.hget(k, "h0") or ""
print("       the person hash %s bytes (%s): its record %d bytes (%s), its history entry %d bytes (%s)" %
      (r.memory_usage(k), r.object("encoding", k), len(rec), rec, len(e), e))
PY
    # Its retention now: expires_at moved to now, the sweep runs each second.
    redis-cli -p "$REDIS_PORT" ZADD herald:retention "$(date +%s)" "$cid" >/dev/null
    until [ "$(redis-cli -p "$REDIS_PORT" HGET "herald:campaign:$cid" records | cut -c1-7)" = expired ]; do
        alive "$hpid" || die "herald stopped during the sweep (see $tmp/herald-scale.log)"
        sleep 0.5
    done
    m4=$(used)
    echo "after its retention: $(per "$m2" "$m4") bytes per person left, of which the audit stream $(per 0 "$audit")" \
         "(goal <= 64 besides the audit)"
    /usr/bin/python3 - "$REDIS_PORT" <<'PY'
import redis, sys
r = redis.Redis(port=int(sys.argv[1]), decode_responses=True)
k = "herald:r:{p0000001}"
e = r.hget(k, "h0") or ""
print("       of which the person's history: its entry %d bytes in the person hash (now %s bytes, %s; ring "
      "field h0, cursor hn), a list key written before the ring: %s: %s" %
      (len(e), r.memory_usage(k), r.object("encoding", k), "none" if not r.exists(k + ":history") else "present",
       e.replace("p0000001", "ID")))
PY
    echo "       heraldctl stats: $("$bdir"/heraldctl --config "$tmp/herald.conf" stats | tr -d '\n' | sed 's/  */ /g')"
    # The keyed indexes (daemon/addrindex.h): the address index's buckets are
    # measured at rest (above); here a suppression list holding every
    # person's email, against the
    # same entries in layout 2's form (plain SHA-256 hex), built in db 9
    # (last: what it frees would blur the figures above).
    /usr/bin/python3 - "$REDIS_PORT" "$N" <<'PY'
import hashlib, hmac, os, redis, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
key = os.urandom(32)
plain = lambda ch, a: "%s:%s" % (ch, hashlib.sha256(a.encode()).hexdigest())
keyed = lambda ch, a: hmac.new(key, plain(ch, a).encode(), hashlib.sha256).digest()[:16]
s9 = redis.Redis(port=port, db=9)
s9.flushdb()
p = s9.pipeline(transaction=False)
for i in range(n):
    m = keyed("email", "person.number%07d@example.com" % i)
    p.sadd("herald:suppress:{i%x}" % (m[0] >> 4), m)
    if i % 10000 == 9999:
        p.execute()
p.execute()
sup = sum(s9.memory_usage("herald:suppress:{i%x}" % s, samples=0) or 0 for s in range(16))
s9.flushdb()
for i in range(n):
    a = "person.number%07d@example.com" % i
    p.hset("herald:addr", plain("email", a), "p%07d" % i)
    p.hset("herald:addr", plain("sms", "+4670%07d" % i), "p%07d" % i)
    p.sadd("herald:suppress", plain("email", a))
    if i % 10000 == 9999:
        p.execute()
p.execute()
print("       suppression list (16 shards): %.0f bytes per suppressed address" % (sup / n))
print("       layout 2 (plain SHA-256 hex, one key each): address index %.0f, suppression list %.0f bytes per person" %
      (s9.memory_usage("herald:addr", samples=0) / n, s9.memory_usage("herald:suppress", samples=0) / n))
s9.flushdb()
PY
    stop_pid "$hpid" 60 || true
    exit 0
fi

/usr/bin/python3 - "$tmp/people.jsonl" "$N" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(int(sys.argv[2])):
        f.write(json.dumps({"id": "b%07d" % i, "email": "bench.person%07d@example.com" % i,
                            "tz": "Europe/Berlin", "channels": ["email"],
                            "attributes": {"first_name": "Person%d" % i, "city": "Gothenburg"},
                            "topics": {"news": True},
                            "consent": [{"channel": "email", "granted": True, "source": "bench"}]}) + "\n")
PY
if [ "$what" = cluster ]; then
    replicas=${REPLICAS:-1}
    echo "==== cluster: $N recipients through herald to nginx, one redis-server against 3 masters" \
         "($replicas replica each), $RUNS runs ===="
    # The cluster's nodes, beside the single instance start_redis gave.
    cports=()
    for ((i = 0; i < 3 * (1 + replicas); i++)); do
        p=$(free_port)
        mkdir -p "$tmp/cluster/$p"
        spawn_bg "$tmp/cluster/$p/redis.log" redis-server --bind 127.0.0.1 --port "$p" --save '' --appendonly no \
            --dir "$tmp/cluster/$p" --cluster-enabled yes --cluster-config-file "$tmp/cluster/$p/nodes.conf" \
            --cluster-port "$(free_port)" --cluster-node-timeout 2000
        cports+=("$p")
    done
    for p in "${cports[@]}"; do
        wait_until 10 redis-cli -p "$p" ping >/dev/null || die "cluster node $p did not start"
    done
    # shellcheck disable=SC2046 # one word per node
    redis-cli --cluster create $(printf '127.0.0.1:%s ' "${cports[@]}") --cluster-replicas "$replicas" \
        --cluster-yes >"$tmp/cluster/create.log" 2>&1 || die "redis-cli --cluster create failed ($tmp/cluster/create.log)"
    cluster_ok() {
        local p
        for p in "${cports[@]}"; do
            redis-cli -p "$p" cluster info | grep -q '^cluster_state:ok' || return 1
        done
    }
    wait_until 30 cluster_ok || die "the cluster did not become ok"
    # Every replica's first sync done: before it, each WAIT would wait its timeout.
    synced() {
        local p
        for p in "${cports[@]}"; do
            redis-cli -p "$p" info replication | grep -q '^role:slave' || continue
            redis-cli -p "$p" info replication | grep -q '^master_link_status:up' || return 1
        done
    }
    wait_until 60 synced || die "the replicas did not sync"
    seeds=$(printf '127.0.0.1:%s, ' "${cports[@]}")
    # Without replicas, nothing to WAIT for.
    wait=""; [ "$replicas" = 0 ] && wait="\nwait_replicas = 0"
    sed "s|^url = redis:.*|cluster = ${seeds%, }$wait|" "$tmp/herald.conf" >"$tmp/herald-cluster.conf"
    chmod 600 "$tmp/herald-cluster.conf"
    # The recipients list: a SET, on one node of the cluster.
    /usr/bin/python3 - "$REDIS_PORT" "${cports[0]}" "$N" <<'PY'
import redis, redis.cluster, sys
ids = ["b%07d" % i for i in range(int(sys.argv[3]))]
for r in (redis.Redis(port=int(sys.argv[1])), redis.cluster.RedisCluster(host="127.0.0.1", port=int(sys.argv[2]))):
    for k in range(0, len(ids), 10000):
        r.sadd("herald:lists:bench", *ids[k:k + 10000])
PY
    # rate CONF RUN: one campaign through herald on CONF's Redis; prints msg/s.
    rate() {
        local conf=$1 run=$2 hpid t0 t1 sent
        spawn_bg "$tmp/herald-$run.log" "$bdir"/herald --config "$conf"
        hpid=$SPAWNED_PID
        wait_until 60 curl -sf "http://127.0.0.1:$aport/healthz" -o /dev/null ||
            die "herald did not become healthy: $(tail -n 5 "$tmp/herald-$run.log")"
        cat >"$tmp/job-$run.json" <<JOB
{"id": "$run", "topic": "news", "channels": ["email"],
 "content": {"email": {"subject": "Hello {{first_name}}", "text": "Dear {{first_name}} in {{city}}, this is the benchmark campaign body, long enough to be a realistic marketing text of a few hundred bytes. {{unsubscribe_url}}"}},
 "recipients_key": "herald:lists:bench"}
JOB
        t0=$(date +%s.%N)
        "$bdir"/heraldctl --config "$conf" enqueue "$tmp/job-$run.json" >/dev/null
        until "$bdir"/heraldctl --config "$conf" campaign "$run" | grep -q '"state": "done"'; do
            alive "$hpid" || die "herald stopped during the run (see $tmp/herald-$run.log)"
            sleep 0.2
        done
        t1=$(date +%s.%N)
        sent=$("$bdir"/heraldctl --config "$conf" campaign "$run" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["sent"])')
        stop_pid "$hpid" 120 || true
        [ "$sent" = "$N" ] || die "$run sent $sent of $N (see $tmp/herald-$run.log)"
        /usr/bin/python3 -c "print(round($sent / ($t1 - $t0)))"
    }
    t0=$(date +%s.%N)
    "$bdir"/heraldctl --config "$tmp/herald.conf" import "$tmp/people.jsonl" >/dev/null
    t1=$(date +%s.%N)
    "$bdir"/heraldctl --config "$tmp/herald-cluster.conf" import "$tmp/people.jsonl" >/dev/null
    t2=$(date +%s.%N)
    echo "setup: imported $N people in $(/usr/bin/python3 -c "print(round($t1 - $t0, 1))") s (one redis-server)," \
         "$(/usr/bin/python3 -c "print(round($t2 - $t1, 1))") s (cluster)"
    rates=()
    for run in $(seq 1 "$RUNS"); do
        one=$(rate "$tmp/herald.conf" "single-$run")
        three=$(rate "$tmp/herald-cluster.conf" "cluster-$run")
        rates+=("$one $three")
        echo "run $run: one redis-server $one msg/s, 3-master cluster $three msg/s, ratio $(/usr/bin/python3 -c "print(round($three / $one, 2))")"
    done
    /usr/bin/python3 - "$(nproc)" "${rates[@]}" <<'PY'
import statistics, sys
one, three = (statistics.median(c) for c in zip(*[[float(x) for x in r.split()] for r in sys.argv[2:]]))
print("median: one redis-server %.0f msg/s, 3-master cluster %.0f msg/s, ratio cluster/single %.2f (%s cores, every "
      "process on them)" % (one, three, three / one, sys.argv[1]))
PY
    exit 0
fi

ctl() { "$bdir"/heraldctl --config "$tmp/herald.conf" "$@"; }
t0=$(date +%s.%N)
ctl import "$tmp/people.jsonl" >/dev/null
/usr/bin/python3 - "$REDIS_PORT" "$N" <<'PY'
import redis, sys
r = redis.Redis(port=int(sys.argv[1]))
ids = ["b%07d" % i for i in range(int(sys.argv[2]))]
for k in range(0, len(ids), 10000):
    r.sadd("herald:lists:bench", *ids[k:k + 10000])
PY
echo "setup: imported $N people in $(/usr/bin/python3 -c "print(round($(date +%s.%N) - $t0, 1))") s"
if [ "${PREFILL:-0}" -gt 0 ]; then
    # People who have been customers for a while: PREFILL past campaigns
    # each, in the form herald writes them, of which the history ring keeps
    # the last 50 ([retention] history) and the once-only records the last
    # 13 (a weekly campaign kept 90 days, [retention] campaign_records).
    /usr/bin/python3 - "$REDIS_PORT" "$N" "$PREFILL" <<'PY'
import redis, sys, time
r = redis.Redis(port=int(sys.argv[1]))
n, past = int(sys.argv[2]), int(sys.argv[3])
now = int(time.time())
p = r.pipeline(transaction=False)
for i in range(n):
    key = "herald:r:{b%07d}" % i
    fields = {}
    for c in range(max(0, past - 50), past):
        fields["h%d" % (c % 50)] = "2|%d|weekly-%04d|0|0s|webhook" % (now - (past - c) * 604800, c)
    for c in range(max(0, past - 13), past):
        fields["c:weekly-%04d" % c] = "s 1796000000000-%d 5c50b158a720e5f4.1 %d email sent" % (c, now - (past - c) * 604800)
    fields["hn"] = str(past % 50)
    p.hset(key, mapping=fields)
    if i % 1000 == 999:
        p.execute()
p.execute()
k = "herald:r:{b0000000}"
print("setup: %d past campaigns per person: the person hash has %d fields, %d bytes (%s)"
      % (past, r.hlen(k), r.memory_usage(k), r.object("encoding", k).decode()))
PY
fi

figs=() insns=()
# The valgrind command that counts what: cg_cmd herald|curl.
cg_cmd() { echo valgrind --tool=callgrind --callgrind-out-file="$here/$bdir/callgrind-$1-$run.out"; }
# Instructions counted in a callgrind file, per unit.
cg_per() { callgrind_annotate "$here/$bdir/callgrind-$1-$run.out" 2>/dev/null |
           awk -v n="$2" '/PROGRAM TOTALS/ {gsub(",", "", $1); printf "%.0f", $1 / n}'; }
for run in $(seq 1 "$RUNS"); do
    wrap=()
    # shellcheck disable=SC2207 # the command's words, none with spaces
    [ "${CALLGRIND:-0}" = 1 ] && wrap=($(cg_cmd herald))
    spawn_bg "$tmp/herald-$run.log" "${wrap[@]}" "$bdir"/herald --config "$tmp/herald.conf"
    hpid=$SPAWNED_PID
    wait_until 60 curl -sf "http://127.0.0.1:$aport/healthz" -o /dev/null || die "herald did not become healthy"
    cat >"$tmp/job-$run.json" <<JOB
{"id": "bench-$run", "topic": "news", "channels": ["email"],
 "content": {"email": {"subject": "Hello {{first_name}}", "text": "Dear {{first_name}} in {{city}}, this is the benchmark campaign body, long enough to be a realistic marketing text of a few hundred bytes. {{unsubscribe_url}}",
                       "html": "<p>Dear {{first_name}} in {{city}},</p><p>this is the benchmark campaign body.</p><p><a href=\"{{unsubscribe_url}}\">unsubscribe</a></p>"}},
 "recipients_key": "herald:lists:bench"}
JOB
    perf_pid=""
    if [ "${SYSCALLS:-0}" = 1 ]; then
        strace -c -f -o "$tmp/strace-$run.txt" -p "$hpid" 2>/dev/null &
        perf_pid=$!
        sleep 0.5
    fi
    if [ "${PROFILE:-0}" = 1 ]; then
        # shellcheck disable=SC2086 # PERF_CG is perf's options, split into words
        perf record ${PERF_CG:--g} -o "$bdir/perf-$run.data" -p "$hpid" >/dev/null 2>&1 &
        perf_pid=$!
        perf record -o "$bdir/perf-redis-$run.data" -p "$REDIS_PID" >/dev/null 2>&1 &
        perf_pid="$perf_pid $!"
    fi
    # CPU seconds (user + system) of herald and redis-server, for the cost per message.
    cpu() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
    sys() { awk -v hz="$(getconf CLK_TCK)" '{print $15 / hz}' "/proc/$1/stat"; } # the kernel's share
    # nginx's one worker is the master's child.
    nwpid=$(pgrep -P "$npid" | head -n 1)
    # Nanoseconds on a CPU and waiting for one (runnable), per process.
    sched() { awk '{print $1, $2}' "/proc/$1/schedstat"; }
    # The machine's jiffies: busy (every state but idle and iowait) and all,
    # for how many of its cores were in use during a run.
    jiffies() { awk '/^cpu / {t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t}' /proc/stat; }
    hq0=$(sched "$hpid") rq0=$(sched "$REDIS_PID") nq0=$(sched "$nwpid")
    # Seconds the provider's slots waited for handoff records (/metrics).
    hwait() { curl -sf -H "Authorization: Bearer bench-admin-token-0123456789" "http://127.0.0.1:$aport/metrics" |
              awk '/^herald_provider_handoff_wait_seconds_total\{provider="hook"\}/ {v = $2} END {print v + 0}'; }
    hw0=$(hwait)
    hc0=$(cpu "$hpid") rc0=$(cpu "$REDIS_PID") nc0=$(cpu "$nwpid") hs0=$(sys "$hpid") rs0=$(sys "$REDIS_PID")
    redis-cli -p "$REDIS_PORT" CONFIG RESETSTAT >/dev/null
    if [ "${SCRIPTS:-0}" = 1 ]; then
        redis-cli -p "$REDIS_PORT" CONFIG SET slowlog-max-len $((N * 12 + 10000)) >/dev/null
        redis-cli -p "$REDIS_PORT" CONFIG SET slowlog-log-slower-than 0 >/dev/null
        redis-cli -p "$REDIS_PORT" SLOWLOG RESET >/dev/null
    fi
    [ "${CALLGRIND:-0}" = 1 ] && callgrind_control -i on "$REDIS_PID" >/dev/null 2>&1
    t0=$(date +%s.%N) mj0=$(jiffies)
    ctl enqueue "$tmp/job-$run.json" >/dev/null
    until ctl campaign "bench-$run" | grep -q '"state": "done"'; do
        alive "$hpid" || die "herald stopped during the run (see $tmp/herald-$run.log)"
        sleep 0.2
    done
    t1=$(date +%s.%N) mj1=$(jiffies)
    if [ "${CALLGRIND:-0}" = 1 ]; then
        # Written to callgrind-redis.out.<n>, and the counts start again from 0.
        callgrind_control -i off "$REDIS_PID" >/dev/null 2>&1
        callgrind_control -d "run-$run" "$REDIS_PID" >/dev/null 2>&1
    fi
    hc1=$(cpu "$hpid") rc1=$(cpu "$REDIS_PID") nc1=$(cpu "$nwpid") hs1=$(sys "$hpid") rs1=$(sys "$REDIS_PID")
    hq1=$(sched "$hpid") rq1=$(sched "$REDIS_PID") nq1=$(sched "$nwpid")
    hw1=$(hwait)
    peak=$(awk '/VmHWM/ {print $2}' "/proc/$hpid/status")
    if [ -n "$perf_pid" ]; then
        # shellcheck disable=SC2086 # two pids
        kill -INT $perf_pid; wait $perf_pid || true
    fi
    sent=$(ctl campaign "bench-$run" | /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["sent"])')
    if [ "${SYSCALLS:-0}" = 1 ]; then
        # herald's system calls per message, by kind (strace -c).
        awk -v n="$sent" '$NF != "total" && $4 ~ /^[0-9]+$/ && $4 / n >= 0.002 {printf "%s %.2f, ", $NF, $4 / n}
            END {print ""}' "$tmp/strace-$run.txt" | sed 's/^/       herald syscalls per message: /'
    fi
    # Where Redis spent its time, per message sent: calls and microseconds of
    # each command (a script's own calls are counted apart from its EVALSHA).
    redis-cli -p "$REDIS_PORT" INFO commandstats | tr -d '\r' | /usr/bin/python3 -c '
import re, sys
n = int(sys.argv[1])
rows = [(m.group(1), int(m.group(2)), int(m.group(3))) for m in
        (re.match(r"cmdstat_([^:]*):calls=([0-9]+),usec=([0-9]+),", l) for l in sys.stdin) if m]
rows = [r for r in rows if r[0] not in ("info", "config|resetstat")]
rows.sort(key=lambda r: -r[2])
print("       redis per message: " + ", ".join("%s %.2f calls %.2f us" % (c, k / n, u / n) for c, k, u in rows[:10]))
' "$sent"
    if [ "${SCRIPTS:-0}" = 1 ]; then
        redis-cli -p "$REDIS_PORT" CONFIG SET slowlog-log-slower-than 10000 >/dev/null
        # Each script's SHA1 as the daemon sends it: its text with fence.lua
        # and ring.lua inserted as cmake/embed_lua.cmake inserts them.
        /usr/bin/python3 - "$REDIS_PORT" "$sent" "$here/daemon/lua" <<'PY'
import glob, hashlib, os, re, sys
import redis
port, n, d = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
fence, ring = (open(os.path.join(d, f)).read() for f in ("fence.lua", "ring.lua"))
def after_first_line(t, piece):
    i = t.index("\n") + 1
    return t[:i] + piece + t[i:]
names = {}
for f in glob.glob(os.path.join(d, "*.lua")):
    t = open(f).read()
    if re.search(r"fence\(", t) or t.startswith("#!lua flags=allow-cross-slot-keys"):
        t = after_first_line(t, fence)
    if "ring_next(" in t:
        t = after_first_line(t, ring)
    names[hashlib.sha1(t.encode()).hexdigest()] = os.path.basename(f)[:-4]
r = redis.Redis(port=port)
by = {}
for e in r.slowlog_get(r.slowlog_len()):
    w = e["command"].split()
    if not w:
        continue
    c = w[0].decode().lower()
    if c in ("evalsha", "eval") and len(w) > 1:
        c = names.get(w[1].decode(), c) + ".lua" if c == "evalsha" else "eval"
    if c in ("config", "slowlog", "info"):
        continue
    k, u = by.get(c, (0, 0))
    by[c] = (k + 1, u + e["duration"])
r.slowlog_reset()
rows = sorted(by.items(), key=lambda kv: -kv[1][1])
print("       redis per message by script (SLOWLOG; a script's time includes its commands'): " +
      ", ".join("%s %.3f calls %.2f us" % (c, k / n, u / n) for c, (k, u) in rows[:10]))
PY
    fi
    redis-cli -p "$REDIS_PORT" INFO stats | tr -d '\r' | awk -F: -v n="$sent" '
        /^total_net_input_bytes/ {i = $2} /^total_net_output_bytes/ {o = $2}
        END {printf "       redis bytes per message: %.0f in, %.0f out\n", i / n, o / n}'
    stop_pid "$hpid" 120 || true
    if [ "${CALLGRIND:-0}" = 1 ]; then
        # shellcheck disable=SC2046 # the command's words, none with spaces
        $(cg_cmd curl) "$bdir"/bench_curl "http://127.0.0.1:$nport/herald" "$N" 64 \
            "$(sort -n "$tmp/nginx/logs/body.log" | awk '{v[NR] = $1} END {print NR ? v[int((NR + 1) / 2)] : 700}')" \
            >/dev/null 2>&1
        : >"$tmp/nginx/logs/body.log"
        hi=$(cg_per herald "$sent") ci=$(cg_per curl "$N")
        # The newest dump of redis-server's counts: this run's.
        rfile=$(ls -t "$here/$bdir"/callgrind-redis.out.* | head -n 1)
        ri=$(callgrind_annotate "$rfile" 2>/dev/null |
             awk -v n="$sent" '/PROGRAM TOTALS/ {gsub(",", "", $1); printf "%.0f", $1 / n}')
        insns+=("$hi $ci $ri")
        echo "run $run: instructions per message: herald $hi, redis-server $ri; reference curl loop $ci per request (callgrind)"
        continue
    fi
    nr0=$(cpu "$nwpid")
    # The reference sends bodies of the size herald sent (the median of the
    # sampled requests).
    blen=$(sort -n "$tmp/nginx/logs/body.log" | awk '{v[NR] = $1} END {print NR ? v[int((NR + 1) / 2)] : 700}')
    : >"$tmp/nginx/logs/body.log"
    rj0=$(jiffies)
    refline=$("$bdir"/bench_curl "http://127.0.0.1:$nport/herald" "$N" 64 "$blen")
    rj1=$(jiffies)
    nr1=$(cpu "$nwpid")
    # One line of figures per run: rate, RSS, and CPU microseconds per message
    # of herald, redis-server and nginx; the reference's rate, its own CPU
    # and nginx's per request.
    fig=$(/usr/bin/python3 - "$refline" <<PY
import re, sys
m = re.search(r"= ([0-9]+) req/s.*cpu ([0-9.]+) us/request", sys.argv[1])
sent, dt = $sent, $t1 - $t0
print(round(sent / dt), $peak, round(($hc1 - $hc0) * 1e6 / sent, 1), round(($rc1 - $rc0) * 1e6 / sent, 1),
      round(($nc1 - $nc0) * 1e6 / sent, 1), m.group(1), m.group(2), round(($nr1 - $nr0) * 1e6 / $N, 1),
      round(($hs1 - $hs0) * 1e6 / sent, 1), round(($rs1 - $rs0) * 1e6 / sent, 1),
      *(round((int(b.split()[1]) - int(a.split()[1])) / 1e9 / dt * 100) for a, b in
        (("$hq0", "$hq1"), ("$rq0", "$rq1"), ("$nq0", "$nq1"))), round(($hw1 - $hw0) / dt, 1),
      *(round((int(b.split()[0]) - int(a.split()[0])) / (int(b.split()[1]) - int(a.split()[1])) * $(nproc), 2)
        for a, b in (("$mj0", "$mj1"), ("$rj0", "$rj1"))))
PY
)
    figs+=("$fig")
    read -r rate peak hcpu rcpu ncpu ref ccpu nrcpu hsys rsys hrq rrq nrq slotw hbusy rbusy <<<"$fig"
    echo "run $run: herald sent $sent in $(/usr/bin/python3 -c "print(round($t1 - $t0, 2))") s = $rate msg/s, peak RSS $((peak / 1024)) MiB; reference $ref req/s ($blen-byte bodies, as herald's)"
    echo "       CPU per message: herald $hcpu us ($hsys in the kernel), redis-server $rcpu us ($rsys in the kernel), nginx $ncpu us;" \
         "reference per request: curl loop $ccpu us, nginx $nrcpu us; $(nproc) cores"
    echo "       waiting for a CPU (runnable, not running; share of herald's run): herald ${hrq}%," \
         "redis-server ${rrq}%, nginx ${nrq}%; herald's provider slots waiting for their handoff record:" \
         "$slotw of ${CONCURRENCY:-64} on average"
    echo "       the machine's cores in use (every process's, the bench's own too): $hbusy of $(nproc) during" \
         "herald's run, $rbusy during the reference's"
done
if [ "${CALLGRIND:-0}" = 1 ]; then
    ri_med=$(/usr/bin/python3 - "${insns[@]}" <<'PY'
import statistics, sys
h, c, r = (statistics.median(col) for col in zip(*[[float(x) for x in a.split()] for a in sys.argv[1:]]))
print("median instructions per message: herald %.0f, redis-server %.0f; reference curl loop %.0f per request; "
      "ratio herald/reference %.2f" % (h, r, c, c / h), file=sys.stderr)
print("%.0f" % r)
PY
)
    # Where herald's instructions go against the loop's, library by library
    # (the last run's; each function's own instructions, summed per file).
    /usr/bin/python3 - "$N" "$here/$bdir/callgrind-herald-$RUNS.out" "$here/$bdir/callgrind-curl-$RUNS.out" <<'PY'
import collections, os, re, subprocess, sys
n = int(sys.argv[1])
def per_object(path):
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", path],
                         capture_output=True, text=True).stdout
    by = collections.Counter()
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+) .*\[(.+)\]\s*$", line)
        if m:
            name = os.path.basename(m.group(2)).split(".so")[0]
            by["own code" if name in ("herald", "bench_curl") else name] += int(m.group(1).replace(",", ""))
    return by
h, c = per_object(sys.argv[2]), per_object(sys.argv[3])
rows = sorted(set(h) | set(c), key=lambda k: -max(h[k], c[k]))
print("       instructions per message by file, herald (reference loop): " +
      ", ".join("%s %.0f (%.0f)" % (k, h[k] / n, c[k] / n) for k in rows if max(h[k], c[k]) >= n * 100))
PY
fi
cost_unit="us"
[ "${CALLGRIND:-0}" = 1 ] && cost_unit="instructions"
floor_us=""
if [ "${FLOOR:-0}" = 1 ]; then
    # The floor of herald's data model: what redis-server spends per message
    # on the commands a message's life needs (the lookup's HMGET; the
    # reservation's read and write; the handoff; the outcome with its history
    # entry; the audit record), sent as plain commands through one
    # `redis-cli --pipe` (no scripts, no fence, the best case for I/O), on
    # the people imported again, new as herald's runs met them (without
    # PREFILL's past campaigns). It runs after herald's runs: hashes written
    # and shrunk again here before them cost those runs their memory's
    # order. The difference to herald's redis-server CPU above is what its
    # scripts add (Lua, their arguments, the fence) and what sharing the
    # cores with herald and nginx costs each instruction (CALLGRIND=1 counts
    # instructions instead: the scripts' share alone). Written to fields and
    # a stream of their own, removed after each pass.
    redis-cli -p "$REDIS_PORT" FLUSHALL >/dev/null
    ctl import "$tmp/people.jsonl" >/dev/null
    # What redis-server spends per message while "$@" runs: CPU
    # microseconds, or under CALLGRIND=1 instructions (counted only then).
    redis_cost() {
        if [ "${CALLGRIND:-0}" = 1 ]; then
            callgrind_control -i on "$REDIS_PID" >/dev/null 2>&1
            "$@"
            callgrind_control -i off "$REDIS_PID" >/dev/null 2>&1
            callgrind_control -d floor "$REDIS_PID" >/dev/null 2>&1
            callgrind_annotate "$(ls -t "$here/$bdir"/callgrind-redis.out.* | head -n 1)" 2>/dev/null |
                awk -v n="$N" '/PROGRAM TOTALS/ {gsub(",", "", $1); printf "%.0f\n", $1 / n}'
        else
            local c0 c1
            c0=$(cpu "$REDIS_PID")
            "$@"
            c1=$(cpu "$REDIS_PID")
            /usr/bin/python3 -c "print(round(($c1 - $c0) * 1e6 / $N, 2))"
        fi
    }
    pipe() { redis-cli -p "$REDIS_PORT" --pipe <"$1" >/dev/null; }
    # Removes what a pass wrote (the people's hashes back as imported).
    floor_clean() {
        /usr/bin/python3 - "$N" >"$tmp/floor-clean.resp" <<'PY'
import sys
out = sys.stdout.buffer
for i in range(int(sys.argv[1])):
    k = ("herald:r:{b%07d}" % i).encode()
    out.write(b"*5\r\n$4\r\nHDEL\r\n$%d\r\n%s\r\n$7\r\nc:floor\r\n$2\r\nfn\r\n$2\r\nf0\r\n" % (len(k), k))
out.write(b"*2\r\n$3\r\nDEL\r\n$18\r\nherald:floor:audit\r\n")
out.write(b"*2\r\n$3\r\nDEL\r\n$19\r\nherald:floor:handed\r\n")
PY
        pipe "$tmp/floor-clean.resp"
    }
    # The commands of one step (plain), or all of them with the reservation
    # and the outcome issued from two lean scripts ("scripted").
    floor_stream() {
        /usr/bin/python3 - "$N" "$1" <<'PY'
import hashlib, sys, time
n, step = int(sys.argv[1]), sys.argv[2]
out = sys.stdout.buffer
def cmd(*a):
    b = [b"*%d\r\n" % len(a)]
    for x in a:
        x = x.encode()
        b.append(b"$%d\r\n%s\r\n" % (len(x), x))
    out.write(b"".join(b))
now = int(time.time())
# A record and a history entry of the length herald writes (store.c; a
# reservation's number last, queue_ready.c).
rec = " 1796600999123-0 5c50b158a720e5f4.1 %d 12345" % now
def lookup(k):  # store_job.c store_job_lookup: the fields of store.h STORE_LOOKUP_*, for email
    cmd("HMGET", k, "profile", "~email", "rev", "@0", "@1", "@2", "@3", "tz", "#", "c:floor")
AUDIT = ("channel", "email", "outcome", "sent", "reason", "delivered", "provider", "hook", "provider_id", "nginx",
         "at", "2026-12-06T23:50:00Z", "requests", "1", "locale", "en")
if step != "scripted":
    for i in range(n):
        k, rid = "herald:r:{b%07d}" % i, "b%07d" % i
        if step == "lookup":
            lookup(k)
        elif step == "reserve":  # lua/reserve.lua: its HMGET, and its HSET of the record, cursor and slot
            cmd("HMGET", k, "rev", "c:floor", "fn")
            cmd("HSET", k, "c:floor", "r" + rec, "fn", "1", "f0", "")
        elif step == "handoff":  # lua/finish.lua: the run's handed log, the bytes of a loop iteration's handoffs
            if i % 64 == 63:
                cmd("SETRANGE", "herald:floor:handed", str(i // 8 - 7), "\x7f" * 8)
        elif step == "outcome":  # lua/finish.lua: the record and the history entry
            cmd("HSET", k, "c:floor", "s" + rec + " email/-", "f0", "2|%d|floor|0|0s|hook" % now)
        else:                    # lua/finish.lua: the audit record (trimmed once per batch of 512)
            cmd("XADD", "herald:floor:audit", "*", "campaign", "floor", "recipient", rid, *AUDIT)
            if i % 512 == 511:
                cmd("XTRIM", "herald:floor:audit", "MAXLEN", "~", "100000")
    sys.exit(0)
# The same commands with the reservation's and the outcome's issued from two
# scripts as lean as a script can be: a key and one value a message into
# the first, a key and two values into the second, 64 messages a call, no
# fence, no check beyond the reservation's.
reserve = """local rf, rec, out = ARGV[1], ARGV[2], {}
for k = 1, #KEYS do
  local h = redis.call('HMGET', KEYS[k], 'rev', rf, 'fn')
  if not h[2] then
    redis.call('HSET', KEYS[k], rf, rec, 'fn', '1', 'f0', '')
    out[k] = h[1] == ARGV[k + 2] and 'f0' or 'stale'
  else
    out[k] = 'duplicate'
  end
end
return out"""
finish = """local rf, rec, h, c, a = ARGV[1], ARGV[2], ARGV[3], ARGV[4], {}
for j = 5, 20 do a[#a + 1] = ARGV[j] end
for k = 2, #KEYS do
  redis.call('HSET', KEYS[k], rf, rec, ARGV[2 * k + 18], h)
  redis.call('XADD', KEYS[1], '*', 'campaign', c, 'recipient', ARGV[2 * k + 17], unpack(a))
end
redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', '100000')
return #KEYS - 1"""
sha = [hashlib.sha1(x.encode()).hexdigest() for x in (reserve, finish)]
cmd("SCRIPT", "LOAD", reserve)
cmd("SCRIPT", "LOAD", finish)
for b in range(0, n, 64):
    ids = ["b%07d" % i for i in range(b, min(n, b + 64))]
    keys = ["herald:r:{%s}" % i for i in ids]
    for k in keys:
        lookup(k)
    cmd("EVALSHA", sha[0], str(len(keys)), *keys, "c:floor", "r" + rec, *["1"] * len(keys))
    cmd("SETRANGE", "herald:floor:handed", str(b // 8), "\x7f" * 8)
    cmd("EVALSHA", sha[1], str(len(keys) + 1), "herald:floor:audit", *keys, "c:floor", "s" + rec + " email/-",
        "2|%d|floor|0|0s|hook" % now, "floor", *AUDIT, *[x for i in ids for x in (i, "f0")])
PY
    }
    # Reading the recipients as herald does (SSCAN COUNT 512 of a set of N),
    # which herald's figures above include too.
    recipients() {
        /usr/bin/python3 - "$REDIS_PORT" "$1" "$N" <<'PY'
import redis, sys
r, what, n = redis.Redis(port=int(sys.argv[1])), sys.argv[2], int(sys.argv[3])
if what == "add":
    ids = ["b%07d" % i for i in range(n)]
    for k in range(0, n, 10000):
        r.sadd("herald:floor:list", *ids[k:k + 10000])
elif what == "scan":
    cur = None
    while cur != 0:
        cur, items = r.sscan("herald:floor:list", cur or 0, count=512)
else:
    r.delete("herald:floor:list")
PY
    }
    steps="lookup reserve handoff outcome audit"
    rows=() srows=()
    for pass in $(seq 1 "$RUNS"); do
        row=""
        for step in $steps; do
            floor_stream "$step" >"$tmp/floor.resp"
            row="$row $(redis_cost pipe "$tmp/floor.resp")"
        done
        rows+=("$row")
        floor_clean
        floor_stream scripted >"$tmp/floor.resp"
        srow=$(redis_cost pipe "$tmp/floor.resp")
        floor_clean
        recipients add
        srow="$srow $(redis_cost recipients scan)"
        recipients del
        srows+=("$srow")
    done
    floor_us=$(/usr/bin/python3 - "$cost_unit" "$steps" "${rows[@]}" <<'PY'
import statistics, sys
unit, steps = sys.argv[1], sys.argv[2].split()
med = [statistics.median(c) for c in zip(*[[float(x) for x in r.split()] for r in sys.argv[3:]])]
f = "%.2f" if unit == "us" else "%.0f"
print(("floor: redis-server %s per message for the data model's commands sent plain (median of %d passes): %s;"
       " total " + f) % (unit, len(sys.argv) - 3, ", ".join(("%s " + f) % sm for sm in zip(steps, med)), sum(med)),
      file=sys.stderr)
print(f % sum(med))
PY
)
    /usr/bin/python3 - "$cost_unit" "${srows[@]}" <<'PY'
import statistics, sys
unit = sys.argv[1]
s, r = (statistics.median(c) for c in zip(*[[float(x) for x in a.split()] for a in sys.argv[2:]]))
f = "%.1f" if unit == "us" else "%.0f"
print(("floor with scripts: the same commands with the reservation and the outcome from two lean scripts (64 "
       "messages a call, a key and one or two values a message, no fence): " + f + " %s; reading the recipients "
       "(SSCAN COUNT 512): " + f + "; together " + f + " (median of %d passes)")
      % (s, unit, r, s + r, len(sys.argv) - 2), file=sys.stderr)
PY
fi
if [ "${CALLGRIND:-0}" = 1 ]; then
    [ -n "$floor_us" ] && echo "  redis-server $ri_med instructions per message: $floor_us the data model's commands" \
        "sent plain (the floor), $((ri_med - floor_us)) what herald's scripts, the recipients' reading and the rest" \
        "of its commands add"
    exit 0
fi

FLOOR_US=$floor_us /usr/bin/python3 - "$(nproc)" "${figs[@]}" <<'PY'
import os, statistics, sys
cores = int(sys.argv[1])
runs = [[float(x) for x in f.split()] for f in sys.argv[2:]]
med = [statistics.median(col) for col in zip(*runs)]
rate, peak, hcpu, rcpu, ncpu, ref, ccpu, nrcpu, hsys, rsys, hwait, rwait, nwait, slotw, hbusy, rbusy = med
print("median: herald %.0f msg/s, reference %.0f req/s, ratio herald/reference %.2f (goal >= 0.5); "
      "peak RSS %.1f MiB (goal < 64)" % (rate, ref, rate / ref, peak / 1024))
# Where the ratio comes from. Both sides are CPU-bound: the reference spends
# ccpu + nrcpu per request, herald's run hcpu + rcpu + ncpu per message.
print("median CPU per message: herald %.1f us (%.1f in the kernel), redis-server %.1f us (%.1f in the kernel), "
      "nginx %.1f us; per reference request: curl loop %.1f us, nginx %.1f us"
      % (hcpu, hsys, rcpu, rsys, ncpu, ccpu, nrcpu))
print("  ratio expected when all processes share the %d cores: (%.1f + %.1f) / (%.1f + %.1f + %.1f) = %.2f"
      % (cores, ccpu, nrcpu, hcpu, rcpu, ncpu, (ccpu + nrcpu) / (hcpu + rcpu + ncpu)))
print("  ratio expected with a core for each process (herald's thread against the curl loop's): "
      "%.1f / %.1f = %.2f" % (ccpu, hcpu, ccpu / hcpu))
# The first expectation assumes the cores never idle while work waits; the
# time each process spent runnable but not running says how far the run was
# from that (the machine's other load included).
print("  waiting for a CPU during herald's run (median share of the run): herald %.0f%%, redis-server %.0f%%, "
      "nginx %.0f%%" % (hwait, rwait, nwait))
# Herald's requests wait for their handoff record (Redis's round trip)
# holding a slot: the slots left for requests in flight.
print("  herald's provider slots waiting for their handoff record (herald_provider_handoff_wait_seconds_total): "
      "%.1f of %s on average" % (slotw, os.environ.get("CONCURRENCY", "64")))
# The cores the whole machine used (/proc/stat): below all of them while
# herald's run waits, its pace is set by the hand-offs between the three
# processes (each waking the next), not by their CPU per message.
print("  the machine's cores in use: %.2f of %d during herald's run, %.2f during the reference's"
      % (hbusy, cores, rbusy))
if os.environ.get("FLOOR_US"):
    fl = float(os.environ["FLOOR_US"])
    print("  redis-server %.1f us per message: %.1f the data model's commands sent plain (the floor), %.1f what "
          "herald's scripts and the rest of its commands add" % (rcpu, fl, rcpu - fl))
PY
