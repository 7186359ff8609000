"""One live daemon per consumer name.

The stream group knows a consumer only by its name, and the default name is
the host name: an operator who starts a second daemon on the same host
without giving it its own `[daemon] consumer` used to get two daemons that
both took the same pending job for their own and sent it twice. Now the
second one waits, says why on /healthz and once in its log, and reads no
job; the campaign is sent exactly once per recipient. When the first stops,
the second takes the name over (its holder is gone from this host) and
finishes what was left."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import job  # noqa: E402


class ConsumerName(harness.HeraldTestCase):

    def test_second_daemon_under_the_same_name_waits(self):
        srv = FaultServer([{"status": 202}])
        self.addCleanup(srv.stop)
        e = self.env(log_level="info", drain_timeout="10s")
        conf = e.hook_config(srv.url, provider="rate = 20/s\nconcurrency = 4")
        ppl = harness.people(80, "cn-")
        e.import_people(ppl)
        ids = [p["id"] for p in ppl]
        first = e.start_herald(config=conf)
        second = e.start_herald(config=conf, sets=e.other_listeners(), wait_healthy=False)

        def in_use():
            code, body = second.healthz()
            return body if code == 503 and body and body.get("consumer_in_use") else None
        body = harness.wait_for("the second daemon to say its name is in use", in_use, 20)
        self.assertIn(str(first.proc.pid), body["consumer_in_use"])
        entry = e.enqueue(job("cn-once", recipients=ids, channels=["email"]))
        harness.wait_for("some requests", lambda: srv.count() >= 20, 30, 0.05)
        self.assertNotIn("job started", second.log(), "the second daemon ran the job too")
        self.assertEqual(second.log().count("is held by another daemon"), 1, "said once, not once per retry")
        # The first stops mid-campaign: the second takes the name and finishes.
        self.assertEqual(first.stop(), 0)
        self.assertLess(srv.count(), 80, "the campaign finished before the stop")
        e.wait_campaign_done("cn-once", herald=second, timeout=60)
        harness.wait_for("the job acknowledged", lambda: e.acked(entry), 20)
        self.assertIn("job started", second.log())
        by = self.assertConsistent(e, "cn-once", ids)
        self.assertEqual({r["outcome"] for r in by.values()}, {"sent"})
        per = harness.requests_by_recipient(srv)
        self.assertEqual({k: v for k, v in per.items() if v != 1}, {}, "recipients sent twice")
        self.assertEqual(sorted(per), sorted(ids))
        code, body = second.healthz()
        self.assertEqual(code, 200, body)
        self.assertEqual(second.stop(), 0)


if __name__ == "__main__":
    harness.main()
