"""Delivery status through the plugin ABI (version 2's feedback()), seen from
outside: messages really go to the providers' published specs (Prism
mocks of SendGrid's Mail Send and Twilio's Messages), then the providers'
callbacks come back signed with the configured keys (SendGrid's ECDSA
P-256 Event Webhook, Twilio's X-Twilio-Signature status callbacks) to
POST /v1/webhooks/<provider name>, through a Prism proxy of
docs/openapi.yaml (zero violations):

- delivered, bounce (hard and blocked), spamreport and Twilio's delivered
  and undelivered are recorded against their message: an audit record
  (outcome delivered, bounced or complained, with the provider id; valid
  against docs/schemas/audit.schema.json), the campaign's counters (also in
  GET /v1/campaigns/{id}), and a hard bounce or a complaint suppresses the
  address, so the next campaign records `suppressed`;
- SendGrid events are found by the custom arguments herald sent, or by
  their message id; Twilio's by the MessageSid, through the provider id key
  (`herald:pid:<provider>:<id>`) that a `feedback = on` provider gets, and
  a provider without it gets none;
- the same events again change nothing; a bad signature (403), a missing
  one (401), a malformed body (400) and an unknown provider (404) change
  nothing.

Runs with Debian's /usr/bin/python3 (python3-cryptography signs the events,
python3-jsonschema checks the audit records)."""

import base64
import hashlib
import hmac
import json
import os
import sys
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import jsonschema
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import prism  # noqa: E402
from harness import job, person  # noqa: E402

PUBLIC_URL = "https://hooks.example.test/herald"
TWILIO_TOKEN = "e2e-twilio-auth-token-0123456789"
ACCOUNT = "AC0123456789abcdef0123456789abcdef"

PROVIDERS = """\
[channel email]
providers = sg

[channel sms]
providers = tw

[provider sg]
plugin = email_sendgrid
base_url = {sg}
api_key = SG.e2e-test-key
from = news@example.com
webhook_public_key = {key}
feedback = {feedback}

[provider tw]
plugin = sms_twilio
base_url = {tw}
account_sid = {account}
auth_token = {token}
from = +15005550006
feedback = {feedback}
"""

with open(os.path.join(harness.ROOT, "docs", "schemas", "audit.schema.json")) as f:
    AUDIT = jsonschema.Draft202012Validator(json.load(f))

_state = {}


def setUpModule():
    why = prism.available()
    if why:
        raise unittest.SkipTest(why)
    prism.start_providers(_state, "ds")


def tearDownModule():
    prism.stop_providers(_state)


def der_b64(private_key):
    der = private_key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def sg_headers(private_key, body):
    ts = str(int(time.time()))
    sig = private_key.sign(ts.encode() + body.encode(), ec.ECDSA(hashes.SHA256()))
    return {"Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(sig).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": ts}


def sg_event(event, email, n, campaign=None, recipient=None, message_id=None, **extra):
    ev = {"email": email, "timestamp": int(time.time()), "event": event, "sg_event_id": "ds-%s-%d" % (event, n)}
    if message_id:
        ev["sg_message_id"] = message_id + ".filterdrecv-5bd4b98c8b-6wf8h-1-0"
    if campaign:   # the custom_args herald sent come back as fields of the event
        ev.update(campaign=campaign, recipient=recipient)
    ev.update(extra)
    return ev


def twilio_signature(token, url, params):
    text = url + "".join(k + v for k, v in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), text.encode(), hashlib.sha1).digest()).decode()


def status_params(sid, status, error=None):
    p = [("MessageSid", sid), ("SmsSid", sid), ("MessageStatus", status), ("SmsStatus", status),
         ("AccountSid", ACCOUNT), ("From", "+15005550006"), ("To", "+15550100777"), ("ApiVersion", "2010-04-01")]
    if error:
        p.append(("ErrorCode", error))
    return p


