"""An upgrade from key layout 1: nothing sent twice.

Layout 1 kept each person's once-only records in a hash of their own
(herald:r:{ID}:campaigns); layout 2 keeps them in the person hash (field
c:<campaign>), so that deciding, reserving and closing a message each touch
one key. A daemon of layout 2 that read jobs against layout 1 data would not
see the records and send a campaign a second time to everyone it reached. So
it reads no job until `heraldctl migrate` ran, says so on /healthz and once in
its log; migrate refuses while a daemon runs; after it, once-only holds."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import job  # noqa: E402


class Migrate(harness.HeraldTestCase):

    def test_layout_1_is_migrated_before_any_job_runs(self):
        srv = FaultServer([{"status": 202}])
        self.addCleanup(srv.stop)
        e = self.env(log_level="info")
        conf = e.hook_config(srv.url)
        ppl = harness.people(6, "mg-")
        e.import_people(ppl)
        ids = [p["id"] for p in ppl]
        # What layout 1 left: the marker, an audit stream, and the records of
        # a campaign that reached the first three people.
        e.r.set("herald:marker", "1700000000")
        e.r.xadd("herald:audit", {"campaign": "mg-old", "recipient": ids[0], "outcome": "sent"})
        for rid in ids[:3]:
            e.r.hset("herald:r:{%s}:campaigns" % rid, "mg-c", "sent 1-1 old.1 1700000000")
            e.r.hset("herald:r:{%s}:campaigns" % rid, "mg-other", "suppressed 1-2 old.1 1700000001")

        h = e.start_herald(config=conf, wait_healthy=False)

        def layout_said():
            code, body = h.healthz()
            return body if code == 503 and body and body.get("redis_layout") else None
        body = harness.wait_for("/healthz to name the layout", layout_said, 20)
        self.assertEqual(body["redis_layout"], {"found": "1", "expected": "3", "fix": "heraldctl migrate"})
        entry = e.enqueue(job("mg-c", recipients=ids, channels=["email"]))
        harness.wait_for("the layout error in the log", lambda: "key layout 1" in h.log(), 10)
        self.assertEqual(h.log().count("heraldctl migrate"), 1, "said once")
        self.assertEqual(srv.count(), 0, "a job ran against layout 1 data")
        self.assertNotIn("job started", h.log())

        # Refused while a daemon runs: it holds its consumer lock.
        res = e.ctl("migrate", config=conf)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn("stop every daemon", res.stderr)
        self.assertTrue(e.r.exists("herald:r:{%s}:campaigns" % ids[0]), "migrate changed data while refused")
        self.assertEqual(h.stop(), 0)

        res = e.ctl_ok("migrate", config=conf)
        self.assertIn("6 once-only records of 3 people moved", res.stdout)
        self.assertEqual(e.r.get("herald:layout"), "3")
        for rid in ids[:3]:
            self.assertFalse(e.r.exists("herald:r:{%s}:campaigns" % rid))
            self.assertEqual(e.r.hget("herald:r:{%s}" % rid, "c:mg-c"), "sent 1-1 old.1 1700000000")
            self.assertTrue(e.r.hexists("herald:r:{%s}" % rid, "profile"), "the profile went with the move")
        self.assertIn("already", e.ctl_ok("migrate", config=conf).stdout)

        # The job now runs: the three reached under layout 1 are duplicates.
        h = e.start_herald(config=conf)
        e.wait_campaign_done("mg-c", herald=h, timeout=60)
        harness.wait_for("the job acknowledged", lambda: e.acked(entry), 20)
        by = self.assertOneTerminalEach(e.audit("mg-c"), ids)
        self.assertEqual({rid: by[rid]["outcome"] for rid in ids[:3]}, {rid: "suppressed" for rid in ids[:3]})
        self.assertEqual({by[rid]["reason"] for rid in ids[:3]}, {"duplicate"})
        self.assertEqual(sorted(harness.requests_by_recipient(srv)), sorted(ids[3:]))
        code, body = h.healthz()
        self.assertEqual(code, 200, body)
        self.assertEqual(h.stop(), 0)

    def test_a_new_redis_gets_the_layout(self):
        e = self.env(log_level="info")
        h = e.start_herald()
        self.assertEqual(e.r.get("herald:layout"), "3")
        self.assertIn("already", e.ctl_ok("migrate").stdout)
        self.assertEqual(h.stop(), 0)


if __name__ == "__main__":
    harness.main()
