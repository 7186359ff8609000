"""Scheduling: a job with not_before in the future is held in Redis (not in
memory, and without holding up the jobs behind it), survives a restart, and
goes out once due; a person whose tz is unknown gets the default zone's
quiet hours rather than none."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402


def rfc3339(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


class Schedule(harness.HeraldTestCase):

    def test_not_before_holds_the_job_in_redis(self):
        e = self.env()
        e.import_people([person("s-ava", email="ava.schedule@example.com", channels=["email"], consent=["email"],
                                first_name="Ava")])
        h = e.start_herald()
        due = time.time() + 6
        e.enqueue(job("later-1", recipients=["s-ava"], channels=["email"], not_before=rfc3339(due)))
        e.enqueue(job("now-1", recipients=["s-ava"], channels=["email"]))
        # the job behind it is not held up
        e.wait_campaign_done("now-1", herald=h, timeout=30)
        c = harness.wait_for("scheduled", lambda: (lambda c: c if c["state"] == "scheduled" else None)(
            e.campaign("later-1")), 30)
        self.assertEqual(c["sent"], 0)
        self.assertEqual(e.r.zcard("herald:scheduled"), 1, "held in Redis")
        self.assertEqual(e.pending(), 0)
        h.stop()                              # survives a restart
        h = e.start_herald()
        e.wait_campaign_done("later-1", herald=h, timeout=60)
        self.assertGreaterEqual(time.time(), due - 1)
        self.assertEqual([r["outcome"] for r in e.audit("later-1")], ["sent"])
        self.assertEqual(e.r.zcard("herald:scheduled"), 0)

    def test_unknown_tz_falls_back_to_default_tz(self):
        e = self.env()
        e.import_people([person("s-bo", phone="+15550100501", channels=["sms"], consent=["sms"], first_name="Bo")])
        # An encrypted person keeps the zone beside the profile (docs/architecture.md, "Redis keys").
        self.assertEqual(e.r.hget("herald:r:{s-bo}", "tz"), "UTC")
        e.r.hset("herald:r:{s-bo}", "tz", "Mars/Olympus_Mons")
        # A window that holds all day except one minute, in Asia/Kolkata (the default here).
        h = e.start_herald(sets=("daemon.default_tz=Asia/Kolkata", "quiet_hours.sms=%s" % self.window_now()))
        e.enqueue(job("tz-1", recipients=["s-bo"], channels=["sms"]))
        harness.wait_for("decision", lambda: e.audit("tz-1") or None, 30)
        rec = e.audit("tz-1")[0]
        self.assertEqual((rec["outcome"], rec["reason"]), ("deferred", "quiet_hours"))
        # the stream entry finishes with the person parked for later, not stuck
        harness.wait_for("tz-1 deferred", lambda: e.campaign("tz-1")["state"] == "deferred" or None, 30)
        self.assertEqual(e.r.zcard("herald:scheduled"), 1)

    @staticmethod
    def window_now():
        """A Kolkata-time window (UTC+05:30) that holds now and lasts 10 hours."""
        local = time.time() + 5.5 * 3600
        start = local - 3600
        end = local + 9 * 3600
        hm = lambda t: time.strftime("%H:%M", time.gmtime(t))  # noqa: E731
        return "%s-%s" % (hm(start), hm(end))


if __name__ == "__main__":
    harness.main()
