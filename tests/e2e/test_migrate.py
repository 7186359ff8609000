"""An upgrade from key layout 1: nothing sent twice.

Layout 1 kept each person's once-only records in a hash of their own
(herald:r:{ID}:campaigns); layout 2 keeps them in the person hash (field
c:<campaign>), so that deciding, reserving and closing a message each touch
one key. A daemon of layout 2 that read jobs against layout 1 data would not
see the records and send a campaign a second time to everyone it reached. So
it reads no job until `heraldctl migrate` ran, says so on /healthz and once in
its log; migrate refuses while a daemon runs; after it, once-only holds."""

import hashlib
import hmac
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import job, person  # noqa: E402
from test_api import Api  # noqa: E402
import test_webhooks as wh  # noqa: E402


class Migrate(harness.HeraldTestCase):

    def layout_said(self, h):
        """What /healthz says of the layout of a daemon that reads no job."""
        def said():
            code, body = h.healthz()
            return body if code == 503 and body and body.get("redis_layout") else None
        return harness.wait_for("/healthz to name the layout", said, 20)

    def sink_and_people(self, n, prefix):
        """A sink answering 202, an environment whose hook provider posts to
        it, and n people imported: (sink, env, config, ids)."""
        srv = FaultServer([{"status": 202}])
        self.addCleanup(srv.stop)
        e = self.env(log_level="info")
        conf = e.hook_config(srv.url)
        ppl = harness.people(n, prefix)
        e.import_people(ppl)
        return srv, e, conf, [p["id"] for p in ppl]

    def test_layout_1_is_migrated_before_any_job_runs(self):
        srv, e, conf, ids = self.sink_and_people(6, "mg-")
        # What layout 1 left: the marker, an audit stream, and the records of
        # a campaign that reached the first three people.
        e.r.set("herald:marker", "1700000000")
        e.r.xadd("herald:audit", {"campaign": "mg-old", "recipient": ids[0], "outcome": "sent"})
        for rid in ids[:3]:
            e.r.hset("herald:r:{%s}:campaigns" % rid, "mg-c", "sent 1-1 old.1 1700000000")
            e.r.hset("herald:r:{%s}:campaigns" % rid, "mg-other", "suppressed 1-2 old.1 1700000001")

        h = e.start_herald(config=conf, wait_healthy=False)

        body = self.layout_said(h)
        self.assertEqual(body["redis_layout"], {"found": "1", "expected": "5", "fix": "heraldctl migrate"})
        entry = e.enqueue(job("mg-c", recipients=ids, channels=["email"]))
        harness.wait_for("the layout error in the log", lambda: "key layout 1" in h.log(), 10)
        self.assertEqual(h.log().count("heraldctl migrate"), 1, "said once")
        self.assertEqual(srv.count(), 0, "a job ran against layout 1 data")
        self.assertNotIn("job started", h.log())

        # Refused while a daemon runs: it holds its consumer lock.
        res = e.ctl("migrate", config=conf)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn("stop every daemon", res.stderr)
        self.assertTrue(e.r.exists("herald:r:{%s}:campaigns" % ids[0]), "migrate changed data while refused")
        self.assertEqual(h.stop(), 0)

        res = e.ctl_ok("migrate", config=conf)
        self.assertIn("6 once-only records of 3 people moved", res.stdout)
        self.assertEqual(e.r.get("herald:layout"), "5")
        for rid in ids[:3]:
            self.assertFalse(e.r.exists("herald:r:{%s}:campaigns" % rid))
            self.assertEqual(e.r.hget("herald:r:{%s}" % rid, "c:mg-c"), "sent 1-1 old.1 1700000000")
            self.assertTrue(e.r.hexists("herald:r:{%s}" % rid, "profile"), "the profile went with the move")
        self.assertIn("already", e.ctl_ok("migrate", config=conf).stdout)

        # The job now runs: the three reached under layout 1 are duplicates.
        h = e.start_herald(config=conf)
        e.wait_campaign_done("mg-c", herald=h, timeout=60)
        harness.wait_for("the job acknowledged", lambda: e.acked(entry), 20)
        by = self.assertOneTerminalEach(e.audit("mg-c"), ids)
        self.assertEqual({rid: by[rid]["outcome"] for rid in ids[:3]}, {rid: "suppressed" for rid in ids[:3]})
        self.assertEqual({by[rid]["reason"] for rid in ids[:3]}, {"duplicate"})
        self.assertEqual(sorted(harness.requests_by_recipient(srv)), sorted(ids[3:]))
        code, body = h.healthz()
        self.assertEqual(code, 200, body)
        self.assertEqual(h.stop(), 0)

    def test_layout_4_needs_only_the_layout_key(self):
        """Layout 5 logs a run's handoffs instead of rewriting the record:
        nothing stored moves, but no daemon runs on layout 4 data until the
        layout key says 5, and a layout 4 record of a handed message still
        counts as reached."""
        srv, e, conf, ids = self.sink_and_people(4, "m4-")
        e.r.set("herald:layout", "4")
        e.r.hset("herald:r:{%s}" % ids[0], "c:m4-c", "p 1-1 old.1 1700000000 3")
        h = e.start_herald(config=conf, wait_healthy=False)
        body = self.layout_said(h)
        self.assertEqual(body["redis_layout"], {"found": "4", "expected": "5", "fix": "heraldctl migrate"})
        self.assertEqual(h.stop(), 0)
        res = e.ctl_ok("migrate", config=conf)
        self.assertIn("nothing to move from layout 4", res.stdout)
        self.assertEqual(e.r.get("herald:layout"), "5")
        self.assertEqual(e.r.hget("herald:r:{%s}" % ids[0], "c:m4-c"), "p 1-1 old.1 1700000000 3")
        h = e.start_herald(config=conf)
        e.enqueue(job("m4-c", recipients=ids, channels=["email"]))
        e.wait_campaign_done("m4-c", herald=h, timeout=60)
        by = self.assertOneTerminalEach(e.audit("m4-c"), ids)
        self.assertEqual((by[ids[0]]["outcome"], by[ids[0]]["reason"]), ("suppressed", "duplicate"))
        self.assertEqual(sorted(harness.requests_by_recipient(srv)), sorted(ids[1:]))
        self.assertEqual(h.stop(), 0)

    def test_layout_2_indexes_are_keyed_and_keep_working(self):
        """Layout 2 kept plain SHA-256 members in herald:suppress and
        herald:addr; migrate re-keys every one of them (the keyed digest is
        taken of the layout 2 member, so no address is needed): a suppressed
        person stays unsent, an address suppressed with no person known
        stays suppressed, a STOP finds its person, a tombstone of layout 2
        still holds. Layout 2 stored no "#" beside a sealed person's
        envelope: migrate writes it (the envelope as it was)."""
        e = self.env(log_level="info")
        conf = wh.write_config(e, "webhooks.conf")
        ppl = [person("m2-ann", email="ann.m2@example.com", phone="+15550166001", consent=["email", "sms"]),
               person("m2-bob", email="Bob.M2@example.com", consent=["email"])]
        e.import_people(ppl)
        e.secrets |= {"ghost.m2@example.com", "cat.m2@example.com"}
        # Layout 2: the same data with its indexes in the old form, and
        # the sealed people without "#".
        marks = {}
        for pid in ("m2-ann", "m2-bob"):
            marks[pid] = e.rb.hgetall("herald:r:{%s}" % pid)
            e.rb.hdel("herald:r:{%s}" % pid, "#")
        for k in e.r.keys("herald:*"):
            if k.startswith(("herald:addr:", "herald:suppress:", "herald:tombstones:")):
                e.r.delete(k)
        plain = harness.plain_member
        e.r.hset("herald:addr", mapping={plain("email", "ann.m2@example.com"): "m2-ann",
                                         plain("sms", "+15550166001"): "m2-ann",
                                         plain("email", "bob.m2@example.com"): "m2-bob"})
        suppressed = [plain("email", "bob.m2@example.com"), plain("email", "ghost.m2@example.com")]
        e.r.sadd("herald:suppress", *suppressed)
        e.r.hset("herald:suppress:info", suppressed[0], "1700000000 api bounced")
        e.r.xadd("herald:admin", {"action": "suppress", "channel": "email",
                                  "address_sha256": suppressed[1].split(":")[1], "by": "api", "reason": "x",
                                  "at": "2023-11-14T22:13:20Z"})
        legacy = "email:" + hmac.new(harness.LINK_SECRET.encode(), b"cat.m2@example.com", hashlib.sha256).hexdigest()
        e.r.sadd("herald:tombstones", legacy)
        e.r.set("herald:layout", "2")

        h = e.start_herald(config=conf, wait_healthy=False)

        body = self.layout_said(h)
        self.assertEqual(body["redis_layout"], {"found": "2", "expected": "5", "fix": "heraldctl migrate"})
        self.assertEqual(h.stop(), 0)

        # A run cut short (here: its copy of the admin stream cannot be
        # written) leaves the layout as it was and its progress saved ...
        e.r.set("herald:migrate:admin", "in the way")
        res = e.ctl("migrate", config=conf)
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        self.assertEqual(e.r.get("herald:layout"), "2")
        self.assertEqual(e.r.hget("herald:migrate:3", "suppress"), "done")
        self.assertEqual(e.r.hget("herald:migrate:3", "addr"), "done")
        self.assertTrue(e.r.exists("herald:suppress"), "layout 2's list went before the end")
        # ... and the next run finishes it.
        e.r.delete("herald:migrate:admin")
        res = e.ctl_ok("migrate", config=conf)
        self.assertIn("0 suppressions, 0 address index entries, 1 suppression change", res.stdout)
        self.assertIn("wrote the address checks' field (#) of 2 sealed people", res.stdout)
        for pid, before in marks.items():
            self.assertEqual(e.rb.hgetall("herald:r:{%s}" % pid), before, pid)   # "#" back, envelope as it was
        self.assertEqual(e.r.get("herald:layout"), "5")
        self.assertEqual(e.r.keys("herald:migrate*"), [])
        for k in ("herald:addr", "herald:suppress", "herald:suppress:info"):
            self.assertFalse(e.r.exists(k), k + " is still there")
        self.assertTrue(e.r.exists("herald:tombstones"), "layout 2's tombstones are still read")
        self.assertIn("already", e.ctl_ok("migrate", config=conf).stdout)
        admin = [f["address_sha256"] for _, f in e.r.xrange("herald:admin")]
        self.assertEqual(admin, [harness.index_member("email", "ghost.m2@example.com").hex()])
        self.assertEqual(e.index("suppress:info"),
                         {harness.index_member("email", "bob.m2@example.com"): "1700000000 api bounced"})
        blob = b"\n".join(v for k in e.rb.keys(b"herald:*") if e.rb.type(k) in (b"set", b"hash")
                          for v in (e.rb.smembers(k) if e.rb.type(k) == b"set" else e.rb.hkeys(k)))
        for m in suppressed:
            self.assertNotIn(m.split(":")[1].encode(), blob)

        h = e.start_herald(config=conf)
        api = Api(e)
        self.assertEqual(api.ok("GET", "/v1/recipients?email=ann.m2%40example.com")["id"], "m2-ann")
        self.assertTrue(api.ok("GET", "/v1/suppressions/email/ghost.m2%40example.com")["suppressed"])
        self.assertEqual(api.ok("GET", "/v1/suppressions/email/bob.m2%40example.com")["reason"], "bounced")
        # Someone new with the suppressed address nobody had: suppressed.
        api.ok("PUT", "/v1/recipients/m2-gus", {"id": "m2-gus", "email": "Ghost.M2@example.com"}, want=201)
        api.ok("POST", "/v1/recipients/m2-gus/consent", {"channel": "email", "granted": True, "source": "signup"},
               want=201)
        # Cat was erased under layout 2: stored again, but not contactable.
        doc = api.ok("PUT", "/v1/recipients/m2-cat", {"id": "m2-cat", "email": "cat.m2@example.com"}, want=201)
        self.assertEqual(doc["tombstoned"], ["email"])
        ids = ["m2-ann", "m2-bob", "m2-gus"]
        e.enqueue(job("m2-c", recipients=ids, channels=["email"]))
        e.wait_campaign_done("m2-c", herald=h)
        out = {r["recipient"]: (r["outcome"], r["reason"]) for r in e.audit("m2-c")}
        self.assertEqual(out, {"m2-ann": ("sent", ""), "m2-bob": ("suppressed", "suppressed"),
                               "m2-gus": ("suppressed", "suppressed")})
        # An inbound STOP finds its person through the re-keyed index.
        status, _, text = wh.tw_post(e, wh.sms_params("+15550166001", "STOP", wh.sid(5)))
        self.assertEqual(status, 200, text)
        cur = api.ok("GET", "/v1/recipients/m2-ann")["consent_current"]
        self.assertFalse(cur["sms"]["granted"])
        self.assertEqual(h.stop(), 0)

    def test_layout_3_ledgers_and_address_index_are_moved(self):
        self.layout_3_is_moved(cluster=False)

    def test_layout_3_is_moved_on_a_cluster(self):
        self.layout_3_is_moved(cluster=True)

    def layout_3_is_moved(self, cluster):
        """Layout 3 kept each person's consent ledger in a list of its own
        (herald:r:{ID}:consent) and the address index in 16 hashes;
        layout 4 keeps the ledger in the person hash and the index in 4096
        small buckets. After migrate (cut short once, then run again) the
        API shows the same people, ledgers and current consent, an address
        finds its person, a campaign reaches the same people and skips the
        suppressed one, and a STOP still finds its person."""
        e = self.env(log_level="info", cluster=cluster)
        conf = wh.write_config(e, "webhooks.conf")
        ppl = [person("m3-ann", email="ann.m3@example.com", phone="+15550133001", consent=["email", "sms"]),
               person("m3-bob", email="bob.m3@example.com", consent=["email"]),
               person("m3-cat", email="cat.m3@example.com", consent=["email"])] + harness.people(40, "m3-n")
        ids = [p["id"] for p in ppl]
        e.import_people(ppl, config=conf)
        h = e.start_herald(config=conf)
        api = Api(e)
        # Ann's email consent changes twice: her ledger holds 4 records.
        for granted in (False, True):
            api.ok("POST", "/v1/recipients/m3-ann/consent", {"channel": "email", "granted": granted,
                                                             "source": "api"}, want=201)
        api.ok("PUT", "/v1/suppressions/email/cat.m3%40example.com", {"reason": "asked"})
        before = {pid: api.ok("GET", "/v1/recipients/" + pid) for pid in ids}
        self.assertEqual(len(before["m3-ann"]["consent"]), 4)
        self.assertEqual(h.stop(), 0)

        # The same data as layout 3 wrote it.
        layout = "{herald}:layout" if cluster else "herald:layout"
        for pid in ids:
            k = "herald:r:{%s}" % pid
            recs = harness.ledger_raw(e, pid)
            for ch in ("email", "sms"):   # the current consent was in consent:<channel>
                if e.r.hexists(k, "~" + ch):
                    e.r.hset(k, "consent:" + ch, e.r.hget(k, "~" + ch))
            e.rb.hdel(k, *[f for f in e.rb.hkeys(k) if f.startswith(b"~")])
            e.r.rpush(k + ":consent", *recs)
        buckets = e.keys("herald:addr:{i*}:*")
        self.assertGreater(len(buckets), 40)
        for b in buckets:
            for m, v in e.rb.hgetall(b).items():
                e.rb.hset(b[:b.rindex(":")], m, v)
            e.r.delete(b)
        e.r.set(layout, "3")
        h = e.start_herald(config=conf, wait_healthy=False)

        body = self.layout_said(h)
        self.assertEqual(body["redis_layout"], {"found": "3", "expected": "5", "fix": "heraldctl migrate"})
        self.assertEqual(h.stop(), 0)

        # Cut short (a ledger that cannot be read): the layout stays 3, what
        # was moved stays moved, and the next run moves the rest.
        saved = e.r.lrange("herald:r:{m3-n0007}:consent", 0, -1)
        e.r.delete("herald:r:{m3-n0007}:consent")
        e.r.set("herald:r:{m3-n0007}:consent", "not a list")
        res = e.ctl("migrate", config=conf)
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        self.assertEqual(e.r.get(layout), "3")
        e.r.delete("herald:r:{m3-n0007}:consent")
        e.r.rpush("herald:r:{m3-n0007}:consent", *saved)
        res = e.ctl_ok("migrate", config=conf)
        self.assertRegex(res.stdout, r"\d+ consent ledgers? moved into the person hash, \d+ address index entr")
        self.assertEqual(e.r.get(layout), "5")
        self.assertEqual(e.keys("herald:r:{*}:consent"), [])
        self.assertEqual([k for k in e.keys("herald:addr:*") if k.count(":") == 2], [], "a layout 3 shard is left")
        self.assertEqual(e.keys("herald:r:{*}"), sorted("herald:r:{%s}" % pid for pid in ids))
        self.assertFalse([k for k in e.keys("herald:r:{*}") if e.r.hexists(k, "consent:email")], "not renamed")
        self.assertEqual(len(e.index("addr")), 44)
        self.assertIn("already", e.ctl_ok("migrate", config=conf).stdout)
        # Every person hash stays compact: the ledger holds no record twice.
        self.assertEqual(e.r.object("encoding", "herald:r:{m3-ann}"), "listpack")
        self.assertEqual(e.r.hget("herald:r:{m3-ann}", "~4"), "email")
        self.assertEqual(e.r.hget("herald:r:{m3-ann}", "~2"), "sms")

        h = e.start_herald(config=conf)
        after = {pid: api.ok("GET", "/v1/recipients/" + pid) for pid in ids}
        self.assertEqual(after, before)
        self.assertEqual(api.ok("GET", "/v1/recipients?email=ann.m3%40example.com")["id"], "m3-ann")
        self.assertEqual(api.ok("GET", "/v1/recipients?phone=%2B15550133001")["id"], "m3-ann")
        # A consent change after the move appends to the moved ledger.
        api.ok("POST", "/v1/recipients/m3-bob/consent", {"channel": "email", "granted": False, "source": "api"},
               want=201)
        bob = api.ok("GET", "/v1/recipients/m3-bob")
        self.assertEqual([r["granted"] for r in bob["consent"]], [True, False])
        self.assertFalse(bob["consent_current"]["email"]["granted"])
        e.enqueue(job("m3-c", recipients=ids, channels=["email"]))
        e.wait_campaign_done("m3-c", herald=h, timeout=60)
        out = {r["recipient"]: (r["outcome"], r["reason"]) for r in e.audit("m3-c")}
        want = {pid: ("sent", "") for pid in ids} | {"m3-bob": ("suppressed", "no_consent"),
                                                      "m3-cat": ("suppressed", "suppressed")}
        self.assertEqual(out, want)
        status, _, text = wh.tw_post(e, wh.sms_params("+15550133001", "STOP", wh.sid(9)))
        self.assertEqual(status, 200, text)
        self.assertFalse(api.ok("GET", "/v1/recipients/m3-ann")["consent_current"]["sms"]["granted"])
        self.assertEqual(h.stop(), 0)

    def test_a_new_redis_gets_the_layout(self):
        e = self.env(log_level="info")
        h = e.start_herald()
        self.assertEqual(e.r.get("herald:layout"), "5")
        self.assertIn("already", e.ctl_ok("migrate").stdout)
        self.assertEqual(h.stop(), 0)


if __name__ == "__main__":
    harness.main()
