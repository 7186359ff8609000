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
  retired id never seals again, and one left further down is only warned of.
"""

import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402

K1 = harness.E2E_KEY            # e2e1, the key every Env starts with
K2 = "e2e2 " + "c3" * 32
K2_OTHER = "e2e2 " + "77" * 32  # the id e2e2 over other bytes


def reloads(h, word):
    return h.log().count(word)


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
        self.assertEqual(stats["keys"], {"e2e1": {"people": 0, "state": "in use"},
                                         "e2e2": {"people": 3, "state": "in use"}}, stats)
        res = e.ctl_ok("retire-key", "e2e1", "--dry-run")
        self.assertIn("key 'e2e1' seals nobody (counted on 1 master): retire-key e2e1 would retire it", res.stdout)
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
