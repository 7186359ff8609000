"""A campaign over people covering every decision: who gets what, on which
channel, with which reason; the messages the outbox wrote; the job acked."""

import html
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402

NAME = "Zoe & <Ann>"   # must be HTML-escaped in html, raw in subject and text

PEOPLE = [
    # sent by email, their first choice
    person("p-email", email="zoe.email@example.com", phone="+15550100001", channels=["email", "sms"],
           consent=["email", "sms"], first_name=NAME),
    # no email consent: email skipped, sms (second choice) sent
    person("p-sms2", email="sam.sms2@example.com", phone="+15550100002", channels=["email", "sms"],
           consent=["sms"], first_name="Sam"),
    # prefers sms first, both consented
    person("p-smsfirst", email="sue.smsfirst@example.com", phone="+15550100003", channels=["sms", "email"],
           consent=["email", "sms"], first_name="Sue"),
    # no consent at all: reason of the first channel
    person("p-noconsent", email="nina.noconsent@example.com", phone="+15550100004", channels=["email", "sms"],
           first_name="Nina"),
    # consented for email, no address
    person("p-noaddr", channels=["email"], consent=["email"], first_name="Noah"),
    # opted out of the topic
    person("p-optout", email="otto.optout@example.com", channels=["email"], consent=["email"],
           topics={"promotions": False}, first_name="Otto"),
    # consented, but the address is on the suppression list
    person("p-supp", email="sid.suppressed@example.com", channels=["email"], consent=["email"], first_name="Sid"),
    # consented for email, but wants email only: the sms-only campaign has no channel for them
    person("p-nochannel", email="nat.nochannel@example.com", phone="+15550100008", channels=["email"],
           consent=["email", "sms"], first_name="Nat"),
]

EXPECT = {  # recipient: (outcome, reason, channels accepted in the audit record)
    "p-email": ("sent", "", {"email"}),
    "p-sms2": ("sent", "", {"sms"}),
    "p-smsfirst": ("sent", "", {"sms"}),
    # "if none remains the reason of the first is recorded": the first channel tried
    "p-noconsent": ("suppressed", "no_consent", {"email"}),
    "p-noaddr": ("suppressed", "no_address", {"email"}),
    "p-optout": ("suppressed", "topic_opt_out", {"", "email"}),
    "p-supp": ("suppressed", "suppressed", {"email"}),
    "ghost-1": ("suppressed", "unknown_recipient", {""}),
}
PHONES = {p["id"]: p.get("phone") for p in PEOPLE}
EMAILS = {p["id"]: p.get("email") for p in PEOPLE}


