"""The address checks read the flags and keyed members stored beside the
envelope ("#", docs/privacy.md), never the envelope itself.

One campaign over people whose envelope was corrupted in Redis (a byte of
@0 flipped: it no longer authenticates):
- withdrawn consent: `suppressed`/`no_consent`, and suppressed address:
  `suppressed`/`suppressed`, not `undecryptable`: the checks did not
  decrypt, and the suppression list was asked with the stored member;
- consenting: `failed`/`undecryptable`, never sent (the envelope is opened
  once the checks let the message through);
- people without "#" (stored before it; the field deleted) are opened and
  checked as before, suppressed address included;
- the intact ones are sent to the right address, their attributes rendered.
heraldctl explain, read before the run, gives each person the run's
outcome. The stored "#" holds exactly the members the address index and
the suppression list hold, and the person hash stays compactly encoded.
heraldctl rotate-key gives a person stored before "#" theirs (the same
bytes a write gives), and leaves the others as they are. The API's writes
(PUT, merge patch) keep "#" in step with the addresses.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import index_member, index_shard_key, job, person  # noqa: E402
from test_privacy_at_rest import call  # noqa: E402  (through the Prism proxy)


def withdrawn(pid, email):
    """A person who consented to email, then withdrew it."""
    p = person(pid, email=email, channels=["email"], first_name="Gonefirst")
    p["consent"] = [{"channel": "email", "granted": g, "source": "e2e-test", "text_version": "v1",
                     "at": at} for g, at in ((True, "2026-01-01T00:00:00Z"), (False, "2026-02-01T00:00:00Z"))]
    return p


def addr(pid):
    return "%s.lazy@example.org" % pid.replace("-", "")


def corrupt(e, pid):
    """Flips the last byte of the person's first envelope piece."""
    k = "herald:r:{%s}" % pid
    v = bytearray(e.rb.hget(k, "@0"))
    v[-1] ^= 0x5A
    e.rb.hset(k, "@0", bytes(v))


