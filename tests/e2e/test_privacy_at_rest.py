"""Contact data encrypted at rest ([privacy] key_file, docs/privacy.md).

- After an import, API writes and a campaign, neither Redis's dump (SAVE,
  the RDB file read byte for byte, uncompressed) nor the MONITOR stream of
  every command herald sent holds a seeded address, phone number or
  attribute value; the messages still went to the right addresses.
- A ciphertext copied from one person to another: that person's message
  fails with reason `undecryptable`, is never sent, and the API's GET
  answers a clear error naming no one's data; the other person is sent to
  as usual, and the person can still change their preferences.
- People stored in clear before the key existed are read and sent to; a
  write stores them encrypted.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402

TOKEN = "e2e-admin-token-0123456789"   # harness.BASE_CONFIG


def call(e, method, path, body=None, content_type="application/json"):
    """(status, parsed JSON body or None), through the Prism proxy."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(e.api_url() + path, data=data, method=method)
    req.add_header("Authorization", "Bearer " + TOKEN)
    if data is not None:
        req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, text = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, text = err.code, err.read()
    return status, json.loads(text) if text else None


def seeded(n):
    """n people with an address, a number and attributes, consenting to both channels."""
    return [person("pr-%02d" % i, email="private.person%02d@example.org" % i, phone="+4670555%04d" % i,
                   consent=["email", "sms"], first_name="Firstname%02dx" % i, last_name="Surname%02dy" % i,
                   city="Hometown%02dz" % i) for i in range(n)]


def private_values(people):
    """Every value that must never be in Redis in clear, as bytes."""
    out = set()
    for p in people:
        for k in ("email", "phone"):
            if p.get(k):
                out.add(p[k].encode())
                out.add(p[k].lstrip("+").encode())   # the digits alone
        for v in p.get("attributes", {}).values():
            out.add(str(v).encode())
    return out


class Monitor:
    """Redis MONITOR in a thread: every command any client sent, as bytes."""

    def __init__(self, e):
        import redis
        self.conn = redis.Redis(host="127.0.0.1", port=e.redis.port, socket_timeout=30)
        self.lines = []
        self.ready = threading.Event()
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def run(self):
        with self.conn.monitor() as m:
            self.ready.set()
            conn = m.connection
            while not self.stop:
                try:
                    # Raw reply lines: redis-py's parsed form decodes and may hide bytes.
                    resp = conn.read_response(disable_decoding=True)
                except Exception:
                    return
                self.lines.append(resp if isinstance(resp, bytes) else repr(resp).encode())

    def text(self):
        self.stop = True
        self.conn.ping()   # one more line wakes the reader
        self.thread.join(10)
        return b"\n".join(self.lines)


