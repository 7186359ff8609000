"""Provider feedback webhooks, seen from outside: SendGrid's signed Event
Webhook (ECDSA P-256 over timestamp + body) suppresses hard-bounced, dropped,
spam-reporting and unsubscribing addresses, so the next campaign records
`suppressed`; Twilio's inbound SMS (X-Twilio-Signature, HMAC-SHA1 over the
public URL and the sorted parameters) revokes SMS consent on STOP and grants
it again on START (source sms_keyword), so the next SMS campaign records
`no_consent`, then sends again. Unsigned requests get 401 before their body
is read, forged and altered ones 403, and none changes anything; redeliveries change nothing more; the answers to
Twilio are well-formed TwiML; the logs never show an address, a number or a
message body (the harness checks every log).

Runs with Debian's /usr/bin/python3 (python3-cryptography signs the events)."""

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402

PUBLIC_URL = "https://hooks.example.test/herald"
TWILIO_TOKEN = "e2e-twilio-auth-token-0123456789"
TWIML_DECL = '<?xml version="1.0" encoding="UTF-8"?>'

PROVIDERS = """
[provider sg]
plugin = email_sendgrid
api_key = SG.e2e-test-key
from = news@example.com
{key_line}

[provider tw]
plugin = sms_twilio
account_sid = AC0123456789abcdef0123456789abcdef
{token_line}
from = +15005550006
"""


def der_b64(private_key):
    der = private_key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def write_config(e, name, public_key=None, token=TWILIO_TOKEN, public_url=PUBLIC_URL):
    text = e.config_text()
    if public_url:
        text = text.replace("[public]\n", "[public]\npublic_url = %s\n" % public_url, 1)
    text += PROVIDERS.format(
        key_line="webhook_public_key = %s" % public_key if public_key else "",
        token_line="auth_token = %s" % token if token else "auth_token = unused-but-required")
    return e.write(name, text)


def post(e, path, body, headers, query=""):
    """(status, content type, body text) of a POST to herald's public port."""
    url = "http://127.0.0.1:%d%s%s" % (e.public_port, path, "?" + query if query else "")
    data = body if isinstance(body, bytes) else body.encode()
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get("Content-Type", ""), err.read().decode()


# --- SendGrid ---------------------------------------------------------------

def sg_headers(private_key, body, ts=None, signature=None):
    ts = str(int(time.time()) if ts is None else ts)
    if signature is None:
        sig = private_key.sign(ts.encode() + body.encode(), ec.ECDSA(hashes.SHA256()))
        signature = base64.b64encode(sig).decode()
    return {"Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": signature,
            "X-Twilio-Email-Event-Webhook-Timestamp": ts}


def sg_event(event, email, n, **extra):
    ev = {"email": email, "timestamp": int(time.time()), "event": event, "sg_event_id": "e2e-%s-%d" % (event, n),
          "sg_message_id": "e2e-msg-%d.filter0001" % n, "smtp-id": "<e2e-%d@example.com>" % n}
    ev.update(extra)
    return ev


def sg_post(e, private_key, events, **kw):
    body = json.dumps(events)
    return post(e, "/v1/webhooks/sendgrid", body, sg_headers(private_key, body, **kw))


# --- Twilio -----------------------------------------------------------------

def twilio_signature(token, url, params):
    text = url + "".join(k + v for k, v in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), text.encode(), hashlib.sha1).digest()).decode()


def sms_params(sender, body, sid):
    return [("ToCountry", "US"), ("SmsMessageSid", sid), ("NumMedia", "0"), ("SmsSid", sid),
            ("SmsStatus", "received"), ("Body", body), ("To", "+15005550006"), ("NumSegments", "1"),
            ("MessageSid", sid), ("AccountSid", "AC0123456789abcdef0123456789abcdef"), ("From", sender),
            ("ApiVersion", "2010-04-01")]


def tw_post(e, params, token=TWILIO_TOKEN, url=None, signature=None, sign=True):
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if sign:
        headers["X-Twilio-Signature"] = signature if signature is not None else twilio_signature(
            token, url or PUBLIC_URL + "/v1/webhooks/twilio", params)
    return post(e, "/v1/webhooks/twilio", urllib.parse.urlencode(params), headers)


def sid(n):
    return "SM%032x" % n


