"""A dead letter keeps the refused job with every email address and phone
number redacted (docs/privacy.md, "Dead letters"): the addresses are gone
from herald:dead, from herald:jobs (the refused entry is deleted once its
dead letter is stored) and from every other key, every other byte and field
is kept, and herald ids (inline recipient ids) are never taken for one.

The second test runs daemon/lua/dead_letter.lua itself in the test's Redis
on texts that are, and are not, addresses, as the definition says."""

import json
import os
import sys

import jsonschema

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402

R = "[redacted]"
SCHEMA = os.path.join(harness.ROOT, "docs", "schemas", "dead-letter.schema.json")
SCRIPT = os.path.join(harness.ROOT, "daemon", "lua", "dead_letter.lua")

ADDRESSES = ["alice.redact+x@example.com", "+4915112345678", "bob.redact@example.org", "+44 20 7946 0018",
             "(020) 7946 0019", "carol.redact@example.net", "dave.redact@example.co.uk"]


class Redaction(harness.HeraldTestCase):

    def test_malformed_job_is_dead_lettered_without_its_addresses(self):
        e = self.env()
        for a in ADDRESSES:
            e.secrets.add(a)
        e.import_people([person("m-1", email="mo.kept@example.com", channels=["email"], consent=["email"])])
        h = e.start_herald()

        bad = job("redact-me", recipients=["m-1", "555-123", ADDRESSES[0], ADDRESSES[1]], channels=["email", "fax"])
        bad["content"]["email"]["text"] = "Reply to %s or call %s or %s. Ref 2026-12-06 10:00, id m-1." % tuple(
            ADDRESSES[2:5])
        text = json.dumps(bad)
        misnamed = json.dumps(job("redact-misnamed", recipients=[ADDRESSES[6]], channels=["email"]))
        entry = e.r.xadd("herald:jobs", {"job": text, "contact": ADDRESSES[5], "trace": "t-42 2026-12-06",
                                         "jobs": misnamed})
        dead = harness.wait_for("the dead letter", lambda: e.dead() or None, 20)
        self.assertEqual(len(dead), 1)
        d = dead[0]

        want = text
        for a in ADDRESSES[:5]:
            want = want.replace(a, R)
        self.assertNotEqual(want, text)
        self.assertEqual(d["entry"], want, "the job, byte for byte, but for its addresses")
        self.assertEqual(json.loads(d["entry"])["recipients"], ["m-1", "555-123", R, R],
                         "recipient ids kept, addresses in their place redacted")
        self.assertEqual(d["field:contact"], R)
        self.assertEqual(d["field:trace"], "t-42 2026-12-06")
        self.assertEqual(d["field:jobs"], misnamed.replace(ADDRESSES[6], R))
        self.assertEqual(d["job_entry"], entry)
        self.assertIn("channels", d["error"])
        self.assertEqual(d["redacted"], "7")
        validator = jsonschema.Draft202012Validator(json.load(open(SCHEMA)))
        self.assertEqual(list(validator.iter_errors(d)), [])

        harness.wait_for("every entry acked", lambda: e.pending() == 0, 10)
        self.assertEqual(e.r.xrange("herald:jobs", entry, entry), [], "the unredacted entry is deleted")
        failed = [f for _, f in e.r.xrange("herald:events") if f.get("event") == "failed"]
        self.assertEqual([f["entry"] for f in failed], [entry])

        # nowhere in Redis any more
        import redis
        rb = redis.Redis(host="127.0.0.1", port=e.redis.port)
        blob = b"\n".join(harness.every_value(rb))
        for a in ADDRESSES:
            self.assertNotIn(a.encode(), blob, a)
        # the person's own data is not a dead letter's: kept, encrypted ([privacy] key_file)
        self.assertTrue(rb.hget("herald:r:{m-1}", "@0"))

        # the daemon goes on: a good job behind it is sent
        good = job("after-redact", recipients=["m-1"], channels=["email"])
        e.remember_job(good)
        e.xadd_job(json.dumps(good))
        self.assertEqual(e.wait_campaign_done("after-redact", herald=h)["sent"], 1)
        self.assertEqual(h.stop(), 0)

    def test_what_counts_as_an_address(self):
        """The script on its own, in a real Redis: each text in, the dead
        letter's text out (docs/privacy.md's definition, case by case)."""
        e = self.env()
        with open(SCRIPT) as f:
            src = f.read()
        cases = [
            # emails
            ("write to bob.smith+tag@example.co.uk now", "write to %s now" % R),
            ("user@localhost. a@b. @handle x@ @", "%s. %s. @handle x@ @" % (R, R)),
            ("https://x.example/p?email=bob@example.com&x=1", "https://x.example/p?email=%s&x=1" % R),
            ('"\\nbob@x.org" "\\u00e9bob@x.org" "a\\u0040b.org"', '"\\n%s" "\\u00e9%s" "a\\u0040b.org"' % (R, R)),
            ("..lead@example.com.", "..%s." % R),
            # international numbers
            ('["+4915112345678", "+1 (415) 555-0100"]', '["%s", "%s"]' % (R, R)),
            ("call +44 (0)20 7946-0018.", "call %s." % R),
            ("+123456 is short; a+1234567 and T+12345678 are not numbers", None),
            # national numbers: from 0 or (, spaced or parenthesised, 9+ digits
            ("06 12 34 56 78, (020) 7946 0018; 020 7946 0018 020 7946 0019", "%s, %s; %s" % (R, R, R)),
            ("(415) 555-0100 or 0151 12345678", "%s or %s" % (R, R)),
            ("415 555 0100", None),   # not from 0 or (: documented as not recognised
            ("tel:020 7946 0018", None),
            ("1.020 7946 0018 v2 020 7946 0018x", None),
            # not addresses: ids, dates, times, amounts, timestamps, numbers without spaces
            ('{"recipients": ["m-1", "cust-0612345678", "555-123-4567", "a.b_c:d-e"]}', None),
            ("2026-12-06 10:00 and 2026-12-06T10:00:00Z and 1765000000 and 3.14159 and 0201234567", None),
            ("t-42 2026-12-06, 42 2026-12-06 2026-12-07, 0.5 1765000000 120", None),
            ("20 % off 12 items 3 days", None),
            ("", None),
        ]
        e.r.xgroup_create("t:jobs", "g", id="0", mkstream=True)
        for text, want in cases:
            with self.subTest(text=text):
                eid = e.r.xadd("t:jobs", {"job": text, "note": text})
                e.r.xreadgroup("g", "c", {"t:jobs": ">"})
                did = e.r.eval(src, 2, "t:jobs", "t:dead", "g", eid, "refused", text)
                d = e.r.xrange("t:dead", did, did)[0][1]
                self.assertEqual(d["entry"], text if want is None else want)
                self.assertEqual(d["field:note"], d["entry"])
                self.assertEqual("redacted" in d, want is not None)
                self.assertEqual(e.r.xrange("t:jobs", eid, eid), [])


if __name__ == "__main__":
    harness.main()
