"""The links in every message, end to end: a campaign through the outbox
plugin carries signed preferences_url / unsubscribe_url; headless Chromium
(Debian's chromium driven by npm playwright-core, tests/e2e/prefpage.mjs)
opens the real preference link, sees the person's data and why the message
was sent, turns the topic off and submits; Redis has the change and the
next campaign on that topic records topic_opt_out. Over plain HTTP: forged,
altered, expired and wrong-kind tokens get 403 and change nothing; GET never
changes anything; RFC 8058 one-click POST (urlencoded and multipart) opts
out, idempotently; a cross-site Origin or a form without its MAC is refused.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402

LINK_SECRET = "e2e-link-secret-0123456789"   # harness.BASE_CONFIG
HERE = os.path.dirname(os.path.abspath(__file__))
NODE = shutil.which("node") or "/usr/bin/node"
CHROMIUM = os.environ.get("HERALD_CHROMIUM", "/usr/bin/chromium")
NODE_MODULES = os.environ.get("HERALD_NODE_MODULES", os.path.join(harness.ROOT, ".deps", "node_modules"))


def browser_missing():
    """'' when a browser can be driven, else why not (the only reason to skip)."""
    if not os.access(CHROMIUM, os.X_OK):
        return "chromium not installed at %s (scripts/deps.sh installs Debian's chromium)" % CHROMIUM
    if not os.access(NODE, os.X_OK):
        return "node not installed: nothing can drive chromium"
    return ""


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kw):
        return None


OPENER = urllib.request.build_opener(NoRedirect)


def http(method, url, body=None, headers=None):
    """(status, headers, text) without following redirects."""
    data = body.encode() if isinstance(body, str) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with OPENER.open(req, timeout=10) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def form(fields):
    return urllib.parse.urlencode(fields), {"Content-Type": "application/x-www-form-urlencoded"}


def b64u(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def make_token(kind, recipient, campaign, topic, channel, expires, secret=LINK_SECRET):
    """What links.c signs, made independently (docs/api.md's token format)."""
    payload = ("1|%s|%s|%s|%s|%s|%d" % (kind, recipient, campaign, topic, channel, expires)).encode()
    return b64u(payload) + "." + b64u(hmac.new(secret.encode(), payload, hashlib.sha256).digest())


def token_claims(url):
    token = url.rsplit("/", 1)[1]
    payload = token.split(".")[0]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    return raw.split("|")


def csrf_of(html):
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "the page carries no csrf field"
    return m.group(1)


class PrefPage(harness.HeraldTestCase):

    def start(self, people, sets=()):
        e = self.env()
        e.import_people(people)
        base = "http://127.0.0.1:%d" % e.public_port
        h = e.start_herald(sets=("public.public_url=%s" % base,) + tuple(sets))
        return e, h, base

    def campaign(self, e, h, cid, ids, topic="promotions"):
        e.enqueue(job(cid, recipients=ids, channels=["email"], topic=topic))
        e.wait_campaign_done(cid, herald=h)
        return {r["recipient"]: r for r in e.audit(cid) if r["outcome"] in harness.TERMINAL}

    def links(self, e, cid, pid):
        msg = e.outbox_json(cid)["%s.email.json" % pid]
        return msg["preferences_url"], msg["unsubscribe_url"]

    def state(self, e, pid):
        """Everything a link could change about a person."""
        return (e.rb.hgetall("herald:r:{%s}" % pid), harness.ledger_raw(e, pid))

    def topics(self, e, pid):
        return json.loads(e.r.hget("herald:r:{%s}" % pid, "profile")).get("topics", {})

    def consent_now(self, e, pid, channel="email"):
        text = e.r.hget("herald:r:{%s}" % pid, "~%s" % channel)
        return harness.ledger_record(text) if text else None

    def assertSecureHeaders(self, headers):
        self.assertEqual(headers["Content-Security-Policy"],
                         "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
        self.assertEqual(headers["X-Frame-Options"], "DENY")
        self.assertEqual(headers["Referrer-Policy"], "no-referrer")
        self.assertEqual(headers["Cache-Control"], "no-store")
        self.assertTrue(headers["Content-Type"].startswith("text/html"))

    # ------------------------------------------------------------------

    def test_browser_turns_a_topic_off_and_the_next_campaign_respects_it(self):
        why = browser_missing()
        if why:
            self.skipTest(why)
        self.assertTrue(os.path.isfile(os.path.join(NODE_MODULES, "playwright-core", "package.json")),
                        "playwright-core is not installed under %s: run scripts/deps.sh --npm" % NODE_MODULES)
        ann = person("pp-ann", email="ann.prefpage@example.com", channels=["email"], consent=["email"],
                     first_name="Ann")
        e, h, base = self.start([ann])
        first = self.campaign(e, h, "pp-spring", ["pp-ann"])
        self.assertEqual(first["pp-ann"]["outcome"], "sent")
        prefs_url, unsub_url = self.links(e, "pp-spring", "pp-ann")
        self.assertTrue(prefs_url.startswith(base + "/p/"), prefs_url)
        self.assertTrue(unsub_url.startswith(base + "/u/"), unsub_url)

        out = e.path("browser.json")
        env = dict(os.environ, HERALD_NODE_MODULES=NODE_MODULES, HERALD_CHROMIUM=CHROMIUM)
        res = subprocess.run([NODE, os.path.join(HERE, "prefpage.mjs"), prefs_url, "promotions", out],
                             capture_output=True, text=True, timeout=120 * harness.SLOW, env=env,
                             stdin=subprocess.DEVNULL)
        self.assertEqual(res.returncode, 0, "prefpage.mjs failed:\n%s\n%s" % (res.stdout, res.stderr))
        with open(out) as f:
            r = json.load(f)

        before = r["before"]
        self.assertEqual(before["status"], 200)
        self.assertEqual(before["headers"]["content-security-policy"],
                         "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
        self.assertIn("ann.prefpage@example.com", before["text"], "the page shows what is stored")
        self.assertIn("Ann", before["text"])
        self.assertIn("pp-spring", before["text"], "the message this link came with")
        self.assertIn("Sent because you had agreed to receive emails", before["text"], "why it was sent")
        self.assertIn("e2e-test", before["text"], "the consent history (its source)")
        self.assertTrue(before["topic_checked"])

        after = r["after"]
        self.assertEqual(after["status"], 200)
        self.assertTrue(after["url"].endswith("?saved=1"), "POST/redirect/GET: %s" % after["url"])
        self.assertIn("Your choices are saved", after["text"])
        self.assertFalse(after["topic_checked"], "the page shows the topic off after saving")
        self.assertEqual(r["failed_requests"], [], "no request of the page failed (no external assets)")
        self.assertEqual(len(r["requests"]), 1, "one form POST")

        # In Redis, and in the next campaign's outcome.
        self.assertIs(self.topics(e, "pp-ann").get("promotions"), False)
        second = self.campaign(e, h, "pp-summer", ["pp-ann"])
        self.assertEqual((second["pp-ann"]["outcome"], second["pp-ann"]["reason"]), ("suppressed", "topic_opt_out"))
        other = self.campaign(e, h, "pp-news", ["pp-ann"], topic="news")
        self.assertEqual(other["pp-ann"]["outcome"], "sent", "only that topic was turned off")
        self.assertEqual(h.stop(), 0, "clean exit (a sanitizer build reports leaks here)")

    def test_refused_links_change_nothing_and_one_click_unsubscribes(self):
        ann = person("pp-ann", email="ann.links@example.com", channels=["email"], consent=["email"])
        bob = person("pp-bob", email="bob.links@example.com", channels=["email"], consent=["email"])
        e, h, base = self.start([ann, bob], sets=("admin.link_ttl=2h",))
        t0 = int(time.time())
        self.campaign(e, h, "pp-c1", ["pp-ann", "pp-bob"])
        prefs_url, unsub_url = self.links(e, "pp-c1", "pp-ann")
        claims = token_claims(prefs_url)
        self.assertEqual(claims[:6], ["1", "p", "pp-ann", "pp-c1", "promotions", "email"])
        self.assertTrue(t0 + 7200 - 5 <= int(claims[6]) <= int(time.time()) + 7200 + 5,
                        "[admin] link_ttl sets the expiry")
        ann_before, bob_before = self.state(e, "pp-ann"), self.state(e, "pp-bob")

        # GET of either link changes nothing.
        code, hdrs, page = http("GET", prefs_url)
        self.assertEqual(code, 200)
        self.assertSecureHeaders(hdrs)
        csrf = csrf_of(page)
        code, hdrs, upage = http("GET", unsub_url)
        self.assertEqual(code, 200)
        self.assertSecureHeaders(hdrs)
        self.assertIn("Stop promotions emails", upage)
        self.assertIn('name="List-Unsubscribe" value="One-Click"', upage)
        self.assertIn('name="channel" value="all"', upage)

        # Forged, altered, expired, wrong-kind, other secret: 403 with a page.
        token = prefs_url.rsplit("/", 1)[1]
        payload, sig = token.split(".")
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
        altered = b64u(raw.replace("pp-ann", "pp-bob").encode()) + "." + sig
        expired = make_token("p", "pp-ann", "pp-c1", "promotions", "email", int(time.time()) - 10)
        future_u = make_token("u", "pp-ann", "pp-c1", "promotions", "email", int(time.time()) + 3600)
        foreign = make_token("p", "pp-ann", "pp-c1", "promotions", "email", int(time.time()) + 3600,
                             secret="not-our-secret-0123456789")
        one_click, ctype = form({"List-Unsubscribe": "One-Click"})
        bad = [
            ("GET", "/p/" + "A" * 40 + "." + "B" * 43, None),
            ("GET", "/p/" + altered, None),
            ("GET", "/p/" + expired, None),
            ("GET", "/p/" + foreign, None),
            ("GET", "/p/" + future_u, None),                     # an unsubscribe token on the preference page
            ("GET", "/u/" + token, None),                        # and the other way round
            ("POST", "/u/" + token, one_click),
            ("POST", "/u/" + altered, one_click),
            ("POST", "/u/" + expired.replace(".", ".x"), one_click),
            ("POST", "/p/" + expired, form({"csrf": csrf, "ch": "email", "pos_email": "1"})[0]),
            ("GET", "/p/not-a-token", None),
        ]
        for method, path, body in bad:
            code, hdrs, text = http(method, base + path, body, ctype if body else None)
            self.assertEqual(code, 403, "%s %s... -> %d" % (method, path[:40], code))
            self.assertSecureHeaders(hdrs)
            self.assertIn("Nothing was changed", text)
        code, _, text = http("GET", base + "/p/" + expired)
        self.assertIn("expired", text)

        # The preference form: without its MAC, with another action's MAC, from another site: 403.
        good = {"csrf": csrf, "ch": "email", "pos_email": "1", "topic": "promotions"}   # promotions off
        for fields, extra in [
            ({k: v for k, v in good.items() if k != "csrf"}, {}),
            (dict(good, csrf=csrf[:-1] + ("A" if csrf[-1] != "A" else "B")), {}),
            (good, {"Origin": "https://evil.example"}),
            (good, {"Origin": "null", "Sec-Fetch-Site": "cross-site"}),
            (good, {"Sec-Fetch-Site": "same-site"}),
        ]:
            body, hd = form(fields)
            code, _, text = http("POST", prefs_url, body, dict(hd, **extra))
            self.assertEqual(code, 403, "%r %r" % (sorted(fields), extra))
        # A validation error: 400, the page again with the message, nothing applied.
        body, hd = form(dict(good, quiet_from="25:00", quiet_until="08:00"))
        code, hdrs, text = http("POST", prefs_url, body, hd)
        self.assertEqual(code, 400)
        self.assertIn("Quiet hours", text)
        self.assertIn('value="25:00"', text, "what the person typed is shown again")
        # One-click from another site: refused.
        code, _, _ = http("POST", unsub_url, one_click, dict(ctype, Origin="https://evil.example"))
        self.assertEqual(code, 403)
        # No form MAC on the "all emails" button: refused.
        body, hd = form({"channel": "all"})
        code, _, _ = http("POST", unsub_url, body, hd)
        self.assertEqual(code, 403)
        self.assertEqual(self.state(e, "pp-ann"), ann_before, "nothing changed for ann")
        self.assertEqual(self.state(e, "pp-bob"), bob_before, "nothing changed for bob")

        # RFC 8058 one-click: topic off at once; again: same answer, same state.
        code, hdrs, text = http("POST", unsub_url, one_click, dict(ctype, Origin=base))
        self.assertEqual(code, 200, text)
        self.assertSecureHeaders(hdrs)
        self.assertIs(self.topics(e, "pp-ann").get("promotions"), False)
        self.assertTrue(self.consent_now(e, "pp-ann")["granted"], "one-click turns off the topic, not the channel")
        once = self.state(e, "pp-ann")
        code, _, _ = http("POST", unsub_url, one_click, ctype)
        self.assertEqual(code, 200)
        self.assertEqual(self.state(e, "pp-ann")[1], once[1], "idempotent: no new consent record")
        self.assertIs(self.topics(e, "pp-ann").get("promotions"), False)

        # As a mail provider posts it: multipart/form-data (bob's link).
        _, bob_unsub = self.links(e, "pp-c1", "pp-bob")
        boundary = "----herald-e2e-7MA4YWxkTrZu0gW"
        mp = ("--%s\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--%s--\r\n"
              % (boundary, boundary))
        code, _, _ = http("POST", bob_unsub, mp, {"Content-Type": "multipart/form-data; boundary=%s" % boundary})
        self.assertEqual(code, 200)
        self.assertIs(self.topics(e, "pp-bob").get("promotions"), False)

        # "Stop all emails" from the unsubscribe page: consent withdrawn once, source unsubscribe_link.
        _, _, bob_page = http("GET", bob_unsub)
        body, hd = form({"channel": "all", "csrf": csrf_of(bob_page)})
        ledger_before = len(self.state(e, "pp-bob")[1])
        code, _, text = http("POST", bob_unsub, body, hd)
        self.assertEqual(code, 200, text)
        now = self.consent_now(e, "pp-bob")
        self.assertEqual((now["granted"], now["source"]), (False, "unsubscribe_link"))
        code, _, _ = http("POST", bob_unsub, body, hd)
        self.assertEqual(code, 200)
        self.assertEqual(len(self.state(e, "pp-bob")[1]), ledger_before + 1, "withdrawn once, not twice")

        # The next campaign (another topic) respects both.
        recs = self.campaign(e, h, "pp-c2", ["pp-ann", "pp-bob"], topic="news")
        self.assertEqual(recs["pp-ann"]["outcome"], "sent")
        self.assertEqual((recs["pp-bob"]["outcome"], recs["pp-bob"]["reason"]), ("suppressed", "no_consent"))
        self.assertEqual(h.stop(), 0, "clean exit (a sanitizer build reports leaks here)")

    def test_preference_form_over_http_applies_everything_at_once(self):
        ann = person("pp-ann", email="ann.form@example.com", phone="+15550107001", channels=["email", "sms"],
                     consent=["email", "sms"])
        e, h, base = self.start([ann])
        self.campaign(e, h, "pp-f1", ["pp-ann"])
        prefs_url, _ = self.links(e, "pp-f1", "pp-ann")
        _, _, page = http("GET", prefs_url)
        body, hd = form([("csrf", csrf_of(page)), ("ch", "sms"), ("pos_sms", "1"), ("ch", "email"),
                         ("pos_email", "2"), ("topic", "promotions"), ("topic_on", "promotions"),
                         ("quiet_from", "22:00"), ("quiet_until", "07:30"), ("freq_email", "2/7d"),
                         ("withdraw", "sms")])
        code, hdrs, _ = http("POST", prefs_url, body, dict(hd, Origin=base))
        self.assertEqual(code, 303)
        self.assertEqual(hdrs["Location"], "?saved=1")
        profile = json.loads(e.r.hget("herald:r:{pp-ann}", "profile"))
        self.assertEqual(profile["channels"], ["sms", "email"])
        self.assertEqual(profile["quiet_hours"], "22:00-07:30")
        self.assertEqual(profile["frequency"], {"email": "2/7d"})
        self.assertIs(profile["topics"]["promotions"], True)
        sms = self.consent_now(e, "pp-ann", "sms")
        self.assertEqual((sms["granted"], sms["source"]), (False, "preference_page"))
        self.assertTrue(self.consent_now(e, "pp-ann", "email")["granted"])
        code, _, page = http("GET", prefs_url + "?saved=1")
        self.assertEqual(code, 200)
        self.assertIn("Your choices are saved", page)
        self.assertIn("You withdrew your agreement to receive text messages", page)
        self.assertEqual(h.stop(), 0, "clean exit (a sanitizer build reports leaks here)")


if __name__ == "__main__":
    harness.main()
