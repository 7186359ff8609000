"""Provider contracts: the requests email_sendgrid and sms_twilio build are
checked against the providers' own published OpenAPI specs
(tests/e2e/specs, copied with their licences), served by Prism as a validating mock on
loopback (tests/e2e/prism.py).

Two layers:
- the plugins alone, through tests/unit/provider_probe (loads the .so,
  create + prepare + curl_easy_perform + interpret): every request gets a 2xx
  and no sl-violations header; messages the plugins must refuse (invalid
  phone number, empty body, no address) never reach Prism at all;
- herald end to end (a campaign through the daemon's curl engine to Prism),
  skipped with a clear message while the daemon cannot yet drive network
  plugins (dispatch then records failed/provider_error "plugin has no
  deliver()").

Skipped as a whole when Prism is not installed (scripts/deps.sh --npm)."""

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import prism  # noqa: E402
from harness import job, person  # noqa: E402

BUILD_DIR = os.path.dirname(os.path.abspath(harness.PLUGIN_DIR))
PROBE = os.environ.get("HERALD_PROVIDER_PROBE", os.path.join(BUILD_DIR, "tests", "unit", "provider_probe"))
SENDGRID_SO = os.path.join(harness.PLUGIN_DIR, "email_sendgrid.so")
TWILIO_SO = os.path.join(harness.PLUGIN_DIR, "sms_twilio.so")

SID = "AC0123456789abcdef0123456789abcdef"
MGSID = "MG0123456789abcdef0123456789abcdef"
SG_PATH = "/v3/mail/send"
TW_PATH = "/2010-04-01/Accounts/%s/Messages.json" % SID

_state = {}


def setUpModule():
    why = prism.available()
    if why:
        raise unittest.SkipTest(why)
    if not os.access(PROBE, os.X_OK):
        raise unittest.SkipTest("provider_probe not built at %s" % PROBE)
    prism.start_providers(_state, "contracts")


def tearDownModule():
    prism.stop_providers(_state)


def probe(so, *args):
    """Runs provider_probe; (exit code, {key: value} of its output lines)."""
    r = subprocess.run([PROBE, so] + list(args), capture_output=True, text=True, timeout=60)
    out = {}
    for line in r.stdout.splitlines():
        # "verdict=accepted provider_id=x reason=- ..." : several pairs per line
        if line.startswith("violations="):
            out["violations"] = line[len("violations="):]
            continue
        for pair in line.split(" "):
            k, _, v = pair.partition("=")
            out[k] = v
    out["stderr"] = r.stderr
    return r.returncode, out


def sendgrid_settings(base_url, **extra):
    s = {"base_url": base_url, "api_key": "SG.contract-test-key", "from": "news@example.com"}
    s.update(extra)
    return ["%s=%s" % kv for kv in s.items()]


def twilio_settings(base_url, sender=("from", "+15005550006")):
    return ["base_url=" + base_url, "account_sid=" + SID, "auth_token=contract-test-token", "%s=%s" % sender]