class LazyDecrypt(harness.HeraldTestCase):

    def test_checks_read_the_stored_flags_and_members(self):
        e = self.env()
        consenting = ["lz-ok", "lz-bad", "lz-supp", "lz-supp2", "lz-old", "lz-oldsupp", "lz-oldbad"]
        ppl = [person(pid, email=addr(pid), channels=["email"], consent=["email"], first_name="First%s" % pid[3:])
               for pid in consenting]
        ppl += [withdrawn(pid, addr(pid)) for pid in ("lz-gone", "lz-oldgone")]
        # One with both channels, for the form of "#".
        both = person("lz-both", email=addr("lz-both"), phone="+46705550777", consent=["email", "sms"],
                      first_name="Bothfirst")
        e.import_people(ppl + [both])
        for pid in ("lz-supp", "lz-supp2", "lz-oldsupp"):
            e.suppress("email", addr(pid))

        # "#": a byte of flags (bit 0 email, bit 1 sms), then each address's
        # keyed member: the one the address index and suppression list hold.
        raw = e.rb.hgetall("herald:r:{lz-both}")
        self.assertEqual(raw[b"#"], bytes([3]) + index_member("email", addr("lz-both")) +
                         index_member("sms", "+46705550777"))
        self.assertEqual(e.rb.object("encoding", "herald:r:{lz-both}"), b"listpack")
        self.assertEqual(e.index_owner("email", addr("lz-both")), "lz-both")
        stored = e.rb.hget("herald:r:{lz-supp2}", "#")
        self.assertEqual(stored[0], 1)
        self.assertTrue(e.rb.sismember(index_shard_key("suppress", stored[1:17]), stored[1:17]))

        # Stored before "#" existed: the field deleted. Then the corruption.
        for pid in ("lz-old", "lz-oldsupp", "lz-oldbad", "lz-oldgone"):
            self.assertEqual(e.rb.hdel("herald:r:{%s}" % pid, "#"), 1)
        for pid in ("lz-bad", "lz-gone", "lz-supp", "lz-oldbad", "lz-oldgone"):
            corrupt(e, pid)

        want = {
            "lz-ok": ("sent", ""), "lz-old": ("sent", ""),
            "lz-gone": ("suppressed", "no_consent"), "lz-oldgone": ("suppressed", "no_consent"),
            "lz-supp": ("suppressed", "suppressed"), "lz-supp2": ("suppressed", "suppressed"),
            "lz-oldsupp": ("suppressed", "suppressed"),
            "lz-bad": ("failed", "undecryptable"), "lz-oldbad": ("failed", "undecryptable"),
        }
        ids = sorted(want)
        lazy = job("lazy", recipients=ids, channels=["email"])
        e.remember_job(lazy)
        path = e.write("lazy.json", json.dumps(lazy))
        # explain, before the run, says what the run will do.
        for pid in ids:
            res = e.ctl_ok("explain", "lazy", pid, "--json", "--job", path)
            d = json.loads(res.stdout)["decision"]
            self.assertEqual((d["outcome"], d["reason"] or ""), want[pid], pid)
            for s in e.secrets:
                self.assertNotIn(s, res.stdout + res.stderr)

        h = e.start_herald()
        e.enqueue(lazy)
        done = e.wait_campaign_done("lazy", herald=h)
        self.assertEqual(done["sent"], 2, done)
        got = {a["recipient"]: (a["outcome"], a.get("reason", "")) for a in e.audit("lazy")}
        self.assertEqual(got, want)
        files = e.outbox_json("lazy")
        self.assertEqual(sorted((m["recipient"], m["to"]) for m in files.values()),
                         [("lz-ok", addr("lz-ok")), ("lz-old", addr("lz-old"))])
        for m in files.values():
            self.assertIn("First" + m["recipient"][3:], m["text"])
        # Only the two that reached the opening say their data did not open.
        log = h.log()
        for pid in ("lz-bad", "lz-oldbad"):
            self.assertIn("contact data not decrypted campaign=lazy recipient=%s" % pid, log)
        for pid in ("lz-gone", "lz-supp", "lz-oldgone"):
            self.assertNotIn("recipient=%s:" % pid, log)

    def test_rotate_key_writes_the_missing_field(self):
        e = self.env()
        ppl = [person(pid, email=addr(pid), phone="+4670555%04d" % i, consent=["email"])
               for i, pid in enumerate(("lz-a", "lz-b"))]
        e.import_people(ppl)
        k = "herald:r:{lz-a}"
        before = e.rb.hgetall(k)
        e.rb.hdel(k, "#")
        out = e.ctl_ok("rotate-key").stdout
        self.assertIn("1 rewritten, 1 already under it", out)
        after = e.rb.hgetall(k)
        self.assertEqual(after[b"#"], before[b"#"])
        self.assertNotEqual(after[b"@0"], before[b"@0"])   # sealed again (a new nonce), same key
        self.assertEqual(after[b"rev"], before[b"rev"])

    def test_api_writes_keep_the_field_in_step(self):
        e = self.env()
        e.start_herald()
        k = "herald:r:{lz-api}"
        email, phone, moved = addr("lz-api"), "+46705550999", addr("lz-moved")
        for v in (email, phone, moved):
            e.secrets.add(v)
        body = {"email": email, "phone": phone, "attributes": {"first_name": "Apifirst"}}
        self.assertEqual(call(e, "PUT", "/v1/recipients/lz-api", body)[0], 201)
        self.assertEqual(e.rb.hget(k, "#"), bytes([3]) + index_member("email", email) + index_member("sms", phone))
        patch = "application/merge-patch+json"
        st, doc = call(e, "PATCH", "/v1/recipients/lz-api", {"email": moved, "phone": None}, patch)
        self.assertEqual(st, 200, doc)
        self.assertEqual(e.rb.hget(k, "#"), bytes([1]) + index_member("email", moved))
        st, doc = call(e, "PATCH", "/v1/recipients/lz-api", {"attributes": {"city": "Lund"}}, patch)
        self.assertEqual(st, 200, doc)
        self.assertEqual(e.rb.hget(k, "#"), bytes([1]) + index_member("email", moved))


if __name__ == "__main__":
    harness.main()
