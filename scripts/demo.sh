#!/usr/bin/env bash
# herald, end to end, in about a minute:
#   installs what is missing, builds, starts a private redis-server, imports
#   the sample people of config/demo/recipients.jsonl, suppresses one address,
#   enqueues config/demo/campaign.json, runs herald until every recipient has
#   an outcome, shows what happened and the messages it wrote, then the
#   person's side: what the preference API holds and a one-click unsubscribe.
# Nothing has to be running beforehand; everything started is stopped at exit.
#   scripts/demo.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"
lib_cleanup_on_exit
cd "$HERALD_ROOT"

conf=config/herald.conf
chmod 600 "$conf" # it holds the demo's secrets: herald refuses a config others may read
# [privacy] key_file: a key of 32 random bytes, readable by its owner only.
keys=var/herald.keys
if [ ! -f "$keys" ]; then
    mkdir -p var
    (umask 077 && echo "demo1 $(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$keys")
fi
people=config/demo/recipients.jsonl
campaign_file=config/demo/campaign.json
campaign=$(jq -r .id "$campaign_file" 2>/dev/null || echo demo-winter-sale)
suppressed_address=gina.bounced@example.com
outbox="$HERALD_ROOT/var/outbox"
log_dir="$HERALD_ROOT/var/demo"

section "1. dependencies and build"
scripts/deps.sh
echo "building into build/ (the first time takes a minute) ..."
build_log=$(mktemp)
if ! { cmake -S . -B build && cmake --build build -j 2; } >"$build_log" 2>&1; then
    cat "$build_log" >&2
    rm -f "$build_log"
    die "the build failed (output above)"
fi
rm -f "$build_log"
echo "built build/herald, build/heraldctl and the plugins in build/channels/"

section "2. a private Redis"
mkdir -p "$log_dir"
make_tmpdir herald-demo-redis
start_redis "$LIB_LAST_TMPDIR" >/dev/null
admin_port=$(free_port)
public_port=$(free_port)
echo "redis-server on 127.0.0.1:$REDIS_PORT (pid $REDIS_PID), data thrown away at exit"

ctl() {
    build/heraldctl --config "$conf" --set "redis.url=$REDIS_URL" "$@"
}

section "3. import the sample people ($people)"
echo "\$ heraldctl import $people"
# One line is deliberately invalid: heraldctl reports it by line number, skips
# it, stores the rest and exits 1.
set +e
ctl import "$people" 2>&1
rc=$?
set -e
[ "$rc" -le 1 ] || die "heraldctl import failed (exit $rc)"
echo "(exit status $rc: 1 means some lines were skipped, the good ones are stored)"

section "4. suppress one address (as after a hard bounce)"
echo "\$ heraldctl suppress email $suppressed_address"
ctl suppress email "$suppressed_address"

section "5. enqueue the campaign ($campaign_file)"
echo "\$ heraldctl enqueue $campaign_file"
ctl enqueue "$campaign_file"

section "6. run herald"
rm -rf -- "${outbox:?}/$campaign"
herald_log="$log_dir/herald.log"
spawn_bg "$herald_log" build/herald --config "$conf" \
    --set "redis.url=$REDIS_URL" \
    --set "admin.listen=127.0.0.1:$admin_port" \
    --set "public.listen=127.0.0.1:$public_port" \
    --set "public.public_url=http://127.0.0.1:$public_port" \
    --set "provider outbox.dir=$outbox"
herald_pid=$SPAWNED_PID
echo "herald running (pid $herald_pid), admin API on 127.0.0.1:$admin_port, public pages on 127.0.0.1:$public_port, log in var/demo/herald.log"

state=
campaign_done() {
    alive "$herald_pid" || { cat "$herald_log" >&2; die "herald exited early (log above)"; }
    status=$(ctl campaign "$campaign" 2>/dev/null) || return 1
    state=$(jq -r .state <<<"$status")
    [ "$state" = done ]
}
wait_until 60 campaign_done || die "campaign $campaign not done after 60 s (state: ${state:-?}); see $herald_log"
echo "campaign $campaign: done"

