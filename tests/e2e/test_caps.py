"""Frequency caps, the person's own limits and once-only delivery, exact
under concurrency: two daemons race on the same 1000 people with a cap of
one message per day, and each person gets exactly one message."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402

N = 1000
CAP = ("cap daily.channel=any", "cap daily.limit=1", "cap daily.window=24h")


class Caps(harness.HeraldTestCase):

    def test_two_daemons_never_exceed_a_cap(self):
        e = self.env(log_level="info")
        people = [person("c%04d" % i, email="cap.person%04d@example.com" % i, channels=["email"],
                         consent=["email"], first_name="P%d" % i) for i in range(N)]
        e.import_people(people)
        ids = [p["id"] for p in people]
        e.r.sadd("herald:lists:caps", *ids)
        h1 = e.start_herald(sets=CAP + ("daemon.consumer=one",))
        h2 = e.start_herald(sets=CAP + ("daemon.consumer=two",) + e.other_listeners())
        # Two campaigns for the same people, taken by the two daemons at once.
        e.enqueue(job("caps-a", recipients_key="herald:lists:caps", channels=["email"]))
        e.enqueue(job("caps-b", recipients_key="herald:lists:caps", channels=["email"]))
        a = e.wait_campaign_done("caps-a", herald=h1, timeout=120)
        b = e.wait_campaign_done("caps-b", herald=h2, timeout=120)
        self.assertEqual(a["total"] + b["total"], 2 * N)

        sent = {}
        for rec in e.audit("caps-a") + e.audit("caps-b"):
            if rec["outcome"] == "sent":
                sent[rec["recipient"]] = sent.get(rec["recipient"], 0) + 1
            else:
                self.assertEqual((rec["outcome"], rec["reason"]), ("suppressed", "cap:daily"))
        self.assertEqual(set(sent), set(ids), "everyone got one message")
        self.assertEqual(max(sent.values()), 1, "nobody got two: the cap held under concurrency")
        files = len(e.outbox_files("caps-a")) + len(e.outbox_files("caps-b"))
        self.assertEqual(files, N, "exactly one message per person reached the provider")
        self.assertEqual(a["sent"] + b["sent"], N)
        self.assertEqual(a["suppressed"].get("cap:daily", 0) + b["suppressed"].get("cap:daily", 0), N)
        # both daemons really worked (the race happened)
        self.assertIn("job started", h1.log())
        self.assertIn("job started", h2.log())

        # The same campaign run again ("rerun": true) sends nothing new.
        e.enqueue(job("caps-a", recipients_key="herald:lists:caps", channels=["email"], rerun=True))
        harness.wait_for("re-enqueued caps-a", lambda: len(e.audit("caps-a")) == 2 * N or None, 120)
        again = e.audit("caps-a")[N:]
        self.assertFalse([r for r in again if r["outcome"] == "sent"])
        self.assertEqual(len(e.outbox_files("caps-a")) + len(e.outbox_files("caps-b")), N)

    def test_caps_by_channel_and_topic_and_user_frequency(self):
        e = self.env()
        e.import_people([
            person("t-ann", email="ann.topics@example.com", phone="+15550100301", channels=["email", "sms"],
                   consent=["email", "sms"], first_name="Ann"),
            dict(person("t-bob", email="bob.freq@example.com", channels=["email"], consent=["email"],
                        first_name="Bob"), frequency={"email": "1/7d"}),
        ])
        sets = ("cap promo.channel=email", "cap promo.limit=1", "cap promo.window=7d", "cap promo.topics=promotions")
        h = e.start_herald(sets=sets)
        e.enqueue(job("t1", recipients=["t-ann", "t-bob"], channels=["email"], topic="promotions"))
        e.wait_campaign_done("t1", herald=h)
        # both are over the promo cap; the ops cap comes before bob's own limit in the decision order
        e.enqueue(job("t2", recipients=["t-ann", "t-bob"], channels=["email"], topic="promotions"))
        e.wait_campaign_done("t2", herald=h)
        t2 = {r["recipient"]: r for r in e.audit("t2")}
        self.assertEqual((t2["t-ann"]["outcome"], t2["t-ann"]["reason"]), ("suppressed", "cap:promo"))
        self.assertEqual(t2["t-ann"]["channel"], "email", "a capped email does not become an sms")
        self.assertEqual((t2["t-bob"]["outcome"], t2["t-bob"]["reason"]), ("suppressed", "cap:promo"))
        # another topic is not under the promo cap, but bob's own limit covers every topic
        e.enqueue(job("t3", recipients=["t-ann", "t-bob"], channels=["email"], topic="news"))
        e.wait_campaign_done("t3", herald=h)
        t3 = {r["recipient"]: r for r in e.audit("t3")}
        self.assertEqual(t3["t-ann"]["outcome"], "sent")
        self.assertEqual(t3["t-bob"]["reason"], "user_frequency")
        self.assertEqual(e.campaign("t2")["suppressed"], {"cap:promo": 2})
        self.assertEqual(e.campaign("t3")["suppressed"], {"user_frequency": 1})


if __name__ == "__main__":
    harness.main()
