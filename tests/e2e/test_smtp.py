"""The email_smtp plugin against a real SMTP server on loopback (aiosmtpd,
tests/e2e/smtp_sink.py): the mail it builds arrives with the right envelope,
headers (From, To, an RFC 2047 Subject, Date, Message-ID, both RFC 8058
List-Unsubscribe headers) and both text/plain and text/html parts; CR/LF in
a subject cannot add a header; a message with nothing to send is refused
without even a connection; 550 is REJECTED smtp_550, 450 is RETRY, nothing
listening is RETRY. The plugin is driven by tests/unit/smtp_probe (prepare,
curl_easy_perform, interpret), standing in for the daemon's curl engine;
a last test runs a real herald campaign through it once that engine exists,
and is skipped with a message until then."""

import email
import email.policy
import email.utils
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402
from smtp_sink import SmtpSink  # noqa: E402

PLUGIN = os.path.join(harness.PLUGIN_DIR, "email_smtp.so")
PROBE = os.path.join(os.path.dirname(harness.PLUGIN_DIR), "tests", "unit", "smtp_probe")

NOW_MS = 1772528400000  # 2026-03-03T09:00:00Z
UNSUB = "https://herald.example/u/MXx1fHUxfHNwcmluZw.c2lnbmF0dXJl"
TO = "ann.smith@example.org"
SUBJECT = "Grüße, Zoë"
TEXT = "Dear Zoë,\nour spring sale starts today.\n.\nA line with only a dot above.\n"
HTML = "<p>Dear Zoë,</p>\n<p>our <b>spring sale</b> starts today.</p>\n"


def probe(*args):
    res = subprocess.run([PROBE, PLUGIN] + list(args), capture_output=True, text=True, timeout=60)
    out = {}
    for line in res.stdout.splitlines():
        for kv in line.split(" "):
            if "=" in kv:
                k, v = kv.split("=", 1)
                out[k] = v
    return res, out


