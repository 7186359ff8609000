"""Keyed, sharded indexes (key layout 3; daemon/addrindex.h, docs/privacy.md).

The address index, the suppression list (and its reasons) and the erasure
tombstones hold HMAC-SHA256 under [privacy] index_key_file, truncated to
16 bytes, in 16 keys each with its own hash tag. Whoever reads Redis and
has a list of candidate addresses cannot test them: hashing the seeded
addresses with plain SHA-256 finds nothing anywhere in Redis. The index
entries are written before the person and checked against the person when
read: an entry left alone by a crash never finds, nor answers a STOP for,
the wrong person, and never suppresses anyone."""

import hashlib
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402
from test_api import Api  # noqa: E402
import test_webhooks as wh  # noqa: E402

PEOPLE = [
    person("kx-ann", email="Ann.Keyed@Example.com", phone="+15550177001", consent=["email", "sms"]),
    person("kx-bob", email="bob.keyed@example.com", phone="+15550177002", consent=["email", "sms"]),
    person("kx-cat", email="cat.keyed@example.com", consent=["email"]),
    person("kx-dan", email="dan.keyed@example.com", phone="+15550177004", consent=["email"]),
]
# (channel, normalised address) of everything seeded, erased people included.
ADDRESSES = [("email", "ann.keyed@example.com"), ("sms", "+15550177001"), ("email", "bob.keyed@example.com"),
             ("sms", "+15550177002"), ("email", "cat.keyed@example.com"), ("email", "dan.keyed@example.com"),
             ("sms", "+15550177004"), ("email", "eve.api@example.com"), ("email", "nobody.known@example.com")]


