"""[retention] inactive_people: a person with no consent on any channel and
no change or message for that long is erased as DELETE /v1/recipients/{id}
erases (tombstones included) and recorded in the admin stream with reason
retention; everyone else is kept.

herald has no clock of its own to move: the people's last activity (the
person hash's `act`, and the time of their last message in their history)
is moved back instead, which is the same as the clock moving forward."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import person  # noqa: E402

HOUR = 3600


class InactivePeople(harness.HeraldTestCase):

    def config(self, e, limit, name):
        text = e.config_text() + "\n[retention]\ninactive_people = %s\nsweep_every = 1s\n" % limit
        return e.write(name, text)

    def test_the_inactive_person_goes_the_others_stay(self):
        e = self.env(log_level="info")
        ppl = [person("in-ann", email="ann.inactive@example.com", phone="+15550155001"),   # no consent
               person("in-bob", email="bob.inactive@example.com", consent=["email"]),
               person("in-cat", email="cat.inactive@example.com"),      # no consent, but active
               person("in-dan", email="dan.inactive@example.com"),      # no consent, messaged lately
               person("in-eve", email="eve.inactive@example.com"),      # the same, in the history's ring
               person("in-fay", email="fay.inactive@example.com")]      # stored before `act` existed
        e.import_people(ppl)
        now = int(time.time())
        for pid in ("in-ann", "in-bob", "in-dan", "in-eve"):
            self.assertGreater(int(e.r.hget("herald:r:{%s}" % pid, "act")), now - 60, "import sets act")
            e.r.hset("herald:r:{%s}" % pid, "act", now - 2 * HOUR)
        # dan's message is in a history list as herald wrote it before the
        # ring; eve's in the ring (the person hash's h<slot> fields), after
        # an older one that was no message.
        e.r.lpush("herald:r:{in-dan}:history", "1|%d|c-old|email|promotions|sent||outbox" % (now - 600))
        e.r.hset("herald:r:{in-eve}", mapping={
            "hn": 2, "h0": "1|%d|c-one|email|promotions|sent||outbox" % (now - 600),
            "h1": "1|%d|c-two|email|promotions|suppressed|no_consent|" % (now - 300)})
        e.r.hdel("herald:r:{in-fay}", "act")

        conf = self.config(e, "1h", "hour.conf")
        h = e.start_herald(config=conf)
        harness.wait_for("ann erased", lambda: not e.r.exists("herald:r:{in-ann}"), 30)
        harness.wait_for("a full sweep", lambda: "inactive people sweep done" in h.log(), 30)
        self.assertEqual(h.stop(), 0)
        for pid in ("in-bob", "in-cat", "in-dan", "in-eve", "in-fay"):
            self.assertTrue(e.r.hexists("herald:r:{%s}" % pid, "profile"), pid + " was erased")
        self.assertGreater(int(e.r.hget("herald:r:{in-fay}", "act")), now - 60, "the clock of fay started")
        # As DELETE erases: every key of the person, the address index
        # entries; a tombstone per address.
        self.assertEqual(e.r.keys("herald:r:{in-ann}*"), [])
        self.assertIsNone(e.index_owner("email", "ann.inactive@example.com"))
        self.assertIsNone(e.index_owner("sms", "+15550155001"))
        self.assertEqual(e.index("tombstones"), {harness.index_member("email", "ann.inactive@example.com"),
                                                 harness.index_member("sms", "+15550155001")})
        admin = [f for _, f in e.r.xrange("herald:admin")]
        self.assertEqual([(a["action"], a["recipient"], a["by"], a["reason"]) for a in admin],
                         [("erase", "in-ann", "retention", "retention")])
        self.assertIn("recipient erased id=in-ann reason=retention", h.log())

        # One second: everyone without consent goes once a second passed
        # without a change; bob, who consented, stays.
        e.r.delete("herald:retention:people:cursor")
        conf = self.config(e, "1s", "second.conf")
        time.sleep(1.5)
        h = e.start_herald(config=conf)
        gone = ("in-cat", "in-dan", "in-eve", "in-fay")
        harness.wait_for("the others erased", lambda: not any(e.r.exists("herald:r:{%s}" % p) for p in gone), 30)
        self.assertTrue(e.r.hexists("herald:r:{in-bob}", "profile"))
        self.assertEqual(h.stop(), 0)
        who = sorted(f["recipient"] for _, f in e.r.xrange("herald:admin") if f["action"] == "erase")
        self.assertEqual(who, ["in-ann", "in-cat", "in-dan", "in-eve", "in-fay"])

    def test_off_by_default(self):
        e = self.env(log_level="info")
        e.import_people([person("off-ann", email="ann.off@example.com")])
        e.r.hset("herald:r:{off-ann}", "act", int(time.time()) - 3650 * 86400)
        conf = e.write("off.conf", e.config_text() + "\n[retention]\nsweep_every = 1s\n")
        h = e.start_herald(config=conf)
        time.sleep(3)   # sweeps run every second from the start
        self.assertEqual(h.stop(), 0)
        self.assertTrue(e.r.hexists("herald:r:{off-ann}", "profile"))
        self.assertNotIn("inactive people", h.log())


if __name__ == "__main__":
    harness.main()
