"""Provider limits shared by every daemon on one Redis ([provider NAME]
shared = yes, the default): two daemons on one real redis-server, each
running its own job on the same provider (a recording sink).

- rate = 20/s holds for both together: the sink sees at most 22 requests a
  second over every 10 s window (the issue's bar), where two daemons with
  their own buckets gave it twice the rate;
- concurrency = 4 holds for both together: the sink never handles more
  than 4 requests at once, and both daemons get their share;
- a daemon killed (-9) while holding leases: the other gets the capacity
  back once the dead one's leases expire (5 s), not before;
- Redis refusing the limit's call (a key of the wrong type): nothing is
  sent, /healthz and /metrics say why, and sending resumes once it is fixed.
Each: every recipient one terminal outcome, nobody sent twice."""

import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import job  # noqa: E402

LIMIT_KEY = "herald:limit:hook"


def campaign_of(req):
    return __import__("json").loads(req["body"])["campaign"]


class SharedLimits(harness.HeraldTestCase):

    def setup_env(self, n, provider, script=({"status": 202},)):
        srv = FaultServer(list(script))
        self.addCleanup(srv.stop)
        e = self.env(log_level="info")
        conf = e.hook_config(srv.url, provider=provider)
        ppl = harness.people(n, "sl-")
        e.import_people(ppl)
        return srv, e, conf, [p["id"] for p in ppl]

    def two_daemons(self, e, conf):
        a = e.start_herald(config=conf, sets=["daemon.consumer=limits-a"])
        b = e.start_herald(config=conf, sets=["daemon.consumer=limits-b", *e.other_listeners()])
        return a, b

    def assert_once_each(self, e, srv, jobs):
        for cid, ids in jobs.items():
            by = self.assertConsistent(e, cid, ids)
            self.assertTrue(all(r["outcome"] == "sent" for r in by.values()), cid)
        per = harness.requests_by_recipient(srv)
        self.assertEqual({k: v for k, v in per.items() if v > 1}, {}, "recipients sent twice")

    def metrics(self, h):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % h.admin_port, timeout=5) as resp:
            return resp.read().decode()

    def test_rate_holds_across_two_daemons(self):
        srv, e, conf, ids = self.setup_env(440, "rate = 20/s\nconcurrency = 8")
        a, b = self.two_daemons(e, conf)
        jobs = {"sl-rate-1": ids[:220], "sl-rate-2": ids[220:]}
        for cid, part in jobs.items():
            e.enqueue(job(cid, recipients=part, channels=["email"]))
        for cid in jobs:
            e.wait_campaign_done(cid, timeout=90)
        self.assert_once_each(e, srv, jobs)
        # Both daemons ran a job at the same time (else this tests nothing).
        self.assertIn("job done campaign=", a.log())
        self.assertIn("job done campaign=", b.log())
        by_campaign = {}
        for r in srv.requests:
            by_campaign.setdefault(campaign_of(r), []).append(r["at"])
        overlap = min(max(v) for v in by_campaign.values()) - max(min(v) for v in by_campaign.values())
        self.assertGreater(overlap, 5, "the two jobs did not run side by side")
        at = sorted(r["at"] for r in srv.requests)
        most = harness.most_in_window(at, 10.0)
        span = at[-1] - at[0]
        print("two daemons, rate = 20/s: %d requests over %.1f s (%.1f/s), at most %d in a 10 s window"
              % (len(at), span, len(at) / span, most), file=sys.stderr)
        self.assertLessEqual(most, 220, "more than 22 requests/s over a 10 s window")
        # The shared rate is used, not starved by the batching.
        self.assertGreater(len(at) / span, 16)
        for h in (a, b):
            m = self.metrics(h)
            self.assertIn('herald_limit_tokens_granted_total{provider="hook"}', m)
        self.assertEqual(a.stop(), 0)
        self.assertEqual(b.stop(), 0)

    def test_concurrency_holds_across_two_daemons(self):
        srv, e, conf, ids = self.setup_env(60, "concurrency = 4", script=[{"status": 202, "delay": 0.25}])
        a, b = self.two_daemons(e, conf)
        jobs = {"sl-conc-1": ids[:30], "sl-conc-2": ids[30:]}
        for cid, part in jobs.items():
            e.enqueue(job(cid, recipients=part, channels=["email"]))
        for cid in jobs:
            e.wait_campaign_done(cid, timeout=90)
        self.assert_once_each(e, srv, jobs)
        print("two daemons, concurrency = 4: at most %d at once at the sink" % srv.max_concurrent, file=sys.stderr)
        self.assertLessEqual(srv.max_concurrent, 4)
        self.assertGreaterEqual(srv.max_concurrent, 2)
        # The two jobs ran side by side: both had requests in the same second.
        by_campaign = {}
        for r in srv.requests:
            by_campaign.setdefault(campaign_of(r), []).append(r["at"])
        firsts = [min(v) for v in by_campaign.values()]
        lasts = [max(v) for v in by_campaign.values()]
        self.assertLess(max(firsts), min(lasts), "one daemon waited for the other's whole job")
        # A clean stop gives the leases back.
        self.assertEqual(a.stop(), 0)
        self.assertEqual(b.stop(), 0)
        harness.wait_for("the leases given back",
                         lambda: not [k for k in e.r.hkeys(LIMIT_KEY) if k.startswith("l:")], 10)

    def test_killed_daemons_leases_come_back_after_their_ttl(self):
        srv, e, conf, ids = self.setup_env(40, "concurrency = 4", script=[{"status": 202, "delay": 0.4}])
        a = e.start_herald(config=conf, sets=["daemon.consumer=limits-a"])
        e.enqueue(job("sl-kill-1", recipients=ids[:20], channels=["email"]))
        harness.wait_for("a's first requests", lambda: srv.count() >= 6, 20, 0.02)

        def leases():
            out = {}
            for k, v in e.r.hgetall(LIMIT_KEY).items():
                if k.startswith("l:"):
                    held, expires, _ = v.split()
                    out[k] = (int(held), int(expires))
            return out
        held = leases()
        self.assertEqual(len(held), 1)
        ((_, (n, _)),) = held.items()
        self.assertEqual(n, 4, "a holds the provider's 4 leases")
        a.kill()
        sec, usec = e.r.time()
        killed_at = time.monotonic()
        ((_, (_, expires)),) = leases().items()  # the last renewal before the kill
        left = (expires - (sec * 1000 + usec // 1000)) / 1000.0
        self.assertGreater(left, 0)
        n_at_kill = srv.count()
        b = e.start_herald(config=conf, sets=["daemon.consumer=limits-b", *e.other_listeners()])
        e.enqueue(job("sl-kill-2", recipients=ids[20:], channels=["email"]))
        e.wait_campaign_done("sl-kill-2", herald=b, timeout=60)
        later = [r["at"] for r in srv.requests[n_at_kill:] if campaign_of(r) == "sl-kill-2"]
        self.assertEqual(len(later), 20)
        waited = min(later) - killed_at
        print("a killed with its leases %.1f s from expiry: b's first request %.1f s after the kill"
              % (left, waited), file=sys.stderr)
        # Not before the dead daemon's leases expired (0.1 s of clock slack).
        self.assertGreaterEqual(waited, left - 0.1)
        self.assertLessEqual(srv.max_concurrent, 4)
        self.assertIn('herald_limit_wait_seconds_total{provider="hook"}', self.metrics(b))
        self.assertConsistent(e, "sl-kill-2", ids[20:])
        self.assertEqual(b.stop(), 0)

    def test_redis_refusing_the_limit_stops_sends_and_says_why(self):
        srv, e, conf, ids = self.setup_env(20, "rate = 50/s\nconcurrency = 4")
        e.r.set(LIMIT_KEY, "not a hash")  # every call of the limit fails: WRONGTYPE
        h = e.start_herald(config=conf, wait_healthy=False)
        e.enqueue(job("sl-refused", recipients=ids, channels=["email"]))

        def says_why():
            code, body = h.healthz()
            lim = (body or {}).get("provider_limits", {}).get("hook")
            return code == 503 and lim and lim["error"] == "wrongtype"
        harness.wait_for("/healthz to name the provider whose limits fail", says_why, 20)
        time.sleep(1.0)
        self.assertEqual(srv.count(), 0, "messages left without a token")
        m = self.metrics(h)
        self.assertIn('herald_limit_failing{provider="hook"} 1', m)
        self.assertNotIn('herald_limit_errors_total{provider="hook"} 0\n', m)
        self.assertEqual(h.log().count("shared limits of provider=hook unavailable"), 1)
        e.r.delete(LIMIT_KEY)
        e.wait_campaign_done("sl-refused", herald=h, timeout=30)
        self.assertConsistent(e, "sl-refused", ids)
        self.assertIn("shared limits of provider=hook available again", h.log())
        h.wait_healthy()
        self.assertEqual(h.stop(), 0)


if __name__ == "__main__":
    harness.main()
