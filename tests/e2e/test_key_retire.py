"""A key leaves [privacy] key_file only once nothing uses it (docs/operations.md, "Retire").

The key registry (herald:keys) remembers every key id that sealed data, by a
fingerprint of its bytes, and which ids heraldctl retire-key retired:
- a key file that drops a key still in use: the daemon's start is refused
  (exit 1, the id named), --check-config --connect says so, and a reload is
  refused with the old keys kept: the people under that key are still sent to;
- heraldctl retire-key is refused while people are sealed under the key, and
  for the first (sealing) key; after rotate-key it retires it, and the key
  file without it starts and reloads;
- a key id reused for other bytes is refused at start and at reload; a
  retired id never seals again, and one left further down is only warned of;
- a running daemon holds a lease on the key it seals under (herald:keys:sealing):
  retire-key refuses that key while the lease is live, names the daemon, and
  retires it once a reload moved the lease (or a killed daemon's lapsed); a
  daemon whose sealing key was retired while its lease had lapsed stops, and
  encrypts nothing more while it drains (the API answers 503).
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import job, person  # noqa: E402

K1 = harness.E2E_KEY            # e2e1, the key every Env starts with
K2 = "e2e2 " + "c3" * 32
K2_OTHER = "e2e2 " + "77" * 32  # the id e2e2 over other bytes


def reloads(h, word):
    return h.log().count(word)


def holder(h):
    """The field of h's sealing lease: "<consumer> <pid> <run>", the run as its log says it."""
    run = next(w[4:] for w in h.log().split() if w.startswith("run="))
    return next(f for f in h.env.r.hkeys("herald:keys:sealing") if f.endswith(" %d %s" % (h.pid, run)))


def lease(h):
    """The key id h's sealing lease names now (None: no lease)."""
    try:
        v = h.env.r.hget("herald:keys:sealing", holder(h))
    except StopIteration:
        return None
    return v.split()[0] if v else None


def leased(h, key):
    """Waits until h's lease names key: a daemon takes its lease once it has
    checked its keys against the registry, which may come just after its
    /healthz first answers."""
    harness.wait_for("the lease on %s" % key, lambda: lease(h) == key or None, 20)


