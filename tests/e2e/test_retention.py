"""A campaign's per-person state lives only as long as it must.

Once a campaign finished, its once-only records (the field c:<campaign> of
each person it reached) go at its expires_at plus [retention] grace, or
[retention] campaign_records after its run; a daemon sweeps every
sweep_every. Its id then cannot run again (it could send twice): the job is
dead-lettered with a clear error and nothing is sent. Each person's history
keeps the last [retention] history decisions."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import job  # noqa: E402

SETS = ["retention.grace=0s", "retention.sweep_every=1s", "retention.history=3"]


class Retention(harness.HeraldTestCase):

    def test_records_go_after_retention_and_the_id_cannot_run_again(self):
        srv = FaultServer([{"status": 202}])
        self.addCleanup(srv.stop)
        e = self.env(log_level="info")
        conf = e.hook_config(srv.url)
        ppl = harness.people(6, "rt-")
        e.import_people(ppl)
        ids = [p["id"] for p in ppl]
        h = e.start_herald(config=conf, sets=SETS)

        expires = int(time.time()) + 6
        e.enqueue(job("rt-short", recipients=ids, channels=["email"],
                      expires_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires))))
        e.enqueue(job("rt-long", recipients=ids, channels=["email"]))
        e.wait_campaign_done("rt-short", herald=h, timeout=30)
        e.wait_campaign_done("rt-long", herald=h, timeout=30)
        self.assertEqual(srv.count(), 12)
        for rid in ids:
            self.assertTrue(e.r.hget("herald:r:{%s}" % rid, "c:rt-short").startswith("sent "))
        self.assertEqual(int(e.r.zscore("herald:retention", "rt-short")), expires)

        def swept():
            return all(not e.r.hexists("herald:r:{%s}" % rid, "c:rt-short") for rid in ids)
        harness.wait_for("rt-short's records removed after its expires_at", swept, 30, 0.2)
        self.assertGreaterEqual(time.time(), expires, "removed before the campaign expired")
        harness.wait_for("rt-short marked expired",
                         lambda: (e.r.hget("herald:campaign:rt-short", "records") or "").startswith("expired "), 10)
        self.assertIsNone(e.r.zscore("herald:retention", "rt-short"))
        # A campaign without expires_at keeps its records ([retention] campaign_records, 90d).
        for rid in ids:
            self.assertTrue(e.r.hget("herald:r:{%s}" % rid, "c:rt-long").startswith("sent "))
            self.assertTrue(e.r.hexists("herald:r:{%s}" % rid, "profile"), "the sweep removed more than records")
        self.assertIn("once-only records removed campaigns=1", h.log())
        self.assertFalse(e.r.exists("herald:retention:lock"), "the sweep lock outlived the sweep")
        stats = json.loads(e.ctl_ok("stats", config=conf).stdout)
        self.assertEqual((stats["people"], stats["sample"], stats["campaigns_awaiting_retention"]), (6, 6, 1))
        self.assertEqual(stats["once_only_records"]["per_person"], 1.0)  # rt-long's, rt-short's gone
        self.assertGreater(stats["bytes_per_person"], 0)
        # A refused read gives no figure at all, never one built on a refusal.
        e.r.execute_command("ACL", "SETUSER", "default", "-memory")
        try:
            res = e.ctl("stats", config=conf)
        finally:
            e.r.execute_command("ACL", "SETUSER", "default", "+memory")
        self.assertEqual((res.returncode, res.stdout), (2, ""), res.stderr)
        self.assertIn("memory usage read", res.stderr)

        # The id cannot run again, "rerun" or not: refused with a clear
        # error at enqueue, dead-lettered when XADDed, nothing sent.
        sent = srv.count()
        rerun = job("rt-short", recipients=ids, channels=["email"], rerun=True)
        res = e.ctl("enqueue", e.write("rerun.json", json.dumps(rerun)), config=conf)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn("once-only records expired", res.stderr)
        entry = e.xadd_job(json.dumps(rerun))
        harness.wait_for("the rerun dead-lettered", lambda: e.acked(entry) and e.dead(), 20)
        dead = e.dead()
        self.assertEqual(len(dead), 1)
        self.assertIn("once-only records expired", dead[0]["error"])
        self.assertEqual(srv.count(), sent)

        # The history keeps the last 3 decisions.
        for k in range(3):
            e.enqueue(job("rt-h%d" % k, recipients=ids[:1], channels=["email"]))
            e.wait_campaign_done("rt-h%d" % k, herald=h, timeout=30)
        # They are a ring of fields in the person hash (h<slot>, the next
        # slot hn): newest at slot hn - 1, no list key, nothing past slot 2.
        ph = {f.decode(): v for f, v in e.rb.hgetall("herald:r:{%s}" % ids[0]).items()}   # sealed: bytes
        hn = int(ph["hn"])
        self.assertEqual(sorted(f for f in ph if f.startswith("h") and f != "hn"), ["h0", "h1", "h2"])
        self.assertEqual([ph["h%d" % ((hn - j) % 3)].decode().split("|")[2] for j in (1, 2, 3)], ["rt-h2", "rt-h1", "rt-h0"])
        self.assertFalse(e.r.exists("herald:r:{%s}:history" % ids[0]))
        self.assertEqual(e.r.object("encoding", "herald:r:{%s}" % ids[0]), "listpack")
        code, body = h.healthz()
        self.assertEqual(code, 200, body)
        self.assertEqual(h.stop(), 0)


if __name__ == "__main__":
    harness.main()