class MixedCampaign(harness.HeraldTestCase):

    def setUp(self):
        self.e = self.env()
        self.e.secrets.add(NAME)   # personal data from attributes stays out of the log too
        self.e.import_people(PEOPLE)
        self.e.suppress("email", "sid.suppressed@example.com")
        self.h = self.e.start_herald()

    def test_every_reason(self):
        e = self.e
        ids = list(EXPECT)
        e.enqueue(job("mixed-1", recipients=ids))
        e.enqueue(job("mixed-sms-only", recipients=["p-nochannel"], channels=["sms"]))
        c = e.wait_campaign_done("mixed-1", herald=self.h)
        c2 = e.wait_campaign_done("mixed-sms-only", herald=self.h)

        # audit: exactly one terminal record each, right outcome, reason, channel
        recs = self.assertOneTerminalEach(e.audit("mixed-1"), ids)
        got = {rid: (r["outcome"], r["reason"], r["channel"]) for rid, r in recs.items()}
        for rid, (outcome, reason, channels) in EXPECT.items():
            with self.subTest(recipient=rid):
                self.assertEqual(got[rid][:2], (outcome, reason), "audit record %r" % recs[rid])
                self.assertIn(got[rid][2], channels, "channel of %r" % recs[rid])
        for rid, r in recs.items():
            with self.subTest(recipient=rid, check="audit fields"):
                self.assertRegex(r["at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
                if r["outcome"] == "sent":
                    self.assertEqual(r["provider"], "outbox")
                    self.assertNotEqual(r["provider_id"], "")
                for v in r.values():   # no address or number in audit records either
                    self.assertNotIn("@", v)
                    self.assertNotIn("+1555", v)

        recs2 = self.assertOneTerminalEach(e.audit("mixed-sms-only"), ["p-nochannel"])
        self.assertEqual((recs2["p-nochannel"]["outcome"], recs2["p-nochannel"]["reason"]), ("suppressed", "no_channel"))

        # campaign progress as heraldctl reports it
        self.assertEqual(c["id"], "mixed-1")
        self.assertEqual(c["total"], len(ids))
        self.assertEqual(c["sent"], 3)
        self.assertEqual(c["suppressed"], {"no_consent": 1, "no_address": 1, "topic_opt_out": 1, "suppressed": 1,
                                           "unknown_recipient": 1})
        self.assertEqual(c["failed"], {})
        self.assertEqual(c["deferred"], 0)
        self.assertEqual(c["unknown"], 0)
        self.assertEqual((c2["total"], c2["sent"], c2["suppressed"]), (1, 0, {"no_channel": 1}))

        # the outbox: one file per sent message, nothing else
        files = e.outbox_json("mixed-1")
        self.assertEqual(sorted(files), ["p-email.email.json", "p-sms2.sms.json", "p-smsfirst.sms.json"])
        self.assertEqual(e.outbox_files("mixed-sms-only"), {})

        m = files["p-email.email.json"]
        self.assertEqual(m["campaign"], "mixed-1")
        self.assertEqual(m["recipient"], "p-email")
        self.assertEqual(m["channel"], "email")
        self.assertEqual(m["topic"], "promotions")
        self.assertEqual(m["to"], EMAILS["p-email"])
        self.assertEqual(m["subject"], "Hello %s, the e2e sale starts now" % NAME)
        # a missing field ({{last_name}}) renders empty
        self.assertTrue(m["text"].startswith("Dear %s , this e2e body text is for you." % NAME), m["text"])
        self.assertIn("<p>Dear %s, this e2e html body is for you.</p>" % html.escape(NAME, quote=False), m["html"])
        self.assertNotIn(NAME, m["html"])

        for name, rid in (("p-sms2.sms.json", "p-sms2"), ("p-smsfirst.sms.json", "p-smsfirst")):
            s = files[name]
            self.assertEqual((s["campaign"], s["recipient"], s["channel"], s["topic"], s["to"]),
                             ("mixed-1", rid, "sms", "promotions", PHONES[rid]))
            first = [p for p in PEOPLE if p["id"] == rid][0]["attributes"]["first_name"]
            self.assertTrue(s["text"].startswith("Hi %s, this e2e sms body text is for you." % first), s["text"])
            self.assertNotIn("subject", {k for k, v in s.items() if v})

        # the job is acknowledged; herald is still healthy
        self.assertEqual(e.pending(), 0)
        self.assertTrue(self.h.running())
        code, body = self.h.healthz()
        self.assertEqual((code, body.get("status")), (200, "ok"))

        # ... and stops cleanly
        self.assertEqual(self.h.stop(), 0)

    def test_reenqueue_is_once_only(self):
        e = self.e
        e.enqueue(job("mixed-again", recipients=["p-email", "p-sms2", "ghost-1"]))
        e.wait_campaign_done("mixed-again", herald=self.h)
        # A finished id runs again only when the job says so ...
        again = job("mixed-again", recipients=["p-email", "p-sms2", "ghost-1"])
        res = e.ctl("enqueue", e.write("again.json", json.dumps(again)))
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn('campaign mixed-again: run 1 has finished; to run it again, say "rerun": true', res.stderr)
        # ... and its second run reaches nobody the first one reached.
        e.enqueue(job("mixed-again", recipients=["p-email", "p-sms2", "ghost-1"], rerun=True))

        def second_run_done():
            recs = e.audit("mixed-again")
            return len([r for r in recs if r["outcome"] in harness.TERMINAL]) >= 6 and recs
        recs = harness.wait_for("the second run's audit records", second_run_done, 30)
        by = {}
        for r in recs:
            by.setdefault(r["recipient"], []).append((r["outcome"], r["reason"]))
        self.assertEqual(by["p-email"], [("sent", ""), ("suppressed", "duplicate")])
        self.assertEqual(by["p-sms2"], [("sent", ""), ("suppressed", "duplicate")])
        self.assertEqual(by["ghost-1"], [("suppressed", "unknown_recipient")] * 2)
        self.assertEqual(sorted(e.outbox_files("mixed-again")), ["p-email.email.json", "p-sms2.sms.json"])
        harness.wait_for("both jobs acked", lambda: e.pending() == 0, 10)
        self.assertEqual(self.h.stop(), 0)

    def test_logs_are_private_even_at_debug(self):
        # the env runs herald with log_level = debug; teardown greps every log
        e = self.e
        e.enqueue(job("mixed-private", recipients=list(EXPECT)))
        e.wait_campaign_done("mixed-private", herald=self.h)
        self.assertEqual(self.h.stop(), 0)
        log = self.h.log()
        self.assertIn("mixed-private", log, "the log should name the campaign (ids are fine)")
        for p in PEOPLE:
            for secret in (p.get("email"), p.get("phone")):
                if secret:
                    self.assertNotIn(secret, log)
        self.assertNotIn("e2e body text", log)
        self.assertNotIn("e2e sms body", log)
        self.assertNotIn("the e2e sale starts now", log)


if __name__ == "__main__":
    harness.main()
