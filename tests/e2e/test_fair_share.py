"""Each provider shared fairly between the jobs running side by side.

What is reserved and offered to dispatch is decided per channel, each by
its providers' room: a large campaign whose email provider is slow fills
only the email providers' room, so a small SMS campaign enqueued behind it
(another provider) is done while the large one has sent a few more messages
at most (counted at the slow sink, not timed). Two campaigns on one
rate-limited provider share it by priority: while both run, the
high-priority one gets about four messages for each of the low one's
(counted at the recording sink, a loose bound). Every recipient has one
terminal outcome and one request."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import job  # noqa: E402


def sms_people(n, prefix):
    return [harness.person("%s%04d" % (prefix, i), phone="+1555%07d" % i, channels=["sms"], consent=["sms"],
                           first_name="S%d" % i) for i in range(n)]


class FairShare(harness.HeraldTestCase):

    def sent_once(self, e, srv, cid, ids):
        by = self.assertConsistent(e, cid, ids)
        self.assertEqual({(r["outcome"], r["reason"]) for r in by.values()}, {("sent", "")})
        per = harness.requests_by_recipient(srv)
        mine = {k: v for k, v in per.items() if k in set(ids)}
        self.assertEqual(sorted(mine), sorted(ids))
        self.assertEqual({k: v for k, v in mine.items() if v != 1}, {}, "requests per recipient other than one")

    def test_small_job_on_another_provider_is_not_held_by_a_slow_one(self):
        slow = FaultServer([{"status": 202, "delay": 0.5}])
        fast = FaultServer([{"status": 202}])
        self.addCleanup(slow.stop)
        self.addCleanup(fast.stop)
        e = self.env(log_level="info", drain_timeout="2s")
        conf = e.hook_config(slow.url, provider="concurrency = 1",
                             tail="[provider texts]\nplugin = webhook\nurl = %s\nsecret = %s\n"
                                  % (fast.url, harness.HOOK_SECRET))
        with open(conf) as f:
            text = f.read().replace("[channel sms]\nproviders = outbox", "[channel sms]\nproviders = texts")
        with open(conf, "w") as f:
            f.write(text)
        big_ppl = harness.people(200, "fs-big-")
        small_ppl = sms_people(5, "fs-sms-")
        e.import_people(big_ppl + small_ppl)
        h = e.start_herald(config=conf)
        e.enqueue(job("fs-big", recipients=[p["id"] for p in big_ppl], channels=["email"]))
        harness.wait_for("the large campaign under way", lambda: slow.count() >= 3, 30, 0.02)
        small_ids = [p["id"] for p in small_ppl]
        e.enqueue(job("fs-sms", recipients=small_ids, channels=["sms"]))
        at_enqueue = slow.count()
        c = e.wait_campaign_done("fs-sms", herald=h, timeout=60 * harness.SLOW)
        behind = slow.count() - at_enqueue
        print("the small SMS campaign was done after %d more requests of the slow provider" % behind,
              file=sys.stderr)
        # With one room for every provider the slow one's queue (4 x its
        # concurrency of a 32 minimum) held the SMS messages back until a
        # quarter of it drained: 8 slow requests and more.
        self.assertLessEqual(behind, 4, "the small campaign waited for the slow provider")
        self.assertEqual(c["sent"], 5)
        self.assertEqual(e.campaign("fs-big")["state"], "running")
        self.sent_once(e, fast, "fs-sms", small_ids)
        self.assertEqual(h.stop(), 0)

    def test_two_jobs_on_one_rate_limited_provider_share_it_by_priority(self):
        srv = FaultServer([{"status": 202}])
        self.addCleanup(srv.stop)
        e = self.env(log_level="info", drain_timeout="10s")
        conf = e.hook_config(srv.url, provider="rate = 40/s\nconcurrency = 4")
        hi = harness.people(300, "fh-")
        lo = harness.people(300, "fl-")
        e.import_people(hi + lo)
        h = e.start_herald(config=conf, sets=["daemon.max_jobs=2"])
        e.enqueue(job("fs-low", recipients=[p["id"] for p in lo], channels=["email"], priority="low"))
        e.enqueue(job("fs-high", recipients=[p["id"] for p in hi], channels=["email"], priority="high"))

        def counts():
            per = harness.requests_by_recipient(srv)
            return (sum(1 for k in per if k.startswith("fh-")), sum(1 for k in per if k.startswith("fl-")))
        harness.wait_for("both campaigns under way", lambda: min(counts()) >= 1, 30, 0.02)
        start = counts()
        harness.wait_for("most of the high one sent", lambda: counts()[0] >= 250, 60 * harness.SLOW, 0.05)
        end = counts()
        high, low = end[0] - start[0], end[1] - start[1]
        print("one rate-limited provider, high : low while both ran = %d : %d" % (high, low), file=sys.stderr)
        self.assertGreater(low, 0, "the low-priority campaign got nothing while both ran")
        ratio = high / low
        self.assertTrue(2.5 <= ratio <= 6.5, "high : low = %d : %d, not about 4 : 1" % (high, low))
        e.wait_campaign_done("fs-high", herald=h, timeout=60 * harness.SLOW)
        e.wait_campaign_done("fs-low", herald=h, timeout=60 * harness.SLOW)
        self.sent_once(e, srv, "fs-high", [p["id"] for p in hi])
        self.sent_once(e, srv, "fs-low", [p["id"] for p in lo])
        self.assertEqual(h.stop(), 0)


if __name__ == "__main__":
    harness.main()
