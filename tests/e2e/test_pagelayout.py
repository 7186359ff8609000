"""The pages in real Chromium (tests/e2e/pagelayout.mjs), for every shipped
language at 1280 and 360 px wide: nothing scrolls sideways
(document.scrollingElement.scrollWidth no wider than the viewport), every
control is at least 44 px, <html lang> is the person's language, and a
full-page screenshot of each is kept (the path is printed; under the build
directory's Testing/pagelayout/). Korean is rendered with Debian's
fonts-noto-cjk. Then a keyboard-only pass through the form (Tab, Space,
Enter: a topic turned off, the order changed by its button, saved), and
the person's data downloaded through the page's link and erased through
its confirmation page, end to end.
"""

import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402
from test_prefpage import CHROMIUM, HERE, NODE, NODE_MODULES, browser_missing, http  # noqa: E402

LOCALES = ("en", "de", "ko")
SHOTS = os.path.join(os.path.dirname(os.path.abspath(harness.HERALD_BIN)), "Testing", "pagelayout")
EXTRA = """
[topic promotions]
name = Offers and sales
name.de = Angebote und Aktionen
name.ko = 할인 및 특가
description = Our sales and discount codes, at most weekly.
description.de = Unsere Aktionen und Rabattcodes, höchstens wöchentlich.
description.ko = 할인 행사와 할인 코드를 최대 주 1회 보내 드립니다.

[terms sms]
version = 2026-03
text = I agree to receive marketing text messages about the topics I choose. I can withdraw at any time.
text.de = Ich bin einverstanden, Werbe-SMS zu den Themen meiner Wahl zu erhalten. Ich kann jederzeit widerrufen.
text.ko = 제가 선택한 주제에 관한 마케팅 문자 메시지를 받는 것에 동의합니다. 언제든지 철회할 수 있습니다.
"""
ZONES = {"en": "Europe/London", "de": "Europe/Berlin", "ko": "Asia/Seoul"}


