"""The pages in the person's own language, end to end over HTTP: the
catalogue is the profile's locale, else the browser's Accept-Language
(q-values), else [public] default_locale; <html lang dir> follow it; times
are in the person's zone and name it. The catalogues come from
[daemon] locales_dir: an operator adds a language by adding a file and
reloading; a broken catalogue stops the start (naming file and line) and
a reload with one keeps the running catalogues and logs why.
"""

import datetime
import os
import re
import shutil
import signal
import sys
import time
import zoneinfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import person  # noqa: E402
from test_prefpage import http, make_token  # noqa: E402


def lang_of(html):
    m = re.search(r'<html lang="([^"]+)" dir="([^"]+)">', html)
    assert m, "the page has no <html lang dir>"
    return m.group(1), m.group(2)


def title_of(html):
    return re.search(r"<title>([^<]*)</title>", html).group(1)


class Languages(harness.HeraldTestCase):

    def start(self, people, sets=(), locales=None):
        e = self.env()
        e.import_people(people)
        base = "http://127.0.0.1:%d" % e.public_port
        sets = ("public.public_url=%s" % base,) + tuple(sets)
        if locales:
            sets += ("daemon.locales_dir=%s" % locales,)
        h = e.start_herald(sets=sets)
        return e, h, base

    def page(self, base, pid, accept=None, kind="p"):
        tok = make_token(kind, pid, "l10n-spring", "promotions", "email", int(time.time()) + 3600)
        headers = {"Accept-Language": accept} if accept else {}
        status, _, text = http("GET", "%s/%s/%s" % (base, kind, tok), headers=headers)
        return status, text

    def test_locale_is_the_profile_then_the_browser_then_the_default(self):
        ko = person("l-ko", email="ko.l10n@example.com", channels=["email"], consent=["email"])
        ko.update(locale="ko", tz="Asia/Seoul")
        anon = person("l-any", email="any.l10n@example.com", channels=["email"], consent=["email"])
        del anon["locale"]
        e, h, base = self.start([ko, anon])

        # The profile's locale wins over the browser's.
        status, html = self.page(base, "l-ko", accept="de-DE,de;q=0.9")
        self.assertEqual(status, 200)
        self.assertEqual(lang_of(html), ("ko", "ltr"))
        self.assertEqual(title_of(html), "저희가 보내는 메시지")
        self.assertIn("수신 동의", html)
        self.assertNotIn("Your messages from us", html)
        # Times: in Asia/Seoul, the Korean format, naming the zone.
        at = harness.ledger(e, "l-ko")[0]["at"]
        t = datetime.datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone(zoneinfo.ZoneInfo("Asia/Seoul"))
        self.assertIn("%d년 %d월 %d일 %02d:%02d (Asia/Seoul)" % (t.year, t.month, t.day, t.hour, t.minute), html)
        self.assertNotIn(" UTC", html)

        # Without a locale: the browser's best match, by q-value.
        for accept, want in (("ko-KR,ko;q=0.9,en-US;q=0.8", "ko"), ("fr-FR, de;q=0.5, en;q=0.4", "de"),
                             ("en;q=0.2, de;q=0.9", "de"), ("fr, it", "en"), (None, "en")):
            with self.subTest(accept=accept):
                status, html = self.page(base, "l-any", accept=accept)
                self.assertEqual(status, 200)
                self.assertEqual(lang_of(html)[0], want)
        status, html = self.page(base, "l-any", accept="de")
        self.assertIn("Ihre Nachrichten von uns", html)
        self.assertIn("Was wir über Sie speichern", html)
        self.assertIn("(UTC)", html, "a person without a zone: the default_tz, named")

        # Pages before the person is known (a refused link) follow the browser.
        status, headers, html = http("GET", base + "/p/not-a-token", headers={"Accept-Language": "de"})
        self.assertEqual(status, 403)
        self.assertEqual(headers["Content-Language"], "de")
        self.assertEqual(lang_of(html)[0], "de")
        self.assertIn("Dieser Link ist ungültig", html)
        # The unsubscribe page too.
        status, html = self.page(base, "l-any", accept="ko", kind="u")
        self.assertEqual(status, 200)
        self.assertIn("수신 중지", html)

    def test_topics_organisation_privacy_and_contact_in_the_persons_language(self):
        ko = person("l-names", email="names.l10n@example.com", channels=["email"], consent=["email"])
        ko.update(locale="ko")
        e = self.env()
        e.import_people([ko])
        text = e.config_text().replace("[public]\n", "[public]\norganisation = Example & Co\n"
                                       "privacy_url = https://www.example.com/privacy\ncontact = privacy@example.com\n", 1)
        text += ("\n[topic promotions]\nname = Offers and sales\nname.ko = 할인 및 특가\n"
                 "description = Sales, at most weekly.\ndescription.ko = 최대 주 1회 할인 소식\n")
        path = e.write("names.conf", text)
        os.chmod(path, 0o600)
        base = "http://127.0.0.1:%d" % e.public_port
        e.start_herald(sets=("public.public_url=%s" % base,), config=path)
        status, html = self.page(base, "l-names")
        self.assertEqual(status, 200)
        self.assertIn("‘할인 및 특가’ 관련 메시지", html, "the topic's Korean name on the form")
        self.assertIn("최대 주 1회 할인 소식", html, "and its description")
        self.assertNotIn("promotions</", html)
        self.assertIn("이 메시지는 Example &amp; Co에서 보냅니다.", html)
        self.assertIn('<a href="https://www.example.com/privacy" rel="noopener">개인정보 처리방침</a>', html)
        self.assertIn("privacy@example.com", html)
        # English for a browser that asks for it (the profile says ko: the profile wins, so use the unsubscribe
        # page of a person without a locale instead).
        status, html = self.page(base, "nobody-at-all", accept="en", kind="u")
        self.assertIn("Stop Offers and sales emails", html)
        self.assertIn("These messages come from Example &amp; Co.", html)

    def test_content_per_language_and_the_audit_names_it(self):
        people = [person("c-ko", email="c.ko.l10n@example.com", channels=["email"], consent=["email"]),
                  person("c-kr", email="c.kr.l10n@example.com", channels=["email"], consent=["email"]),
                  person("c-fr", email="c.fr.l10n@example.com", channels=["email"], consent=["email"]),
                  person("c-none", email="c.none.l10n@example.com", channels=["email", "sms"],
                         phone="+14155550142", consent=["email", "sms"])]
        people[0]["locale"], people[1]["locale"], people[2]["locale"] = "ko", "ko-KR", "fr"
        del people[3]["locale"]
        e, h, base = self.start(people)
        j = harness.job("l10n-content", recipients=[p["id"] for p in people], channels=["email"])
        j["content"]["email"] = {"en": {"subject": "The e2e sale starts now", "text": "Dear {{first_name}}, the sale."},
                                 "ko": {"subject": "e2e 세일이 지금 시작됩니다", "text": "안녕하세요, 세일입니다."},
                                 "default": "en"}
        j["display_name"] = {"en": "Spring sale", "ko": "봄 세일", "default": "en"}
        e.enqueue(j)
        e.wait_campaign_done("l10n-content", herald=h)
        out = e.outbox_json("l10n-content")
        subjects = {name.split(".")[0]: m["subject"] for name, m in out.items()}
        self.assertEqual(subjects, {"c-ko": "e2e 세일이 지금 시작됩니다", "c-kr": "e2e 세일이 지금 시작됩니다",
                                    "c-fr": "The e2e sale starts now", "c-none": "The e2e sale starts now"})
        audit = {r["recipient"]: r for r in e.audit("l10n-content")}
        self.assertEqual({k: r.get("locale") for k, r in audit.items()},
                         {"c-ko": "ko", "c-kr": "ko", "c-fr": "en", "c-none": "en"})
        # The campaign's name in each person's language, on their page.
        tok = make_token("p", "c-kr", "l10n-content", "promotions", "email", int(time.time()) + 3600)
        status, _, html = http("GET", "%s/p/%s" % (base, tok))
        self.assertIn("저희 캠페인 ‘봄 세일’에서", html)
        self.assertNotIn("l10n-content", html.split("<h2>", 3)[1], "the name, not the id, says where it came from")
        tok = make_token("p", "c-fr", "l10n-content", "promotions", "email", int(time.time()) + 3600)
        status, _, html = http("GET", "%s/p/%s" % (base, tok))
        self.assertIn("campaign “Spring sale”", html)
        # One content for everyone: the audit names no language.
        e.enqueue(harness.job("l10n-plain", recipients=["c-none"], channels=["sms"]))
        e.wait_campaign_done("l10n-plain", herald=h)
        rec = [r for r in e.audit("l10n-plain") if r["outcome"] == "sent"]
        self.assertEqual(len(rec), 1)
        self.assertNotIn("locale", rec[0])

    def test_default_locale_is_configurable(self):
        anon = person("l-def", email="def.l10n@example.com", channels=["email"], consent=["email"])
        del anon["locale"]
        e, h, base = self.start([anon], sets=("public.default_locale=de",))
        status, html = self.page(base, "l-def")
        self.assertEqual(lang_of(html)[0], "de")
        status, html = self.page(base, "l-def", accept="xx-YY")
        self.assertEqual(lang_of(html)[0], "de")

    def test_operator_adds_a_locale_and_a_broken_one_is_refused(self):
        e = self.env()
        locales = e.path("locales")
        shutil.copytree(harness.LOCALES_DIR, locales)
        anon = person("l-op", email="op.l10n@example.com", channels=["email"], consent=["email"])
        del anon["locale"]
        e.import_people([anon])
        base = "http://127.0.0.1:%d" % e.public_port
        h = e.start_herald(sets=("public.public_url=%s" % base, "daemon.locales_dir=%s" % locales))
        self.assertEqual(lang_of(self.page(base, "l-op", accept="fr")[1])[0], "en")

        # A new language by adding a file, no rebuild: a reload picks it up.
        # Right to left, and partly translated: the rest is in English.
        with open(os.path.join(locales, "ar.po"), "w") as f:
            f.write('msgid ""\nmsgstr ""\n"Plural-Forms: nplurals=6; plural=(n==0 ? 0 : n==1 ? 1 : n==2 ? 2 : '
                    'n%100>=3 && n%100<=10 ? 3 : n%100>=11 ? 4 : 5);\\n"\n"X-Direction: rtl\\n"\n\n'
                    'msgid "prefs.title"\nmsgstr "رسائلك منا"\n')
        h.signal(signal.SIGHUP)
        harness.wait_for("the reload", lambda: "configuration reloaded" in h.log() or None, 20)
        self.assertIn("ar.po: warning:", h.log(), "what the new catalogue lacks is said")
        status, html = self.page(base, "l-op", accept="ar")
        self.assertEqual(lang_of(html), ("ar", "rtl"))
        self.assertEqual(title_of(html), "رسائلك منا")
        self.assertIn("What we store about you", html, "untranslated texts fall back to the default")

        # A broken catalogue: the reload is refused, naming file and line; the old ones stay.
        with open(os.path.join(locales, "de.po"), "a") as f:
            f.write('\nmsgid "prefs.title"\nmsgstr "Doppelt"\n')
        with open(os.path.join(locales, "de.po")) as f:
            lines = sum(1 for _ in f)
        h.signal(signal.SIGHUP)
        harness.wait_for("the refusal", lambda: "reload refused" in h.log() or None, 20)
        self.assertIn("de.po:%d: \"prefs.title\" is defined twice" % (lines - 1), h.log())
        self.assertEqual(title_of(self.page(base, "l-op", accept="de")[1]), "Ihre Nachrichten von uns")
        self.assertEqual(lang_of(self.page(base, "l-op", accept="ar")[1])[0], "ar")
        h.stop()

        # At start the same catalogue stops herald, with the same words.
        import subprocess
        res = subprocess.run([harness.HERALD_BIN, "--config", e.config, "--set", "daemon.locales_dir=%s" % locales],
                             capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("de.po:%d: \"prefs.title\" is defined twice" % (lines - 1), res.stderr)
        os.remove(os.path.join(locales, "en.po"))
        res = subprocess.run([harness.HERALD_BIN, "--config", e.config, "--check-config", "--set",
                              "daemon.locales_dir=%s" % locales], capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn("de.po:%d" % (lines - 1), res.stderr)


if __name__ == "__main__":
    harness.main()
