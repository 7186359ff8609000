"""Real error replies from a real redis-server in the middle of a campaign,
each lifted again after a while: maxmemory reached (OOM, noeviction); an ACL
rule denying a command the job needs; REPLICAOF making the server read-only
(READONLY); min-replicas-to-write with no replica (NOREPLICAS); CLIENT PAUSE and DEBUG SLEEP stalls; SCRIPT FLUSH (NOSCRIPT).

For each: nothing is acknowledged while the fault lasts; once Redis is
healthy every recipient has exactly one outcome, its once-only record and
its audit record agree (no audit record without its outcome, no outcome
without its audit record), the campaign's counts add up, and nobody got a
second request. Meanwhile /healthz says that herald waits on Redis and why,
or that the job is held."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import job  # noqa: E402

N = int(os.environ.get("HERALD_E2E_REDIS_ERRORS_N", "1200"))
RATE = 300   # requests per second at the provider: the campaign lasts about N / RATE s



class RedisErrors(harness.HeraldTestCase):

    def campaign_through(self, name, inject, lift, hold=2.5, expect_health=None, redis_args=()):
        """Runs a campaign of N, calls inject() once about a fifth is done,
        lifts the fault after `hold` seconds, and checks everything after."""
        srv = FaultServer([{"status": 202}])
        self.addCleanup(srv.stop)
        e = self.env(log_level="info", redis_args=redis_args)
        conf = e.hook_config(srv.url, provider="rate = %d/s\nconcurrency = 8" % RATE)
        ppl = harness.people(N, "re-")
        e.import_people(ppl)
        ids = [p["id"] for p in ppl]
        h = e.start_herald(config=conf)
        cid = "re-" + name
        entry = e.enqueue(job(cid, recipients=ids, channels=["email"]))
        harness.wait_for("a fifth of the campaign", lambda: srv.count() >= N // 5, 30, 0.02)
        inject(e)
        health = []
        t_end = time.monotonic() + hold
        while time.monotonic() < t_end:
            self.assertFalse(e.acked(entry), "the job was acknowledged while Redis refused commands")
            code, body = h.healthz()
            if body:
                health.append((code, body))
            time.sleep(0.2)
        lift(e)
        e.wait_campaign_done(cid, herald=h, timeout=90)
        harness.wait_for("the job acknowledged", lambda: e.acked(entry), 20)
        by = self.assertConsistent(e, cid, ids)
        self.assertEqual({r["outcome"] for r in by.values()}, {"sent"})
        per = harness.requests_by_recipient(srv)
        self.assertEqual({k: v for k, v in per.items() if v > 1}, {}, "recipients who got more than one request")
        self.assertEqual(len(per), N)
        if expect_health:
            self.assertTrue(any(expect_health(code, body) for code, body in health),
                            "/healthz never said why herald waited: %r" % health[-3:])
        code, body = h.healthz()
        self.assertEqual((code, body["status"], body["redis"]), (200, "ok", "connected"))
        self.assertEqual(h.stop(), 0)
        return e, h

    def test_maxmemory_reached_then_raised(self):
        def inject(e):
            e.r.config_set("maxmemory-policy", "noeviction")
            used = int(e.r.info("memory")["used_memory"])
            e.r.config_set("maxmemory", str(max(used - 1024 * 1024, 1024 * 1024)))

        def lift(e):
            e.r.config_set("maxmemory", "0")

        self.campaign_through("oom", inject, lift,
                              expect_health=lambda c, b: c == 503 and b.get("redis") == "waiting"
                              and b.get("redis_error") == "oom")

    def test_acl_denies_a_command_the_job_needs(self):
        # The suppression check (SMISMEMBER) is refused: the job is held (it
        # stays pending and is tried again), never "suppressed" for lack of an
        # answer.
        def inject(e):
            e.r.execute_command("ACL", "SETUSER", "default", "-smismember")

        def lift(e):
            e.r.execute_command("ACL", "SETUSER", "default", "+smismember")

        e, h = self.campaign_through("acl", inject, lift, hold=3,
                                     expect_health=lambda c, b: (b.get("held") or {}).get("error") == "noperm")
        self.assertIn("job held", h.log())

    def test_replicaof_makes_the_server_read_only(self):
        dead = harness.free_port()

        def inject(e):
            e.r.execute_command("REPLICAOF", "127.0.0.1", str(dead))

        def lift(e):
            e.r.execute_command("REPLICAOF", "NO", "ONE")

        self.campaign_through("readonly", inject, lift,
                              expect_health=lambda c, b: b.get("redis_error") == "readonly")

    def test_too_few_replicas_to_write(self):
        # min-replicas-to-write with no replica: every write is refused
        # (NOREPLICAS), as on a master whose replicas lag or left; herald
        # waits, holds nothing, and goes on once writes pass again.
        def inject(e):
            e.r.config_set("min-replicas-to-write", "1")

        def lift(e):
            e.r.config_set("min-replicas-to-write", "0")

        self.campaign_through("noreplicas", inject, lift,
                              expect_health=lambda c, b: b.get("redis_error") == "noreplicas")

    def test_client_pause_and_debug_sleep(self):
        def inject(e):
            e.r.execute_command("CLIENT", "PAUSE", "1500", "WRITE")
            threading.Timer(1.7, lambda: e.r.execute_command("DEBUG", "SLEEP", "1")).start()

        self.campaign_through("stall", inject, lambda e: None, hold=3,
                              redis_args=["--enable-debug-command", "yes"])

    def test_script_flush_mid_run(self):
        def inject(e):
            e.r.script_flush()

        self.campaign_through("noscript", inject, lambda e: e.r.script_flush(), hold=1)


if __name__ == "__main__":
    harness.main()
