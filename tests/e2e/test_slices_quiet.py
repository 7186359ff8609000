"""Quiet hours and not_before across slices ([daemon] slice): a
recipients_key campaign for later is cut once it is due; each slice defers
its SMS people to the end of their quiet hours and sends the email people
at once; two daemons. Each person: one message, deferred at most once."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job  # noqa: E402
from test_slices import SliceChecks  # noqa: E402


class SlicesQuiet(SliceChecks, harness.HeraldTestCase):

    def test_quiet_hours_and_not_before_across_slices(self):
        # A recipients_key campaign for later (not_before) is cut once it is
        # due; its SMS people are in quiet hours: each slice defers them, and
        # they are sent once the window ends; the email people at once. Two
        # daemons; each person one message, deferred at most once.
        e = self.env(log_level="info")
        mail = [harness.person("sq-m%03d" % i, email="sq.m%03d@example.com" % i, channels=["email"],
                               consent=["email"]) for i in range(200)]
        texts = [harness.person("sq-s%03d" % i, phone="+1555030%04d" % i, channels=["sms"], consent=["sms"])
                 for i in range(100)]
        e.import_people(mail + texts)
        ids = [p["id"] for p in mail + texts]
        e.r.sadd("lists:sq", *ids)
        window, end = harness.window_ending_soon()
        sets = ("daemon.slice=50", "quiet_hours.sms=%s" % window)
        one = e.start_herald(sets=sets + ("daemon.consumer=one",))
        two = e.start_herald(sets=sets + ("daemon.consumer=two",) + e.other_listeners())
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3))
        e.enqueue(job("sq", recipients_key="lists:sq", channels=["email", "sms"], not_before=later))
        harness.wait_for("the email people sent, the SMS people deferred",
                         lambda: len(e.audit("sq")) >= len(ids), 60 * harness.SLOW, 0.2)
        first = {}
        for r in e.audit("sq"):
            first.setdefault(r["recipient"], r)
        self.assertEqual({first[p["id"]]["outcome"] for p in mail}, {"sent"})
        self.assertEqual({(first[p["id"]]["outcome"], first[p["id"]]["reason"]) for p in texts},
                         {("deferred", "quiet_hours")})
        self.assertLess(time.time(), end, "the window ended too early for this test")
        sliced = [l for l in one.log_lines() + two.log_lines() if "job sliced campaign=sq " in l]
        self.assertEqual(len(sliced), 1, "the job is cut once, when due")
        self.assertIn("slices=6 recipients=300", sliced[0])
        c = e.wait_campaign_done("sq", herald=one, timeout=150)
        self.assertGreaterEqual(time.time(), end - 1, "sent before the window ended")
        self.assertEqual((c["total"], c["sent"], c["deferred"], c["pending"]), (300, 300, 0, 0))
        outcomes = {}
        for r in e.audit("sq"):
            outcomes.setdefault(r["recipient"], []).append(r["outcome"])
        for p in mail:
            self.assertEqual(outcomes[p["id"]], ["sent"], p["id"])
        for p in texts:
            self.assertEqual(outcomes[p["id"]], ["deferred", "sent"], p["id"])
        self.assertEqual(len(e.outbox_files("sq")), 300, "one message per person")
        harness.wait_for("the slices' lists dropped", lambda: not list(e.r.scan_iter("herald:cut:*")), 10, 0.1)
        self.assertEqual(one.stop(), 0)
        self.assertEqual(two.stop(), 0)


if __name__ == "__main__":
    harness.main()
