"""A campaign whose expires_at is past: every recipient suppressed/expired
(expired comes first in the decision order, even before unknown_recipient),
nothing in the outbox, the job acked."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402

PEOPLE = [
    person("x-email", email="ella.expired@example.com", channels=["email"], consent=["email"], first_name="Ella"),
    person("x-sms", phone="+15550100201", channels=["sms"], consent=["sms"], first_name="Sven"),
    person("x-both", email="bo.expired@example.com", phone="+15550100202", consent=["email", "sms"], first_name="Bo"),
]


class Expired(harness.HeraldTestCase):

    def test_expired_campaign_sends_nothing(self):
        e = self.env()
        e.import_people(PEOPLE)
        h = e.start_herald()
        ids = [p["id"] for p in PEOPLE] + ["x-ghost"]
        e.enqueue(job("expired-1", recipients=ids, expires_at="2020-01-01T00:00:00Z"))
        c = e.wait_campaign_done("expired-1", herald=h)

        recs = self.assertOneTerminalEach(e.audit("expired-1"), ids)
        for rid in ids:
            with self.subTest(recipient=rid):
                self.assertEqual((recs[rid]["outcome"], recs[rid]["reason"]), ("suppressed", "expired"))
        self.assertEqual(len(e.audit("expired-1")), len(ids), "one audit record per recipient, no more")
        self.assertEqual((c["total"], c["sent"], c["suppressed"]), (len(ids), 0, {"expired": len(ids)}))
        self.assertEqual(e.outbox_files("expired-1"), {})
        self.assertEqual(e.pending(), 0)

        # a campaign that is still valid goes through on the same daemon
        e.enqueue(job("not-expired", recipients=ids, expires_at="2999-01-01T00:00:00Z"))
        c = e.wait_campaign_done("not-expired", herald=h)
        self.assertEqual(c["sent"], 3)
        self.assertEqual(sorted(e.outbox_files("not-expired")),
                         ["x-both.email.json", "x-email.email.json", "x-sms.sms.json"])
        self.assertEqual(h.stop(), 0)


if __name__ == "__main__":
    harness.main()
