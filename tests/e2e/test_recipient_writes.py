"""Safe profile writes, the suppression API and lookup by address, against a
real daemon and redis-server, every request through the Prism proxy check
of docs/openapi.yaml (but the few sent against the contract on purpose):

- a PUT from the marketing system's sync, naming no preferences, keeps the
  person's topic opt-out, quiet hours, frequency and channel order, and a
  promotions campaign afterwards is still refused (topic_opt_out);
- ETag on GET, If-Match on PUT, both PATCHes and DELETE: stale or weak tags
  and "*" on nobody give 412 with nothing changed; parallel writers holding
  one ETag: exactly one wins (the check is atomic with the write);
- PATCH /v1/recipients/{id} as JSON Merge Patch: merges, null removes,
  addresses move in herald:addr, validation and errors as PUT, 415 for any
  other media type;
- GET /v1/recipients?email=|phone= finds the person through herald:addr
  (normalised; no scan command reaches Redis);
- GET/PUT/DELETE /v1/suppressions/{channel}/{address}: since, by, reason;
  a second PUT keeps the first; the owner's rev moves; every change is in
  herald:admin with the address hash, never the address; the send path
  still refuses the address; heraldctl suppress records itself too;
- a template's {{field|default}} reaches the provider for a person without
  the field.
No answer quotes an address; no herald log line holds one (harness)."""

import concurrent.futures
import hashlib
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job  # noqa: E402

TOKEN = "e2e-admin-token-0123456789"   # harness.BASE_CONFIG
MERGE = "application/merge-patch+json"


