"""Campaign events POSTed to [events] url.

- Two daemons (distinct consumers) and a receiver that fails its first
  three requests (500, 503, a dropped connection): every event of
  herald:events (a campaign's started and finished, a refused job's
  failed) is delivered, each body is the stream record as JSON (the counts
  as numbers, the entry id as "id" and X-Herald-Event-Id), signed as the
  webhook plugin signs (X-Herald-Signature: sha256=HMAC-SHA256 of the body),
  retried after a growing wait, acknowledged in the group only after a 2xx
  (nothing left pending), and /metrics counts delivered events, failed
  attempts and a backlog of 0.
- A daemon killed while its receiver hangs on an event leaves it pending:
  another daemon takes it over after claim_idle and delivers it.
- Without [events] url nothing is POSTed; a url without a secret is a
  configuration error."""

import hashlib
import hmac
import json
import os
import re
import sys
import urllib.request

import jsonschema

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import job, person  # noqa: E402

SECRET = "e2e-events-secret-0123456789"


def metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as resp:
        text = resp.read().decode()
    out = {}
    for m in re.finditer(r"^(herald_events_[a-z_]+) (\d+)$", text, re.M):
        out[m.group(1)] = int(m.group(2))
    return out


class EventsPost(harness.HeraldTestCase):

    def setup_env(self, script, **kw):
        srv = FaultServer(script)
        self.addCleanup(srv.stop)
        e = self.env(log_level="info", **kw)
        e.import_people([person("ev-%d" % i, email="ev-%d.events@example.com" % i, channels=["email"],
                                consent=["email"], first_name="E") for i in range(3)])
        for i in range(3):
            e.secrets.add("ev-%d.events@example.com" % i)
        return srv, e, ["events.url=" + srv.url, "events.secret=" + SECRET]

    def wait_group(self, e):
        def ready():
            try:
                return any(g["name"] == "herald-events" for g in e.r.xinfo_groups("herald:events"))
            except Exception:
                return False
        harness.wait_for("the events group", ready, 10, 0.05)

    def delivered(self, srv):
        """{event id: body} of the requests answered 2xx, checking each one's signature."""
        out = {}
        for i, req in enumerate(list(srv.requests)):
            sig = req["headers"].get("x-herald-signature")
            want = "sha256=" + hmac.new(SECRET.encode(), req["body"], hashlib.sha256).hexdigest()
            self.assertEqual(sig, want, "request %d is not signed with [events] secret" % i)
            body = json.loads(req["body"])
            self.assertEqual(req["headers"].get("x-herald-event-id"), body["id"])
            self.assertEqual(req["headers"].get("content-type"), "application/json")
            action = srv.script[min(i, len(srv.script) - 1)]
            if action.get("status", 0) // 100 == 2:
                out[body["id"]] = body
        return out

    def stream(self, e):
        return {i: f for i, f in e.r.xrange("herald:events")}

    def test_every_event_delivered_signed_after_failures(self):
        srv, e, sets = self.setup_env([{"status": 500}, {"status": 503}, {"close": True}, {"status": 200}])
        h1 = e.start_herald(sets=sets + ["daemon.consumer=one"])
        h2 = e.start_herald(sets=sets + ["daemon.consumer=two", *e.other_listeners()])
        self.wait_group(e)
        e.enqueue(job("ev-camp", recipients=["ev-0", "ev-1", "ev-2"], channels=["email"]))
        e.wait_campaign_done("ev-camp", herald=h1)
        e.xadd_job('{"id": "ev-bad", "topic": "promotions"}')   # refused: a failed event
        harness.wait_for("three events", lambda: len(self.stream(e)) >= 3, 10, 0.05)
        events = self.stream(e)
        harness.wait_for("every event delivered", lambda: set(self.delivered(srv)) >= set(events), 60, 0.1)
        got = self.delivered(srv)
        self.assertEqual(sorted(f["event"] for f in events.values()), ["failed", "finished", "started"])
        for eid, fields in events.items():
            want = dict(fields, id=eid)
            for k in ("total", "sent", "suppressed", "failed", "unknown"):
                if k in want:
                    want[k] = int(want[k])
            self.assertEqual(got[eid], want)
        schema = json.load(open(os.path.join(harness.ROOT, "docs", "schemas", "event.schema.json")))
        for body in got.values():
            self.assertEqual([x.message for x in jsonschema.Draft202012Validator(schema).iter_errors(body)], [])
        fin = [b for b in got.values() if b["event"] == "finished"][0]
        self.assertEqual((fin["campaign"], fin["total"], fin["sent"]), ("ev-camp", 3, 3))
        # Three failed attempts, each retried after a wait that doubles
        # from 1 s for the same event.
        tries = {}
        for r in srv.requests:
            tries.setdefault(json.loads(r["body"])["id"], []).append(r["at"])
        self.assertEqual(sum(len(t) for t in tries.values()), len(events) + 3)
        self.assertTrue(any(len(t) > 1 for t in tries.values()))
        for eid, at in tries.items():
            for k, (a, b) in enumerate(zip(at, at[1:])):
                self.assertGreaterEqual(b - a, 0.9 * 2 ** k, "event %s, retry %d" % (eid, k + 1))
        # Acknowledged only after a 2xx: nothing is left pending.
        harness.wait_for("nothing pending", lambda: e.r.xpending("herald:events", "herald-events")["pending"] == 0,
                         10, 0.1)
        m1, m2 = metrics(h1.admin_port), metrics(h2.admin_port)
        self.assertGreaterEqual(m1["herald_events_delivered_total"] + m2["herald_events_delivered_total"], 3)
        self.assertEqual(m1["herald_events_failed_attempts_total"] + m2["herald_events_failed_attempts_total"], 3)
        harness.wait_for("backlog 0", lambda: metrics(h1.admin_port).get("herald_events_backlog") == 0, 10, 0.2)
        self.assertEqual(h1.stop(), 0)
        self.assertEqual(h2.stop(), 0)

    def test_a_dead_daemons_event_is_taken_over(self):
        srv, e, sets = self.setup_env([{"hang": True}])
        h1 = e.start_herald(sets=sets + ["daemon.consumer=one", "daemon.claim_idle=2s"])
        self.wait_group(e)
        e.enqueue(job("ev-take", recipients=["ev-0"], channels=["email"]))
        harness.wait_for("the first POST", lambda: srv.count() >= 1, 20, 0.05)
        h1.kill()
        pend = e.r.xpending_range("herald:events", "herald-events", "-", "+", 10)
        self.assertEqual([p["consumer"] for p in pend], ["one"])
        srv.script = [{"hang": True}, {"status": 204}]
        h2 = e.start_herald(sets=sets + ["daemon.consumer=two", "daemon.claim_idle=2s", *e.other_listeners()])
        events = harness.wait_for("both events", lambda: len(self.stream(e)) >= 2 and self.stream(e), 20, 0.1)
        harness.wait_for("every event delivered", lambda: set(self.delivered(srv)) >= set(events), 30, 0.1)
        harness.wait_for("nothing pending", lambda: e.r.xpending("herald:events", "herald-events")["pending"] == 0,
                         10, 0.1)
        self.assertIn("took over an event left by another consumer", h2.log())
        self.assertEqual(h2.stop(), 0)

    def test_off_without_url_and_secret_required(self):
        srv, e, sets = self.setup_env([{"status": 200}])
        h = e.start_herald()
        e.enqueue(job("ev-off", recipients=["ev-0"], channels=["email"]))
        e.wait_campaign_done("ev-off", herald=h)
        self.assertEqual(srv.count(), 0)
        self.assertFalse(any(g["name"] == "herald-events" for g in e.r.xinfo_groups("herald:events")))
        self.assertEqual(h.stop(), 0)
        res = harness.subprocess.run([harness.HERALD_BIN, "--config", e.config, "--set", sets[0], "--check-config"],
                                     capture_output=True, text=True, timeout=30)
        self.assertEqual(res.returncode, 1)
        self.assertIn("[events] secret: missing: the events POSTed to url are signed with it", res.stderr)


if __name__ == "__main__":
    harness.main()
