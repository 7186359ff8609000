"""The person's own control on the preference page, over HTTP through the
Prism proxy check of docs/openapi.yaml on the public listener: the channel
order set by buttons (no script), a channel without consent never ticked,
every form error shown at once, consent given to the exact terms shown (and
refused when they changed meanwhile), their data downloaded as the same
JSON as GET /v1/recipients/{id}, and erasure after a confirmation step, the
same as DELETE (tombstones included).
"""

import json
import os
import re
import sys
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import prism  # noqa: E402
from harness import person  # noqa: E402
from test_prefpage import csrf_of, http, make_token  # noqa: E402

TERMS = ("[terms sms]\nversion = v9\ntext = I agree to receive text messages about sales.\n"
         "text.de = Ich bin mit SMS über Aktionen einverstanden.\n")


def fields_of(html):
    """The form as a browser would post it: every hidden field and every ticked box."""
    out = []
    for m in re.finditer(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html):
        out.append((m.group(1), m.group(2)))
    for m in re.finditer(r'<input type="checkbox" name="([^"]+)" value="([^"]*)" checked>', html):
        out.append((m.group(1), m.group(2)))
    for m in re.finditer(r'<input type="(?:text|time)" name="([^"]+)" value="([^"]*)"', html):
        out.append((m.group(1), m.group(2)))
    return out


