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
