"""heraldctl import: bad lines are reported as FILE:LINE: problem and
skipped, good ones are stored (a campaign reaches them), exit 1; a clean file
exits 0; a usage or connection error exits 2."""

import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402

GOOD = [
    person("im-1", email="ian.import@example.com", channels=["email"], consent=["email"], first_name="Ian"),
    person("im-2", phone="+15550100401", channels=["sms"], consent=["sms"], first_name="Ivy"),
    person("im-3", email="ike.import@example.com", phone="+15550100402", consent=["email", "sms"], first_name="Ike"),
]


class Import(harness.HeraldTestCase):

    def test_bad_lines_are_reported_and_skipped(self):
        e = self.env()
        for p in GOOD:
            e.remember(p)
        lines = [
            json.dumps(GOOD[0]),                                                     # 1 good
            '{"id": "im-broken", "email": ',                                         # 2 not JSON
            json.dumps(GOOD[1]),                                                     # 3 good
            json.dumps(person("im-bademail", email="not-an-address", consent=["email"])),   # 4 bad email
            json.dumps({"email": "noid@example.com"}),                               # 5 no id
            json.dumps(person("im-badconsent", email="bc@example.com",
                              consent=["email"]) | {"consent": [{"channel": "fax", "granted": True}]}),  # 6
            json.dumps(GOOD[2]),                                                     # 7 good
            json.dumps(person("im-badphone", phone="555-CALL-NOW", consent=["sms"])),     # 8 bad phone
        ]
        path = e.write("people.jsonl", "\n".join(lines) + "\n")
        res = e.ctl("import", path)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertEqual(res.stdout.strip(), "imported 3, skipped 5")
        reported = sorted(int(m.group(1)) for m in re.finditer(r"^%s:(\d+): \S" % re.escape(path), res.stderr, re.M))
        self.assertEqual(reported, [2, 4, 5, 6, 8], res.stderr)

        # the good ones are stored; the refused ones are not
        h = e.start_herald()
        ids = ["im-1", "im-2", "im-3", "im-broken", "im-bademail", "im-badconsent", "im-badphone"]
        e.enqueue(job("import-check", recipients=ids))
        e.wait_campaign_done("import-check", herald=h)
        recs = self.assertOneTerminalEach(e.audit("import-check"), ids)
        got = {rid: (r["outcome"], r["reason"]) for rid, r in recs.items()}
        self.assertEqual(got, {"im-1": ("sent", ""), "im-2": ("sent", ""), "im-3": ("sent", ""),
                               "im-broken": ("suppressed", "unknown_recipient"),
                               "im-bademail": ("suppressed", "unknown_recipient"),
                               "im-badconsent": ("suppressed", "unknown_recipient"),
                               "im-badphone": ("suppressed", "unknown_recipient")})
        self.assertEqual(h.stop(), 0)

    def test_clean_file_exits_0(self):
        e = self.env()
        res = e.import_people(GOOD)
        self.assertEqual(res.returncode, 0)
        self.assertEqual(res.stderr, "")

    def test_many_people_and_a_person_twice_in_one_window(self):
        """Imports go in windows of 256 people (two round trips each); the
        address index ends right even when one person comes twice, with a
        new address, inside one window, and across window borders."""
        e = self.env()
        people = [person("win-%04d" % i, email="w%04d@example.com" % i, channels=["email"], consent=["email"])
                  for i in range(600)]
        people.insert(10, person("win-dup", email="first.addr@example.com", channels=["email"], consent=["email"]))
        people.insert(20, person("win-dup", email="second.addr@example.com", channels=["email"], consent=["email"]))
        people.insert(300, person("win-0001", email="moved.addr@example.com", channels=["email"], consent=["email"]))
        res = e.import_people(people)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("imported 603, skipped 0", res.stdout)
        owners = e.r.hgetall("herald:addr")
        self.assertEqual(len(owners), 601)   # 600 people + win-dup, each with their latest address only
        self.assertEqual(sorted(v for v in owners.values() if v in ("win-dup", "win-0001")), ["win-0001", "win-dup"])
        self.assertEqual(e.r.llen("herald:r:{win-dup}:consent"), 2)   # both lines' consent records
        h = e.start_herald()
        e.enqueue(job("win-1", recipients=["win-dup", "win-0001", "win-0599"], channels=["email"]))
        e.wait_campaign_done("win-1", herald=h)
        tos = sorted(m["to"] for m in e.outbox_json("win-1").values())
        self.assertEqual(tos, ["moved.addr@example.com", "second.addr@example.com", "w0599@example.com"])

    def test_suppress_moves_the_owners_rev(self):
        """heraldctl suppress changes what herald may do for the address's
        owner: their rev moves, so a message looked up before is decided again."""
        e = self.env()
        e.import_people(GOOD)
        before = int(e.r.hget("herald:r:{im-1}", "rev") or 0)
        e.suppress("email", "Ian.Import@example.com")   # suppression ignores case
        self.assertEqual(int(e.r.hget("herald:r:{im-1}", "rev")), before + 1)
        self.assertEqual(e.r.scard("herald:suppress"), 1)
        e.suppress("email", "nobody.known@example.com")   # no owner: only the list changes
        self.assertEqual(e.r.scard("herald:suppress"), 2)

    def test_usage_and_connection_errors_exit_2(self):
        e = self.env()
        path = e.write_jsonl("people.jsonl", GOOD)
        self.assertEqual(e.ctl("import").returncode, 2, "missing argument")
        self.assertEqual(e.ctl("no-such-command", path).returncode, 2)
        closed = "redis.url=redis://127.0.0.1:%d/0" % harness.free_port()
        res = e.ctl("import", path, sets=[closed])
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertNotEqual(res.stderr, "")


if __name__ == "__main__":
    harness.main()