class WebhookCase(harness.HeraldTestCase):

    def assertTwiML(self, res, message=False):
        status, ctype, text = res
        self.assertEqual(status, 200, text)
        self.assertTrue(ctype.startswith("text/xml"), ctype)
        self.assertTrue(text.startswith(TWIML_DECL), text)
        root = ET.fromstring(text)   # well-formed, or this raises
        self.assertEqual(root.tag, "Response")
        msgs = root.findall("Message")
        if message:
            self.assertEqual(len(msgs), 1, text)
            self.assertIn("STOP", msgs[0].text)
        else:
            self.assertEqual(len(root), 0, text)

    def ledger(self, e, pid):
        return harness.ledger(e, pid)

    def campaign_outcomes(self, e, h, cid, ids, channels):
        e.enqueue(job(cid, recipients=ids, channels=channels))
        e.wait_campaign_done(cid, herald=h)
        recs = self.assertOneTerminalEach(e.audit(cid), ids)
        return {rid: (r["outcome"], r["reason"]) for rid, r in recs.items()}


class SendGridWebhook(WebhookCase):

    def setUp(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.e = self.env()
        self.config = write_config(self.e, "webhooks.conf", public_key=der_b64(self.key))
        self.e.import_people([
            person("u-bounce", email="Bounce.Me@Example.com", channels=["email"], consent=["email"]),
            person("u-blocked", email="blocked.only@example.com", channels=["email"], consent=["email"]),
            person("u-spam", email="spam.reporter@example.com", channels=["email"], consent=["email"]),
            person("u-ok", email="still.fine@example.com", channels=["email"], consent=["email"]),
        ])

    def test_signed_events_suppress_and_next_campaign_says_suppressed(self):
        e = self.e
        h = e.start_herald(config=self.config)
        events = [sg_event("processed", "still.fine@example.com", 1),
                  sg_event("delivered", "still.fine@example.com", 2, response="250 OK"),
                  # SendGrid writes the address as it was sent; suppression ignores case and spaces
                  sg_event("bounce", " bounce.me@example.COM", 3, type="bounce", reason="550 5.1.1 no such user",
                           status="5.1.1", bounce_classification="Invalid Address"),
                  sg_event("bounce", "blocked.only@example.com", 4, type="blocked", reason="IP blocked"),
                  sg_event("spamreport", "spam.reporter@example.com", 5),
                  sg_event("open", "still.fine@example.com", 6, useragent="Mozilla", ip="192.0.2.1")]
        status, ctype, text = sg_post(e, self.key, events)
        self.assertEqual(status, 200, text)
        # No message of herald's is behind these events (no campaign, no
        # provider id it remembers): the four that ask for something are
        # unmatched, and the addresses are suppressed all the same.
        self.assertEqual(json.loads(text), {"events": 6, "recorded": 0, "suppressed": 2, "duplicates": 0,
                                            "unmatched": 4, "ignored": 2})
        self.assertEqual(len(e.index("suppress")), 2)

        got = self.campaign_outcomes(e, h, "wh-sg-1", ["u-bounce", "u-blocked", "u-spam", "u-ok"], ["email"])
        self.assertEqual(got, {"u-bounce": ("suppressed", "suppressed"), "u-spam": ("suppressed", "suppressed"),
                               "u-blocked": ("sent", ""), "u-ok": ("sent", "")})

        # The same batch again (SendGrid redelivers): nothing changes.
        suppress_before = e.index("suppress")
        counts_before = e.r.hgetall("herald:webhook:counts")
        status, _, text = sg_post(e, self.key, events)
        self.assertEqual(status, 200, text)
        self.assertEqual(json.loads(text)["suppressed"], 0)
        self.assertEqual(e.index("suppress"), suppress_before)
        self.assertEqual(e.r.hgetall("herald:webhook:counts"), counts_before)

        # dropped and unsubscribe suppress too; an empty batch is fine.
        status, _, text = sg_post(e, self.key, [sg_event("dropped", "still.fine@example.com", 7, reason="Bounced Address"),
                                                sg_event("unsubscribe", "blocked.only@example.com", 8)])
        self.assertEqual((status, json.loads(text)["suppressed"]), (200, 2), text)
        self.assertEqual(sg_post(e, self.key, [])[0], 200)
        # A busy sender's batch (SendGrid posts up to 768 KB) is taken whole,
        # although it is far above the 64 KiB the other routes accept.
        big = [sg_event("open", "still.fine@example.com", 100 + i, useragent="Mozilla/5.0 " + "x" * 200)
               for i in range(2000)]
        self.assertGreater(len(json.dumps(big)), 700 * 1024)
        status, _, text = sg_post(e, self.key, big)
        self.assertEqual((status, json.loads(text)["events"]), (200, 2000), text[:200])
        got = self.campaign_outcomes(e, h, "wh-sg-2", ["u-blocked", "u-ok"], ["email"])
        self.assertEqual(got, {"u-blocked": ("suppressed", "suppressed"), "u-ok": ("suppressed", "suppressed")})

    def test_unsigned_forged_altered_and_malformed_change_nothing(self):
        e = self.e
        e.start_herald(config=self.config)
        events = [sg_event("bounce", "bounce.me@example.com", 1, type="bounce")]
        body = json.dumps(events)
        other = ec.generate_private_key(ec.SECP256R1())
        good = sg_headers(self.key, body)
        refusals = {
            "unsigned": {"Content-Type": "application/json"},
            "no timestamp": {k: v for k, v in good.items() if not k.endswith("Timestamp")},
            "no signature": {k: v for k, v in good.items() if not k.endswith("Signature")},
            "signed by another key": sg_headers(other, body),
            "signature not base64": sg_headers(self.key, body, signature="not base64!"),
            "signature of nothing": sg_headers(self.key, body, signature=base64.b64encode(b"\x30\x00").decode()),
            "timestamp changed": dict(good, **{"X-Twilio-Email-Event-Webhook-Timestamp":
                                               str(int(good["X-Twilio-Email-Event-Webhook-Timestamp"]) - 1)}),
            "timestamp three days old": sg_headers(self.key, body, ts=int(time.time()) - 3 * 86400),
            "timestamp an hour ahead": sg_headers(self.key, body, ts=int(time.time()) + 3600),
            "timestamp not a number": sg_headers(self.key, body, ts="yesterday"),
        }
        # Without the signature headers: 401 as soon as the headers are in,
        # before the body is read; with them but wrong: 403.
        unsigned = ("unsigned", "no timestamp", "no signature")
        for what, headers in refusals.items():
            with self.subTest(what):
                status, _, text = post(e, "/v1/webhooks/sendgrid", body, headers)
                self.assertEqual(status, 401 if what in unsigned else 403, text)
        with self.subTest("body altered after signing"):
            altered = body.replace("bounce.me", "still.fine")
            self.assertEqual(post(e, "/v1/webhooks/sendgrid", altered, good)[0], 403)

        # Signed, but not what SendGrid sends: 400, and nothing of it applied.
        malformed = {
            "not JSON": "[{\"event\": \"bounce\", ",
            "not an array": json.dumps(events[0]),
            "an event without event": json.dumps([{"email": "bounce.me@example.com"}]),
            "good event then a bad one": json.dumps(events + [{"event": "dropped"}]),
        }
        for what, text_body in malformed.items():
            with self.subTest(what):
                status, _, text = post(e, "/v1/webhooks/sendgrid", text_body, sg_headers(self.key, text_body))
                self.assertEqual(status, 400, text)
                self.assertNotIn("example.com", text)
        self.assertEqual(len(e.index("suppress")), 0)
        self.assertEqual(e.r.keys("herald:webhook*"), [])

    def test_without_a_key_every_event_is_refused(self):
        e = self.e
        e.start_herald(config=write_config(e, "nokey.conf", public_key=None))
        status, _, text = sg_post(e, self.key, [sg_event("bounce", "bounce.me@example.com", 1, type="bounce")])
        self.assertEqual(status, 403, text)
        self.assertEqual(len(e.index("suppress")), 0)

    def test_a_key_that_is_not_a_p256_public_key_is_a_config_error(self):
        bad = write_config(self.e, "badkey.conf", public_key="MFkwEwYH")
        run = subprocess.run([harness.HERALD_BIN, "--config", bad, "--check-config"], capture_output=True,
                                     text=True, timeout=60 * harness.SLOW)
        self.assertEqual(run.returncode, 1, run.stdout + run.stderr)
        self.assertIn("webhook_public_key", run.stdout + run.stderr)


class TwilioWebhook(WebhookCase):

    def setUp(self):
        self.e = self.env()
        self.config = write_config(self.e, "webhooks.conf")
        self.e.import_people([
            person("u-sms", phone="+15550109001", channels=["sms"], consent=["sms"]),
            person("u-other", phone="+15550109002", channels=["sms"], consent=["sms"]),
        ])

    def test_stop_revokes_and_start_restores_sms_consent(self):
        e = self.e
        h = e.start_herald(config=self.config)
        before = self.ledger(e, "u-sms")
        self.assertEqual([r["granted"] for r in before], [True])

        stop = sms_params("+15550109001", "  stop ", sid(1))
        self.assertTwiML(tw_post(e, stop))
        after = self.ledger(e, "u-sms")
        self.assertEqual(len(after), 2, after)
        self.assertEqual((after[-1]["channel"], after[-1]["granted"], after[-1]["source"]), ("sms", False, "sms_keyword"))
        self.assertEqual(len(self.ledger(e, "u-other")), 1)

        # Twilio redelivers the same message: the ledger grows once.
        self.assertTwiML(tw_post(e, stop))
        self.assertEqual(len(self.ledger(e, "u-sms")), 2)

        got = self.campaign_outcomes(e, h, "wh-tw-1", ["u-sms", "u-other"], ["sms"])
        self.assertEqual(got, {"u-sms": ("suppressed", "no_consent"), "u-other": ("sent", "")})

        # Another STOP-like word in another message is another record.
        self.assertTwiML(tw_post(e, sms_params("+15550109001", "Unsubscribe", sid(2))))
        self.assertEqual(len(self.ledger(e, "u-sms")), 3)

        self.assertTwiML(tw_post(e, sms_params("+15550109001", "START", sid(3))))
        after = self.ledger(e, "u-sms")
        self.assertEqual((after[-1]["granted"], after[-1]["source"]), (True, "sms_keyword"))
        self.assertEqual(len(after), 4)
        got = self.campaign_outcomes(e, h, "wh-tw-2", ["u-sms"], ["sms"])
        self.assertEqual(got, {"u-sms": ("sent", "")})

        counts = e.r.hgetall("herald:webhook:counts")
        self.assertEqual((counts.get("twilio:stop"), counts.get("twilio:start")), ("2", "1"))

    def test_missing_or_wrong_signature_changes_nothing(self):
        e = self.e
        e.start_herald(config=self.config)
        stop = sms_params("+15550109001", "STOP", sid(10))
        before = self.ledger(e, "u-sms")
        refusals = {
            "no signature": dict(sign=False),
            "another token": dict(token="not-the-auth-token-0123456789"),
            "another URL": dict(url="https://evil.example.test/v1/webhooks/twilio"),
            "URL without the public path": dict(url="https://hooks.example.test/v1/webhooks/twilio"),
            "garbage": dict(signature="%%%"),
            "empty": dict(signature=""),
        }
        for what, kw in refusals.items():
            with self.subTest(what):
                status, _, text = tw_post(e, stop, **kw)
                self.assertEqual(status, 401 if what == "no signature" else 403, text)
        with self.subTest("a parameter changed after signing"):
            sig = twilio_signature(TWILIO_TOKEN, PUBLIC_URL + "/v1/webhooks/twilio", sms_params("+15550109002", "STOP", sid(11)))
            self.assertEqual(tw_post(e, stop, signature=sig)[0], 403)
        with self.subTest("signed, but the MessageSid is not a Twilio sid (it would be logged)"):
            status, _, text = tw_post(e, sms_params("+15550109002", "STOP", "ann.lindqvist@example.com"))
            self.assertEqual(status, 400, text)
        self.assertEqual(self.ledger(e, "u-sms"), before)
        self.assertEqual(e.r.keys("herald:webhook*"), [])

    def test_help_unknown_numbers_and_other_text(self):
        e = self.e
        e.start_herald(config=self.config)
        self.assertTwiML(tw_post(e, sms_params("+15550109001", "help", sid(20))), message=True)
        self.assertTwiML(tw_post(e, sms_params("+15550109001", "help", sid(20))), message=True)
        self.assertEqual(e.r.hget("herald:webhook:counts", "twilio:help"), "1")
        self.assertEqual(len(self.ledger(e, "u-sms")), 1)

        # A number herald does not know: answered, nothing stored.
        e.secrets.add("+15550109999")
        self.assertTwiML(tw_post(e, sms_params("+15550109999", "STOP", sid(21))))
        self.assertEqual(e.r.keys("herald:webhook:twilio:%s" % sid(21)), [])

        # Anything else is ignored, and its text never reaches a log.
        chat = "please call me back about the e2e secret offer"
        e.secrets.add(chat)
        self.assertTwiML(tw_post(e, sms_params("+15550109001", chat, sid(22))))
        self.assertEqual(len(self.ledger(e, "u-sms")), 1)

        # Twilio's Advanced Opt-Out names keywords of its own (any language) in OptOutType.
        self.assertTwiML(tw_post(e, sms_params("+15550109001", "ARRET", sid(24)) + [("OptOutType", "STOP")]))
        self.assertEqual([r["granted"] for r in self.ledger(e, "u-sms")], [True, False])

        # No public_url: Twilio's signature cannot be checked, so everything is refused.
        h2 = write_config(e, "nourl.conf", public_url=None)
        for h in e.heralds:
            h.stop()
        e.start_herald(config=h2)
        status, _, text = tw_post(e, sms_params("+15550109001", "START", sid(23)))
        self.assertEqual(status, 403, text)
        self.assertEqual(len(self.ledger(e, "u-sms")), 2)


if __name__ == "__main__":
    harness.main()
