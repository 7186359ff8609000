"""heraldctl explain and simulate against a real redis-server and daemon.

People imported with heraldctl import, one campaign run by the daemon, then
explain for a sent, an opted-out, a no-consent, a deferred (quiet hours: the
end of the window in the person's zone and in UTC), a capped, a suppressed
and an unknown recipient. simulate's forecast, taken before the run, is what
the run then does, reason by reason; simulate leaves the Redis keyspace
byte for byte as it was. Neither prints an address or a phone number."""

import datetime
import json
import os
import pty
import select
import subprocess
import sys
import time
import tty
import zoneinfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402

CAP = "\n[cap daily]\nchannel = any\nlimit = 1\nwindow = 24h\n"
ZONE = "Asia/Tokyo"


def quiet_window_now():
    """A window in Tokyo that holds now and ends at a minute two hours
    ahead: its text, and the end as UTC seconds."""
    now = int(time.time())
    minute = now - now % 60
    tokyo = zoneinfo.ZoneInfo(ZONE)
    start = datetime.datetime.fromtimestamp(minute - 3600, tokyo)
    end = datetime.datetime.fromtimestamp(minute + 7200, tokyo)
    return "%s-%s" % (start.strftime("%H:%M"), end.strftime("%H:%M")), minute + 7200


def keyspace(r):
    """Every key with its type, Redis's digest of its value (DEBUG
    DIGEST-VALUE: the content, whatever order a hash table keeps it in
    while Redis rehashes it, which a read may advance) and whether it
    expires, plus Redis's own digest of the dataset."""
    out = {}
    for k in r.scan_iter(count=1000):
        out[k] = (r.type(k), r.execute_command("DEBUG", "DIGEST-VALUE", k), r.pttl(k) > 0)
    return r.execute_command("DEBUG", "DIGEST"), out


