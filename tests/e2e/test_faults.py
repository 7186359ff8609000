"""Provider faults seen from outside, through the webhook plugin and the curl
engine against a scripted loopback endpoint (faultserver.py): a 5xx is
retried and the message sent once; a 429's Retry-After is honoured; a hanging
endpoint times out, is retried, then fails over to the backup provider; a
refused connection fails over; a 400 is failed/provider_rejected and gives
the cap budget back; the signature verifies; a kept-alive connection the
server closes is replaced without a busy loop; concurrency and rate hold; the
circuit breaker opens, probes and closes; a request hanging at the drain
timeout ends `unknown` and is never resent."""

import hashlib
import hmac
import json
import os
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import job, person  # noqa: E402

SECRET = harness.HOOK_SECRET


def config_with(e, url, providers="hook, outbox", extra="", tail=""):
    return e.hook_config(url, name="faults.conf", provider=extra, providers=providers, tail=tail)


def people(n, prefix="p-f"):
    return [person("%s%d" % (prefix, i), email="%s%d.faults@example.com" % (prefix, i), channels=["email"],
                   consent=["email"], first_name="F%d" % i) for i in range(n)]


def unused_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Faults(harness.HeraldTestCase):

    def server(self, script):
        srv = FaultServer(script)
        self.addCleanup(srv.stop)
        return srv

    def run_campaign(self, e, conf, cid, ids, timeout=60):
        h = e.start_herald(config=conf)
        e.enqueue(job(cid, recipients=ids, channels=["email"]))
        e.wait_campaign_done(cid, herald=h, timeout=timeout)
        return self.assertOneTerminalEach(e.audit(cid), ids), h

    def test_keepalive_connection_closed_by_the_server_is_replaced(self):
        # The endpoint drops each kept-alive connection after 0.2 s idle.
        # herald stops watching the dead socket (no busy loop while idle)
        # and the next campaign goes out on a new connection.
        srv = self.server([{"status": 202, "close_idle_after": 0.2}])
        e = self.env()
        conf = config_with(e, srv.url, providers="hook")
        ppl = people(6, "p-idle")
        e.import_people(ppl)
        ids = [p["id"] for p in ppl]
        h = e.start_herald(config=conf)
        e.enqueue(job("f-idle-1", recipients=ids[:3], channels=["email"]))
        e.wait_campaign_done("f-idle-1", herald=h)
        time.sleep(0.6)  # every connection is closed by now
        t0 = h.cpu_ticks()
        time.sleep(1.0)
        self.assertLess(h.cpu_ticks() - t0, 30, "herald spins on a closed keep-alive connection")
        e.enqueue(job("f-idle-2", recipients=ids[3:], channels=["email"]))
        e.wait_campaign_done("f-idle-2", herald=h)
        for cid, part in (("f-idle-1", ids[:3]), ("f-idle-2", ids[3:])):
            by = self.assertOneTerminalEach(e.audit(cid), part)
            self.assertEqual({r["outcome"] for r in by.values()}, {"sent"}, cid)
        self.assertEqual(srv.count(), 6)
        self.assertEqual(h.stop(), 0)

    def test_500_then_202_is_retried_and_sent_once(self):
        e = self.env()
        e.import_people(people(1))
        srv = self.server([{"status": 500}, {"status": 202, "body": {"id": "wh-42"}}])
        recs, _ = self.run_campaign(e, config_with(e, srv.url), "f-500", ["p-f0"])
        self.assertEqual(srv.count(), 2)
        r = recs["p-f0"]
        self.assertEqual((r["outcome"], r["provider"], r["provider_id"]), ("sent", "hook", "wh-42"))
        self.assertEqual(e.outbox_files("f-500"), {}, "the backup never saw it")

    def test_signature_verifies_with_the_secret(self):
        e = self.env()
        e.import_people(people(1))
        srv = self.server([{"status": 200, "headers": {"X-Request-Id": "req-7"}}])
        recs, _ = self.run_campaign(e, config_with(e, srv.url), "f-sig", ["p-f0"])
        self.assertEqual(recs["p-f0"]["provider_id"], "req-7")
        req = srv.requests[0]
        want = "sha256=" + hmac.new(SECRET.encode(), req["body"], hashlib.sha256).hexdigest()
        self.assertEqual(req["headers"]["x-herald-signature"], want)
        self.assertEqual(req["headers"]["content-type"], "application/json")
        self.assertNotIn("expect", req["headers"], "no 100-continue round trip")
        self.assertEqual(req["headers"]["user-agent"], "herald-webhook/1")
        msg = json.loads(req["body"])
        self.assertEqual((msg["campaign"], msg["recipient"], msg["channel"], msg["to"]),
                         ("f-sig", "p-f0", "email", "p-f0.faults@example.com"))
        self.assertIn("F0", msg["subject"])

    def test_429_retry_after_is_honoured(self):
        e = self.env()
        e.import_people(people(1))
        srv = self.server([{"status": 429, "headers": {"Retry-After": "1"}}, {"status": 202}])
        recs, _ = self.run_campaign(e, config_with(e, srv.url), "f-429", ["p-f0"])
        self.assertEqual(recs["p-f0"]["outcome"], "sent")
        self.assertEqual(srv.count(), 2)
        gap = srv.requests[1]["at"] - srv.requests[0]["at"]
        print("429 Retry-After: 1 -> retry after %.3f s" % gap)
        self.assertGreaterEqual(gap, 1.0)

    def test_hanging_endpoint_times_out_retries_then_fails_over(self):
        e = self.env()
        e.import_people(people(1))
        srv = self.server([{"hang": True}])
        conf = config_with(e, srv.url, extra="timeout = 1s\nretries = 1\n")
        t0 = time.monotonic()
        recs, _ = self.run_campaign(e, conf, "f-hang", ["p-f0"])
        print("hang: timeout, retry, failover in %.3f s" % (time.monotonic() - t0))
        self.assertEqual(srv.count(), 2, "one attempt and one retry")
        self.assertEqual((recs["p-f0"]["outcome"], recs["p-f0"]["provider"]), ("sent", "outbox"))
        self.assertEqual(list(e.outbox_files("f-hang")), ["p-f0.email.json"])

    def test_connection_refused_fails_over(self):
        e = self.env()
        e.import_people(people(1))
        conf = config_with(e, "http://127.0.0.1:%d/hook" % unused_port(), extra="retries = 1\n")
        recs, _ = self.run_campaign(e, conf, "f-down", ["p-f0"])
        self.assertEqual((recs["p-f0"]["outcome"], recs["p-f0"]["provider"]), ("sent", "outbox"))

    def test_400_is_rejected_and_gives_the_cap_back(self):
        e = self.env()
        e.import_people(people(1))
        srv = self.server([{"status": 400}, {"status": 202, "body": {"id": "wh-2"}}])
        cap = "\n[cap daily]\nchannel = any\nlimit = 1\nwindow = 24h\n"
        conf = config_with(e, srv.url, tail=cap)
        recs, h = self.run_campaign(e, conf, "f-400", ["p-f0"])
        self.assertEqual((recs["p-f0"]["outcome"], recs["p-f0"]["reason"]), ("failed", "provider_rejected"))
        self.assertEqual(srv.count(), 1, "a rejection is neither retried nor failed over")
        self.assertEqual(e.outbox_files("f-400"), {})
        e.enqueue(job("f-400-later", recipients=["p-f0"], channels=["email"]))
        e.wait_campaign_done("f-400-later", herald=h, timeout=60)
        later = self.assertOneTerminalEach(e.audit("f-400-later"), ["p-f0"])
        self.assertEqual((later["p-f0"]["outcome"], later["p-f0"]["provider_id"]), ("sent", "wh-2"))

    def test_concurrency_is_never_exceeded(self):
        e = self.env()
        ids = ["p-f%d" % i for i in range(10)]
        e.import_people(people(10))
        srv = self.server([{"status": 202, "delay": 0.3}])
        conf = config_with(e, srv.url, providers="hook", extra="concurrency = 2\n")
        recs, _ = self.run_campaign(e, conf, "f-conc", ids)
        self.assertTrue(all(r["outcome"] == "sent" for r in recs.values()), recs)
        print("concurrency = 2: server saw at most %d at once over %d requests" %
              (srv.max_concurrent, srv.count()))
        self.assertEqual(srv.count(), 10)
        self.assertLessEqual(srv.max_concurrent, 2)

    def test_circuit_opens_probes_and_closes(self):
        """circuit_failures failures in a row open the circuit: nothing goes to
        the provider for circuit_cooldown, its messages go to the backup; then
        one probe goes through, its success closes the circuit, and the
        provider takes messages again."""
        e = self.env()
        e.import_people(people(14, prefix="p-cb"))
        ids = ["p-cb%d" % i for i in range(14)]
        srv = self.server([{"status": 500}] * 4 + [{"status": 202, "body": {"id": "wh-ok"}}])
        conf = config_with(e, srv.url, extra="retries = 0\nconcurrency = 1\ncircuit_failures = 4\n"
                                              "circuit_cooldown = 1s\n")
        h = e.start_herald(config=conf)

        def run(cid, batch):
            e.enqueue(job(cid, recipients=batch, channels=["email"]))
            e.wait_campaign_done(cid, herald=h)
            recs = self.assertOneTerminalEach(e.audit(cid), batch)
            for r in recs.values():
                self.assertEqual(r["outcome"], "sent", r)
            return sorted(r["provider"] for r in recs.values())

        # Four 500s open the circuit; the other four never reach the provider.
        self.assertEqual(run("cb-1", ids[:8]), ["outbox"] * 8)
        self.assertEqual(srv.count(), 4)
        time.sleep(1.3)   # the cool-down ends
        # One probe goes through and closes the circuit (the rest of that
        # campaign was routed while the probe was out) ...
        self.assertIn("hook", run("cb-2", ids[8:11]))
        probes = srv.count() - 4
        self.assertEqual(probes, 1)
        # ... and the provider takes every message again.
        self.assertEqual(run("cb-3", ids[11:]), ["hook"] * 3)
        self.assertEqual(srv.count(), 8)
        log = h.log()
        self.assertEqual(log.count("circuit open provider=hook"), 1, log[-3000:])
        self.assertEqual(log.count("circuit closed provider=hook"), 1, log[-3000:])

    def test_drain_timeout_aborts_a_hanging_request_as_unknown(self):
        """SIGTERM while a provider hangs: herald waits drain_timeout, not the
        request timeout, and exits 0. The hanging message may have reached the
        provider, so it ends `unknown/interrupted` and is never resent; the
        messages that never left are sent by the next start."""
        e = self.env(drain_timeout="1s")
        e.import_people(people(3, prefix="p-ab"))
        ids = ["p-ab%d" % i for i in range(3)]
        hang = self.server([{"hang": True}])
        conf = config_with(e, hang.url, providers="hook", extra="retries = 0\nconcurrency = 1\ntimeout = 60s\n")
        h = e.start_herald(config=conf)
        e.enqueue(job("f-abort", recipients=ids, channels=["email"]))
        harness.wait_for("the first request to hang", lambda: hang.count() == 1, 20)
        stuck = json.loads(hang.requests[0]["body"])["recipient"]
        t0 = time.monotonic()
        h.signal(signal.SIGTERM)
        self.assertEqual(h.wait_exit(15), 0, h.log()[-2000:])
        self.assertLess(time.monotonic() - t0, 10)
        self.assertIn("aborted at drain timeout", h.log())

        good = self.server([{"status": 202, "body": {"id": "wh-after"}}])
        h2 = e.start_herald(config=config_with(e, good.url, providers="hook", extra="retries = 0\n"))
        e.wait_campaign_done("f-abort", herald=h2)
        recs = self.assertOneTerminalEach(e.audit("f-abort"), ids)
        self.assertEqual((recs[stuck]["outcome"], recs[stuck]["reason"]), ("unknown", "interrupted"))
        for i in ids:
            if i != stuck:
                self.assertEqual(recs[i]["outcome"], "sent", recs[i])
        sent_to = sorted(json.loads(r["body"])["recipient"] for r in good.requests)
        self.assertEqual(sent_to, sorted(i for i in ids if i != stuck), "the hanging message is never resent")
        self.assertEqual(hang.count(), 1)

    def test_rate_holds(self):
        e = self.env()
        ids = ["p-f%d" % i for i in range(15)]
        e.import_people(people(15))
        srv = self.server([{"status": 202}])
        conf = config_with(e, srv.url, providers="hook", extra="rate = 5/s\n")
        recs, _ = self.run_campaign(e, conf, "f-rate", ids)
        self.assertTrue(all(r["outcome"] == "sent" for r in recs.values()), recs)
        self.assertEqual(srv.count(), 15)
        at = sorted(r["at"] for r in srv.requests)
        span = at[-1] - at[0]
        print("rate = 5/s: 15 requests over %.3f s" % span)
        # A token bucket of 5, refilled at 5/s, as the provider sees it: in
        # any stretch of time L, at most 5 + 5 * L requests (and one token of
        # slack for timing). The first burst may leave a little late (its
        # handoff is recorded first) while the later ones keep their times,
        # so the span alone (about 2 s) can be a little shorter.
        worst = max((j - i + 1) - (5 + 5 * (at[j] - at[i])) for i in range(len(at)) for j in range(i, len(at)))
        self.assertLessEqual(worst, 1.0, "more requests in some stretch than the bucket allows")
        self.assertGreaterEqual(span, 1.6)


if __name__ == "__main__":
    harness.main()
