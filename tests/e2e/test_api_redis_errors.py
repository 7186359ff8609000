"""Redis refusing the interactive callers: the preference API, the Twilio
webhook and heraldctl, with maxmemory reached (OOM, noeviction) and with an
ACL denial. An error reply is never an answer: the API answers 503 with
{"error": "redis unavailable: <label>"} (the label of store_error_name,
never Redis's own words), with Retry-After: 1 when the error is transient
(oom) and without one when it waits for an operator (noperm); nothing is
changed (the person's data and rev stay as they were), and the same request
succeeds once the cause is lifted. A Twilio STOP refused that way is
answered 503, marks nothing applied, and its redelivery is applied exactly
once, whatever fails (the MessageSid key is set by the consent script
itself, never left behind by a change that failed). heraldctl names the
error class and what to do about it.

Runs with Debian's /usr/bin/python3 (python3-redis)."""

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import person  # noqa: E402
from test_webhooks import sid, sms_params, tw_post, write_config  # noqa: E402

TOKEN = "e2e-admin-token-0123456789"   # harness.BASE_CONFIG


def call(e, method, path, body=None):
    """(status, headers, parsed JSON body or None) of an API call."""
    data = json.dumps(body).encode() if body is not None else None
    # Through the Prism proxy: every answer, the 503s included, checked against docs/openapi.yaml.
    req = urllib.request.Request(e.api_url() + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + TOKEN)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, headers, text = resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as err:
        status, headers, text = err.code, err.headers, err.read()
    return status, headers, json.loads(text) if text else None


def ann(**over):
    p = {"id": "ann", "email": "ann.errors@example.com", "phone": "+15550199101", "tz": "UTC", "locale": "en",
         "channels": ["email", "sms"], "topics": {"promotions": True}}
    p.update(over)
    return p