class DeliveryStatus(harness.HeraldTestCase):

    def setUp(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.e = self.env()

    def start(self, feedback="on"):
        e = self.e
        base = e.config_text().replace("[public]\n", "[public]\npublic_url = %s\n" % PUBLIC_URL, 1)
        text = base[:base.index("[channel email]")] + PROVIDERS.format(
            sg=_state["sg"].url, tw=_state["tw"].url, key=der_b64(self.key), account=ACCOUNT, token=TWILIO_TOKEN,
            feedback=feedback)
        h = e.start_herald(config=e.write("delivery.conf", text))
        # The callbacks go through Prism, checked against docs/openapi.yaml.
        self.proxy = prism.Prism(harness.OPENAPI, e.path("prism-public.log"),
                                 upstream="http://127.0.0.1:%d" % e.public_port).start()
        self.addCleanup(self.proxy.stop)
        return h

    def tearDown(self):
        if getattr(self, "proxy", None):
            self.assertEqual(self.proxy.violations(), [], "callbacks and answers must match docs/openapi.yaml")
        super().tearDown()

    def post(self, provider, body, headers, direct=False):
        """(status, body text); direct: straight to herald, for a request
        the document itself refuses (Prism would answer it 422)."""
        base = "http://127.0.0.1:%d" % self.e.public_port if direct else self.proxy.url
        req = urllib.request.Request(base + "/v1/webhooks/" + provider, data=body.encode(),
                                     headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def sg_post(self, events, key=None, provider="sg", direct=False):
        # Compact, as SendGrid posts it: the Prism proxy forwards a JSON body
        # re-serialised, and the signature covers the exact bytes.
        body = events if isinstance(events, str) else json.dumps(events, separators=(",", ":"))
        return self.post(provider, body, sg_headers(key or self.key, body), direct)

    def tw_post(self, params, token=TWILIO_TOKEN, provider="tw"):
        sig = twilio_signature(token, PUBLIC_URL + "/v1/webhooks/" + provider, params)
        return self.post(provider, urllib.parse.urlencode(params),
                         {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig})

    def send(self, h, cid, ids, channels):
        e = self.e
        e.enqueue(job(cid, recipients=ids, channels=channels))
        e.wait_campaign_done(cid, herald=h, timeout=90)
        recs = self.assertOneTerminalEach(e.audit(cid), ids)
        return {rid: r for rid, r in recs.items()}

    def reports(self, cid):
        """{recipient: (outcome, reason, provider, provider_id)} of the providers' reports."""
        out = {}
        for r in self.e.audit(cid):
            if r["outcome"] in ("delivered", "bounced", "complained"):
                self.assertEqual([err.message for err in AUDIT.iter_errors(r)], [], r)
                self.assertNotIn(r["recipient"], out, "one report per recipient here")
                out[r["recipient"]] = (r["outcome"], r["reason"], r["provider"], r["provider_id"])
        return out

    def snapshot(self, cid):
        r = self.e.r
        return (r.xlen("herald:audit"), r.hgetall("herald:campaign:" + cid), self.e.index("suppress"),
                sorted(r.keys("herald:webhook:*")))

    def test_sendgrid_events_are_recorded_counted_and_suppress(self):
        e = self.e
        ids = ["u-del", "u-hard", "u-spam", "u-soft"]
        e.import_people([person(i, email="%s.status@example.com" % i, channels=["email"], consent=["email"])
                         for i in ids])
        h = self.start()
        sent = self.send(h, "ds-sg-1", ids, ["email"])
        for rid in ids:
            self.assertEqual((sent[rid]["outcome"], sent[rid]["provider"]), ("sent", "sg"), sent[rid])
        pid = sent["u-del"]["provider_id"]
        self.assertTrue(pid)
        # feedback = on: the provider id is remembered (30 days) for the callbacks.
        self.assertGreater(e.r.ttl("herald:pid:sg:" + pid), 29 * 86400)

        events = [sg_event("delivered", "u-del.status@example.com", 1, "ds-sg-1", "u-del", pid),
                  sg_event("bounce", "u-hard.status@example.com", 2, "ds-sg-1", "u-hard", pid, type="bounce",
                           reason="550 5.1.1 no such user"),
                  sg_event("spamreport", "u-spam.status@example.com", 3, "ds-sg-1", "u-spam", pid),
                  sg_event("bounce", "u-soft.status@example.com", 4, "ds-sg-1", "u-soft", pid, type="blocked"),
                  sg_event("open", "u-del.status@example.com", 5, "ds-sg-1", "u-del", pid)]
        status, text = self.sg_post(events)
        self.assertEqual(status, 200, text)
        self.assertEqual(json.loads(text), {"events": 5, "recorded": 4, "suppressed": 2, "duplicates": 0,
                                            "unmatched": 0, "ignored": 1})
        self.assertEqual(self.reports("ds-sg-1"), {
            "u-del": ("delivered", "", "sg", pid),
            "u-hard": ("bounced", "hard:bounce", "sg", pid),
            "u-spam": ("complained", "complaint:spamreport", "sg", pid),
            "u-soft": ("bounced", "soft:blocked", "sg", pid)})
        camp = e.r.hgetall("herald:campaign:ds-sg-1")
        self.assertEqual((camp.get("delivered"), camp.get("bounced"), camp.get("complained")), ("1", "2", "1"))
        req = urllib.request.Request(e.api_url() + "/v1/campaigns/ds-sg-1",
                                     headers={"Authorization": "Bearer e2e-admin-token-0123456789"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            self.assertEqual(json.loads(resp.read())["delivery"], {"delivered": 1, "bounced": 2, "complained": 1})

        # SendGrid posts the batch again: nothing changes.
        before = self.snapshot("ds-sg-1")
        status, text = self.sg_post(events)
        self.assertEqual((status, json.loads(text)), (200, {"events": 5, "recorded": 0, "suppressed": 0,
                                                            "duplicates": 4, "unmatched": 0, "ignored": 1}))
        self.assertEqual(self.snapshot("ds-sg-1"), before)

        # Refused, and nothing changes: another key, no signature, a signed
        # body that is not events, a provider that takes no callbacks.
        other = ec.generate_private_key(ec.SECP256R1())
        late = [sg_event("bounce", "u-del.status@example.com", 9, "ds-sg-1", "u-del", pid)]
        self.assertEqual(self.sg_post(late, key=other)[0], 403)
        self.assertEqual(self.post("sg", json.dumps(late, separators=(",", ":")),
                                   {"Content-Type": "application/json"}, direct=True)[0], 401)
        for bad in ([{"event": "bounce", "sg_event_id": "x-1", "campaign": "ds-sg-1", "recipient": "u-del"}],
                    [{"event": "delivered", "email": "u-del.status@example.com"}]):
            status, text = self.sg_post(bad)
            self.assertEqual(status, 400, text)
            self.assertNotIn("@", text)
        # What the document itself refuses goes straight to herald.
        for bad in ([{"email": "u-del.status@example.com"}], '[{"event":', '{"event":"delivered"}'):
            status, text = self.sg_post(bad, direct=True)
            self.assertEqual(status, 400, text)
            self.assertNotIn("@", text)
        for name in ("outbox", "nope"):
            self.assertEqual(self.sg_post(late, provider=name)[0], 404)
        self.assertEqual(self.snapshot("ds-sg-1"), before)

        # The next campaign: the hard bounce and the complaint are suppressed.
        nxt = self.send(h, "ds-sg-2", ids, ["email"])
        self.assertEqual({rid: (r["outcome"], r["reason"]) for rid, r in nxt.items()},
                         {"u-del": ("sent", ""), "u-soft": ("sent", ""),
                          "u-hard": ("suppressed", "suppressed"), "u-spam": ("suppressed", "suppressed")})

        # An event without the custom arguments is found by its message id
        # (the provider id key of the latest send).
        self.send(h, "ds-sg-3", ["u-del"], ["email"])
        status, text = self.sg_post([sg_event("delivered", "u-del.status@example.com", 31, message_id=pid)])
        self.assertEqual((status, json.loads(text)["recorded"]), (200, 1), text)
        self.assertEqual(self.reports("ds-sg-3"), {"u-del": ("delivered", "", "sg", pid)})

    def test_twilio_status_callbacks_are_recorded_once(self):
        e = self.e
        e.import_people([person("u-sms", phone="+15550100777", channels=["sms"], consent=["sms"])])
        h = self.start()
        # Prism accepts the StatusCallback herald now sets (a violation would fail the send).
        sent = self.send(h, "ds-tw-1", ["u-sms"], ["sms"])["u-sms"]
        self.assertEqual((sent["outcome"], sent["provider"]), ("sent", "tw"), sent)
        sid = sent["provider_id"]
        self.assertRegex(sid, r"^SM[0-9a-f]{32}$")
        self.assertEqual(e.r.get("herald:pid:tw:" + sid), "ds-tw-1 u-sms sms")

        status, text = self.tw_post(status_params(sid, "sent"))   # asks for nothing
        self.assertEqual((status, json.loads(text)["ignored"]), (200, 1), text)
        status, text = self.tw_post(status_params(sid, "delivered"))
        self.assertEqual((status, json.loads(text)["recorded"]), (200, 1), text)
        self.assertEqual(self.reports("ds-tw-1"), {"u-sms": ("delivered", "", "tw", sid)})
        before = self.snapshot("ds-tw-1")
        status, text = self.tw_post(status_params(sid, "delivered"))   # Twilio retries
        self.assertEqual((status, json.loads(text)["duplicates"]), (200, 1), text)
        self.assertEqual(self.tw_post(status_params(sid, "undelivered"), token="another-token")[0], 403)
        self.assertEqual(self.tw_post([("MessageSid", "SMnot-a-sid"), ("MessageStatus", "failed")])[0], 400)
        self.assertEqual(self.snapshot("ds-tw-1"), before)

        # A later status of the same message is another event; SMS is not suppressed.
        self.assertEqual(e.r.hget("herald:campaign:ds-tw-1", "bounced"), None)
        status, text = self.tw_post(status_params(sid, "undelivered", error="30003"))
        self.assertEqual((status, json.loads(text)["recorded"]), (200, 1), text)
        recs = [r for r in e.audit("ds-tw-1") if r["outcome"] == "bounced"]
        self.assertEqual([(r["reason"], r["provider_id"]) for r in recs], [("undelivered:twilio_30003", sid)])
        self.assertEqual(e.r.hget("herald:campaign:ds-tw-1", "bounced"), "1")
        self.assertEqual(len(e.index("suppress")), 0)

    def test_without_feedback_no_provider_id_is_kept(self):
        e = self.e
        e.import_people([person("u-off", email="u-off.status@example.com", phone="+15550100778",
                                channels=["email", "sms"], consent=["email", "sms"])])
        h = self.start(feedback="off")
        sent = self.send(h, "ds-off-1", ["u-off"], ["sms"])["u-off"]
        self.assertEqual(sent["outcome"], "sent", sent)
        self.assertEqual(e.r.keys("herald:pid:*"), [])
        # Its status callbacks still verify, and find no message.
        status, text = self.tw_post(status_params(sent["provider_id"], "delivered"))
        self.assertEqual((status, json.loads(text)["unmatched"], json.loads(text)["recorded"]), (200, 1, 0), text)
        self.assertEqual(self.reports("ds-off-1"), {})


if __name__ == "__main__":
    harness.main()