class KeyRetire(harness.HeraldTestCase):

    def reload(self, h, keys):
        """Writes keys, SIGHUPs h; 'reloaded' or 'refused', with the log after it."""
        e = h.env
        before = (reloads(h, "configuration reloaded"), reloads(h, "reload refused"))
        e.write_keys("\n".join(keys) + "\n")
        h.signal(signal.SIGHUP)
        harness.wait_for("the reload's outcome", lambda: (reloads(h, "configuration reloaded"),
                                                         reloads(h, "reload refused")) != before or None, 20)
        return "reloaded" if reloads(h, "configuration reloaded") > before[0] else "refused"

    def sent(self, e, h, campaign, ids):
        e.enqueue(job(campaign, recipients=ids, channels=["email"]))
        done = e.wait_campaign_done(campaign, herald=h)
        return done["sent"], done["failed"]

    def start_refused(self, e, keys, why):
        e.write_keys("\n".join(keys) + "\n")
        h = e.start_herald(wait_healthy=False)
        self.assertEqual(h.wait_exit(30), 1, h.log()[-2000:])
        self.assertIn(why, h.log())
        self.assertNotIn("keys checked", h.log())
        return h

    def test_a_key_in_use_cannot_leave_until_retired(self):
        e = self.env()
        ppl = [person("kx-%d" % i, email="retire.person%d@example.org" % i, channels=["email"], consent=["email"])
               for i in range(3)]
        e.import_people(ppl)   # sealed under e2e1, which the import registered
        ids = [p["id"] for p in ppl]
        fp = e.r.hget("herald:keys", "e2e1")
        self.assertRegex(fp, r"^[0-9a-f]{16}$")
        self.assertNotIn(fp, K1)   # a fingerprint, never the key

        h = e.start_herald()
        self.assertIn("keys checked against the key registry keys=1", h.log())
        # The new key first, the old one still there: accepted, registered.
        self.assertEqual(self.reload(h, [K2, K1]), "reloaded")
        self.assertRegex(e.r.hget("herald:keys", "e2e2"), r"^[0-9a-f]{16}$")
        # The old key dropped before anyone was rotated: refused, the old keys stay.
        self.assertEqual(self.reload(h, [K2]), "refused")
        self.assertIn("key 'e2e1' is no longer in key_file but is not retired: people may still be sealed under it",
                      h.log())
        self.assertIn("heraldctl retire-key e2e1", h.log())
        self.assertEqual(self.sent(e, h, "still-keyed", ids), (3, {}))
        # A refused file registers nothing: a new id in it would refuse every other daemon's file.
        K3 = "e2e3 " + "d4" * 32
        self.assertEqual(self.reload(h, [K3, K2]), "refused")
        self.assertIsNone(e.r.hget("herald:keys", "e2e3"))
        e.write_keys(K2 + "\n")   # the file as the refused reload before left it
        # retire-key refuses while people need it, and for the key that seals.
        res = e.ctl("retire-key", "e2e1")
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn("key 'e2e1' still seals 3 people (counted on 1 master)", res.stderr)
        self.assertIn("run heraldctl rotate-key", res.stderr)
        res = e.ctl("retire-key", "e2e2")
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn("key 'e2e2' is the first of [privacy] key_file", res.stderr)
        self.assertRegex(e.r.hget("herald:keys", "e2e1"), r"^[0-9a-f]{16}$")   # nothing retired
        res = e.ctl("retire-key", "e2e9")   # a typo: no key file ever registered it
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn("key 'e2e9' is not in the key registry", res.stderr)
        self.assertIsNone(e.r.hget("herald:keys", "e2e9"))
        for bad in ("", "too-long-id", "a b"):
            res = e.ctl("retire-key", bad)
            self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        # rotate-key and import refuse such a key file as well, before they write.
        res = e.ctl("rotate-key")
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        self.assertIn("key 'e2e1' is no longer in key_file but is not retired", res.stderr)
        self.assertEqual(json.loads(e.ctl_ok("stats").stdout)["contact_data"]["sealed_by_key"], {"e2e1": 3})

        # A start with that key file: refused, nothing sent; --check-config --connect says why.
        h.stop()
        e.write_keys(K2 + "\n")
        chk = subprocess.run([harness.HERALD_BIN, "--config", e.config, "--check-config", "--connect"],
                             capture_output=True, text=True, timeout=60 * harness.SLOW)
        self.assertEqual(chk.returncode, 1, chk.stdout + chk.stderr)
        self.assertIn("[privacy] key_file: key 'e2e1' is no longer in key_file but is not retired", chk.stderr)
        self.start_refused(e, [K2], "key 'e2e1' is no longer in key_file but is not retired")

        # The flow: both keys, rotate, retire, drop.
        e.write_keys(K2 + "\n" + K1 + "\n")
        h = e.start_herald()
        e.ctl_ok("rotate-key")
        stats = json.loads(e.ctl_ok("stats").stdout)
        self.assertEqual(stats["keys"], {"e2e1": {"people": 0, "state": "in use", "sealing": []},
                                         "e2e2": {"people": 3, "state": "in use", "sealing": [holder(h)]}}, stats)
        res = e.ctl_ok("retire-key", "e2e1", "--dry-run")
        self.assertIn("key 'e2e1' seals nobody (counted on 1 master) and no running process seals under it: "
                      "retire-key e2e1 would retire it", res.stdout)
        self.assertRegex(e.r.hget("herald:keys", "e2e1"), r"^[0-9a-f]{16}$")
        res = e.ctl_ok("retire-key", "e2e1")
        self.assertIn("key 'e2e1' retired", res.stdout)
        self.assertIn("delete its line from [privacy] key_file and reload every daemon", res.stdout)
        self.assertRegex(e.r.hget("herald:keys", "e2e1"), r"^retired \d+$")
        self.assertIn("is retired already", e.ctl_ok("retire-key", "e2e1").stdout)
        stats = json.loads(e.ctl_ok("stats").stdout)
        self.assertEqual(stats["keys"]["e2e1"]["state"], "retired", stats)
        self.assertEqual(self.reload(h, [K2]), "reloaded")
        self.assertEqual(self.sent(e, h, "after-retire", ids), (3, {}))
        self.assertEqual(sorted(m["to"] for m in e.outbox_json("after-retire").values()),
                         sorted(p["email"] for p in ppl))
        h.stop()
        e.write_keys(K2 + "\n")
        h = e.start_herald()
        self.assertEqual(self.sent(e, h, "restarted", ids), (3, {}))

        # A retired id further down the file: accepted, warned of; first: refused.
        self.assertEqual(self.reload(h, [K2, K1]), "reloaded")
        self.assertIn("key 'e2e1' in key_file was retired", h.log())
        self.assertEqual(self.reload(h, [K1, K2]), "refused")
        self.assertIn("key 'e2e1', the first of key_file (the one that seals), was retired", h.log())

        # The id e2e2 over other bytes: refused at reload (e2e2 still opens everyone) and at start.
        self.assertEqual(self.reload(h, [K2_OTHER]), "refused")
        self.assertIn("key 'e2e2' in key_file is not the key 'e2e2' that sealed data before", h.log())
        self.assertEqual(self.sent(e, h, "same-id-refused", ids), (3, {}))
        h.stop()
        self.start_refused(e, [K2_OTHER], "key 'e2e2' in key_file is not the key 'e2e2' that sealed data before")
        res = e.ctl("import", e.write_jsonl("more.jsonl", [person("kx-new", email="retire.new@example.org",
                                                                  channels=["email"], consent=["email"])]))
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        self.assertIn("is not the key 'e2e2' that sealed data before", res.stderr)
        self.assertFalse(e.r.exists("herald:r:{kx-new}"))

    def test_a_running_daemon_holds_its_sealing_key(self):
        e = self.env()
        ppl = [person("kl-%d" % i, email="lease.person%d@example.org" % i, channels=["email"], consent=["email"])
               for i in range(2)]
        e.import_people(ppl)   # sealed under e2e1
        ids = [p["id"] for p in ppl]
        h = e.start_herald()
        leased(h, "e2e1")
        # The import gave its lease back: the daemon's is the only one.
        self.assertEqual(e.r.hkeys("herald:keys:sealing"), [holder(h)])
        # heraldctl moves to the new key and rotates everyone; the daemon still seals under e2e1.
        e.write_keys(K2 + "\n" + K1 + "\n")
        e.ctl_ok("rotate-key")
        self.assertEqual(json.loads(e.ctl_ok("stats").stdout)["contact_data"]["sealed_by_key"], {"e2e2": 2})
        for args in (("retire-key", "e2e1", "--dry-run"), ("retire-key", "e2e1")):
            res = e.ctl(*args)
            self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
            self.assertIn("key 'e2e1' is the sealing key (the first of key_file) of \"%s\", which runs now" % holder(h),
                          res.stderr)
            self.assertIn("reload it with the new key first (heraldctl reload)", res.stderr)
        self.assertRegex(e.r.hget("herald:keys", "e2e1"), r"^[0-9a-f]{16}$")   # not retired
        self.assertEqual(json.loads(e.ctl_ok("stats").stdout)["keys"]["e2e1"]["sealing"], [holder(h)])
        # A reload with the new key first moves the lease: now e2e1 could go.
        self.assertEqual(self.reload(h, [K2, K1]), "reloaded")
        leased(h, "e2e2")
        self.assertIn("would retire it", e.ctl_ok("retire-key", "e2e1", "--dry-run").stdout)
        self.assertEqual(self.sent(e, h, "lease-moved", ids), (2, {}))

        # Back to e2e1 first (it is not retired: accepted), then the daemon is cut off
        # longer than a lease (its lease lapsed: deleted here), and e2e1 retired meanwhile:
        # at its next renewal the lease is refused and the daemon stops.
        self.assertEqual(self.reload(h, [K1, K2]), "reloaded")
        leased(h, "e2e1")
        e.write_keys(K2 + "\n" + K1 + "\n")   # heraldctl's file: e2e1 is not its first key
        e.r.hdel("herald:keys:sealing", holder(h))
        self.assertIn("key 'e2e1' retired", e.ctl_ok("retire-key", "e2e1").stdout)
        self.assertEqual(h.wait_exit(30), 1, h.log()[-2000:])
        self.assertIn("key 'e2e1', the first (the one that seals), was retired (heraldctl retire-key) while this "
                      "daemon used it; herald stops", h.log())

        # A daemon killed keeps its lease until it lapses (60 s after its last renewal).
        K3 = "e2e3 " + "e5" * 32
        e.write_keys(K3 + "\n" + K2 + "\n")
        h = e.start_herald()
        leased(h, "e2e3")
        held = holder(h)
        h.kill()
        e.write_keys(K2 + "\n" + K3 + "\n")   # heraldctl's file: e2e3 is not its first key
        res = e.ctl("retire-key", "e2e3")
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn("of \"%s\", which runs now" % held, res.stderr)
        self.assertRegex(res.stderr, r"holds it [1-6]?[0-9] s more")
        e.r.hset("herald:keys:sealing", held, "e2e3 1")   # its time is past: lapsed
        self.assertIn("key 'e2e3' retired", e.ctl_ok("retire-key", "e2e3").stdout)
        # The next lease taken clears the lapsed one.
        h = e.start_herald()
        leased(h, "e2e2")
        self.assertEqual(e.r.hkeys("herald:keys:sealing"), [holder(h)])
        self.assertEqual(h.stop(), 0)
        self.assertEqual(e.r.hlen("herald:keys:sealing"), 0)   # a clean stop gave it back

    def test_a_daemon_whose_key_is_retired_encrypts_nothing_while_it_drains(self):
        e = self.env(drain_timeout="20s")
        e.import_people([person("kd-1", email="drain.one@example.org", channels=["email"], consent=["email"])])
        hang = FaultServer([{"hang": True}])   # a request in flight keeps the drain going
        self.addCleanup(hang.stop)
        e.write_keys(K1 + "\n" + K2 + "\n")     # the daemon seals under e2e1 and opens e2e2
        h = e.start_herald(config=e.hook_config(hang.url, name="drain.conf",
                                                provider="retries = 0\nconcurrency = 1\ntimeout = 60s\n"))
        leased(h, "e2e1")
        e.enqueue(job("kd-hang", recipients=["kd-1"], channels=["email"]))
        harness.wait_for("the request to hang", lambda: hang.count() == 1 or None, 20)
        # Rotated to e2e2 by heraldctl; the daemon's lease lapsed (deleted here); e2e1 retired.
        e.write_keys(K2 + "\n" + K1 + "\n")
        e.ctl_ok("rotate-key")
        e.r.hdel("herald:keys:sealing", holder(h))
        self.assertIn("key 'e2e1' retired", e.ctl_ok("retire-key", "e2e1").stdout)
        harness.wait_for("the renewal refused", lambda: "while this daemon used it; herald stops" in h.log() or None,
                         30)
        self.assertTrue(h.running())   # draining: the hanging request
        body = {"id": "kd-2", "email": "drain.two@example.org", "channels": ["email"]}
        req = urllib.request.Request("http://127.0.0.1:%d/v1/recipients/kd-2" % h.admin_port,
                                     data=json.dumps(body).encode(), method="PUT")
        req.add_header("Authorization", "Bearer e2e-admin-token-0123456789")
        req.add_header("Content-Type", "application/json")
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(req, timeout=10)
        self.assertEqual(cm.exception.code, 503)
        self.assertIn("the key that encrypts contact data was retired", json.loads(cm.exception.read())["error"])
        self.assertFalse(e.r.exists("herald:r:{kd-2}"))
        self.assertEqual(h.wait_exit(40), 1, h.log()[-2000:])

    def test_a_redis_error_is_waited_out_never_accepted(self):
        e = self.env()
        e.import_people([person("kw-1", email="retire.wait@example.org", channels=["email"], consent=["email"])])
        # The registry's key holds a string: Redis refuses the check (WRONGTYPE).
        e.r.delete("herald:keys")
        e.r.set("herald:keys", "not a hash")
        h = e.start_herald(wait_healthy=False)
        e.enqueue(job("waits", recipients=["kw-1"], channels=["email"]))
        harness.wait_for("the refusal retried", lambda: "WRONGTYPE" in h.log() or None, 20)
        time.sleep(1.5)
        self.assertNotIn("keys checked", h.log())
        self.assertEqual(e.campaign("waits").get("sent", 0), 0)   # no job read meanwhile
        self.assertIsNone(h.proc.poll())                          # nor stopped: it waits
        e.r.delete("herald:keys")
        self.assertEqual(e.wait_campaign_done("waits", herald=h, timeout=60)["sent"], 1)
        self.assertIn("keys checked against the key registry keys=1", h.log())
        self.assertRegex(e.r.hget("herald:keys", "e2e1"), r"^[0-9a-f]{16}$")


if __name__ == "__main__":
    harness.main()
