"""What a provider sees when connections die and when it is down, through
the webhook plugin and the curl engine against faultserver.py:

- the endpoint resets (RST) or closes (FIN) kept-alive connections after
  reading a request, without a reply byte: libcurl would silently re-send
  such a request on a fresh connection (its "Connection died, retrying a
  fresh connect"); herald refuses that and retries on its own (backoff,
  counted), so the endpoint's count of requests per message equals herald's
  count;
- the only provider answers 503 for longer than its circuit's cool-down,
  then recovers: every message is sent, none fails, while the campaign has
  not expired (waiting for the circuit is not an attempt);
- with a short give_up_after the waiting messages end
  failed/provider_unavailable.

herald's count per message is the audit record's `requests` field (and
dispatch's debug line "done campaign=.. recipient=.. requests=N" agrees);
the sink counts per Idempotency-Key."""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import job, person  # noqa: E402
from test_faults import config_with  # noqa: E402

DONE = re.compile(r"dispatch: done campaign=(\S+) recipient=(\S+) provider=(\S+) outcome=(\S+) reason=(\S+) "
                  r"requests=(\d+)")


def people(n, prefix):
    return [person("%s%d" % (prefix, i), email="%s%d.waits@example.com" % (prefix, i), channels=["email"],
                   consent=["email"], first_name="W%d" % i) for i in range(n)]


def herald_counts(log, cid):
    """recipient -> requests, from dispatch's done lines of campaign cid."""
    out = {}
    for m in DONE.finditer(log):
        if m.group(1) == cid:
            out[m.group(2)] = out.get(m.group(2), 0) + int(m.group(6))
    return out


class ProviderWaits(harness.HeraldTestCase):

    def server(self, script):
        srv = FaultServer(script)
        self.addCleanup(srv.stop)
        return srv

    def test_reset_requests_are_counted_and_never_resent_by_curl(self):
        e = self.env()
        n = 6
        e.import_people(people(n, "p-rs"))
        ids = ["p-rs%d" % i for i in range(n)]
        # One connection (concurrency 1) kept alive; every third request is
        # read and then the connection is reset (RST) or closed (FIN).
        ok = {"status": 202, "body": {"id": "wh-ok"}}
        srv = self.server([ok, ok, {"reset": True}, ok, ok, {"close": True}] * 10)
        conf = config_with(e, srv.url, providers="hook", extra="concurrency = 1\nretries = 3\n")
        h = e.start_herald(config=conf)
        e.enqueue(job("f-reset", recipients=ids, channels=["email"]))
        e.wait_campaign_done("f-reset", herald=h, timeout=90)
        recs = self.assertOneTerminalEach(e.audit("f-reset"), ids)
        for r in recs.values():
            self.assertEqual(r["outcome"], "sent", r)

        seen, key_seen, times = {}, {}, {}
        for req in srv.requests:
            rid = json.loads(req["body"])["recipient"]
            seen[rid] = seen.get(rid, 0) + 1
            times.setdefault(rid, []).append(req["at"])
            key = req["headers"].get("idempotency-key")
            if key:
                key_seen[key] = key_seen.get(key, 0) + 1
        log = h.log()
        counts = herald_counts(log, "f-reset")
        print("requests per recipient: sink %s, herald %s" % (sorted(seen.items()), sorted(counts.items())))
        self.assertEqual(seen, counts, "every request the sink read is one herald counted")
        audited = {rid: int(r["requests"]) for rid, r in recs.items()}
        self.assertEqual(seen, audited, "the audit's requests per recipient")
        self.assertGreater(sum(seen.values()), n, "some requests were reset")
        # Each message was sent again by herald's own retry (backoff, at
        # least 0.5 s), never re-sent at once by curl on a new connection.
        for rid, ts in times.items():
            for a, b in zip(ts, ts[1:]):
                self.assertGreaterEqual(b - a, 0.4, "%s sent again after %.3f s" % (rid, b - a))
        self.assertIn("reason=connection_died", log)
        # The same holds per idempotency key: one key per message, on every request.
        self.assertEqual(len(key_seen), n)
        self.assertEqual(sorted(key_seen.values()), sorted(seen.values()))

    def test_outage_longer_than_the_cooldown_fails_nothing(self):
        e = self.env()
        n = 5
        e.import_people(people(n, "p-out"))
        ids = ["p-out%d" % i for i in range(n)]
        srv = self.server([{"status": 503}])
        conf = config_with(e, srv.url, providers="hook",
                           extra="retries = 1\ncircuit_failures = 2\ncircuit_cooldown = 1s\n")
        h = e.start_herald(config=conf)
        e.enqueue(job("f-outage", recipients=ids, channels=["email"]))
        time.sleep(5)  # five cool-downs of 503s
        self.assertEqual(e.audit("f-outage"), [], "nothing ended during the outage")
        down = srv.count()
        srv.script = [{"status": 202, "body": {"id": "wh-back"}}]
        e.wait_campaign_done("f-outage", herald=h, timeout=60)
        recs = self.assertOneTerminalEach(e.audit("f-outage"), ids)
        for r in recs.values():
            self.assertEqual((r["outcome"], r["provider_id"]), ("sent", "wh-back"), r)
        counts = herald_counts(h.log(), "f-outage")
        print("outage: %d requests while down (probes included), %d in all; herald counted %d"
              % (down, srv.count(), sum(counts.values())))
        self.assertEqual(sum(counts.values()), srv.count())
        self.assertLess(down, 20, "while the circuit is open only probes go out")

    def test_give_up_after_ends_waiting_messages(self):
        e = self.env()
        n = 3
        e.import_people(people(n, "p-gu"))
        ids = ["p-gu%d" % i for i in range(n)]
        srv = self.server([{"status": 503}])
        conf = config_with(e, srv.url, providers="hook",
                           extra="retries = 0\ncircuit_failures = 1\ncircuit_cooldown = 1s\ngive_up_after = 2s\n")
        h = e.start_herald(config=conf)
        t0 = time.monotonic()
        e.enqueue(job("f-giveup", recipients=ids, channels=["email"]))
        e.wait_campaign_done("f-giveup", herald=h, timeout=60)
        took = time.monotonic() - t0
        recs = self.assertOneTerminalEach(e.audit("f-giveup"), ids)
        for r in recs.values():
            self.assertEqual((r["outcome"], r["reason"]), ("failed", "provider_unavailable"), r)
        print("give_up_after = 2s: all failed provider_unavailable after %.1f s, %d requests" % (took, srv.count()))
        self.assertGreaterEqual(took, 1.5)
        self.assertIn("gave up waiting", h.log())


if __name__ == "__main__":
    harness.main()
