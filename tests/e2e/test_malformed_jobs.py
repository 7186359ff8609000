"""Malformed jobs pushed raw with XADD (as a marketing system would) go to
herald:dead with a clear error and the original entry, are acked, and do not
stop the daemon: the good job behind them is delivered. heraldctl enqueue
refuses the same files with exit 1 and the same message, adding nothing.
A dead letter keeps every field the entry arrived with, whatever its name
(a job sent under a misspelt field name is not lost), and every dead letter
matches docs/schemas/dead-letter.schema.json."""

import json
import os
import sys

import jsonschema

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402

SCHEMAS = os.path.join(harness.ROOT, "docs", "schemas")
MARK = "e2e-bad-job-body-text"   # in every bad job's content; must never reach the log


def bad_jobs():
    """[(name, text, words one of which the error must mention)]"""
    base = job("bad", recipients=["m-1"], channels=["email"])
    base["content"]["email"]["text"] = MARK + " {{first_name}}"
    out = []

    out.append(("invalid JSON", '{"id": "bad-json", "topic": "promotions", "channels": ["email", ' + MARK,
                ["json"]))

    j = dict(base)
    del j["id"]
    out.append(("missing id", json.dumps(j), ["id"]))

    j = dict(base, id="bad-channel", channels=["email", "fax"])
    out.append(("unknown channel", json.dumps(j), ["channels: unknown channel"]))

    j = dict(base, id="bad-both", recipients_key="herald:lists:both")
    out.append(("recipients and recipients_key", json.dumps(j), ["recipients_key"]))

    j = dict(base, id="bad-time", expires_at="next tuesday")
    out.append(("bad timestamp", json.dumps(j), ["expires_at"]))

    j = json.loads(json.dumps(base))
    j["id"] = "bad-huge"
    j["content"]["email"]["html"] = "<p>" + "x" * (300 * 1024) + "</p>"
    text = json.dumps(j)
    assert len(text) > 256 * 1024
    out.append(("oversized", text, ["byte", "limit", "large", "size", "256", "262144"]))
    return out


def dead_letter_schema():
    with open(os.path.join(SCHEMAS, "dead-letter.schema.json")) as f:
        return jsonschema.Draft202012Validator(json.load(f))


