"""recipients_key naming a Redis SET, ZSET or LIST of ~1000 ids: every
recipient is read (in batches) and delivered exactly once."""

import hashlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402

N = 1000


class RecipientsKey(harness.HeraldTestCase):

    def test_set_zset_list(self):
        e = self.env(log_level="info")
        people = [person("rk-%04d" % i, email="rk%04d@example.com" % i, channels=["email"], consent=["email"],
                         first_name="P%d" % i) for i in range(N)]
        e.import_people(people)
        ids = [p["id"] for p in people]
        e.r.sadd("lists:set", *ids)
        e.r.zadd("lists:zset", {rid: i for i, rid in enumerate(ids)})
        e.r.rpush("lists:list", *ids)
        h = e.start_herald()

        for kind in ("set", "zset", "list"):
            e.enqueue(job("rk-" + kind, recipients_key="lists:" + kind, channels=["email"]))
        kinds = ("set", "zset", "list")

        def all_done():
            if not h.running():
                raise AssertionError("herald exited with %s" % h.proc.returncode)
            states = {k: e.campaign("rk-" + k) for k in kinds}
            return states if all(c["state"] == "done" for c in states.values()) else None
        try:
            campaigns = harness.wait_for("the three campaigns to be done", all_done, 60, 0.3)
        except AssertionError as err:
            self.fail("%s\nprogress: %r" % (err, {k: e.campaign("rk-" + k) for k in kinds}))
        for kind in kinds:
            cid = "rk-" + kind
            with self.subTest(key=kind):
                c = campaigns[kind]
                recs = e.audit(cid)
                self.assertEqual(len(recs), N, "one audit record per id")
                by = self.assertOneTerminalEach(recs, ids)
                self.assertEqual({r["outcome"] for r in by.values()}, {"sent"})
                files = e.outbox_files(cid)
                self.assertEqual(sorted(files), sorted("%s.email.json" % rid for rid in ids))
                self.assertEqual((c["total"], c["sent"], c["suppressed"], c["failed"]), (N, N, {}, {}))
        self.assertEqual(e.pending(), 0)
        # the lists are read, never consumed
        self.assertEqual((e.r.scard("lists:set"), e.r.zcard("lists:zset"), e.r.llen("lists:list")), (N, N, N))
        self.assertEqual(h.stop(), 0)

    def test_entries_that_are_no_id_are_never_echoed(self):
        # A list built by another system may hold addresses or numbers where
        # ids belong. Such an entry is no id (ids refuse @ and +): it ends
        # suppressed/unknown_recipient under a stand-in, and the text itself
        # reaches no log line and no audit record.
        e = self.env(log_level="debug")
        e.import_people([person("rk-ok", email="rk.ok@example.com", channels=["email"], consent=["email"])])
        raw = ["ann.list@example.com", "+15557654321", "bad id with spaces"]
        e.secrets.update(raw)
        e.r.sadd("lists:mixed", "rk-ok", *raw)
        h = e.start_herald()
        e.enqueue(job("rk-mixed", recipients_key="lists:mixed", channels=["email"]))
        e.wait_campaign_done("rk-mixed", herald=h)
        recs = e.audit("rk-mixed")
        standins = {"invalid-id:" + hashlib.sha256(x.encode()).hexdigest()[:16] for x in raw}
        self.assertEqual({r["recipient"] for r in recs}, standins | {"rk-ok"})
        for r in recs:
            want = ("sent", "") if r["recipient"] == "rk-ok" else ("suppressed", "unknown_recipient")
            self.assertEqual((r["outcome"], r["reason"]), want, r)
        flat = repr(e.r.xrange("herald:audit"))
        for x in raw:
            self.assertNotIn(x, flat)
        # the stand-ins create no keys: nothing of theirs is stored
        self.assertEqual([k for k in e.r.keys("*invalid-id*")], [])
        self.assertEqual(h.stop(), 0)

    def test_missing_key_does_not_hang(self):
        # Not fixed by the contract: an empty campaign (done, total 0) or a dead
        # letter are both fine; a job left pending forever is not.
        e = self.env()
        h = e.start_herald()
        entry = e.enqueue(job("rk-missing", recipients_key="lists:nothing-here", channels=["email"]))
        harness.wait_for("the job to be acked", lambda: e.acked(entry), 20)
        c = e.campaign("rk-missing")
        if not e.dead():
            self.assertEqual((c["state"], c["total"], c["sent"]), ("done", 0, 0))
        self.assertEqual(e.audit("rk-missing"), [])
        self.assertTrue(h.running())
        self.assertEqual(h.stop(), 0)


if __name__ == "__main__":
    harness.main()
