"""Quiet hours: a message that falls in the window is deferred (an audit
record says so), kept in Redis across a daemon restart, and sent once the
window ends; never moved to another channel. The crowd of 6000 deferred
people crosses the size at which herald parks a group early (5000)."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402


class QuietHours(harness.HeraldTestCase):

    def test_deferred_survives_restart_and_is_sent_after_the_window(self):
        e = self.env()
        e.import_people([
            person("q-sia", email="sia.quiet@example.com", phone="+15550100401", channels=["sms", "email"],
                   consent=["sms", "email"], first_name="Sia"),
            person("q-eli", email="eli.quiet@example.com", channels=["email"], consent=["email"], first_name="Eli"),
        ])
        crowd = [person("q-%05d" % i, phone="+1555020%04d" % i, channels=["sms"], consent=["sms"])
                 for i in range(6000)]
        e.import_people(crowd, name="crowd.jsonl")
        window, end = harness.window_ending_soon()
        sets = ("quiet_hours.sms=%s" % window,)
        h = e.start_herald(sets=sets)
        ids = ["q-sia", "q-eli"] + [p["id"] for p in crowd]
        e.enqueue(job("quiet-1", recipients=ids))
        harness.wait_for("decisions", lambda: len(e.audit("quiet-1")) == len(ids) or None, 60)
        first = {r["recipient"]: r for r in e.audit("quiet-1")}
        self.assertEqual(sum(1 for r in first.values() if r["outcome"] == "deferred"), 6001)
        self.assertEqual((first["q-sia"]["outcome"], first["q-sia"]["reason"], first["q-sia"]["channel"]),
                         ("deferred", "quiet_hours", "sms"), "deferred on sms, not moved to email")
        self.assertEqual(first["q-eli"]["outcome"], "sent", "email has no quiet hours here")
        c = harness.wait_for("state deferred", lambda: (lambda c: c if c["state"] == "deferred" else None)(
            e.campaign("quiet-1")), 30)
        self.assertEqual((c["deferred"], c["sent"], c["pending"]), (6001, 1, 0))
        self.assertEqual(e.r.zcard("herald:scheduled"), 2, "two parked groups: 5000 early, 1001 at the end")
        self.assertEqual(list(e.outbox_files("quiet-1")), ["q-eli.email.json"])
        self.assertEqual(e.pending(), 0, "the stream entry is acked: the deferral lives in Redis")

        # The deferral is in Redis, not in the daemon: restart it before the window ends.
        self.assertLess(time.time(), end - 3, "the window ended too early for this test")
        h.stop()
        h = e.start_herald(sets=sets)
        c = e.wait_campaign_done("quiet-1", herald=h, timeout=150)
        self.assertGreaterEqual(time.time(), end - 1, "not sent before the window ended")
        recs = [r for r in e.audit("quiet-1") if r["recipient"] == "q-sia"]
        self.assertEqual([(r["outcome"], r["channel"]) for r in recs], [("deferred", "sms"), ("sent", "sms")])
        files = e.outbox_files("quiet-1")
        self.assertIn("q-sia.sms.json", files)
        self.assertEqual(len(files), len(ids), "everyone exactly once")
        sent = [r["recipient"] for r in e.audit("quiet-1") if r["outcome"] == "sent"]
        self.assertEqual(sorted(sent), sorted(ids), "one sent record each, nobody lost, nobody twice")
        self.assertEqual((c["sent"], c["deferred"], c["pending"], c["total"]), (len(ids), 0, 0, len(ids)))


if __name__ == "__main__":
    harness.main()