class PersonControl(harness.HeraldTestCase):

    def setUp(self):
        self.e = e = self.env()
        ann = person("pc-ann", email="ann.control@example.com", phone="+14155550177", channels=["email", "sms"],
                     consent=["email"])
        e.import_people([ann])
        path = e.write("control.conf", e.config_text() + "\n" + TERMS)
        os.chmod(path, 0o600)
        base = "http://127.0.0.1:%d" % e.public_port
        self.h = e.start_herald(sets=("public.public_url=%s" % base,), config=path)
        self.pub = prism.Prism(harness.OPENAPI, e.path("prism-public.log"), upstream=base).start()
        self.addCleanup(self.pub.stop)
        self.base = self.pub.url
        self.direct = base  # a 303 through Prism's proxy comes back followed (200): saves go straight to herald
        self.token = make_token("p", "pc-ann", "pc-spring", "promotions", "email", int(time.time()) + 3600)

    def tearDown(self):
        self.assertEqual(self.pub.violations(), [], "the pages' traffic does not match docs/openapi.yaml")

    def page(self, suffix=""):
        return http("GET", "%s/p/%s%s" % (self.base, self.token, suffix))

    def post(self, fields, suffix="", direct=False):
        return http("POST", "%s/p/%s%s" % (self.direct if direct else self.base, self.token, suffix),
                    urllib.parse.urlencode(fields), {"Content-Type": "application/x-www-form-urlencoded"})

    def state(self):
        return self.e.rb.hgetall("herald:r:{pc-ann}")

    def test_order_buttons_consent_boxes_and_every_error(self):
        status, _, html = self.page()
        self.assertEqual(status, 200)
        # No agreement for sms: its box is not ticked, is disabled, and says why.
        self.assertIn('name="ch" value="email" checked', html)
        self.assertNotIn('name="ch" value="sms" checked', html)
        self.assertRegex(html, r'<input type="checkbox" disabled aria-describedby="nc_sms">')
        self.assertIn("You have not agreed to receive text messages", html)
        # The order is set by buttons, not number inputs.
        self.assertNotIn('type="number"', html)
        self.assertIn('name="move" value="down:email"', html)
        self.assertIn('name="move" value="up:sms"', html)

        before = self.state()
        form = fields_of(html) + [("move", "down:email")]
        status, _, moved = self.post(form)
        self.assertEqual(status, 200, moved[:2000])
        self.assertLess(moved.index('name="move" value="down:sms"'), moved.index('name="move" value="up:email"'),
                        "the page comes back with sms first")
        self.assertIn("Press “Save my choices” to keep it", moved)
        self.assertEqual(self.state(), before, "an order button saves nothing")
        # Saving the new order.
        status, headers, _ = self.post(fields_of(moved) + [("save", "1")], direct=True)
        self.assertEqual(status, 303)
        self.assertEqual(headers["Location"], "?saved=1")
        prefs = json.loads(self.e.r.hget("herald:r:{pc-ann}", "profile") or "{}")
        self.assertEqual(prefs.get("channels"), ["sms", "email"])

        # Every problem of a form is named, not just the first, and nothing changes.
        before = self.state()
        typed = {"quiet_from": "21:00", "freq_email": "often"}
        status, _, html = self.post([(k, typed.get(k, v)) for k, v in fields_of(moved)] + [("evil", "1")])
        self.assertEqual(status, 400)
        alert = html[html.index('role="alert"'):html.index("</div>", html.index('role="alert"'))]
        for says in ("give both a start and an end time", "How often (emails)", "does not know"):
            self.assertIn(says, alert)
        self.assertEqual(self.state(), before)

    def test_consent_to_the_exact_terms_shown(self):
        status, _, html = self.page()
        self.assertIn("I agree to receive text messages about sales.", html)
        self.assertIn("Terms version v9", html)
        self.assertIn('name="terms_sms" value="v9"', html)
        self.assertNotIn('name="terms_email"', html, "email is agreed already: nothing to agree to")
        form = fields_of(html)
        # Terms that changed while the page was open: refused, nothing changed.
        before = self.state()
        stale = [(k, "v8" if k == "terms_sms" else v) for k, v in form]
        status, _, page = self.post(stale + [("grant", "sms"), ("save", "1")])
        self.assertEqual(status, 400)
        self.assertIn("The terms for text messages changed while you were reading them", page)
        self.assertEqual(self.state(), before)
        # The terms as shown: the ledger keeps their version.
        status, _, _ = self.post(form + [("grant", "sms"), ("save", "1")], direct=True)
        self.assertEqual(status, 303)
        last = harness.ledger(self.e, "pc-ann")[-1]
        self.assertEqual((last["channel"], last["granted"], last["source"], last["text_version"]),
                         ("sms", True, "preference_page", "v9"))
        status, _, html = self.page()
        self.assertIn('name="ch" value="sms" checked', html, "now agreed: the box is ticked")
        self.assertNotIn('name="terms_sms"', html)

    def test_download_and_erase(self):
        status, headers, body = self.page("/data")
        self.assertEqual(status, 200, "%s %s" % (headers.get("sl-violations"), body[:300]))
        self.assertEqual(headers["Content-Disposition"], 'attachment; filename="herald-data-pc-ann.json"')
        self.assertTrue(headers["Content-Type"].startswith("application/json"))
        api = json.loads(http("GET", self.e.api_url() + "/v1/recipients/pc-ann", None,
                              {"Authorization": "Bearer e2e-admin-token-0123456789"})[2])
        self.assertEqual(json.loads(body), api, "the same JSON as GET /v1/recipients/{id}")
        self.assertIn("ann.control@example.com", body)

        # Erasure asks first; the GET changes nothing, nor does a POST without the form's MAC.
        before = self.state()
        status, _, ask = self.page("/erase")
        self.assertEqual(status, 200)
        self.assertIn("Erase everything we store about you?", ask)
        self.assertEqual(self.state(), before)
        status, _, _ = self.post([("csrf", "forged"), ("erase", "1")], "/erase")
        self.assertEqual(status, 403)
        self.assertEqual(self.state(), before)
        status, _, done = self.post([("csrf", csrf_of(ask)), ("erase", "1")], "/erase")
        self.assertEqual(status, 200)
        self.assertIn("Your data is erased", done)
        self.assertEqual(self.e.r.keys("herald:r:{pc-ann}*"), [])
        self.assertEqual(len(self.e.index("tombstones")), 2, "a tombstone per address, as DELETE keeps")
        status, _, _ = http("GET", self.e.api_url() + "/v1/recipients/pc-ann", None,
                            {"Authorization": "Bearer e2e-admin-token-0123456789"})
        self.assertEqual(status, 404)
        status, _, _ = self.page()
        self.assertEqual(status, 404)
        self.assertIn("erased by the person recipient=pc-ann", self.h.log())


if __name__ == "__main__":
    harness.main()