class PageLayout(harness.HeraldTestCase):

    def test_every_language_fits_a_phone_and_works_by_keyboard(self):
        why = browser_missing()
        if why:
            self.skipTest(why)
        self.assertTrue(os.path.isfile(os.path.join(NODE_MODULES, "playwright-core", "package.json")),
                        "playwright-core is not installed under %s: run scripts/deps.sh --npm" % NODE_MODULES)
        fonts = subprocess.run(["fc-list", ":lang=ko", "family"], capture_output=True, text=True).stdout
        self.assertIn("Noto Sans CJK", fonts, "Korean needs Debian's fonts-noto-cjk (scripts/deps.sh installs it)")

        e = self.env()
        people = []
        for loc in LOCALES:
            # A long address and attributes: what wraps must wrap, not push the page wider.
            p = person("pl-" + loc, email="a.rather.long.address.for.wrapping.%s@marketing-department.example.com" % loc,
                       phone="+1415555%04d" % (100 + len(people)), channels=["email", "sms"], consent=["email"],
                       first_name="Ann", loyalty_programme_membership_identifier="GOLD-0000-1111-2222-3333-4444")
            p.update(locale=loc, tz=ZONES[loc])
            people.append(p)
        e.import_people(people)
        text = e.config_text().replace("[public]\n", "[public]\norganisation = Example Shop GmbH\n"
                                       "privacy_url = https://www.example.com/privacy\n"
                                       "contact = privacy@example.com\n", 1) + EXTRA
        path = e.write("layout.conf", text)
        os.chmod(path, 0o600)
        base = "http://127.0.0.1:%d" % e.public_port
        h = e.start_herald(sets=("public.public_url=%s" % base,), config=path)
        ids = [p["id"] for p in people]
        for cid, channels in (("layout-spring", ["email"]), ("layout-sms-only", ["sms"])):
            e.enqueue(job(cid, recipients=ids, channels=channels))
            e.wait_campaign_done(cid, herald=h)
        out = e.outbox_json("layout-spring")
        links = {p: (out["%s.email.json" % p]["preferences_url"], out["%s.email.json" % p]["unsubscribe_url"])
                 for p in ids}

        shutil.rmtree(SHOTS, ignore_errors=True)
        pages = []
        for loc in LOCALES:
            prefs, unsub = links["pl-" + loc]
            pages += [{"name": "prefs-" + loc, "url": prefs},
                      {"name": "unsubscribe-" + loc, "url": unsub, "accept": loc},
                      {"name": "erase-" + loc, "url": prefs + "/erase"}]
        plan = {"shots": SHOTS, "widths": [1280, 360], "pages": pages,
                "keyboard": {"url": links["pl-en"][0], "topic": "promotions"},
                "data": {"url": links["pl-de"][0], "download": e.path("download.json")}}
        plan_path = e.write("plan.json", json.dumps(plan))
        result_path = e.path("layout.json")
        env = dict(os.environ, HERALD_NODE_MODULES=NODE_MODULES, HERALD_CHROMIUM=CHROMIUM)
        res = subprocess.run([NODE, os.path.join(HERE, "pagelayout.mjs"), plan_path, result_path],
                             capture_output=True, text=True, timeout=300 * harness.SLOW, env=env,
                             stdin=subprocess.DEVNULL)
        self.assertEqual(res.returncode, 0, "pagelayout.mjs failed:\n%s\n%s" % (res.stdout, res.stderr))
        with open(result_path) as f:
            r = json.load(f)
        sys.stderr.write("pagelayout: screenshots in %s\n" % SHOTS)

        self.assertEqual(len(r["pages"]), len(pages) * 2)
        for p in r["pages"]:
            with self.subTest(page=p["name"], width=p["width"]):
                self.assertEqual(p["status"], 200)
                self.assertEqual(p["innerWidth"], p["width"])
                self.assertLessEqual(p["scrollWidth"], p["innerWidth"], "scrolls sideways: %s" % p["wide"])
                self.assertEqual(p["small"], [], "controls smaller than 44 px")
                self.assertEqual(p["lang"], p["name"].rsplit("-", 1)[1])
                self.assertEqual(p["dir"], "ltr")
                self.assertTrue(os.path.getsize(p["shot"]) > 1000, p["shot"])
        titles = {p["name"]: p["title"] for p in r["pages"]}
        self.assertEqual(titles["prefs-ko"], "저희가 보내는 메시지")
        self.assertEqual(titles["prefs-de"], "Ihre Nachrichten von uns")
        self.assertEqual(r["failed_requests"], [], "the pages load nothing else")

        # Keyboard only: the topic off, the order changed, saved.
        kb = r["keyboard"]
        self.assertTrue(kb["reached_topic"], kb["order"])
        self.assertTrue(kb["topic_unchecked"])
        self.assertEqual(kb["move"], "down:email", "the first order button in tab order")
        self.assertIn("Press “Save my choices” to keep it", kb["after_move"])
        self.assertTrue(kb["reached_save"])
        self.assertEqual(kb["saved_status"], 200)
        self.assertTrue(kb["saved_url"].endswith("?saved=1"), kb["saved_url"])
        profile = json.loads(e.r.hget("herald:r:{pl-en}", "profile"))
        self.assertEqual(profile.get("topics"), {"promotions": False})
        self.assertEqual(profile.get("channels"), ["sms", "email"])

        # Their data, downloaded and then erased through the page.
        d = r["data"]
        self.assertEqual(d["download_name"], "herald-data-pl-de.json")
        with open(e.path("download.json")) as f:
            downloaded = json.load(f)
        self.assertEqual(downloaded["id"], "pl-de")
        self.assertIn("a.rather.long.address.for.wrapping.de@marketing-department.example.com", json.dumps(downloaded))
        self.assertIn("Alles löschen, was wir über Sie speichern?", d["confirm_text"])
        self.assertEqual(d["status"], 200)
        self.assertIn("Ihre Daten sind gelöscht", d["text"])
        self.assertEqual(e.r.keys("herald:r:{pl-de}*"), [])
        status, _, _ = http("GET", e.api_url() + "/v1/recipients/pl-de", None,
                            {"Authorization": "Bearer e2e-admin-token-0123456789"})
        self.assertEqual(status, 404)


if __name__ == "__main__":
    harness.main()