class Api:
    def __init__(self, env):
        self.env = env

    def call(self, method, path, body=None, raw=None, ctype="application/json", headers=None, token=TOKEN,
             direct=False):
        """(status, parsed JSON body, response headers)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.env.api_url(direct) + path, data=data, method=method)
        if token is not None:
            req.add_header("Authorization", "Bearer " + token)
        if data is not None and ctype:
            req.add_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                text, status, hdrs = resp.read(), resp.status, resp.headers
        except urllib.error.HTTPError as err:
            text, status, hdrs = err.read(), err.code, err.headers
        try:
            doc = json.loads(text) if text else None
        except ValueError:
            doc = text
        return status, doc, hdrs

    def ok(self, method, path, body=None, want=200, **kw):
        status, doc, hdrs = self.call(method, path, body, **kw)
        assert status == want, "%s %s: %d %r (wanted %d)" % (method, path, status, doc, want)
        return doc, hdrs

    def etag(self, rid):
        return self.ok("GET", "/v1/recipients/" + rid)[1]["ETag"]


def ann(**over):
    p = {"id": "ann", "email": "ann.writes@example.com", "phone": "+15550199077", "tz": "UTC", "locale": "en",
         "attributes": {"first_name": "Ann", "plan": "gold"}, "channels": ["email", "sms"],
         "topics": {"promotions": True}}
    p.update(over)
    return p


def member(channel, normalised):
    return harness.index_member(channel, normalised)


class RecipientWrites(harness.HeraldTestCase):

    def snapshot(self, e):
        """Everything herald keeps about people and the suppression list."""
        out = {}
        r = e.rb   # the keyed indexes hold binary members
        for k in sorted(r.keys("herald:*")):
            # Not about people: the streams, the campaigns, and the providers'
            # shared rate buckets (a campaign's last messages may still move them).
            if k in (b"herald:jobs", b"herald:audit", b"herald:events") or k.startswith(
                    (b"herald:campaign:", b"herald:limit:")):
                continue
            t = r.type(k)
            out[k] = (t, r.hgetall(k) if t == b"hash" else r.lrange(k, 0, -1) if t == b"list"
                      else sorted(r.smembers(k)) if t == b"set" else r.xlen(k) if t == b"stream" else None)
        return out

    def assert_error(self, status, doc, want, says, e):
        self.assertEqual(status, want, doc)
        self.assertIsInstance(doc, dict)
        self.assertIn(says, doc["error"])
        for s in e.secrets:
            self.assertNotIn(s.lower(), doc["error"].lower(), "an error quotes an address")

    def test_put_keeps_preferences_and_if_match(self):
        e = self.env()
        e.remember(ann())
        e.remember(ann(email="ann.moved@example.com"))
        h = e.start_herald()
        api = Api(e)

        doc, hdrs = api.ok("PUT", "/v1/recipients/ann", ann(), want=201)
        self.assertEqual(doc, {"id": "ann", "created": True, "tombstoned": []})
        self.assertRegex(hdrs["ETag"], r'^"[0-9]+"$')
        self.assertEqual(hdrs["ETag"], api.etag("ann"), "PUT's ETag is the one GET gives")
        api.ok("POST", "/v1/recipients/ann/consent", {"channel": "email", "granted": True, "source": "signup"},
               want=201)
        # The person, on the preference page: no promotions, quiet hours, a limit, sms first.
        prefs, hdrs = api.ok("PATCH", "/v1/recipients/ann/preferences",
                             {"topics": {"promotions": False, "news": True}, "quiet_hours": "22:00-07:00",
                              "frequency": {"email": "2/7d"}, "channels": ["sms", "email"]})
        self.assertEqual(hdrs["ETag"], api.etag("ann"))
        # The nightly CRM sync: only what the CRM knows, a new first name.
        crm = {"email": "ann.writes@example.com", "phone": "+15550199077", "tz": "UTC", "locale": "en",
               "attributes": {"first_name": "Annie"}}
        doc, _ = api.ok("PUT", "/v1/recipients/ann", crm)
        self.assertFalse(doc["created"])
        got, _ = api.ok("GET", "/v1/recipients/ann")
        self.assertEqual(got["preferences"], prefs, "a profile PUT changed the person's preferences")
        self.assertEqual(got["preferences"]["topics"], {"promotions": False, "news": True})
        self.assertEqual(got["profile"]["attributes"], {"first_name": "Annie"}, "profile keys are replaced")
        # ...and the opt-out still holds for a promotions campaign.
        e.enqueue(job("w-promo", recipients=["ann"], channels=["email"]))
        e.wait_campaign_done("w-promo", herald=h)
        self.assertEqual([(r["outcome"], r["reason"]) for r in e.audit("w-promo")], [("suppressed", "topic_opt_out")])
        # A PUT that names a preference replaces that one only.
        api.ok("PUT", "/v1/recipients/ann", dict(crm, topics={"sports": True}))
        got, _ = api.ok("GET", "/v1/recipients/ann")
        self.assertEqual(got["preferences"], dict(prefs, topics={"sports": True}))

        # If-Match: a stale tag, a weak tag, a tag of another form: 412, nothing changed.
        tag = api.etag("ann")
        rev = int(tag.strip('"'))
        before = self.snapshot(e)
        for cond in ('"%d"' % (rev - 1), 'W/"%d"' % rev, '"0%d"' % rev, '"%d", "%d"' % (rev + 1, rev + 2)):
            for method, path, body, ctype in (("PUT", "/v1/recipients/ann", ann(), "application/json"),
                                              ("PATCH", "/v1/recipients/ann", {"locale": "fr"}, MERGE),
                                              ("PATCH", "/v1/recipients/ann/preferences", {"topics": None},
                                               "application/json"),
                                              ("DELETE", "/v1/recipients/ann", None, None)):
                status, doc, _ = api.call(method, path, body, ctype=ctype, headers={"If-Match": cond})
                self.assert_error(status, doc, 412, "If-Match", e)
        self.assertEqual(self.snapshot(e), before, "a 412 changed something")
        # Malformed: 400 (direct: the document cannot describe a bad header's grammar).
        for cond in ("7", '"7" "8"', '*, "7"', '"7', ""):
            status, doc, _ = api.call("PUT", "/v1/recipients/ann", ann(), headers={"If-Match": cond}, direct=True)
            self.assert_error(status, doc, 400, "If-Match", e)
        self.assertEqual(self.snapshot(e), before)
        # The current tag (in a list, too) and "*" go through; each answer names the new version.
        doc, hdrs = api.ok("PUT", "/v1/recipients/ann", ann(), headers={"If-Match": 'W/"x", "%d"' % rev})
        self.assertEqual(hdrs["ETag"], '"%d"' % (rev + 1))
        _, hdrs = api.ok("PATCH", "/v1/recipients/ann", {"locale": "fr"}, ctype=MERGE, headers={"If-Match": "*"})
        self.assertEqual(hdrs["ETag"], '"%d"' % (rev + 2))
        _, hdrs = api.ok("PATCH", "/v1/recipients/ann/preferences", {"quiet_hours": None},
                         headers={"If-Match": hdrs["ETag"]})
        self.assertEqual(hdrs["ETag"], '"%d"' % (rev + 3))
        # "*" needs a person: a conditional PUT creates nobody.
        for method, body, ctype in (("PUT", ann(id="nobody"), "application/json"), ("PATCH", {"locale": "de"}, MERGE),
                                    ("DELETE", None, None)):
            status, doc, _ = api.call(method, "/v1/recipients/nobody", body, ctype=ctype, headers={"If-Match": "*"})
            self.assert_error(status, doc, 412, "If-Match", e)
        self.assertFalse(e.r.exists("herald:r:{nobody}"))
        # Without If-Match a write is unconditional, as before.
        nobody = ann(id="nobody", email="ann.moved@example.com")
        del nobody["phone"]
        api.ok("PUT", "/v1/recipients/nobody", nobody, want=201)
        api.ok("DELETE", "/v1/recipients/nobody")

        # Read-modify-write race: eight writers hold one ETag; exactly one wins.
        tag = api.etag("ann")

        def write(i):
            return Api(e).call("PATCH", "/v1/recipients/ann", {"attributes": {"n": i}}, ctype=MERGE,
                               headers={"If-Match": tag})[0]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            statuses = sorted(pool.map(write, range(8)))
        self.assertEqual(statuses, [200] + [412] * 7)
        self.assertEqual(api.etag("ann"), '"%d"' % (int(tag.strip('"')) + 1))

        # DELETE with the current tag erases.
        api.ok("DELETE", "/v1/recipients/ann", headers={"If-Match": api.etag("ann")})
        self.assertEqual(api.call("GET", "/v1/recipients/ann")[0], 404)
        self.assertEqual(h.stop(), 0)

    def test_merge_patch(self):
        e = self.env()
        e.remember(ann())
        e.remember(ann(email="ann.merged@example.com"))
        e.secrets.add("not-an-address")
        h = e.start_herald()
        api = Api(e)
        api.ok("PUT", "/v1/recipients/ann", ann(topics={"promotions": True, "news": False}), want=201)
        old_email = member("email", "ann.writes@example.com")
        old_phone = member("sms", "+15550199077")
        self.assertEqual(e.index("addr"), {old_email: "ann", old_phone: "ann"})

        doc, hdrs = api.ok("PATCH", "/v1/recipients/ann",
                           {"email": "Ann.Merged@Example.com", "phone": None, "locale": "de-AT",
                            "attributes": {"first_name": "Anna", "plan": None, "age": 41},
                            "topics": {"News": True, "promotions": None}}, ctype=MERGE)
        self.assertEqual(doc, {"id": "ann", "tombstoned": []})
        self.assertEqual(hdrs["ETag"], api.etag("ann"))
        got, _ = api.ok("GET", "/v1/recipients/ann")
        self.assertEqual(got["profile"], {"email": "Ann.Merged@Example.com", "tz": "UTC", "locale": "de-AT",
                                          "attributes": {"first_name": "Anna", "age": 41}})
        self.assertEqual(got["preferences"], {"channels": ["email", "sms"], "topics": {"news": True}})
        self.assertEqual(e.index("addr"), {member("email", "ann.merged@example.com"): "ann"},
                         "the old email and the removed phone left herald:addr, the new email came in")

        # The result is validated as PUT validates it; nothing is written on a refusal.
        before = self.snapshot(e)
        for patch, says in (({"email": "not-an-address"}, "email: not a valid address"),
                            ({"id": "bob"}, "id: does not match"),
                            ({"shoe_size": 42}, "profile: unknown key"),
                            ({"quiet_hours": "25:00-08:00"}, "quiet_hours"),
                            ({"topics": {"News": False, "news": True}}, "topics: a topic is given twice"),
                            ({"frequency": {"email": "often"}}, "frequency.email"),
                            ({"attributes": {"x": [1]}}, "attributes")):
            status, doc, _ = api.call("PATCH", "/v1/recipients/ann", patch, ctype=MERGE, direct=True)
            self.assert_error(status, doc, 400, says, e)
            # The same value in a PUT gives the same error.
            put = dict(ann(), **patch)
            if "topics" not in patch:
                status2, doc2, _ = api.call("PUT", "/v1/recipients/ann", put, direct=True)
                self.assertEqual((status2, doc2), (status, doc))
        for raw in (b"[1]", b'"x"', b"null", b"{", b""):
            status, doc, _ = api.call("PATCH", "/v1/recipients/ann", raw=raw, ctype=MERGE, direct=True)
            self.assert_error(status, doc, 400, "body", e)
        for ctype in ("application/json", "application/json-patch+json", "text/plain", None):
            status, doc, hdrs = api.call("PATCH", "/v1/recipients/ann", {"locale": "fr"}, ctype=ctype, direct=True)
            self.assert_error(status, doc, 415, "merge-patch+json", e)
            self.assertEqual(hdrs["Accept-Patch"], MERGE)
        self.assertEqual(self.snapshot(e), before, "a refused PATCH changed something")
        # id may be named (the path's), or even removed: the path names the person.
        api.ok("PATCH", "/v1/recipients/ann", {"id": "ann", "tz": "Europe/Berlin"}, ctype=MERGE)
        api.ok("PATCH", "/v1/recipients/ann", {"id": None}, ctype=MERGE)
        self.assertEqual(api.ok("GET", "/v1/recipients/ann")[0]["profile"]["tz"], "Europe/Berlin")
        # A media type parameter is fine; an unknown person is 404.
        api.ok("PATCH", "/v1/recipients/ann", {"tz": None}, ctype=MERGE + "; charset=utf-8", direct=True)
        status, doc, _ = api.call("PATCH", "/v1/recipients/ghost", {"tz": "UTC"}, ctype=MERGE)
        self.assert_error(status, doc, 404, "recipient not found", e)
        self.assertFalse(e.r.exists("herald:r:{ghost}"))
        self.assertEqual(h.stop(), 0)

    def test_lookup_by_address(self):
        e = self.env()
        e.remember(ann())
        e.secrets.add("nobody.here@example.com")
        h = e.start_herald()
        api = Api(e)
        api.ok("PUT", "/v1/recipients/ann", ann(), want=201)
        by_id, id_hdrs = api.ok("GET", "/v1/recipients/ann")

        def scans():
            stats = e.r.info("commandstats")
            return {k: v["calls"] for k, v in stats.items()
                    if k in ("cmdstat_scan", "cmdstat_hscan", "cmdstat_sscan", "cmdstat_keys", "cmdstat_hkeys",
                             "cmdstat_hvals")}
        before = scans()
        for query, direct in (("email=ann.writes%40example.com", False), ("email=ANN.Writes@Example.COM", False),
                              ("email=%20ann.writes%40example.com%20", True),
                              ("phone=%2B15550199077", False), ("phone=+15550199077", True)):
            doc, hdrs = api.ok("GET", "/v1/recipients?" + query, direct=direct)
            self.assertEqual(doc, by_id, query)
            self.assertEqual(hdrs["ETag"], id_hdrs["ETag"])
            self.assertEqual(hdrs["Content-Location"], "/v1/recipients/ann")
        self.assertEqual(scans(), before, "the lookup scanned")

        status, doc, _ = api.call("GET", "/v1/recipients?email=nobody.here%40example.com")
        self.assert_error(status, doc, 404, "no recipient has this address", e)
        for query, says in (("", "exactly one of email or phone"),
                            ("email=ann.writes%40example.com&phone=%2B15550199077", "exactly one"),
                            ("email=a%40b.c&email=a%40b.c", "exactly one"),
                            ("id=ann", "unknown parameter"),
                            ("email=nobody.here", "email: not a valid address"),
                            ("phone=5550199", "phone:"),
                            ("email=%zz", "percent-encoding"),
                            ("email=", "email:")):
            status, doc, _ = api.call("GET", "/v1/recipients?" + query, direct=True)
            self.assert_error(status, doc, 400, says, e)
        self.assertEqual(api.call("GET", "/v1/recipients?email=x%40example.com", token=None, direct=True)[0], 401)
        # Erased: no longer found.
        api.ok("DELETE", "/v1/recipients/ann")
        self.assertEqual(api.call("GET", "/v1/recipients?email=ann.writes%40example.com")[0], 404)
        self.assertEqual(h.stop(), 0)

    def test_suppressions(self):
        e = self.env()
        e.remember(ann())
        for a in ("ann.other@example.com", "+15550199088", "ann.ctl@example.com"):
            e.secrets.add(a)
        h = e.start_herald()
        api = Api(e)
        api.ok("PUT", "/v1/recipients/ann", dict(ann(), attributes={}), want=201)
        api.ok("POST", "/v1/recipients/ann/consent", {"channel": "email", "granted": True, "source": "signup"},
               want=201)
        url = "/v1/suppressions/email/ann.writes%40example.com"

        doc, _ = api.ok("GET", url)
        self.assertEqual(doc, {"channel": "email", "suppressed": False, "since": None, "by": None, "reason": None})
        tag = api.etag("ann")
        t0 = time.time()
        doc, _ = api.ok("PUT", "/v1/suppressions/email/ANN.Writes%40EXAMPLE.com", {"reason": "asked by phone"})
        self.assertEqual({k: doc[k] for k in ("channel", "suppressed", "by", "reason", "changed")},
                         {"channel": "email", "suppressed": True, "by": "api", "reason": "asked by phone",
                          "changed": True})
        since = time.mktime(time.strptime(doc["since"], "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
        self.assertLess(abs(since - t0), 30)
        self.assertNotEqual(api.etag("ann"), tag, "the owner's version moved")
        got, _ = api.ok("GET", url)
        self.assertEqual(got, {k: doc[k] for k in got})
        self.assertTrue(api.ok("GET", "/v1/recipients/ann")[0]["suppressed"]["email"])
        # A second PUT keeps the first reason and time; nothing new in the admin stream.
        doc2, _ = api.ok("PUT", url, {"reason": "another reason"})
        self.assertEqual((doc2["changed"], doc2["reason"], doc2["since"]), (False, "asked by phone", doc["since"]))
        admin = [f for _, f in e.r.xrange("herald:admin")]
        self.assertEqual(admin, [{"action": "suppress", "channel": "email",
                                  "address_sha256": member("email", "ann.writes@example.com").hex(),
                                  "by": "api", "reason": "asked by phone", "at": doc["since"]}])
        # The send path still refuses the address; a default stands in for the missing first name on sms.
        api.ok("POST", "/v1/recipients/ann/consent", {"channel": "sms", "granted": True, "source": "signup"},
               want=201)
        j = job("w-supp", recipients=["ann"])
        j["content"]["sms"]["text"] = "Hi {{first_name|friend}}, this e2e sms body text is for you."
        e.enqueue(j)
        e.wait_campaign_done("w-supp", herald=h)
        recs = e.audit("w-supp")
        self.assertEqual([(r["channel"], r["outcome"]) for r in recs], [("sms", "sent")],
                         "email is suppressed, so sms (the next channel) carries it")
        sent = list(e.outbox_json("w-supp").values())
        self.assertEqual(len(sent), 1)
        self.assertIn("Hi friend, this e2e sms body", json.dumps(sent[0]))

        # DELETE: off the list, audited; a second DELETE changes nothing.
        doc, _ = api.ok("DELETE", url)
        self.assertEqual(doc, {"channel": "email", "suppressed": False, "since": None, "by": None, "reason": None,
                               "changed": True})
        doc, _ = api.ok("DELETE", url)
        self.assertFalse(doc["changed"])
        self.assertEqual(api.ok("GET", url)[0]["suppressed"], False)
        self.assertFalse(e.is_suppressed("email", "ann.writes@example.com"))
        admin = [f for _, f in e.r.xrange("herald:admin")]
        self.assertEqual([(a["action"], a["by"]) for a in admin], [("suppress", "api"), ("unsuppress", "api")])

        # An address nobody has; sms with a '+' sent as is or encoded.
        api.ok("PUT", "/v1/suppressions/sms/%2B15550199088", {"reason": "complaint"})
        self.assertTrue(api.ok("GET", "/v1/suppressions/sms/+15550199088")[0]["suppressed"])
        # heraldctl records itself.
        e.suppress("email", "ann.ctl@example.com")
        doc, _ = api.ok("GET", "/v1/suppressions/email/ann.ctl%40example.com")
        self.assertEqual((doc["suppressed"], doc["by"], doc["reason"]), (True, "heraldctl", "heraldctl suppress"))
        # An address suppressed before herald kept why: suppressed, since unknown.
        m = member("email", "ann.other@example.com")
        e.rb.sadd(harness.index_shard_key("suppress", m), m)
        doc, _ = api.ok("GET", "/v1/suppressions/email/ann.other%40example.com")
        self.assertEqual(doc, {"channel": "email", "suppressed": True, "since": None, "by": None, "reason": None})
        for a in e.r.xrange("herald:admin"):
            for v in a[1].values():
                self.assertNotIn("@", v)
                self.assertNotIn("+1555", v)

        # Refusals: nothing changes.
        before = self.snapshot(e)
        for method, path, body, want, says in (
                ("GET", "/v1/suppressions/fax/ann.writes%40example.com", None, 400, "channel: unknown channel"),
                ("PUT", "/v1/suppressions/fax/ann.writes%40example.com", {"reason": "x"}, 400, "channel"),
                ("GET", "/v1/suppressions/email/ann.other", None, 400, "email: not a valid address"),
                ("DELETE", "/v1/suppressions/sms/15550199088", None, 400, "phone:"),
                ("PUT", url, {}, 400, "reason: must be a string"),
                ("PUT", url, {"reason": ""}, 400, "reason"),
                ("PUT", url, {"reason": 3}, 400, "reason"),
                ("PUT", url, {"reason": "r" * 129}, 400, "reason"),
                ("PUT", url, {"reason": "bad\u0007bell"}, 400, "reason"),
                ("PUT", url, {"reason": "x", "address": "y"}, 400, "unknown key")):
            status, doc, _ = api.call(method, path, body, direct=True)
            self.assert_error(status, doc, want, says, e)
        status, doc, _ = api.call("PUT", url, raw=b"[1]", direct=True)
        self.assert_error(status, doc, 400, "body", e)
        for method in ("GET", "PUT", "DELETE"):
            status, _, _ = api.call(method, url, {"reason": "x"}, token=None, direct=True)
            self.assertEqual(status, 401)
        self.assertEqual(self.snapshot(e), before, "a refused call changed something")
        self.assertEqual(h.stop(), 0)
        self.assertIn("suppression added by the API channel=email", h.log())


if __name__ == "__main__":
    harness.main()