echo
echo "\$ curl -s http://127.0.0.1:$admin_port/healthz"
curl -s "http://127.0.0.1:$admin_port/healthz"
echo

section "7. what happened"
echo "\$ heraldctl campaign $campaign"
echo "$status"
echo
jq -r '
  "recipients: \(.total)",
  "sent:       \(.sent)",
  "not sent:",
  (.suppressed | to_entries[] | "  suppressed  \(.key): \(.value)"),
  (.failed     | to_entries[] | "  failed      \(.key): \(.value)"),
  (if .deferred > 0 then "  deferred: \(.deferred)" else empty end),
  (if .unknown  > 0 then "  unknown:  \(.unknown)"  else empty end)' <<<"$status"

echo
echo "Every decision is in the audit stream (ids and reasons only, no addresses):"
"$HERALD_PY" - "$REDIS_PORT" <<'EOF'
import sys
import redis
r = redis.Redis(port=int(sys.argv[1]), decode_responses=True)
print("  %-6s %-8s %-11s %s" % ("who", "channel", "outcome", "reason"))
for _, f in r.xrange("herald:audit"):
    print("  %-6s %-8s %-11s %s" % (f["recipient"], f["channel"] or "-", f["outcome"], f["reason"] or "-"))
EOF

cat <<'EOF'

What the reasons mean:
  no_consent         the person never agreed to that channel (dan)
  topic_opt_out      the person opted out of "promotions" (eve)
  no_address         consent for email, but no address on file (finn)
  suppressed         the address is on the suppression list (gina, step 4)
  unknown_recipient  no such person stored (zoe; hal's line was refused by the import)
  ben has no email consent, so herald used his second choice, sms;
  cara prefers sms, so she got an sms although she consented to both.
EOF

section "8. the messages (var/outbox/$campaign/)"
if [ -d "$outbox/$campaign" ]; then
    ls -l "$outbox/$campaign" | tail -n +2
    first=$(find "$outbox/$campaign" -name '*.email.json' | sort | head -n 1)
    [ -n "$first" ] || first=$(find "$outbox/$campaign" -type f | sort | head -n 1)
    echo
    echo "\$ cat var/outbox/$campaign/$(basename "$first")"
    jq . "$first"
else
    echo "(no messages written)"
fi

section "9. the person's side"
token=$(sed -n 's/^token *= *//p' "$conf")
api="http://127.0.0.1:$admin_port"
echo "What herald holds about ann, as the preference centre sees it (GET /v1/recipients/ann):"
echo "\$ curl -s -H 'Authorization: Bearer ...' $api/v1/recipients/ann | jq '{topics: .preferences.topics, consent: [.consent[] | {channel, granted, source}], messages: [.messages[] | {campaign, channel, outcome}]}'"
curl -s -H "Authorization: Bearer $token" "$api/v1/recipients/ann" |
    jq -c '{topics: .preferences.topics, consent: [.consent[] | {channel, granted, source}], messages: [.messages[] | {campaign, channel, outcome}]}'
if [ -n "$first" ] && unsub=$(jq -er .unsubscribe_url "$first" 2>/dev/null); then
    echo
    echo "Ann clicks the one-click unsubscribe of her email (RFC 8058; her mail client POSTs to the signed link):"
    echo "\$ curl -s -X POST -d List-Unsubscribe=One-Click ${unsub%%/u/*}/u/<token>"
    curl -s -o /dev/null -w 'HTTP %{http_code}\n' -X POST -d List-Unsubscribe=One-Click "$unsub"
    echo "Her topics now:"
    curl -s -H "Authorization: Bearer $token" "$api/v1/recipients/ann" | jq -c .preferences.topics
    echo "Her preference page (what she sees when she follows the link in the email, while herald runs):"
    jq -r .preferences_url "$first"
fi

section "10. stop"
set +e
stop_pid "$herald_pid" 20
rc=$?
set -e
[ "$rc" -eq 0 ] || die "herald exited with status $rc on SIGTERM (see $herald_log)"
echo "herald stopped cleanly (SIGTERM, exit status 0)"
stop_redis
echo "redis-server stopped"
echo
echo "Done. herald's log: var/demo/herald.log; messages: var/outbox/$campaign/"