class KeyedIndexes(harness.HeraldTestCase):

    def keyed_config(self, e, key):
        path = e.path("index.key")
        with open(path, "wb") as f:
            f.write(key)
        os.chmod(path, 0o600)
        # Into the [privacy] section harness.BASE_CONFIG has (key_file).
        text = e.config_text().replace("[privacy]\n", "[privacy]\nindex_key_file = index.key\n", 1)
        return e.write("keyed.conf", text)

    def test_no_plain_sha256_of_an_address_anywhere(self):
        e = self.env()
        key = os.urandom(32)
        conf = self.keyed_config(e, key)
        for p in PEOPLE:
            e.remember(p)
        e.secrets |= {"eve.api@example.com", "nobody.known@example.com"}
        e.import_people(PEOPLE, config=conf)
        e.ctl_ok("suppress", "email", "Nobody.Known@example.com", config=conf)
        e.ctl_ok("suppress", "sms", "+15550177002", config=conf)
        h = e.start_herald(config=conf)
        api = Api(e)
        api.ok("PUT", "/v1/recipients/kx-eve", {"id": "kx-eve", "email": "eve.api@example.com"}, want=201)
        api.ok("PUT", "/v1/suppressions/email/dan.keyed%40example.com", {"reason": "asked"})
        e.enqueue(job("kx-c1", recipients=[p["id"] for p in PEOPLE] + ["kx-eve"]))
        e.wait_campaign_done("kx-c1", herald=h)
        e.enqueue(job("kx-c1s", recipients=["kx-bob"], channels=["sms"]))
        e.wait_campaign_done("kx-c1s", herald=h)
        api.ok("DELETE", "/v1/recipients/kx-cat")   # tombstones
        self.assertEqual(h.stop(), 0)

        everything = harness.every_value(e.rb)
        blob = b"\n".join(everything)
        for ch, norm in ADDRESSES:
            plain = hashlib.sha256(norm.encode()).digest()
            for form in (plain, plain.hex().encode(), plain[:16], plain.hex()[:32].encode()):
                self.assertNotIn(form, blob, "a plain SHA-256 of %s %s is in Redis" % (ch, norm))

        # The members are the keyed digests, 16 bytes, in their shards.
        addr = e.index("addr")
        for p in PEOPLE[:2] + PEOPLE[3:]:
            m = harness.index_member("email", p["email"].lower(), key)
            self.assertEqual(addr.get(m), p["id"])
            self.assertTrue(e.rb.hexists(harness.index_shard_key("addr", m), m))
        self.assertTrue(all(len(m) == 16 for m in addr))
        sup = e.index("suppress")
        self.assertEqual(sup, {harness.index_member("email", "nobody.known@example.com", key),
                               harness.index_member("sms", "+15550177002", key),
                               harness.index_member("email", "dan.keyed@example.com", key)})
        self.assertEqual(set(e.index("suppress:info")), sup)
        self.assertEqual(e.index("tombstones"), {harness.index_member("email", "cat.keyed@example.com", key)})
        self.assertEqual(e.r.keys("herald:suppress"), [], "no layout 2 list")
        self.assertEqual(e.r.keys("herald:addr"), [], "no layout 2 index")
        shards = {k for k in e.r.keys("herald:*") if k.startswith(("herald:addr:", "herald:suppress:",
                                                                    "herald:tombstones:"))}
        self.assertGreater(len([k for k in shards if k.startswith("herald:addr:")]), 1, "one key holds the index")
        for k in shards:
            self.assertRegex(k, r"^herald:((suppress|suppress:info|tombstones):\{i[0-9a-f]\}"
                                r"|addr:\{i([0-9a-f])\}:\3[0-9a-f]{2})$")
        admin = [f["address_sha256"] for _, f in e.r.xrange("herald:admin")]
        self.assertEqual(sorted(admin), sorted(harness.index_member(ch, a, key).hex() for ch, a in
                                               [("email", "nobody.known@example.com"), ("sms", "+15550177002"),
                                                ("email", "dan.keyed@example.com")]))
        # What the campaign decided: the suppressed addresses were not sent to.
        out = {r["recipient"]: (r["outcome"], r["reason"]) for r in e.audit("kx-c1")}
        self.assertEqual(out["kx-dan"], ("suppressed", "suppressed"))
        self.assertEqual(out["kx-ann"], ("sent", ""))
        self.assertEqual([(r["outcome"], r["reason"]) for r in e.audit("kx-c1s")], [("suppressed", "suppressed")])

    def test_the_key_file_is_checked(self):
        e = self.env()
        conf = self.keyed_config(e, os.urandom(32))
        self.assertIn("configuration OK", harness_check(e, conf).stdout)
        os.chmod(e.path("index.key"), 0o604)   # others may read it
        res = harness_check(e, conf)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        self.assertIn("[privacy] index_key_file", res.stdout + res.stderr)
        self.assertIn("too open", res.stdout + res.stderr)
        os.chmod(e.path("index.key"), 0o600)
        with open(e.path("index.key"), "wb") as f:
            f.write(b"short key")
        res = harness_check(e, conf)
        self.assertEqual(res.returncode, 1)
        self.assertIn("holds 9 bytes", res.stdout + res.stderr)
        with open(e.path("index.key"), "w") as f:
            f.write(os.urandom(32).hex() + "\n")   # openssl rand -hex 32
        self.assertEqual(harness_check(e, conf).returncode, 0)
        os.remove(e.path("index.key"))
        res = harness_check(e, conf)
        self.assertEqual(res.returncode, 1)
        self.assertIn("cannot read", res.stdout + res.stderr)

    def test_a_key_change_is_refused_by_a_reload(self):
        e = self.env()
        conf = self.keyed_config(e, os.urandom(32))
        h = e.start_herald(config=conf)
        with open(e.path("index.key"), "wb") as f:
            f.write(os.urandom(32))
        e.ctl_ok("reload", config=conf)
        harness.wait_for("the reload refused", lambda: "index key" in h.log(), 10)
        self.assertIn("can change only at a restart", h.log())
        self.assertEqual(h.stop(), 0)

    def test_an_index_entry_alone_finds_and_suppresses_nobody_wrong(self):
        """What a crash between the index write and the person write leaves
        (simulated: the index entry written alone)."""
        e = self.env()
        conf = wh.write_config(e, "webhooks.conf")
        for p in PEOPLE:
            e.remember(p)
        e.secrets |= {"ann.new@example.com", "+15550177999"}
        e.import_people(PEOPLE)

        def entry_alone(ch, norm, pid):
            m = harness.index_member(ch, norm)
            e.rb.hset(harness.index_shard_key("addr", m), m, pid)

        # A PUT that moved Ann to a new address stopped after its claim.
        entry_alone("email", "ann.new@example.com", "kx-ann")
        # A write that took Bob's address and number for Ann stopped likewise.
        entry_alone("email", "bob.keyed@example.com", "kx-ann")
        entry_alone("sms", "+15550177002", "kx-ann")
        # A number nobody has, named for Ann.
        entry_alone("sms", "+15550177999", "kx-ann")
        h = e.start_herald(config=conf)
        api = Api(e)
        self.assertEqual(api.call("GET", "/v1/recipients?email=ann.new%40example.com")[0], 404)
        self.assertEqual(api.ok("GET", "/v1/recipients?email=ann.keyed%40example.com")["id"], "kx-ann")
        self.assertEqual(api.call("GET", "/v1/recipients?email=bob.keyed%40example.com")[0], 404,
                         "found Ann through Bob's address")
        self.assertEqual(api.call("GET", "/v1/recipients?phone=%2B15550177002")[0], 404)

        # STOP from Bob's number and from the unknown one: Ann's consent stays.
        ledger = harness.ledger_raw(e, "kx-ann")
        for n, sender in enumerate(("+15550177002", "+15550177999")):
            status, _, text = wh.tw_post(e, wh.sms_params(sender, "STOP", wh.sid(70 + n)))
            self.assertEqual(status, 200, text)
        self.assertEqual(harness.ledger_raw(e, "kx-ann"), ledger, "a STOP applied to Ann")
        self.assertIn("from an address herald does not know", h.log())

        # Suppressing Bob's address (its entry names Ann) suppresses Bob only.
        doc = api.ok("PUT", "/v1/suppressions/email/bob.keyed%40example.com", {"reason": "bounced"})
        self.assertTrue(doc["changed"])
        self.assertFalse(api.ok("GET", "/v1/recipients/kx-ann")["suppressed"]["email"])
        self.assertTrue(api.ok("GET", "/v1/recipients/kx-bob")["suppressed"]["email"])
        e.enqueue(job("kx-c2", recipients=["kx-ann", "kx-bob"], channels=["email"]))
        e.wait_campaign_done("kx-c2", herald=h)
        out = {r["recipient"]: (r["outcome"], r["reason"]) for r in e.audit("kx-c2")}
        self.assertEqual(out, {"kx-ann": ("sent", ""), "kx-bob": ("suppressed", "suppressed")})

        # The next write of Ann puts the index right: her own address is hers.
        api.ok("PUT", "/v1/recipients/kx-ann", {"id": "kx-ann", "email": "ann.new@example.com",
                                                 "phone": "+15550177001"})
        self.assertEqual(api.ok("GET", "/v1/recipients?email=ann.new%40example.com")["id"], "kx-ann")
        self.assertEqual(api.call("GET", "/v1/recipients?email=ann.keyed%40example.com")[0], 404)
        self.assertIsNone(e.index_owner("email", "ann.keyed@example.com"), "the old entry stayed")
        self.assertEqual(h.stop(), 0)


def harness_check(e, conf):
    return subprocess.run([harness.HERALD_BIN, "--config", conf, "--check-config"], capture_output=True, text=True,
                          timeout=30 * harness.SLOW, stdin=subprocess.DEVNULL)


if __name__ == "__main__":
    harness.main()