class PluginsAgainstSpecs(unittest.TestCase):
    """The plugins alone, through provider_probe."""

    def assertConforms(self, rc, out, status, kind="accepted"):
        self.assertEqual(rc, 0, out)
        self.assertEqual(out.get("prepare"), "ok", out)
        self.assertNotIn("violations", out, "Prism found the request off-spec: %s" % out.get("violations"))
        self.assertEqual(out.get("status"), str(status), out)
        self.assertEqual(out.get("verdict"), kind, out)

    def test_prism_really_validates(self):
        """A request that breaks each spec is flagged, so a clean pass means something."""
        bad = [(_state["sg"].url + SG_PATH, {"Authorization": "Bearer x", "Content-Type": "application/json"},
                json.dumps({"personalizations": [{"to": [{"email": "a@example.org"}]}]}).encode()),
               (_state["tw"].url + "/2010-04-01/Accounts/ACnope/Messages.json",
                {"Authorization": "Basic QUM6dA==", "Content-Type": "application/x-www-form-urlencoded"},
                b"Body=hi")]
        for url, headers, body in bad:
            req = urllib.request.Request(url, data=body, headers=headers, method="POST")
            with self.assertRaises(urllib.error.HTTPError) as cm:
                urllib.request.urlopen(req, timeout=30)
            err = cm.exception
            self.assertTrue(400 <= err.code < 500, err.code)
            # With an error response in the spec (SendGrid's 400) Prism adds an
            # sl-violations header; without one (Twilio defines only 201) it
            # answers 422 with the violations in a problem+json body.
            body = err.read().decode("utf-8", "replace")
            self.assertTrue(err.headers.get("sl-violations") or '"validation"' in body, (err.code, body))

    def test_sendgrid_full_message(self):
        rc, out = probe(SENDGRID_SO, "--to", "ada@example.org", "--subject", "Spring\r\nBcc: x@example.net",
                        "--text", "Plain text ü", "--html", "<p>Rich</p>",
                        "--unsubscribe", "https://herald.example/u/p1?sig=abc",
                        *sendgrid_settings(_state["sg"].url, from_name="Example News"))
        self.assertConforms(rc, out, 202)
        self.assertEqual(out["provider_id"], "sendgrid:202", "the spec declares no X-Message-Id header")

    def test_sendgrid_minimal_message(self):
        rc, out = probe(SENDGRID_SO, "--to", "ada@example.org", "--subject", "S", "--text", "T",
                        *sendgrid_settings(_state["sg"].url + "/"))
        self.assertConforms(rc, out, 202)

    def test_twilio_from_number(self):
        rc, out = probe(TWILIO_SO, "--to", "+4915112345678", "--text", "Hi & bye = 100% ü",
                        *twilio_settings(_state["tw"].url))
        self.assertConforms(rc, out, 201)
        self.assertRegex(out["provider_id"], r"^SM[0-9a-zA-Z]+$", "the sid of the spec's example message")

    def test_twilio_messaging_service(self):
        rc, out = probe(TWILIO_SO, "--to", "+4915112345678", "--text", "Hi",
                        *twilio_settings(_state["tw"].url, ("messaging_service_sid", MGSID)))
        self.assertConforms(rc, out, 201)

    def test_refused_messages_never_reach_the_provider(self):
        sg, tw = _state["sg"], _state["tw"]
        before = (sg.requests(SG_PATH), tw.requests("Messages.json"))
        cases = [
            (TWILIO_SO, ["--to", "+49 151 1234567", "--text", "Hi"], twilio_settings(tw.url), "invalid_phone"),
            (TWILIO_SO, ["--to", "004915112345678", "--text", "Hi"], twilio_settings(tw.url), "invalid_phone"),
            (TWILIO_SO, ["--to", "+4915112345678", "--text", ""], twilio_settings(tw.url), "empty_body"),
            (TWILIO_SO, ["--to", "+4915112345678", "--text", "x" * 1601], twilio_settings(tw.url), "body_too_long"),
            (SENDGRID_SO, ["--to", "ada@example.org", "--subject", "S", "--text", ""], sendgrid_settings(sg.url),
             "empty_body"),
            (SENDGRID_SO, ["--to", "ada@example.org", "--subject", "\r\n", "--text", "T"], sendgrid_settings(sg.url),
             "empty_subject"),
            (SENDGRID_SO, ["--subject", "S", "--text", "T"], sendgrid_settings(sg.url), "no_address"),
        ]
        for so, args, settings, reason in cases:
            rc, out = probe(so, *(args + settings))
            self.assertEqual((rc, out.get("prepare"), out.get("reason")), (3, "refused", reason), out)
        # One good request to each afterwards: the log is live, and only they arrived.
        self.assertConforms(*probe(TWILIO_SO, "--to", "+4915112345678", "--text", "Hi", *twilio_settings(tw.url)),
                            201)
        self.assertConforms(*probe(SENDGRID_SO, "--to", "a@example.org", "--subject", "S", "--text", "T",
                                   *sendgrid_settings(sg.url)), 202)
        harness.wait_for("prism to log the two good requests",
                         lambda: (sg.requests(SG_PATH), tw.requests("Messages.json")) == (before[0] + 1, before[1] + 1),
                         10)


ANN = person("p-ann", email="ann.contracts@example.com", channels=["email"], consent=["email"], first_name="Ann")
BOB = person("p-bob", phone="+4915112345678", channels=["sms"], consent=["sms"], first_name="Bob")

PROVIDERS = """\
[channel email]
providers = sendgrid

[channel sms]
providers = twilio

[provider sendgrid]
plugin = email_sendgrid
base_url = {sg}
api_key = SG.contract-test-key
from = news@example.com
from_name = Example News

[provider twilio]
plugin = sms_twilio
base_url = {tw}
account_sid = {sid}
auth_token = contract-test-token
from = +15005550006
"""


class HeraldAgainstSpecs(harness.HeraldTestCase):
    """A campaign through the daemon's curl engine, to Prism."""

    def test_campaign_through_herald(self):
        sg, tw = _state["sg"], _state["tw"]
        e = self.env()
        e.import_people([ANN, BOB])
        base = e.config_text()
        conf = e.path("contracts.conf")
        with open(conf, "w") as f:
            f.write(base[:base.index("[channel email]")] + PROVIDERS.format(sg=sg.url, tw=tw.url, sid=SID))
        before = (sg.requests(SG_PATH), tw.requests("Messages.json"))
        h = e.start_herald(config=conf)
        e.enqueue(job("contracts-1", recipients=["p-ann", "p-bob"], channels=["email", "sms"]))
        e.wait_campaign_done("contracts-1", herald=h, timeout=90)
        recs = self.assertOneTerminalEach(e.audit("contracts-1"), ["p-ann", "p-bob"])
        # Today's dispatch refuses a plugin without deliver(): failed/provider_error,
        # no provider named, and not one request reached Prism. (The detail
        # "plugin has no deliver()" is neither logged nor audited.)
        untried = all((r["outcome"], r["reason"], r["provider"]) == ("failed", "provider_error", "")
                      for r in recs.values())
        if untried and (sg.requests(SG_PATH), tw.requests("Messages.json")) == before:
            self.skipTest("herald cannot send through network plugins yet: the curl engine "
                          "(daemon/dispatch.c) has not landed and dispatch records failed/provider_error "
                          "'plugin has no deliver()'; the plugins themselves are checked against the "
                          "specs by PluginsAgainstSpecs")
        self.assertEqual((recs["p-ann"]["outcome"], recs["p-ann"]["provider"]), ("sent", "sendgrid"), recs)
        self.assertEqual((recs["p-bob"]["outcome"], recs["p-bob"]["provider"]), ("sent", "twilio"), recs)
        self.assertRegex(recs["p-bob"]["provider_id"], r"^SM")
        self.assertEqual((sg.requests(SG_PATH), tw.requests("Messages.json")), (before[0] + 1, before[1] + 1))


if __name__ == "__main__":
    harness.main()