def oom(e):
    """maxmemory below what Redis uses, nothing evicted: every write is refused."""
    e.r.config_set("maxmemory-policy", "noeviction")
    used = int(e.r.info("memory")["used_memory"])
    e.r.config_set("maxmemory", str(used // 2))


def person_state(e, pid):
    """Everything stored about one person, and the address index."""
    k = "herald:r:{%s}" % pid
    return (e.rb.hgetall(k), e.index("addr"))


class ApiOnRedisErrors(harness.HeraldTestCase):

    def assert_503(self, got, label, retry_after):
        status, headers, doc = got
        self.assertEqual(status, 503, doc)
        self.assertEqual(doc, {"error": "redis unavailable: %s" % label})
        self.assertEqual(headers.get("Retry-After"), "1" if retry_after else None)

    def test_put_under_maxmemory_answers_503_oom_and_changes_nothing(self):
        e = self.env()
        e.remember(ann())
        e.start_herald()
        status, _, doc = call(e, "PUT", "/v1/recipients/ann", ann())
        self.assertEqual(status, 201, doc)
        before = person_state(e, "ann")
        self.assertEqual(before[0][b"rev"], b"1")

        oom(e)
        change = ann(email="ann.moved@example.com", topics={"promotions": False})
        e.remember(change)
        self.assert_503(call(e, "PUT", "/v1/recipients/ann", change), "oom", retry_after=True)
        self.assert_503(call(e, "PATCH", "/v1/recipients/ann/preferences", {"quiet_hours": "22:00-07:00"}),
                        "oom", retry_after=True)
        self.assert_503(call(e, "POST", "/v1/recipients/ann/consent",
                             {"channel": "sms", "granted": True, "source": "api"}), "oom", retry_after=True)
        self.assertEqual(person_state(e, "ann"), before)
        # Reading needs no memory: the subject-access read still answers.
        status, _, doc = call(e, "GET", "/v1/recipients/ann")
        self.assertEqual((status, doc["profile"]["email"]), (200, "ann.errors@example.com"), doc)

        e.r.config_set("maxmemory", "0")
        status, _, doc = call(e, "PUT", "/v1/recipients/ann", change)
        self.assertEqual(status, 200, doc)
        after = person_state(e, "ann")
        self.assertEqual(after[0][b"rev"], b"2")
        self.assertNotEqual(after[0][b"@0"], before[0][b"@0"])   # sealed: read back through the API
        status, _, doc = call(e, "GET", "/v1/recipients/ann")
        self.assertEqual((status, doc["profile"]["email"]), (200, "ann.moved@example.com"), doc)

    def test_acl_denial_answers_503_noperm_and_changes_nothing(self):
        e = self.env()
        e.remember(ann())
        e.start_herald()
        self.assertEqual(call(e, "PUT", "/v1/recipients/ann", ann())[0], 201)
        before = person_state(e, "ann")

        e.r.execute_command("ACL", "SETUSER", "default", "-evalsha")
        try:
            change = ann(topics={"promotions": False})
            self.assert_503(call(e, "PUT", "/v1/recipients/ann", change), "noperm", retry_after=False)
            self.assert_503(call(e, "DELETE", "/v1/recipients/ann"), "noperm", retry_after=False)
            self.assertEqual(person_state(e, "ann"), before)
        finally:
            e.r.execute_command("ACL", "SETUSER", "default", "+evalsha")
        status, _, doc = call(e, "PUT", "/v1/recipients/ann", change)
        self.assertEqual(status, 200, doc)
        self.assertEqual(person_state(e, "ann")[0][b"rev"], b"2")

    def test_twilio_stop_refused_then_redelivered_is_applied_once(self):
        e = self.env()
        config = write_config(e, "webhooks.conf")
        e.import_people([person("u-sms", phone="+15550109101", channels=["sms"], consent=["sms"])])
        e.start_herald(config=config)
        ledger = lambda: harness.ledger(e, "u-sms")  # noqa: E731
        self.assertEqual(len(ledger()), 1)

        # Maxmemory reached: 503 with the label, nothing marked applied.
        stop = sms_params("+15550109101", "STOP", sid(101))
        oom(e)
        status, _, text = tw_post(e, stop)
        self.assertEqual((status, json.loads(text)), (503, {"error": "redis unavailable: oom"}))
        self.assertEqual(len(ledger()), 1)
        self.assertEqual(e.r.exists("herald:webhook:twilio:%s" % sid(101)), 0)
        e.r.config_set("maxmemory", "0")
        for _ in range(2):   # the redelivery, then Twilio's second copy
            status, _, text = tw_post(e, stop)
            self.assertEqual(status, 200, text)
        self.assertEqual([r["granted"] for r in ledger()], [True, False])

        # Whatever step fails, the MessageSid is not left marked: here the
        # consent script is denied, and so is DEL (the old way undid the
        # mark with a DEL, which a lost connection loses just the same).
        start = sms_params("+15550109101", "START", sid(102))
        e.r.execute_command("ACL", "SETUSER", "default", "-evalsha", "-eval", "-del")
        try:
            status, _, text = tw_post(e, start)
            self.assertEqual((status, json.loads(text)), (503, {"error": "redis unavailable: noperm"}))
        finally:
            e.r.execute_command("ACL", "SETUSER", "default", "+evalsha", "+eval", "+del")
        self.assertEqual(e.r.exists("herald:webhook:twilio:%s" % sid(102)), 0)
        for _ in range(2):
            self.assertEqual(tw_post(e, start)[0], 200)
        self.assertEqual([r["granted"] for r in ledger()], [True, False, True])
        counts = e.r.hgetall("herald:webhook:counts")
        self.assertEqual((counts.get("twilio:stop"), counts.get("twilio:start")), ("1", "1"))

    def test_heraldctl_names_the_error_class(self):
        e = self.env()
        oom(e)
        e.write_jsonl("one.jsonl", [person("u-ctl", email="ctl.person@example.com", consent=["email"])])
        e.secrets.add("ctl.person@example.com")
        # The key file is not registered yet (keyreg.h): the import stops before writing.
        res = e.ctl("import", e.path("one.jsonl"))
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn("redis refused the key registry check: oom (retry once memory is freed)", res.stderr)
        e.r.config_set("maxmemory", "0")
        e.ctl_ok("import", e.write_jsonl("none.jsonl", []))   # registers it
        oom(e)
        # Registered now: the import stops at its sealing lease (keylease.h), before any line
        # (a line's own refusal names its class too: test_import.py).
        res = e.ctl("import", e.path("one.jsonl"))
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn("heraldctl: import: redis refused the sealing lease: oom (retry once memory is freed)",
                      res.stderr)
        self.assertNotIn("ctl.person@example.com", res.stderr)
        self.assertFalse(e.r.exists("herald:r:{u-ctl}"))
        job = e.write("job.json", json.dumps(harness.job("c-ctl", recipients=["u-ctl"])))
        res = e.ctl("enqueue", job)
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn("redis refused the job: oom (retry once memory is freed)", res.stderr)
        res = e.ctl("suppress", "email", "ctl.person@example.com")
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertIn("redis refused the suppression: oom (retry once memory is freed)", res.stderr)
        e.r.config_set("maxmemory", "0")
        self.assertEqual(e.ctl("import", e.path("one.jsonl")).returncode, 0)


if __name__ == "__main__":
    harness.main()
