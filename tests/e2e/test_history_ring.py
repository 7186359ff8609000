"""A person's history is a ring of fields in the person hash (h<slot>, the
cursor hn): no key of its own, so a person costs no list once a campaign's
records are gone. GET /v1/recipients/{id} shows it newest first, every kind
of decision (a message sent, one suppressed by the policy, a duplicate of
the same id in a job), at most [retention] history entries. A person stored
before the ring keeps their history list: it is shown after the ring's
entries, never written again, and dropped once the ring is full. Erasure
takes the ring with the person."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import job, person  # noqa: E402


def messages(e, pid):
    status, doc = e.api("GET", "/v1/recipients/" + pid)
    assert status == 200, (status, doc)
    return [(m["campaign"], m["outcome"], m["reason"]) for m in doc["messages"]]


class HistoryRing(harness.HeraldTestCase):

    def test_ring_newest_first_old_list_read_then_dropped(self):
        srv = FaultServer([{"status": 202}])
        self.addCleanup(srv.stop)
        e = self.env(log_level="info")
        conf = e.hook_config(srv.url)
        e.import_people([person("hr-ann", email="ann.ring@example.com", consent=["email"]),
                         person("hr-old", email="old.ring@example.com", consent=["email"]),
                         person("hr-off", email="off.ring@example.com")])   # no consent: suppressed
        # hr-old's history as herald wrote it before the ring: a list, newest first.
        e.r.rpush("herald:r:{hr-old}:history", "1|1700000300|old-2|email|promotions|sent|sent|hook",
                  '{"campaign":"old-1","channel":"email","topic":"promotions","outcome":"sent",'
                  '"reason":"sent","provider":"hook","at":"2023-11-14T22:15:00Z"}')
        e.r.rpush("herald:r:{hr-off}:history", "1|1700000000|old-0|email|promotions|sent|sent|hook")
        h = e.start_herald(config=conf, sets=["retention.history=3"])

        e.enqueue(job("hr-1", recipients=["hr-ann", "hr-old", "hr-off"], channels=["email"]))
        e.wait_campaign_done("hr-1", herald=h, timeout=30)
        self.assertEqual(messages(e, "hr-ann"), [("hr-1", "sent", "")])
        self.assertEqual(messages(e, "hr-off"), [("hr-1", "suppressed", "no_consent"), ("old-0", "sent", "sent")])
        # The ring's entry first, then the list's: 3 in all.
        self.assertEqual(messages(e, "hr-old"), [("hr-1", "sent", ""), ("old-2", "sent", "sent"),
                                                 ("old-1", "sent", "sent")])
        self.assertFalse(e.r.exists("herald:r:{hr-ann}:history"), "a history list was written")
        self.assertEqual(e.r.llen("herald:r:{hr-off}:history"), 1, "the old list was written")
        # Its entries are values like the others: the hash stays compact.
        self.assertEqual(e.r.object("encoding", "herald:r:{hr-ann}"), "listpack")

        # The same id twice in one job: a duplicate, recorded once in the history.
        e.enqueue(job("hr-2", recipients=["hr-ann", "hr-old", "hr-ann"], channels=["email"]))
        e.wait_campaign_done("hr-2", herald=h, timeout=30)
        self.assertEqual(messages(e, "hr-ann")[:2], [("hr-2", "sent", ""), ("hr-1", "sent", "")])
        self.assertEqual(messages(e, "hr-old"), [("hr-2", "sent", ""), ("hr-1", "sent", ""),
                                                 ("old-2", "sent", "sent")])
        self.assertTrue(e.r.exists("herald:r:{hr-old}:history"), "the list went before the ring was full")

        # Two more: the ring of 3 turns over, the old lists are gone (hr-off's
        # by decisions without a reservation).
        for cid in ("hr-3", "hr-4"):
            e.enqueue(job(cid, recipients=["hr-ann", "hr-old", "hr-off"], channels=["email"]))
            e.wait_campaign_done(cid, herald=h, timeout=30)
        self.assertEqual(messages(e, "hr-old"), [("hr-4", "sent", ""), ("hr-3", "sent", ""),
                                                 ("hr-2", "sent", "")])
        self.assertFalse(e.r.exists("herald:r:{hr-old}:history"))
        self.assertEqual(messages(e, "hr-off"), [(c, "suppressed", "no_consent") for c in ("hr-4", "hr-3", "hr-1")])
        self.assertFalse(e.r.exists("herald:r:{hr-off}:history"))
        ann = messages(e, "hr-ann")
        self.assertEqual([m[0] for m in ann], ["hr-4", "hr-3", "hr-2"])
        stored = [f.decode() for f in e.rb.hkeys("herald:r:{hr-ann}")]
        self.assertEqual(sorted(f for f in stored if f[0] == "h" and f != "hn"), ["h0", "h1", "h2"])
        self.assertEqual(srv.count(), 2 + 2 + 4)

        # Erasure takes the ring with the person.
        status, _ = e.api("DELETE", "/v1/recipients/hr-ann")
        self.assertEqual(status, 200)
        self.assertEqual(e.r.keys("herald:r:{hr-ann}*"), [])
        self.assertEqual(h.stop(), 0)


if __name__ == "__main__":
    harness.main()