class SmtpTest(harness.HeraldTestCase):
    def setUp(self):
        for f in (PLUGIN, PROBE):
            if not os.access(f, os.R_OK):
                self.fail("%s not built" % f)
        self.dir = tempfile.mkdtemp(prefix="herald-e2e-smtp-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.sink = SmtpSink(os.path.join(self.dir, "sink")).start()
        self.addCleanup(self.sink.stop)

    def settings(self, **extra):
        s = {"url": self.sink.url(), "from": "news@shop.example", "from_name": "Spring Shop Ünïted",
             "helo": "herald.test"}
        s.update(extra)
        return ["%s=%s" % kv for kv in s.items()]

    def send(self, to=TO, subject=SUBJECT, text=TEXT, html=HTML, unsub=UNSUB, settings=None):
        args = ["--now", str(NOW_MS), "--campaign", "spring-2026", "--recipient", "u1", "--to", to,
                "--subject", subject, "--text", text]
        if html is not None:
            args += ["--html", html]
        if unsub is not None:
            args += ["--unsubscribe", unsub]
        res, out = probe(*(args + (settings if settings is not None else self.settings())))
        # The probe shows what the plugin reported: never an address or a body.
        for secret in filter(None, (to, "Zoë", "spring sale")):
            self.assertNotIn(secret, res.stdout + res.stderr)
        return res, out

    def only_message(self):
        msgs = self.sink.messages()
        self.assertEqual(len(msgs), 1, "the sink holds %d messages" % len(msgs))
        m = msgs[0]
        return m, email.message_from_bytes(m["data"], policy=email.policy.default)

    def test_message_arrives_whole(self):
        res, out = self.send()
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual((out["status"], out["curl"]), ("250", "0"))
        self.assertEqual(out["verdict"], "accepted")
        env, msg = self.only_message()

        self.assertEqual(env["helo"], "herald.test")
        self.assertEqual(env["mail_from"], "news@shop.example")
        self.assertEqual(env["rcpt_tos"], [TO])

        self.assertEqual(msg["From"].addresses[0].display_name, "Spring Shop Ünïted")
        self.assertEqual(msg["From"].addresses[0].addr_spec, "news@shop.example")
        self.assertEqual(msg["To"].addresses[0].addr_spec, TO)
        self.assertEqual(str(msg["Subject"]), SUBJECT)
        raw_subject = [l for l in env["data"].split(b"\r\n") if l.lower().startswith(b"subject:")][0]
        self.assertIn(b"=?UTF-8?B?", raw_subject)  # RFC 2047, not raw 8-bit
        self.assertEqual(email.utils.parsedate_to_datetime(str(msg["Date"])).timestamp() * 1000, NOW_MS)
        self.assertRegex(str(msg["Message-ID"]), r"^<spring-2026\.u1\.[0-9a-f]{16}@shop\.example>$")
        self.assertEqual(out["provider_id"], str(msg["Message-ID"]))
        self.assertEqual(str(msg["MIME-Version"]), "1.0")
        self.assertEqual(msg.get_all("List-Unsubscribe"), ["<%s>" % UNSUB])
        self.assertEqual(msg.get_all("List-Unsubscribe-Post"), ["List-Unsubscribe=One-Click"])

        # multipart/alternative: text/plain first, text/html last (preferred).
        alts = [p for p in msg.walk() if p.get_content_type() == "multipart/alternative"]
        self.assertEqual(len(alts), 1)
        parts = [p.get_content_type() for p in alts[0].iter_parts()]
        self.assertEqual(parts, ["text/plain", "text/html"])
        plain = msg.get_body(preferencelist=("plain",))
        html = msg.get_body(preferencelist=("html",))
        self.assertEqual(plain.get_content_charset(), "utf-8")
        self.assertEqual(plain.get_content().replace("\r\n", "\n"), TEXT)
        self.assertEqual(html.get_content().replace("\r\n", "\n"), HTML)
        # No line longer than SMTP allows, whatever the body.
        self.assertLessEqual(max(len(l) for l in env["data"].split(b"\r\n")), 998)

    def test_subject_cannot_inject_headers(self):
        evil = "Hi Ann\r\nBcc: eve@evil.example\r\nX-Injected: yes\n\nbody"
        res, out = self.send(subject=evil, unsub=None)
        self.assertEqual(out.get("verdict"), "accepted", res.stdout + res.stderr)
        env, msg = self.only_message()
        self.assertEqual(env["rcpt_tos"], [TO])
        self.assertIsNone(msg["Bcc"])
        self.assertIsNone(msg["X-Injected"])
        self.assertEqual(str(msg["Subject"]), "Hi Ann Bcc: eve@evil.example X-Injected: yes body")
        self.assertIsNone(msg["List-Unsubscribe"])
        self.assertIsNone(msg["List-Unsubscribe-Post"])

    def test_address_cannot_inject_commands(self):
        res, out = self.send(to="ann@example.org>\r\nRCPT TO:<eve@evil.example")
        self.assertEqual((res.returncode, out.get("prepare"), out.get("reason")), (3, "refused", "invalid_address"))
        self.assertEqual(self.sink.messages(), [])

    def test_text_only_and_ascii_subject(self):
        res, out = self.send(subject="Plain news", html=None)
        self.assertEqual(out.get("verdict"), "accepted", res.stdout + res.stderr)
        env, msg = self.only_message()
        self.assertEqual(str(msg["Subject"]), "Plain news")
        self.assertEqual([p.get_content_type() for p in msg.walk() if not p.is_multipart()], ["text/plain"])
        self.assertEqual(msg.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n"), TEXT)

    def test_nothing_to_send_is_refused_without_connecting(self):
        before = self.sink.connections
        for kw, reason in (({"text": "", "html": ""}, "empty_body"),
                           ({"text": "", "html": None}, "empty_body"),
                           ({"subject": ""}, "empty_subject"),
                           ({"subject": "\r\n"}, "empty_subject"),
                           ({"to": ""}, "no_address")):
            res, out = self.send(**kw)
            self.assertEqual(res.returncode, 3, (kw, res.stdout, res.stderr))
            self.assertEqual((out.get("prepare"), out.get("reason")), ("refused", reason), kw)
        self.assertEqual(self.sink.connections, before, "the sink was dialled")
        self.assertEqual(self.sink.messages(), [])

    def test_rejected_recipient(self):
        res, out = self.send(to="reject@example.org")
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(out["status"], "550")
        self.assertEqual((out["verdict"], out["reason"]), ("rejected", "smtp_550"))
        self.assertEqual(self.sink.messages(), [])

    def test_refused_at_end_of_data(self):
        res, out = self.send(to="bigdata@example.org")
        self.assertEqual((out["status"], out["verdict"], out["reason"]), ("554", "rejected", "smtp_554"))

    def test_temporary_failure_is_retried(self):
        res, out = self.send(to="later@example.org")
        self.assertEqual((out["status"], out["verdict"], out["reason"]), ("450", "retry", "smtp_450"))
        self.assertEqual(self.sink.messages(), [])

    def test_nothing_listening_is_retried(self):
        port = harness.free_port()
        res, out = self.send(settings=self.settings(url="smtp://127.0.0.1:%d" % port))
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual((out["verdict"], out["reason"]), ("retry", "connect_failed"))

    def test_tls_required_but_not_offered_is_retried(self):
        res, out = self.send(settings=self.settings(tls="required"))
        self.assertEqual(out["verdict"], "retry", res.stdout)
        self.assertEqual(self.sink.messages(), [])

    def test_bad_settings(self):
        for bad in (["colour=blue"], ["tls=sometimes"], ["from=not-an-address"], ["username=u"]):
            res, out = probe(*(["--to", TO, "--subject", "s", "--text", "t"] + self.settings() + bad))
            self.assertEqual((res.returncode, out.get("create")), (4, "failed"), bad)
            self.assertIn("setting ", res.stderr)

    def test_herald_campaign_through_smtp(self):
        e = self.env()
        plugins = e.path("plugins")
        os.makedirs(plugins)
        for name in ("outbox", "email_smtp"):
            os.symlink(os.path.join(harness.PLUGIN_DIR, name + ".so"), os.path.join(plugins, name + ".so"))
        text = e.config_text().replace("plugin_dir = %s" % harness.PLUGIN_DIR, "plugin_dir = %s" % plugins)
        text = text.replace("[channel email]\nproviders = outbox",
                            "[channel email]\nproviders = smtp")
        text = text.replace("[public]\n", "[public]\npublic_url = https://herald.example\n")
        text += "\n[provider smtp]\nplugin = email_smtp\nurl = %s\nfrom = news@shop.example\n" \
                "from_name = Spring Shop\nhelo = herald.test\n" % self.sink.url()
        conf = e.write("smtp.conf", text)
        e.import_people([person("u1", email=TO, channels=["email"], consent=["email"], first_name="Zoë")])
        h = e.start_herald(config=conf)
        e.enqueue(job("smtp-1", recipients=["u1"], channels=["email"]))
        e.wait_campaign_done("smtp-1", herald=h)
        recs = [r for r in e.audit("smtp-1") if r["outcome"] in harness.TERMINAL]
        self.assertEqual(len(recs), 1, recs)
        if recs[0]["outcome"] == "failed" and "no deliver()" in h.log():
            self.skipTest("the daemon's curl engine (daemon/dispatch.c) has not landed: herald cannot drive "
                          "network plugins yet, so the campaign part is skipped")
        self.assertEqual((recs[0]["outcome"], recs[0]["provider"]), ("sent", "smtp"), recs[0])
        env, msg = self.only_message()
        self.assertEqual(env["rcpt_tos"], [TO])
        self.assertEqual(recs[0]["provider_id"], str(msg["Message-ID"]))
        self.assertEqual(str(msg["Subject"]), "Hello Zoë, the e2e sale starts now")
        self.assertIn("Dear Zoë", msg.get_body(preferencelist=("plain",)).get_content())
        self.assertRegex(str(msg["List-Unsubscribe"]), r"^<https://herald\.example/u/[^>]+>$")
        self.assertEqual(str(msg["List-Unsubscribe-Post"]), "List-Unsubscribe=One-Click")
        h.stop()


if __name__ == "__main__":
    harness.main()