class Explain(harness.HeraldTestCase):

    def setUp(self):
        self.e = e = self.env(redis_args=("--enable-debug-command", "yes"))
        # The raw client (bytes) for DUMP; the harness's decodes.
        import redis
        self.raw = redis.Redis(host="127.0.0.1", port=e.redis.port, socket_timeout=10)
        self.addCleanup(self.raw.close)
        e.config = e.write(os.path.basename(e.config), e.config_text() + CAP)
        self.window, self.until = quiet_window_now()
        self.people = [
            person("x-sent", email="sent.person@example.com", channels=["email"], consent=["email"]),
            person("x-optout", email="optout.person@example.com", channels=["email"], consent=["email"],
                   topics={"promotions": False}),
            person("x-noconsent", email="noconsent.person@example.com", phone="+15550109001",
                   channels=["email", "sms"]),
            dict(person("x-quiet", phone="+15550109002", channels=["sms"], consent=["sms"]), tz=ZONE,
                 quiet_hours=self.window),
            person("x-capped", email="capped.person@example.com", channels=["email"], consent=["email"]),
            person("x-suppressed", email="suppressed.person@example.com", channels=["email"], consent=["email"]),
        ]
        e.import_people(self.people)
        e.suppress("email", "suppressed.person@example.com")
        self.ids = [p["id"] for p in self.people] + ["x-ghost"]
        self.secrets = sorted(e.secrets) + ["5550109001", "5550109002"]

    def assertNoAddress(self, text):
        for s in self.secrets:
            self.assertNotIn(s, text, "an address or number in heraldctl's output")

    def explain(self, cid, rid, *extra):
        res = self.e.ctl_ok("explain", cid, rid, "--json", *extra)
        self.assertNoAddress(res.stdout + res.stderr)
        return json.loads(res.stdout)

    def checks(self, out):
        return [(c["check"], c["channel"], c["verdict"], c["reason"]) for c in out["checks"]]

    def test_explain_simulate_and_the_run_agree(self):
        e = self.e
        # A first campaign reaches x-capped: the daily cap holds it back from the next.
        h = e.start_herald()
        e.enqueue(job("warm-up", recipients=["x-capped"], channels=["email"]))
        self.assertEqual(e.wait_campaign_done("warm-up", herald=h)["sent"], 1)
        h.stop()

        # simulate before the run: read-only, the keyspace unchanged.
        spring = job("spring", recipients=self.ids + ["x-sent", "x-optout"], channels=["email", "sms"])
        path = e.write("spring.json", json.dumps(spring))
        before = keyspace(self.raw)
        res = e.ctl_ok("simulate", path, "--json")
        res_text = e.ctl_ok("simulate", path)
        self.assertEqual(keyspace(self.raw), before, "simulate changed the keyspace")
        self.assertNoAddress(res.stdout + res.stderr + res_text.stdout + res_text.stderr)
        forecast = json.loads(res.stdout)
        # Two ids given twice: the run decides each once.
        self.assertEqual((forecast["total"], forecast["repeated"]), (len(self.ids) + 2, 2))
        self.assertEqual(forecast["sent_by_channel"], {"email": 1})
        self.assertEqual(forecast["suppressed"], {"topic_opt_out": 1, "no_consent": 1, "cap:daily": 1,
                                                  "suppressed": 1, "unknown_recipient": 1})
        self.assertEqual(forecast["deferred_by_reason"], {"quiet_hours": 1})
        self.assertIn("cap:daily", res_text.stdout)

        # The run does what the forecast said.
        h = e.start_herald()
        e.enqueue(spring)
        got = harness.wait_for("spring decided", lambda: (lambda c: c if c["state"] == "deferred" else None)(
            e.campaign("spring")), 60)
        self.assertEqual(got["sent"], forecast["sent"])
        self.assertEqual(got["suppressed"], forecast["suppressed"])
        self.assertEqual(got["deferred_by_reason"], forecast["deferred_by_reason"])
        h.stop()

        # explain, person by person.
        sent = self.explain("spring", "x-sent")
        self.assertEqual(sent["recorded"]["record"]["state"], "sent")
        self.assertEqual([(x["outcome"], x["channel"]) for x in sent["recorded"]["history"]], [("sent", "email")])
        audit = sent["recorded"]["audit"]
        self.assertEqual((audit["outcome"], audit["channel"], audit["provider"]), ("sent", "email", "outbox"))
        self.assertIn(audit["entry"], [i for i, f in e.r.xrange("herald:audit")
                                       if f["campaign"] == "spring" and f["recipient"] == "x-sent"])
        self.assertEqual(sent["job"]["topic"], "promotions")
        self.assertEqual(sent["job"]["channels"], ["email", "sms"])
        # Now that it was sent, once-only is what would stop it again.
        self.assertEqual((sent["decision"]["outcome"], sent["decision"]["reason"]), ("suppressed", "duplicate"))
        consent = [c for c in sent["checks"] if c["check"] == "consent"][0]
        self.assertEqual((consent["granted"], consent["source"], consent["text_version"]), (True, "e2e-test", "v1"))
        address = [c for c in sent["checks"] if c["check"] == "address"][0]
        self.assertEqual(address["detail"], "email address: present, valid")

        optout = self.explain("spring", "x-optout")
        self.assertEqual(self.checks(optout), [("expiry", None, "pass", ""), ("profile", None, "pass", ""),
                                               ("topic", None, "block", "topic_opt_out")])
        self.assertEqual(optout["recorded"]["history"][0]["reason"], "topic_opt_out")

        nc = self.explain("spring", "x-noconsent")
        self.assertEqual(nc["decision"], {"outcome": "suppressed", "reason": "no_consent", "channel": "email"})
        self.assertEqual([c for c in self.checks(nc) if c[0] == "consent"],
                         [("consent", "email", "skip", "no_consent"), ("consent", "sms", "skip", "no_consent")])

        quiet = self.explain("spring", "x-quiet")
        d = quiet["decision"]
        until_utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.until))
        until_local = datetime.datetime.fromtimestamp(self.until, zoneinfo.ZoneInfo(ZONE)).isoformat()
        self.assertEqual((d["outcome"], d["reason"], d["channel"]), ("deferred", "quiet_hours", "sms"))
        self.assertEqual((d["until"], d["until_local"], d["zone"]), (until_utc, until_local, ZONE))
        q = quiet["checks"][-1]
        self.assertEqual((q["check"], q["person_window"], q["zone"], q["until"]),
                         ("quiet_hours", self.window, ZONE, until_utc))
        self.assertEqual(quiet["recorded"]["record"]["state"], "deferred")
        text = e.ctl_ok("explain", "spring", "x-quiet").stdout
        self.assertIn("until %s (%s) = %s" % (until_local, ZONE, until_utc), text)
        self.assertNoAddress(text)
        # --at: once the window is over, the deferred message goes out on sms.
        after = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.until + 60))
        later = self.explain("spring", "x-quiet", "--at", after)
        self.assertEqual(later["at"], after)
        self.assertEqual((later["decision"]["outcome"], later["decision"]["channel"]), ("sent", "sms"))
        self.assertEqual(later["checks"][-1]["verdict"], "pass")

        capped = self.explain("spring", "x-capped")
        self.assertEqual(capped["decision"]["reason"], "cap:daily")
        cap = capped["checks"][-1]
        self.assertEqual((cap["check"], cap["cap"], cap["count"], cap["limit"], cap["window"]),
                         ("cap", "daily", 1, 1, "1d"))
        self.assertEqual(capped["recorded"]["history"][0]["reason"], "cap:daily")
        self.assertEqual(capped["recorded"]["audit"]["reason"], "cap:daily")

        sup = self.explain("spring", "x-suppressed")
        self.assertEqual(sup["decision"], {"outcome": "suppressed", "reason": "suppressed", "channel": "email"})
        self.assertEqual(sup["checks"][-2]["suppressed"], True)

        ghost = self.explain("spring", "x-ghost")
        self.assertEqual(ghost["decision"]["reason"], "unknown_recipient")
        self.assertIsNone(ghost["recorded"]["record"])
        self.assertIsNone(ghost["recorded"]["audit"])

        # Every check of every answer in text form too, without an address.
        for rid in self.ids:
            self.assertNoAddress(e.ctl_ok("explain", "spring", rid).stdout)

        # A job given with --job when it is gone from the stream.
        e.r.delete("herald:jobs")
        res = e.ctl("explain", "spring", "x-sent")
        self.assertEqual(res.returncode, 1)
        self.assertIn("--job", res.stderr)
        again = self.explain("spring", "x-capped", "--job", path)
        self.assertEqual(again["decision"]["reason"], "cap:daily")
        self.assertIsNone(again["job"]["entry"])

        # A message in flight: reserved by a run, and handed to a provider
        # once its bit is set in the run's handed log (layout 5): pending,
        # as the daemon that takes the job over reads it.
        flight = e.write("flight.json", json.dumps(job("flight", recipients=["x-sent"], channels=["email"])))
        e.r.hset("herald:r:{x-sent}", "c:flight", "r 1-1 other.3 1700000000 7")
        record = lambda: self.explain("flight", "x-sent", "--job", flight)["recorded"]["record"]  # noqa: E731
        self.assertEqual(record()["state"], "reserved")
        e.r.setbit("herald:handed:other.3", 7, 1)
        self.assertEqual(record()["state"], "pending")
        self.assertEqual(record()["run"], "other.3")

    def test_refusals(self):
        e = self.e
        res = e.ctl("explain", "nothing-here", "x-sent")
        self.assertEqual(res.returncode, 1)
        self.assertIn("no such campaign", res.stderr)
        # An address given as the recipient is refused and never echoed.
        res = e.ctl("explain", "spring", "sent.person@example.com")
        self.assertEqual(res.returncode, 1)
        self.assertNotIn("sent.person", res.stdout + res.stderr)
        res = e.ctl("explain", "spring")
        self.assertEqual(res.returncode, 2)
        res = e.ctl("explain", "spring", "x-sent", "--bogus")
        self.assertEqual(res.returncode, 2)
        res = e.ctl("explain", "spring", "x-sent", "--at", "yesterday")
        self.assertEqual(res.returncode, 1)
        other = e.write("other.json", json.dumps(job("other", recipients=["x-sent"])))
        res = e.ctl("explain", "spring", "x-sent", "--job", other)
        self.assertEqual(res.returncode, 1)
        self.assertIn("not spring", res.stderr)
        # A job for later is decided as at its not_before; one that expired, as expired.
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 86400))
        end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2 * 86400))
        res = e.ctl_ok("simulate", e.write("later.json", json.dumps(job("later", recipients=["x-sent"],
                                                                        not_before=later, expires_at=end))),
                       "--json")
        self.assertEqual(json.loads(res.stdout)["at"], later)
        res = e.ctl_ok("simulate", e.write("late.json", json.dumps(job("late", recipients=["x-sent", "x-ghost"],
                                                                       expires_at="2020-01-01T00:00:00Z"))),
                       "--json")
        self.assertEqual(json.loads(res.stdout)["suppressed"], {"expired": 2})
        bad = e.write("bad.json", '{"id": "bad"}')
        res = e.ctl("simulate", bad)
        self.assertEqual(res.returncode, 1)
        res = e.ctl("simulate", e.write("key.json", json.dumps(job("k", recipients_key="herald:lists:none"))))
        self.assertEqual(res.returncode, 1)
        self.assertIn("does not exist", res.stderr)

    def test_simulate_reads_a_recipients_key_in_pages(self):
        """30 people in a list, read four at a time ([daemon] batch = 4)."""
        e = self.e
        crowd = [person("k-%02d" % i, email="crowd%02d@example.com" % i, channels=["email"],
                        consent=["email"] if i % 3 else [], topics={"promotions": i % 5 != 0})
                 for i in range(30)]
        e.import_people(crowd, name="crowd.jsonl")
        ids = [p["id"] for p in crowd]
        e.r.rpush("herald:lists:crowd", *ids)
        j = job("crowd", recipients_key="herald:lists:crowd", channels=["email"])
        path = e.write("crowd.json", json.dumps(j))
        before = keyspace(self.raw)
        res = e.ctl_ok("simulate", path, "--json", sets=("daemon.batch=4",))
        self.assertEqual(keyspace(self.raw), before)
        self.assertEqual(res.stderr, "", "no progress into a pipe")
        forecast = json.loads(res.stdout)
        self.assertEqual(forecast["total"], 30)
        self.assertEqual(forecast["decided"], 30)
        h = e.start_herald()
        e.enqueue(j)
        got = e.wait_campaign_done("crowd", herald=h)
        self.assertEqual(got["sent"], forecast["sent"])
        self.assertEqual(got["suppressed"], forecast["suppressed"])
        self.assertEqual(set(got["suppressed"]), {"topic_opt_out", "no_consent"})
        # On a terminal, progress on stderr (taken off before the end);
        # stdout is the same forecast.
        master, slave = pty.openpty()
        tty.setraw(slave)
        proc = subprocess.Popen([harness.HERALDCTL_BIN, "--config", e.config, "--set", "daemon.batch=4",
                                 "simulate", path, "--json"], stdout=subprocess.PIPE, stderr=slave,
                                stdin=subprocess.DEVNULL)
        os.close(slave)
        self.addCleanup(os.close, master)
        err = b""
        while True:
            r, _, _ = select.select([master], [], [], 10)
            try:
                data = os.read(master, 65536) if r else b""
            except OSError:
                data = b""
            if not data:
                break
            err += data
        out = proc.stdout.read().decode()
        self.assertEqual(proc.wait(10), 0)
        self.assertEqual(json.loads(out)["decided"], 30)
        err = err.decode()
        self.assertTrue(err.startswith("\rsimulate: 4 of 30 recipients decided\x1b[K"), repr(err))
        self.assertTrue(err.endswith("\r\x1b[K"), repr(err))
        self.assertNoAddress(err + out)

        # Run again, the forecast is: every one already reached is a duplicate.
        again = json.loads(e.ctl_ok("simulate", path, "--json").stdout)
        self.assertEqual(again["sent"], 0)
        self.assertEqual(again["suppressed"].get("duplicate"), got["sent"])


if __name__ == "__main__":
    harness.main()
