"""Jobs side by side ([daemon] max_jobs) with priorities.

A large campaign on a rate-limited provider (600 recipients at 50/s) is
under way when a 3-recipient high-priority campaign is enqueued behind it:
the small one is done while the large one is still running (the order of
completion, not a timing, is asserted), then the large one finishes; both
ran at once (/healthz jobs_running and /metrics herald_jobs_running say 2).
Two campaigns for the same people running at once with a cap of one a day:
each person gets one message. A SIGTERM with two jobs running leaves both
pending; the next start finishes both. One of two running campaigns paused
sends nothing more within a second (its queued messages are taken back from
dispatch) while the other goes on; resumed, its rest is sent. Every recipient has exactly one terminal audit record that
its once-only record agrees with, and the recording sink got exactly one
request per recipient."""

import os
import signal
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import job  # noqa: E402

RATE = "50/s"


class SideBySide(harness.HeraldTestCase):

    def setup_env(self, groups):
        """A webhook provider limited to RATE, and people per (prefix, n)."""
        srv = FaultServer([{"status": 202}])
        self.addCleanup(srv.stop)
        e = self.env(log_level="info", drain_timeout="10s")
        conf = e.hook_config(srv.url, provider="rate = %s\nconcurrency = 4" % RATE)
        ids = {}
        for prefix, n in groups:
            ppl = harness.people(n, prefix)
            e.import_people(ppl, name=prefix + "people.jsonl")
            ids[prefix] = [p["id"] for p in ppl]
        return srv, e, conf, ids

    def check_exactly_once(self, e, srv, cid, ids):
        by = self.assertConsistent(e, cid, ids)
        self.assertEqual({(r["outcome"], r["reason"]) for r in by.values()}, {("sent", "")})
        per = harness.requests_by_recipient(srv)
        mine = {k: v for k, v in per.items() if k in set(ids)}
        self.assertEqual({k: v for k, v in mine.items() if v != 1}, {}, "requests per recipient other than one")
        self.assertEqual(sorted(mine), sorted(ids))

    def metrics_jobs_running(self, e):
        url = "http://127.0.0.1:%d/metrics" % e.admin_port
        with urllib.request.urlopen(url, timeout=5) as resp:
            for line in resp.read().decode().splitlines():
                if line.startswith("herald_jobs_running "):
                    return int(float(line.split()[1]))
        self.fail("/metrics has no herald_jobs_running")

    def test_small_high_priority_job_is_done_while_the_large_one_goes_on(self):
        srv, e, conf, ids = self.setup_env([("big-", 600), ("small-", 3)])
        h = e.start_herald(config=conf)
        self.assertEqual(h.healthz()[1]["jobs_running"], 0)
        big = e.enqueue(job("sbs-big", recipients=ids["big-"], channels=["email"]))
        harness.wait_for("the large campaign under way", lambda: srv.count() >= 20, 30, 0.02)
        small = e.enqueue(job("sbs-small", recipients=ids["small-"], channels=["email"], priority="high"))
        seen = {"health": 0, "metrics": 0}

        def small_done():
            code, body = h.healthz()
            if body:
                seen["health"] = max(seen["health"], body.get("jobs_running", 0))
            seen["metrics"] = max(seen["metrics"], self.metrics_jobs_running(e))
            c = e.campaign("sbs-small")
            return c if c.get("state") == "done" else None
        harness.wait_for("the small campaign done", small_done, 60 * harness.SLOW, 0.1)
        # Done in the middle of the large one, not behind it.
        c_big = e.campaign("sbs-big")
        self.assertEqual(c_big["state"], "running", "the large campaign should still be running: %r" % c_big)
        self.assertLess(c_big["sent"], 600)
        self.assertFalse(e.acked(big))
        self.assertEqual(seen["health"], 2, "/healthz jobs_running while both ran")
        self.assertEqual(seen["metrics"], 2, "/metrics herald_jobs_running while both ran")
        self.check_exactly_once(e, srv, "sbs-small", ids["small-"])

        e.wait_campaign_done("sbs-big", herald=h, timeout=120 * harness.SLOW)
        harness.wait_for("both jobs acknowledged", lambda: e.acked(big) and e.acked(small), 20)
        self.check_exactly_once(e, srv, "sbs-big", ids["big-"])
        lines = h.log_lines()
        done = [l for l in lines if "job done" in l]
        self.assertEqual(len(done), 2)
        self.assertIn("campaign=sbs-small", done[0], "completion order: the small one first")
        self.assertIn("campaign=sbs-big", done[1])
        self.assertEqual(h.healthz()[1]["jobs_running"], 0)
        self.assertEqual(h.stop(), 0)

    def test_cap_holds_between_two_jobs_on_one_daemon(self):
        # Two campaigns for the same people run at once on one daemon, with a
        # cap of one message per day: the reservation decides each person once.
        srv, e, conf, ids = self.setup_env([("cap-", 100)])
        cap = ("cap daily.channel=any", "cap daily.limit=1", "cap daily.window=24h")
        h = e.start_herald(config=conf, sets=cap)
        a = e.enqueue(job("sbs-cap-a", recipients=ids["cap-"], channels=["email"]))
        b = e.enqueue(job("sbs-cap-b", recipients=ids["cap-"], channels=["email"], priority="high"))
        both = {"seen": 0}

        def done():
            code, body = h.healthz()
            if body:
                both["seen"] = max(both["seen"], body.get("jobs_running", 0))
            return e.acked(a) and e.acked(b)
        harness.wait_for("both campaigns done", done, 120 * harness.SLOW, 0.1)
        self.assertEqual(both["seen"], 2, "the two jobs ran side by side")
        by_a = self.assertConsistent(e, "sbs-cap-a", ids["cap-"])
        by_b = self.assertConsistent(e, "sbs-cap-b", ids["cap-"])
        for rid in ids["cap-"]:
            got = sorted([by_a[rid]["outcome"], by_b[rid]["outcome"]])
            self.assertEqual(got, ["sent", "suppressed"], rid)
            other = by_a[rid] if by_a[rid]["outcome"] == "suppressed" else by_b[rid]
            self.assertEqual(other["reason"], "cap:daily")
        per = harness.requests_by_recipient(srv)
        self.assertEqual(sorted(per), sorted(ids["cap-"]))
        self.assertEqual({k: v for k, v in per.items() if v != 1}, {}, "one request per person")
        self.assertEqual(h.stop(), 0)

    def test_sigterm_with_two_jobs_running_then_restart(self):
        srv, e, conf, ids = self.setup_env([("sa-", 300), ("sb-", 300)])
        h1 = e.start_herald(config=conf)
        a = e.enqueue(job("sbs-a", recipients=ids["sa-"], channels=["email"]))
        b = e.enqueue(job("sbs-b", recipients=ids["sb-"], channels=["email"], priority="low"))

        def both_under_way():
            per = harness.requests_by_recipient(srv)
            return (sum(1 for k in per if k.startswith("sa-")) >= 5 and
                    sum(1 for k in per if k.startswith("sb-")) >= 5)
        harness.wait_for("both campaigns under way", both_under_way, 30, 0.02)
        h1.signal(signal.SIGTERM)
        self.assertEqual(h1.wait_exit(30), 0, "exit code after SIGTERM; log tail:\n" + h1.log()[-2000:])
        self.assertLess(srv.count(), 600, "the campaigns finished before the stop")
        self.assertEqual(e.pending(), 2, "both unfinished jobs stay pending for the next start")
        self.assertFalse(e.acked(a) or e.acked(b))

        h2 = e.start_herald(config=conf)
        e.wait_campaign_done("sbs-a", herald=h2, timeout=120 * harness.SLOW)
        e.wait_campaign_done("sbs-b", herald=h2, timeout=120 * harness.SLOW)
        harness.wait_for("both jobs acknowledged", lambda: e.acked(b) and e.pending() == 0, 20)
        self.check_exactly_once(e, srv, "sbs-a", ids["sa-"])
        self.check_exactly_once(e, srv, "sbs-b", ids["sb-"])
        self.assertEqual(h2.stop(), 0)

    def test_pausing_one_of_two_running_jobs(self):
        # Two campaigns share a provider limited to RATE. One is paused: its
        # messages already in dispatch's queues are taken back at once, so
        # within a second (the control field is read every second) the sink
        # gets none of its messages while the other's keep coming; resumed,
        # the rest of it is sent, each person once.
        srv, e, conf, ids = self.setup_env([("pa-", 400), ("pb-", 400)])
        h = e.start_herald(config=conf)
        a = e.enqueue(job("sbs-pa", recipients=ids["pa-"], channels=["email"]))
        e.enqueue(job("sbs-pb", recipients=ids["pb-"], channels=["email"]))

        def count(prefix):
            return sum(v for k, v in harness.requests_by_recipient(srv).items() if k.startswith(prefix))
        harness.wait_for("both campaigns under way", lambda: count("pa-") >= 10 and count("pb-") >= 10, 30, 0.02)
        e.ctl_ok("pause", "sbs-pa")
        time.sleep(1.5)
        a_paused, b_then = count("pa-"), count("pb-")
        time.sleep(2.0)
        self.assertEqual(count("pa-"), a_paused, "requests of the paused campaign after it was paused")
        self.assertGreater(count("pb-"), b_then + 20, "the other campaign should go on while one is paused")
        self.assertLess(a_paused, 400, "the paused campaign finished before the pause")
        harness.wait_for("the paused one parked", lambda: e.campaign("sbs-pa")["state"] == "paused", 10, 0.1)
        harness.wait_for("the paused job parked, not left pending", lambda: e.acked(a), 10, 0.1)
        print("pause beside another job: %d of 400 sent before it took effect" % a_paused, file=sys.stderr)
        e.ctl_ok("resume", "sbs-pa")
        e.wait_campaign_done("sbs-pa", herald=h, timeout=120 * harness.SLOW)
        e.wait_campaign_done("sbs-pb", herald=h, timeout=120 * harness.SLOW)
        self.check_exactly_once(e, srv, "sbs-pa", ids["pa-"])
        self.check_exactly_once(e, srv, "sbs-pb", ids["pb-"])
        self.assertEqual(h.stop(), 0)


if __name__ == "__main__":
    harness.main()