class PrivacyAtRest(harness.HeraldTestCase):

    def test_dump_and_monitor_hold_no_contact_data(self):
        e = self.env()
        mon = Monitor(e)
        ppl = seeded(12)
        e.import_people(ppl[:10])
        h = e.start_herald()
        # Two more through the API: a PUT, and a merge patch that changes an address.
        for p in ppl[10:]:
            e.remember(p)
            body = {k: v for k, v in p.items() if k != "consent"}
            self.assertEqual(call(e, "PUT", "/v1/recipients/" + p["id"], body)[0], 201)
            for ch in ("email", "sms"):
                st, _ = call(e, "POST", "/v1/recipients/%s/consent" % p["id"],
                             {"channel": ch, "granted": True, "source": "e2e-test"})
                self.assertEqual(st, 201)
        moved = "moved.person11@example.org"
        e.secrets.add(moved)
        st, doc = call(e, "PATCH", "/v1/recipients/pr-11", {"email": moved}, "application/merge-patch+json")
        self.assertEqual(st, 200, doc)
        ppl[11]["email"] = moved
        # The subject-access read decrypts: everything comes back as given.
        st, doc = call(e, "GET", "/v1/recipients/pr-03")
        self.assertEqual(st, 200, doc)
        self.assertEqual((doc["profile"]["email"], doc["profile"]["phone"], doc["profile"]["attributes"]),
                         (ppl[3]["email"], ppl[3]["phone"], ppl[3]["attributes"]))

        ids = [p["id"] for p in ppl]
        e.enqueue(job("rest-email", recipients=ids, channels=["email"]))
        e.enqueue(job("rest-sms", recipients=ids, channels=["sms"]))
        self.assertEqual(e.wait_campaign_done("rest-email", herald=h)["sent"], len(ids))
        self.assertEqual(e.wait_campaign_done("rest-sms", herald=h)["sent"], len(ids))
        h.stop()
        # Rendered for the plugin: the right address and attributes.
        by = {p["id"]: p for p in ppl}
        for cid, ch, key in (("rest-email", "email", "email"), ("rest-sms", "sms", "phone")):
            files = e.outbox_json(cid)
            self.assertEqual(len(files), len(ids))
            for m in files.values():
                self.assertEqual(m["to"], by[m["recipient"]][key], m["recipient"])
                self.assertIn(by[m["recipient"]]["attributes"]["first_name"], m["text"])

        monitor = mon.text()
        e.r.config_set("rdbcompression", "no")   # strings as they are: compression would hide them
        e.r.save()
        rdb = os.path.join(e.r.config_get("dir")["dir"], e.r.config_get("dbfilename")["dbfilename"])
        with open(rdb, "rb") as f:
            dump = f.read()
        # The test can see what is stored in clear (so it can fail):
        # the ids, the time zone, the consent source.
        for visible in (b"pr-07", b"e2e-test"):
            self.assertIn(visible, dump)
            self.assertIn(visible, monitor)
        private = private_values(ppl) | {b"person11@example.org"}
        for v in sorted(private):
            self.assertNotIn(v, dump, "in Redis's dump")
            self.assertNotIn(v, monitor, "in the commands herald sent to Redis")
        # Each person's hash names the key that sealed it.
        raw = e.rb.hgetall("herald:r:{pr-00}")
        self.assertEqual(raw[b"@0"][2:2 + raw[b"@0"][1]], b"e2e1")
        self.assertTrue(all(len(v) <= 64 for v in raw.values()), "every value small enough for a listpack")

    def test_copied_ciphertext_fails_clearly_and_is_never_sent(self):
        e = self.env()
        ann = person("cp-ann", email="ann.copied@example.org", phone="+46705550001", consent=["email", "sms"],
                     first_name="Annfirst")
        bob = person("cp-bob", email="bob.victim@example.org", phone="+46705550002", consent=["email", "sms"],
                     first_name="Bobfirst")
        e.import_people([ann, bob])
        # Bob's encrypted fields now hold Ann's (someone with Redis access copied them).
        for f in (b"@0", b"@1", b"@2", b"@3"):
            e.rb.hdel("herald:r:{cp-bob}", f)
        for f, v in e.rb.hgetall("herald:r:{cp-ann}").items():
            if f.startswith(b"@"):
                e.rb.hset("herald:r:{cp-bob}", f, v)
        h = e.start_herald()
        e.enqueue(job("copied", recipients=["cp-ann", "cp-bob"], channels=["email"]))
        done = e.wait_campaign_done("copied", herald=h)
        self.assertEqual((done["sent"], done["failed"]), (1, {"undecryptable": 1}), done)
        files = e.outbox_json("copied")
        self.assertEqual([m["recipient"] for m in files.values()], ["cp-ann"])
        self.assertEqual([m["to"] for m in files.values()], [ann["email"]])   # Ann's address went to Ann only
        rec = [a for a in e.audit("copied") if a.get("recipient") == "cp-bob"]
        self.assertEqual([(a["outcome"], a["reason"]) for a in rec], [("failed", "undecryptable")])
        self.assertIn("undecryptable @: does not decrypt", h.log())
        self.assertIn("recipient=cp-bob", h.log())

        # The API: a clear error, no one's data; Ann is read as usual.
        st, doc = call(e, "GET", "/v1/recipients/cp-bob")
        self.assertEqual(st, 500, doc)
        self.assertEqual(set(doc), {"error"})
        self.assertIn("cannot be read: undecryptable @: does not decrypt under key 'e2e1'", doc["error"])
        self.assertIn("copied from another person", doc["error"])
        for v in (ann["email"], bob["email"], "Annfirst", "Bobfirst"):
            self.assertNotIn(v, json.dumps(doc))
        st, doc = call(e, "GET", "/v1/recipients/cp-ann")
        self.assertEqual((st, doc["profile"]["email"]), (200, ann["email"]))
        # A merge patch must read first: refused the same way, nothing written.
        before = e.rb.hgetall("herald:r:{cp-bob}")
        st, doc = call(e, "PATCH", "/v1/recipients/cp-bob", {"locale": "de"}, "application/merge-patch+json")
        self.assertEqual(st, 500, doc)
        self.assertEqual(e.rb.hgetall("herald:r:{cp-bob}"), before)
        # The person can still opt out of a topic; the sealed fields stay as they were.
        st, doc = call(e, "PATCH", "/v1/recipients/cp-bob/preferences", {"topics": {"promotions": False}})
        self.assertEqual(st, 200, doc)
        after = e.rb.hgetall("herald:r:{cp-bob}")
        self.assertEqual({f: v for f, v in after.items() if f.startswith(b"@")},
                         {f: v for f, v in before.items() if f.startswith(b"@")})
        # A PUT replaces the data, and so repairs it.
        body = {k: v for k, v in bob.items() if k != "consent"}
        st, doc = call(e, "PUT", "/v1/recipients/cp-bob", body)
        self.assertEqual(st, 200, doc)
        st, doc = call(e, "GET", "/v1/recipients/cp-bob")
        self.assertEqual((st, doc["profile"]["email"]), (200, bob["email"]))

    def test_people_stored_in_clear_are_read_then_encrypted(self):
        e = self.env()
        old = [person("cl-%d" % i, email="clear.person%d@example.org" % i, consent=["email"], channels=["email"],
                      first_name="Clearname%d" % i) for i in range(3)]
        # Imported before the key existed: stored in clear, as before encryption.
        for p in old:
            e.remember(p)
        path = e.write_jsonl("old.jsonl", old)
        e.ctl_ok("import", path, sets=["privacy.key_file="])
        self.assertIn(b"clear.person0@example.org", e.rb.hget("herald:r:{cl-0}", "profile"))
        h = e.start_herald()
        e.enqueue(job("clear", recipients=[p["id"] for p in old], channels=["email"]))
        self.assertEqual(e.wait_campaign_done("clear", herald=h)["sent"], 3)
        self.assertEqual(sorted(m["to"] for m in e.outbox_json("clear").values()), [p["email"] for p in old])
        # A write stores the person sealed: no address left in clear.
        st, doc = call(e, "PATCH", "/v1/recipients/cl-0", {"attributes": {"city": "Newtown"}},
                       "application/merge-patch+json")
        self.assertEqual(st, 200, doc)
        raw = e.rb.hgetall("herald:r:{cl-0}")
        self.assertNotIn(b"clear.person0", raw[b"profile"])
        self.assertIn(b"@0", raw)
        st, doc = call(e, "GET", "/v1/recipients/cl-0")
        self.assertEqual((doc["profile"]["email"], doc["profile"]["attributes"]),
                         (old[0]["email"], {"first_name": "Clearname0", "city": "Newtown"}))

    def test_key_file_reload(self):
        e = self.env()
        ann = person("kr-ann", email="ann.reload@example.org", channels=["email"], consent=["email"])
        e.import_people([ann])
        h = e.start_herald()
        keys = e.path("keys")
        # A key file others may read: the reload is refused, the old keys stay.
        os.chmod(keys, 0o644)
        h.signal(signal.SIGHUP)
        harness.wait_for("the refusal", lambda: "reload refused" in h.log() or None, 20)
        self.assertIn("permissions 0644 for '%s' are too open" % keys, h.log())
        self.assertIn("(chmod 600 '%s')" % keys, h.log())
        st, doc = call(e, "GET", "/v1/recipients/kr-ann")
        self.assertEqual((st, doc["profile"]["email"]), (200, ann["email"]))
        # A new key first: after the reload, writes use it; the old one still reads.
        e.write_keys("e2e2 " + "c3" * 32 + "\n" + harness.E2E_KEY + "\n")
        h.signal(signal.SIGHUP)
        harness.wait_for("the reload", lambda: "configuration reloaded" in h.log() or None, 20)
        bob = {"id": "kr-bob", "email": "bob.reload@example.org", "tz": "UTC", "channels": ["email"]}
        e.remember(bob)
        self.assertEqual(call(e, "PUT", "/v1/recipients/kr-bob", bob)[0], 201)
        key_of = lambda pid: (lambda v: v[2:2 + v[1]])(e.rb.hget("herald:r:{%s}" % pid, "@0"))  # noqa: E731
        self.assertEqual((key_of("kr-ann"), key_of("kr-bob")), (b"e2e1", b"e2e2"))
        st, doc = call(e, "GET", "/v1/recipients/kr-ann")
        self.assertEqual((st, doc["profile"]["email"]), (200, ann["email"]))
        # The old key removed while ann still needs it: the reload is refused (the key
        # registry knows e2e1 seals data: test_key_retire.py), the old keys stay, she is sent to.
        e.write_keys("e2e2 " + "c3" * 32 + "\n")
        h.signal(signal.SIGHUP)
        harness.wait_for("the second refusal", lambda: h.log().count("reload refused") >= 2 or None, 20)
        self.assertIn("key 'e2e1' is no longer in key_file but is not retired", h.log())
        e.enqueue(job("reload-keys", recipients=["kr-ann"], channels=["email"]))
        done = e.wait_campaign_done("reload-keys", herald=h)
        self.assertEqual((done["sent"], done["failed"]), (1, {}), done)
        self.assertEqual([m["to"] for m in e.outbox_json("reload-keys").values()], [ann["email"]])
        # A person sealed under a key no file holds (the registry bypassed): her message
        # fails, named, never sent.
        e.r.hdel("herald:keys", "e2e1")
        e.r.hset("herald:keys", "e2e1", "retired 1")
        h.signal(signal.SIGHUP)
        harness.wait_for("the reload", lambda: h.log().count("configuration reloaded") >= 2 or None, 20)
        e.enqueue(job("reload-keys-2", recipients=["kr-ann"], channels=["email"]))
        done = e.wait_campaign_done("reload-keys-2", herald=h)
        self.assertEqual((done["sent"], done["failed"]), (0, {"undecryptable": 1}), done)
        self.assertIn("sealed under key 'e2e1', which [privacy] key_file does not hold", h.log())
        self.assertEqual(e.outbox_files("reload-keys-2"), {})

    def test_rotation_while_a_campaign_runs(self):
        e = self.env()
        n, others = 10000, 40
        crowd = [person("rk-%05d" % i, email="rotating.%05d@example.org" % i, channels=["email"],
                        consent=["email"], first_name="Rot%05d" % i) for i in range(n)]
        bystanders = [person("rb-%02d" % i, email="bystander.%02d@example.org" % i, channels=["email"],
                             consent=["email"]) for i in range(others)]
        e.import_people(crowd + bystanders)   # sealed under e2e1, the only key then
        self.assertEqual(json.loads(e.ctl_ok("stats").stdout)["contact_data"],
                         {"sealed_by_key": {"e2e1": n + others}, "plaintext": 0})
        # The new key first; the old one still opens what it sealed.
        e.write_keys("e2e2 " + "c3" * 32 + "\n" + harness.E2E_KEY + "\n")
        e.r.sadd("lists:rotation", *[p["id"] for p in crowd])
        h = e.start_herald(sets=("provider outbox.rate=%d/s" % (1000 / harness.SLOW),))
        e.enqueue(job("rotation", recipients_key="lists:rotation", channels=["email"]))
        harness.wait_for("the campaign under way", lambda: e.campaign("rotation").get("sent", 0) > 0 or None, 30)

        rot = subprocess.Popen([harness.HERALDCTL_BIN, "--config", e.config, "rotate-key"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        self.assertLess(e.campaign("rotation")["sent"], n // 2, "the rotation starts while the campaign runs")
        # API writes while the rotation runs: never overwritten by it.
        moved = {}
        for i, p in enumerate(bystanders):
            addr = "bystander.%02d.moved@example.org" % i
            e.secrets.add(addr)
            st, doc = call(e, "PATCH", "/v1/recipients/" + p["id"], {"email": addr}, "application/merge-patch+json")
            self.assertEqual(st, 200, doc)
            moved[p["id"]] = addr
        out, err = rot.communicate(timeout=120 * harness.SLOW)
        self.assertEqual(rot.returncode, 0, out + err)
        self.assertRegex(out, r"rotated to key 'e2e2': \d+ rewritten")

        done = e.wait_campaign_done("rotation", timeout=120, herald=h)
        self.assertEqual((done["sent"], done["failed"], done["unknown"]), (n, {}, 0), done)
        files = e.outbox_json("rotation")
        self.assertEqual(len(files), n)
        by = {p["id"]: p["email"] for p in crowd}
        wrong = [m["recipient"] for m in files.values() if m["to"] != by[m["recipient"]]]
        self.assertEqual(wrong, [])

        status = json.loads(e.ctl_ok("rotate-key", "--status").stdout)
        self.assertEqual((status["state"], status["key"], status["undecryptable"]), ("done", "e2e2", 0), status)
        self.assertEqual(json.loads(e.ctl_ok("stats").stdout)["contact_data"],
                         {"sealed_by_key": {"e2e2": n + others}, "plaintext": 0})
        for k in e.rb.scan_iter(match="herald:r:{*}", count=1000):
            if k.endswith(b"}"):
                at0 = e.rb.hget(k, "@0")
                self.assertEqual(at0[2:2 + at0[1]], b"e2e2", k)
        for pid, addr in moved.items():
            st, doc = call(e, "GET", "/v1/recipients/" + pid)
            self.assertEqual((st, doc["profile"]["email"]), (200, addr))

        # The old key can go now (retired first); without it nothing fails to open.
        self.assertIn("key 'e2e1' retired", e.ctl_ok("retire-key", "e2e1").stdout)
        e.write_keys("e2e2 " + "c3" * 32 + "\n")
        st, doc = call(e, "GET", "/v1/recipients/rk-00007")
        self.assertEqual(st, 200, doc)   # this daemon still has both keys; heraldctl reads the file anew:
        res = e.ctl_ok("explain", "rotation", "rk-00007", "--json")
        self.assertNotIn("undecryptable", res.stdout)
        # A second pass has nothing left to do.
        out = e.ctl_ok("rotate-key").stdout
        self.assertIn("0 rewritten, %d already under it" % (n + others), out)

    def test_rotation_resumes_after_a_crash(self):
        e = self.env()
        ppl = [person("rr-%03d" % i, email="resume.%03d@example.org" % i, channels=["email"], consent=["email"])
               for i in range(600)]
        e.import_people(ppl)
        e.write_keys("e2e2 " + "c3" * 32 + "\n" + harness.E2E_KEY + "\n")
        # A pass that stopped part way: its cursor and counts are in Redis, its lock lapsed.
        cursor, first = e.r.scan(0, match="herald:r:{*}", count=200)
        first = [k for k in first if k.endswith("}")]
        self.assertNotEqual(cursor, 0)
        e.r.hset("herald:rotate", mapping={"state": "running", "key": "e2e2", "cursor": str(cursor),
                                           "rewritten": str(len(first))})
        self.assertEqual(json.loads(e.ctl_ok("rotate-key", "--status").stdout)["state"], "stopped")
        # Another rotation holding the lock: refused, nothing done.
        e.r.set("herald:rotate:lock", "elsewhere:1:1", px=60000)
        res = e.ctl("rotate-key")
        self.assertEqual(res.returncode, 2, res.stdout + res.stderr)
        self.assertIn("another rotation runs (elsewhere:1:1)", res.stderr)
        self.assertEqual(json.loads(e.ctl_ok("stats").stdout)["contact_data"]["sealed_by_key"], {"e2e1": 600})
        e.r.delete("herald:rotate:lock")
        # Run again: it goes on from the saved cursor (the first page is not read again).
        res = e.ctl_ok("rotate-key")
        self.assertIn("resuming the pass to key 'e2e2'", res.stderr)
        after = json.loads(e.ctl_ok("stats").stdout)["contact_data"]["sealed_by_key"]
        self.assertGreater(after.get("e2e1", 0), 0, after)
        self.assertEqual(after.get("e2e1", 0) + after["e2e2"], 600)
        for k in e.rb.scan_iter(match="herald:r:{*}", count=1000):
            if k.endswith(b"}") and k.decode() not in first:
                at0 = e.rb.hget(k, "@0")
                self.assertEqual(at0[2:2 + at0[1]], b"e2e2", k)
        status = json.loads(e.ctl_ok("rotate-key", "--status").stdout)
        self.assertEqual((status["state"], status["rewritten"]), ("done", 600), status)
        self.assertEqual(e.r.exists("herald:rotate:lock"), 0)
        # A finished pass is not resumed: the next one reads everything.
        e.ctl_ok("rotate-key")
        self.assertEqual(json.loads(e.ctl_ok("stats").stdout)["contact_data"]["sealed_by_key"], {"e2e2": 600})

if __name__ == "__main__":
    harness.main()