class MalformedJobs(harness.HeraldTestCase):

    def setUp(self):
        self.e = self.env()
        self.e.secrets.add(MARK)
        self.e.import_people([person("m-1", email="mo.malformed@example.com", channels=["email"],
                                     consent=["email"], first_name="Mo")])
        self.h = self.e.start_herald()

    def test_dead_letters_and_the_daemon_goes_on(self):
        e, h = self.e, self.h
        bad = bad_jobs()
        for _, text, _ in bad:
            e.xadd_job(text)
        e.r.xadd("herald:jobs", {"payload": "no job field"})
        good = job("good-after-bad", recipients=["m-1"], channels=["email"])
        e.remember_job(good)
        e.xadd_job(json.dumps(good))

        c = e.wait_campaign_done("good-after-bad", herald=h)
        self.assertEqual(c["sent"], 1)
        self.assertEqual(sorted(e.outbox_files("good-after-bad")), ["m-1.email.json"])

        dead = harness.wait_for("%d dead letters" % (len(bad) + 1),
                                lambda: (lambda d: d if len(d) >= len(bad) + 1 else None)(e.dead()), 10)
        self.assertEqual(len(dead), len(bad) + 1, "one dead letter per bad entry, nothing else")
        for (name, text, words), d in zip(bad, dead):
            with self.subTest(job=name):
                self.assertIn("error", d)
                self.assertIn("entry", d)
                self.assertEqual(d["entry"], text, "the dead letter keeps the original entry")
                err = d["error"]
                self.assertGreater(len(err), 10, "a clear error sentence: %r" % err)
                self.assertTrue(any(w in err.lower() for w in words),
                                "error %r should mention one of %r" % (err, words))
        with self.subTest(job="no job field"):
            self.assertIn("job", dead[-1]["error"].lower())
            self.assertEqual(dead[-1]["field:payload"], "no job field", "the entry's fields are kept")
        schema = dead_letter_schema()
        for d in dead:
            self.assertEqual(list(schema.iter_errors(d)), [], "a dead letter that does not match its schema")

        harness.wait_for("every entry acked", lambda: e.pending() == 0, 10)
        self.assertTrue(h.running())
        self.assertEqual(h.healthz()[0], 200)
        # none of the bad ids produced audit records or output
        for cid in ("bad-channel", "bad-both", "bad-time", "bad-huge"):
            self.assertEqual(e.audit(cid), [], cid)
            self.assertEqual(e.outbox_files(cid), {}, cid)
        self.assertEqual(h.stop(), 0)

        # heraldctl enqueue refuses each bad file with the same message, adding nothing
        dead_by_text = {d["entry"]: d["error"] for d in dead}
        length = e.r.xlen("herald:jobs")
        for i, (name, text, _) in enumerate(bad):
            with self.subTest(enqueue=name):
                path = e.write("bad-%d.json" % i, text)
                res = e.ctl("enqueue", path)
                self.assertEqual(res.returncode, 1, res.stderr)
                self.assertEqual(res.stdout, "")
                self.assertEqual(res.stderr.strip(), "%s: %s" % (path, dead_by_text[text]))
        self.assertEqual(e.r.xlen("herald:jobs"), length, "a refused enqueue adds nothing")

    def test_dead_letters_keep_every_field(self):
        """A job under a misspelt field name, binary values, extra fields next
        to a bad job: the dead letter holds each field byte for byte."""
        e, h = self.e, self.h
        good = job("misnamed", recipients=["m-1"], channels=["email"])
        good["content"]["email"]["text"] = MARK + " {{first_name}}"
        text = json.dumps(good)
        raw = redis_bytes(e)
        misnamed = raw.xadd("herald:jobs", {"jobs": text.encode()})
        binary = raw.xadd("herald:jobs", {"Job": b"\x00\xff\xfe" + text.encode(), "source": b"crm\x00nightly"})
        extra = raw.xadd("herald:jobs", {"job": b'{"id": "x"}', "trace": b"t-1", "": b"empty name"})
        many = raw.xadd("herald:jobs", {"f%04d" % i: str(i) for i in range(1500)})
        harness.wait_for("4 dead letters", lambda: raw.xlen("herald:dead") >= 4 or None, 10)
        dead = {d[b"job_entry"].decode(): d for _, d in raw.xrange("herald:dead")}
        self.assertEqual(sorted(dead), sorted(x.decode() for x in (misnamed, binary, extra, many)))
        d = dead[many.decode()]
        copied = [k for k in d if k.startswith(b"field:")]
        self.assertEqual((len(copied), d[b"fields_omitted"]), (1000, b"500"), "at most 1000 fields copied")
        self.assertEqual(d[b"field:f0999"], b"999")
        d = dead[misnamed.decode()]
        self.assertEqual(d[b"field:jobs"], text.encode(), "the job sent as `jobs` is kept whole")
        self.assertEqual(d[b"entry"], b"")
        self.assertIn(b"no `job` field", d[b"error"])
        d = dead[binary.decode()]
        self.assertEqual((d[b"field:Job"], d[b"field:source"]), (b"\x00\xff\xfe" + text.encode(), b"crm\x00nightly"))
        d = dead[extra.decode()]
        self.assertEqual((d[b"entry"], d[b"field:trace"], d[b"field:"]), (b'{"id": "x"}', b"t-1", b"empty name"))
        self.assertNotIn(b"field:job", d, "the job field is the entry, not copied twice")
        schema = dead_letter_schema()
        for entry in (misnamed, extra, many):   # the UTF-8 ones (JSON Schema validates text)
            fields = {k.decode(): v.decode() for k, v in dead[entry.decode()].items()}
            self.assertEqual(list(schema.iter_errors(fields)), [])
        harness.wait_for("every entry acked", lambda: e.pending() == 0, 10)
        self.assertEqual(e.audit("misnamed"), [], "a dead-lettered job sends nothing")
        self.assertTrue(h.running())
        self.assertEqual(h.stop(), 0)


def redis_bytes(e):
    import redis
    c = redis.Redis(host="127.0.0.1", port=e.redis.port, socket_timeout=10)
    return c


if __name__ == "__main__":
    harness.main()
