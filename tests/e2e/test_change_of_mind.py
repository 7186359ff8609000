"""A change of mind applies to messages already queued: a person who withdraws
consent through the API while a slow campaign is still working through its
recipients is not sent to, although herald had looked them up (and decided to
send) before the change. The reservation checks the person's `rev` and
herald decides again; reservations are taken just before the provider has
room, so the queued message was not reserved yet."""

import json
import os
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402

TOKEN = "e2e-admin-token-0123456789"   # harness BASE_CONFIG
N = 60


class ChangeOfMind(harness.HeraldTestCase):

    def api(self, method, path, body):
        # Through the Prism proxy: the request and herald's answer checked against docs/openapi.yaml.
        req = urllib.request.Request(self.e.api_url() + path,
                                     data=json.dumps(body).encode(), method=method,
                                     headers={"Authorization": "Bearer " + TOKEN,
                                              "Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status

    def test_withdrawal_while_queued_prevents_the_send(self):
        self.e = e = self.env()
        ids = ["cm-%02d" % i for i in range(N)]
        e.import_people([person(i, email="%s@example.com" % i, channels=["email"], consent=["email"]) for i in ids])
        # One message at a time, ten a second: the campaign takes about six seconds.
        h = e.start_herald(sets=["provider outbox.concurrency=1", "provider outbox.rate=10/s"])
        e.api_url()  # the Prism proxy up before the campaign starts, not at the first withdrawal
        e.enqueue(job("cm-1", recipients=ids, channels=["email"]))
        harness.wait_for("the first message", lambda: len(e.outbox_files("cm-1")) >= 1, 20, interval=0.02)
        last = ids[-1]
        self.assertEqual(self.api("POST", "/v1/recipients/%s/consent" % last,
                                  {"channel": "email", "granted": False, "source": "e2e-test"}), 201)
        sent_when_withdrawn = len(e.outbox_files("cm-1"))
        self.assertLess(sent_when_withdrawn, N // 2, "the campaign went too fast for this test to mean anything")
        e.wait_campaign_done("cm-1", timeout=60, herald=h)

        recs = self.assertOneTerminalEach(e.audit("cm-1"), ids)
        self.assertEqual((recs[last]["outcome"], recs[last]["reason"]), ("suppressed", "no_consent"))
        for i in ids[:-1]:
            self.assertEqual(recs[i]["outcome"], "sent", i)
        self.assertNotIn("%s.email.json" % last, e.outbox_files("cm-1"))
        self.assertTrue(any("decided again after a change" in line for line in h.log_lines()),
                        "herald should have looked the person up again")


if __name__ == "__main__":
    harness.main()
