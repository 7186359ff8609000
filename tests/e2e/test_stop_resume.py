"""A stop never acknowledges unfinished work.

An operator stops herald to apply a config change while a rate-limited
campaign is under way: the recipients still queued or waiting for the rate
stay pending, the job is not acknowledged, and the next start sends exactly
those. Then the same, stopped ten and more times in a row: every recipient
gets exactly one request and one outcome, `sent`, and none is `unknown` (a
clean drain finishes or gives back every message)."""

import os
import random
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import job  # noqa: E402

STOPS = int(os.environ.get("HERALD_E2E_STOPS", "12"))



class StopResume(harness.HeraldTestCase):

    def setup_campaign(self, n, rate):
        srv = FaultServer([{"status": 202}])
        self.addCleanup(srv.stop)
        e = self.env(log_level="info", drain_timeout="10s")
        conf = e.hook_config(srv.url, provider="rate = %s\nconcurrency = 4" % rate)
        ppl = harness.people(n, "sr-")
        e.import_people(ppl)
        return srv, e, conf, [p["id"] for p in ppl]

    def check_exactly_once(self, e, srv, cid, ids):
        by = self.assertConsistent(e, cid, ids)
        outcomes = {}
        for r in by.values():
            outcomes[(r["outcome"], r["reason"])] = outcomes.get((r["outcome"], r["reason"]), 0) + 1
        self.assertEqual(outcomes, {("sent", ""): len(ids)})
        per = harness.requests_by_recipient(srv)
        self.assertEqual({k: v for k, v in per.items() if v != 1}, {}, "requests per recipient other than one")
        self.assertEqual(sorted(per), sorted(ids))

    def test_stop_mid_campaign_leaves_the_rest_pending(self):
        # The operator's case: rate 10/s, 60 recipients, SIGTERM after 2 s.
        srv, e, conf, ids = self.setup_campaign(60, "10/s")
        h1 = e.start_herald(config=conf)
        entry = e.enqueue(job("sr-once", recipients=ids, channels=["email"]))
        harness.wait_for("the first requests", lambda: srv.count() >= 5, 20, 0.02)
        time.sleep(1.5)
        self.assertEqual(h1.stop(), 0)
        sent_first = srv.count()
        self.assertLess(sent_first, 60, "the campaign finished before the stop")
        self.assertFalse(e.acked(entry), "a stopped job with recipients still queued was acknowledged")
        self.assertNotIn("job done", h1.log())
        c = e.campaign("sr-once")
        self.assertEqual(c["pending"], 60 - sent_first, "progress after the stop: %r" % c)
        h2 = e.start_herald(config=conf)
        e.wait_campaign_done("sr-once", herald=h2, timeout=60)
        harness.wait_for("the job acknowledged", lambda: e.acked(entry), 20)
        self.check_exactly_once(e, srv, "sr-once", ids)
        self.assertEqual(h2.stop(), 0)

    def test_stopped_again_and_again(self):
        srv, e, conf, ids = self.setup_campaign(300, "10/s")
        rnd = random.Random(11)
        entry = None
        for i in range(STOPS):
            h = e.start_herald(config=conf)
            if entry is None:
                entry = e.enqueue(job("sr-many", recipients=ids, channels=["email"]))
            time.sleep(rnd.uniform(0.3, 1.0))
            h.signal(signal.SIGTERM)
            self.assertEqual(h.wait_exit(20), 0, "exit code after SIGTERM %d" % (i + 1))
            if e.acked(entry):
                break
        self.assertFalse(e.acked(entry), "raise the campaign size: it finished within the stops")
        h = e.start_herald(config=conf)
        e.wait_campaign_done("sr-many", herald=h, timeout=90)
        harness.wait_for("the job acknowledged", lambda: e.acked(entry), 20)
        self.check_exactly_once(e, srv, "sr-many", ids)
        self.assertEqual(h.stop(), 0)


if __name__ == "__main__":
    harness.main()
