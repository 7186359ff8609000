"""Redis goes away while herald runs: herald says so once (not once per
retry), does not spin, reports 503 on /healthz, reconnects by itself when
Redis is back, and delivers a job enqueued afterwards."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402

PEOPLE = [
    person("rr-1", email="rita.restart@example.com", channels=["email"], consent=["email"], first_name="Rita"),
    person("rr-2", phone="+15550100301", channels=["sms"], consent=["sms"], first_name="Ray"),
    person("rr-3", email="rob.restart@example.com", phone="+15550100302", channels=["email", "sms"],
           consent=["email", "sms"], first_name="Rob"),
]
IDS = [p["id"] for p in PEOPLE]
OUTAGE = 3.0          # seconds Redis stays down (the scenario, not an assertion)
MAX_CPU = 0.5         # CPU seconds herald may use during the outage (spinning would be ~OUTAGE)


class RedisRestart(harness.HeraldTestCase):

    def outage(self, e, h, keep_data):
        """Stop Redis for OUTAGE seconds; return (log lines written meanwhile, CPU seconds used)."""
        if keep_data:
            e.r.save()                       # dump.rdb in the data dir, loaded by the restart
        before = len(h.log_lines())
        e.redis.stop(kill=True)              # abrupt: connections reset, no goodbye
        t0 = time.monotonic()
        cpu0 = h.cpu_ticks()
        harness.wait_for("/healthz to report the outage with 503",
                         lambda: h.healthz()[0] == 503, 10)
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - t0)))
        cpu = (h.cpu_ticks() - cpu0) / harness.CLK_TCK
        lines = h.log_lines()[before:]
        self.assertTrue(h.running(), "herald must survive Redis going away")
        if not keep_data:
            for name in os.listdir(e.redis.datadir):
                if name.endswith(".rdb"):
                    os.unlink(os.path.join(e.redis.datadir, name))
        e.redis.start()                      # same port
        return lines, cpu

    def check_outage(self, lines, cpu):
        self.assertGreaterEqual(len(lines), 1, "herald should log that Redis is gone")
        self.assertLessEqual(len(lines), 2, "the loss is logged once, not per retry:\n" + "\n".join(lines))
        self.assertLess(cpu, MAX_CPU * harness.SLOW, "herald used %.2fs CPU in a %.0fs outage" % (cpu, OUTAGE))

    def test_restart_with_data(self):
        e = self.env(log_level="info")
        e.import_people(PEOPLE)
        h = e.start_herald()
        e.enqueue(job("rr-before", recipients=IDS))
        self.assertEqual(e.wait_campaign_done("rr-before", herald=h)["sent"], 3)

        lines, cpu = self.outage(e, h, keep_data=True)
        self.check_outage(lines, cpu)
        h.wait_healthy(timeout=20)
        e.enqueue(job("rr-after", recipients=IDS))
        c = e.wait_campaign_done("rr-after", herald=h)
        self.assertEqual(c["sent"], 3)
        self.assertEqual(sorted(e.outbox_files("rr-after")), ["rr-1.email.json", "rr-2.sms.json", "rr-3.email.json"])
        self.assertEqual(e.pending(), 0)
        self.assertEqual(h.stop(), 0)

    def test_restart_empty(self):
        # Redis comes back without its data (no persistence): stream and group are gone
        e = self.env(log_level="info")
        e.import_people(PEOPLE)
        h = e.start_herald()
        lines, cpu = self.outage(e, h, keep_data=False)
        self.check_outage(lines, cpu)
        h.wait_healthy(timeout=20)
        e.import_people(PEOPLE, name="people-again.jsonl")
        e.enqueue(job("rr-empty", recipients=IDS))
        c = e.wait_campaign_done("rr-empty", herald=h)
        self.assertEqual(c["sent"], 3)
        self.assertEqual(e.pending(), 0)
        self.assertEqual(h.stop(), 0)

    def test_start_before_redis(self):
        e = self.env(log_level="info")
        e.redis.stop()
        h = e.start_herald(wait_healthy=False)
        harness.wait_for("/healthz to answer 503 while Redis is down", lambda: h.healthz()[0] == 503, 20)
        cpu0 = h.cpu_ticks()
        time.sleep(OUTAGE)
        cpu = (h.cpu_ticks() - cpu0) / harness.CLK_TCK
        self.assertLess(cpu, MAX_CPU * harness.SLOW, "herald spins while Redis is down")
        self.assertTrue(h.running())
        e.redis.start()
        h.wait_healthy(timeout=20)
        e.import_people(PEOPLE)
        e.enqueue(job("rr-late", recipients=IDS))
        self.assertEqual(e.wait_campaign_done("rr-late", herald=h)["sent"], 3)
        self.assertEqual(h.stop(), 0)


if __name__ == "__main__":
    harness.main()
