"""A person's hash stays compact: Redis keeps a hash as a listpack only
while every field and value is at most 64 bytes (hash-max-listpack-value);
one longer value turns it into a hashtable for good, about twice the
memory. The once-only records ("c:<campaign>") and the history entries
("h<slot>") herald writes per campaign stay within that with a campaign id
of 32 characters, whatever the outcome: sent, failed, suppressed (no
consent, the suppression list, a topic opted out of, no address), deferred
for quiet hours, a duplicate in the job. What the API and the pages show
is the same as before: the outcomes, and each person's history with the
campaign's topic and its display name in the person's language (kept once
in the campaign's hash, not in every entry). Records and entries written
before the codes read as they did."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import job, person  # noqa: E402
from test_prefpage import http, make_token  # noqa: E402

CID = "spring-sale-2026-newsletter-de-1"   # 32 characters
NAMES = {"en": "Spring sale", "ko": "봄 세일", "default": "en"}


def window_all_hour():
    """A UTC quiet-hours window holding now for at least an hour."""
    hm = lambda t: time.strftime("%H:%M", time.gmtime(t))  # noqa: E731
    now = time.time()
    return "%s-%s" % (hm(now - 600), hm(now + 7200))


class CompactPerson(harness.HeraldTestCase):

    def test_every_outcome_keeps_the_person_hash_a_listpack(self):
        self.assertEqual(len(CID), 32)
        # The webhook refuses the first email (failed) and takes the rest.
        srv = FaultServer([{"status": 400}, {"status": 202}])
        self.addCleanup(srv.stop)
        e = self.env(log_level="info")
        conf = e.hook_config(srv.url)
        people = [
            person("oc-ko", email="ko.compact@example.com", channels=["email"], consent=["email"]),
            person("oc-en", email="en.compact@example.com", channels=["email"], consent=["email"]),
            person("oc-dup", email="dup.compact@example.com", channels=["email"], consent=["email"]),
            person("oc-nocons", email="nocons.compact@example.com", channels=["email"]),
            person("oc-noaddr", channels=["email"], consent=["email"]),
            person("oc-supp", email="supp.compact@example.com", channels=["email"], consent=["email"]),
            person("oc-opt", email="opt.compact@example.com", channels=["email"], consent=["email"],
                   topics={"promotions": False}),
            person("oc-quiet", phone="+15550100777", channels=["sms"], consent=["sms"]),
        ]
        people[0]["locale"] = "ko"
        del people[2]["locale"]          # no language: the default name
        del people[6]["locale"]          # (the profile's JSON, with topics, stays within 64 bytes)
        e.import_people(people)
        e.suppress("email", "supp.compact@example.com")
        # Written before the codes: an old record and an old history entry.
        e.r.hset("herald:r:{oc-old}", mapping={
            "rev": 1, "hn": 1,
            "c:old-campaign": "suppressed 1733493245123-0 0123456789abcdef.1 1733493245 email/no_consent",
            "h0": "1|1733493245|old-campaign|email|news|suppressed|no_consent||Old name"})
        e.r.hset("herald:r:{oc-old}", "profile", e.r.hget("herald:r:{oc-en}", "profile"))

        base = "http://127.0.0.1:%d" % e.public_port
        h = e.start_herald(config=conf, sets=["quiet_hours.sms=%s" % window_all_hour(), "public.public_url=%s" % base])
        j = job(CID, recipients=[p["id"] for p in people if p["id"] != "oc-quiet"], channels=["email", "sms"])
        j["display_name"] = NAMES
        first = e.enqueue(j)
        e.wait_campaign_done(CID, herald=h, timeout=60)
        audit = e.audit(CID)
        got = {r["recipient"]: (r["outcome"], r["reason"]) for r in audit}
        sends = sorted(got.pop(p) for p in ("oc-ko", "oc-en", "oc-dup"))
        self.assertEqual(sends, [("failed", "provider_rejected"), ("sent", ""), ("sent", "")])
        self.assertEqual(got, {"oc-nocons": ("suppressed", "no_consent"), "oc-noaddr": ("suppressed", "no_address"),
                               "oc-supp": ("suppressed", "suppressed"), "oc-opt": ("suppressed", "topic_opt_out")})
        # Run 2 of the id: one it reached (a duplicate, its record kept), and
        # one in their quiet hours (deferred: the run waits for them).
        reached = next(r["recipient"] for r in audit if r["outcome"] == "sent")
        j2 = dict(j, recipients=[reached, "oc-quiet"], rerun=True)
        second = e.enqueue(j2, name="job-2.json")
        harness.wait_for("run 2's decisions", lambda: len(e.audit(CID)) == len(audit) + 2 or None, 60)
        audit = e.audit(CID)
        got = {r["recipient"]: (r["outcome"], r["reason"]) for r in audit[-2:]}
        self.assertEqual(got, {reached: ("suppressed", "duplicate"), "oc-quiet": ("deferred", "quiet_hours")})
        entry = {p["id"]: first for p in people}
        entry["oc-quiet"] = second

        # Every person hash a listpack, each field and value at most 64 bytes.
        for p in people:
            key = "herald:r:{%s}" % p["id"]
            long_ = {f: v for f, v in e.rb.hgetall(key).items() if len(f) > 64 or len(v) > 64}
            self.assertFalse(long_, repr(long_))
            self.assertEqual(e.r.object("encoding", key), "listpack", p["id"])

        # GET /v1/recipients/{id}: the history says what the audit says, with
        # the topic and the campaign's name in the person's language.
        want_name = {"oc-ko": "봄 세일"}   # the others: English, or no language (the default)
        for p in people:
            status, doc = e.api("GET", "/v1/recipients/" + p["id"])
            self.assertEqual(status, 200, doc)
            mine = [m for m in doc["messages"] if m["campaign"] == CID]
            recs = [r for r in audit if r["recipient"] == p["id"]]
            self.assertEqual(len(mine), len(recs), p["id"])
            for m in mine:
                self.assertEqual((m["topic"], m["campaign_name"]),
                                 ("promotions", want_name.get(p["id"], "Spring sale")), p["id"])
            self.assertEqual(sorted((m["channel"], m["outcome"], m["reason"], m["provider"]) for m in mine),
                             sorted((r["channel"], r["outcome"], r["reason"], r["provider"]) for r in recs),
                             p["id"])
        # The entries written before the codes read as they did.
        status, doc = e.api("GET", "/v1/recipients/oc-old")
        self.assertEqual(doc["messages"], [{"campaign": "old-campaign", "channel": "email", "topic": "news",
                                            "outcome": "suppressed", "reason": "no_consent", "provider": "",
                                            "campaign_name": "Old name", "at": "2024-12-06T13:54:05Z"}])

        # The outcomes API (run 2's recipients): each person's record says
        # what the audit says (the duplicate left the first run's record).
        status, page = e.api("GET", "/v1/campaigns/%s/outcomes?limit=100" % CID)
        self.assertEqual(status, 200, page)
        by = {r["recipient"]: r for r in page["items"]}
        self.assertEqual(sorted(by), sorted([reached, "oc-quiet"]))
        for rid, r in by.items():
            a = [x for x in audit if x["recipient"] == rid and x["reason"] != "duplicate"][-1]
            self.assertEqual((r["outcome"], r["reason"] or "", r["channel"], r["entry"]),
                             (a["outcome"], a["reason"], a["channel"], entry[rid]), rid)
        # Every record, as explain reads it.
        for p in people:
            rec = e.r.hget("herald:r:{%s}" % p["id"], "c:" + CID)
            a = [x for x in audit if x["recipient"] == p["id"] and x["reason"] != "duplicate"][-1]
            self.assertEqual(harness.record_state(rec), a["outcome"], p["id"])
            x = json.loads(e.ctl_ok("explain", CID, p["id"], "--json").stdout)["recorded"]
            self.assertEqual(x["record"]["state"], a["outcome"], p["id"])
            self.assertEqual({(m["topic"], m.get("campaign_name")) for m in x["history"]},
                             {("promotions", want_name.get(p["id"], "Spring sale"))}, p["id"])

        # The preference page: the campaign by its name in the person's language.
        for pid, name in (("oc-ko", "봄 세일"), ("oc-nocons", "Spring sale"), ("oc-dup", "Spring sale")):
            tok = make_token("p", pid, CID, "promotions", "email", int(time.time()) + 3600)
            status, _, html = http("GET", "%s/p/%s" % (base, tok))
            self.assertEqual(status, 200)
            self.assertIn(name, html, pid)
        h.stop()


if __name__ == "__main__":
    harness.main()
