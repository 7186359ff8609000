"""heraldctl import: bad lines are reported as FILE:LINE: problem and
skipped, good ones are stored (a campaign reaches them), exit 1; a clean file
exits 0; a usage or connection error exits 2. No line is dropped without a
word: a NUL byte, a write Redis refuses (inside the transaction too) and a
connection lost halfway are each reported by line, and the totals are true."""

import json
import os
import re
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402

GOOD = [
    person("im-1", email="ian.import@example.com", channels=["email"], consent=["email"], first_name="Ian"),
    person("im-2", phone="+15550100401", channels=["sms"], consent=["sms"], first_name="Ivy"),
    person("im-3", email="ike.import@example.com", phone="+15550100402", consent=["email", "sms"], first_name="Ike"),
]


class Import(harness.HeraldTestCase):

    def test_bad_lines_are_reported_and_skipped(self):
        e = self.env()
        for p in GOOD:
            e.remember(p)
        lines = [
            json.dumps(GOOD[0]),                                                     # 1 good
            '{"id": "im-broken", "email": ',                                         # 2 not JSON
            json.dumps(GOOD[1]),                                                     # 3 good
            json.dumps(person("im-bademail", email="not-an-address", consent=["email"])),   # 4 bad email
            json.dumps({"email": "noid@example.com"}),                               # 5 no id
            json.dumps(person("im-badconsent", email="bc@example.com",
                              consent=["email"]) | {"consent": [{"channel": "fax", "granted": True}]}),  # 6
            json.dumps(GOOD[2]),                                                     # 7 good
            json.dumps(person("im-badphone", phone="555-CALL-NOW", consent=["sms"])),     # 8 bad phone
        ]
        path = e.write("people.jsonl", "\n".join(lines) + "\n")
        res = e.ctl("import", path)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertEqual(res.stdout.strip(), "imported 3, skipped 5")
        reported = sorted(int(m.group(1)) for m in re.finditer(r"^%s:(\d+): \S" % re.escape(path), res.stderr, re.M))
        self.assertEqual(reported, [2, 4, 5, 6, 8], res.stderr)

        # the good ones are stored; the refused ones are not
        h = e.start_herald()
        ids = ["im-1", "im-2", "im-3", "im-broken", "im-bademail", "im-badconsent", "im-badphone"]
        e.enqueue(job("import-check", recipients=ids))
        e.wait_campaign_done("import-check", herald=h)
        recs = self.assertOneTerminalEach(e.audit("import-check"), ids)
        got = {rid: (r["outcome"], r["reason"]) for rid, r in recs.items()}
        self.assertEqual(got, {"im-1": ("sent", ""), "im-2": ("sent", ""), "im-3": ("sent", ""),
                               "im-broken": ("suppressed", "unknown_recipient"),
                               "im-bademail": ("suppressed", "unknown_recipient"),
                               "im-badconsent": ("suppressed", "unknown_recipient"),
                               "im-badphone": ("suppressed", "unknown_recipient")})
        self.assertEqual(h.stop(), 0)

    def test_clean_file_exits_0(self):
        e = self.env()
        res = e.import_people(GOOD)
        self.assertEqual(res.returncode, 0)
        self.assertEqual(res.stderr, "")

    def test_many_people_and_a_person_twice_in_one_window(self):
        """Imports go in windows of 256 people (two round trips each); the
        address index ends right even when one person comes twice, with a
        new address, inside one window, and across window borders."""
        e = self.env()
        people = [person("win-%04d" % i, email="w%04d@example.com" % i, channels=["email"], consent=["email"])
                  for i in range(600)]
        people.insert(10, person("win-dup", email="first.addr@example.com", channels=["email"], consent=["email"]))
        people.insert(20, person("win-dup", email="second.addr@example.com", channels=["email"], consent=["email"]))
        people.insert(300, person("win-0001", email="moved.addr@example.com", channels=["email"], consent=["email"]))
        res = e.import_people(people)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("imported 603, skipped 0", res.stdout)
        owners = e.index("addr")
        self.assertEqual(len(owners), 601)   # 600 people + win-dup, each with their latest address only
        self.assertEqual(sorted(v for v in owners.values() if v in ("win-dup", "win-0001")), ["win-0001", "win-dup"])
        self.assertEqual(len(harness.ledger_raw(e, "win-dup")), 2)   # both lines' consent records
        # Compact at rest (docs/architecture.md): the ledger is in the person
        # hash, which stays a listpack, and so does every address bucket.
        self.assertEqual(e.keys("herald:r:{*}:consent"), [])
        self.assertEqual(e.r.object("encoding", "herald:r:{win-dup}"), "listpack")
        self.assertEqual({e.r.object("encoding", k) for k in e.keys("herald:addr:*")}, {"listpack"})
        h = e.start_herald()
        e.enqueue(job("win-1", recipients=["win-dup", "win-0001", "win-0599"], channels=["email"]))
        e.wait_campaign_done("win-1", herald=h)
        tos = sorted(m["to"] for m in e.outbox_json("win-1").values())
        self.assertEqual(tos, ["moved.addr@example.com", "second.addr@example.com", "w0599@example.com"])

    def test_suppress_moves_the_owners_rev(self):
        """heraldctl suppress changes what herald may do for the address's
        owner: their rev moves, so a message looked up before is decided again."""
        e = self.env()
        e.import_people(GOOD)
        before = int(e.r.hget("herald:r:{im-1}", "rev") or 0)
        e.suppress("email", "Ian.Import@example.com")   # suppression ignores case
        self.assertEqual(int(e.r.hget("herald:r:{im-1}", "rev")), before + 1)
        self.assertEqual(len(e.index("suppress")), 1)
        e.suppress("email", "nobody.known@example.com")   # no owner: only the list changes
        self.assertEqual(len(e.index("suppress")), 2)

    def write_bytes(self, e, name, data):
        path = e.path(name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def assertStored(self, e, ids, stored=True):
        for pid in ids:
            has = e.r.hget("herald:r:{%s}" % pid, "profile") is not None
            self.assertEqual(has, stored, pid)

    def test_byte_order_mark_is_accepted(self):
        e = self.env()
        data = b"\xef\xbb\xbf" + "".join(json.dumps(p) + "\n" for p in GOOD).encode()
        res = e.ctl("import", self.write_bytes(e, "bom.jsonl", data))
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertEqual(res.stdout.strip(), "imported 3, skipped 0")
        self.assertEqual(res.stderr, "")
        self.assertStored(e, ["im-1", "im-2", "im-3"])

    def test_nul_bytes_are_reported_by_line(self):
        """Lines are measured by getline's length, not strlen: a line that
        starts with a NUL byte used to look empty and vanish."""
        e = self.env()
        nul_first = person("im-nul1", email="nul1@example.com", consent=["email"])
        nul_inside = person("im-nul2", email="nul2@example.com", consent=["email"])
        lines = [
            json.dumps(GOOD[0]).encode(),                       # 1 good
            b"\x00" + json.dumps(nul_first).encode(),           # 2 starts with NUL
            json.dumps(GOOD[1]).encode(),                       # 3 good
            json.dumps(nul_inside).encode().replace(b", ", b",\x00 ", 1),   # 4 NUL inside
            b"\x00",                                            # 5 nothing but NUL
            json.dumps(GOOD[2]).encode(),                       # 6 good
        ]
        path = self.write_bytes(e, "nul.jsonl", b"\n".join(lines) + b"\n")
        res = e.ctl("import", path)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertEqual(res.stdout.strip(), "imported 3, skipped 3")
        for n in (2, 4, 5):
            self.assertIn("%s:%d: contains a NUL byte\n" % (path, n), res.stderr)
        self.assertStored(e, ["im-1", "im-2", "im-3"])
        self.assertStored(e, ["im-nul1", "im-nul2"], stored=False)

    def test_wrong_type_person_key_is_reported_and_skipped(self):
        e = self.env()
        e.r.set("herald:r:{im-2}", "not a hash")
        path = e.write_jsonl("people.jsonl", GOOD)
        res = e.ctl("import", path)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertEqual(res.stdout.strip(), "imported 2, skipped 1")
        self.assertRegex(res.stderr, r"^%s:2: recipient im-2: not imported: redis refused the import: wrongtype \(" % re.escape(path))
        self.assertEqual(len(res.stderr.splitlines()), 1, res.stderr)
        self.assertNotIn("+15550100401", res.stderr)
        self.assertStored(e, ["im-1", "im-3"])
        self.assertEqual(e.r.get("herald:r:{im-2}"), "not a hash")   # nothing of im-2 was written

    def test_error_inside_the_transaction_is_reported(self):
        """EXEC answers an array whose elements can be errors (Redis runs
        the other commands): each element counts, not just EXEC's own reply."""
        e = self.env()
        m = harness.index_member("email", "ike.import@example.com")
        e.r.set(harness.index_shard_key("addr", m), "not a hash")   # the HSET of im-3's index entry fails
        path = e.write_jsonl("people.jsonl", GOOD)
        res = e.ctl("import", path)
        self.assertEqual(res.returncode, 1, res.stderr)
        self.assertEqual(res.stdout.strip(), "imported 2, skipped 1")
        self.assertRegex(res.stderr, r"^%s:3: recipient im-3: not imported: redis refused the import: wrongtype \(.*other writes were applied"
                         % re.escape(path))
        self.assertNotIn("ike.import@example.com", res.stderr)
        self.assertStored(e, ["im-1", "im-2"])

    def test_connection_lost_halfway_is_reported_by_line(self):
        """The connection drops after the first person's transaction: that
        person is imported, every other one of the window is named as not
        confirmed, the unread rest of the file is said, and the exit is 2."""
        e = self.env()
        people = [person("cut-%03d" % i, email="c%03d@example.com" % i, channels=["email"], consent=["email"])
                  for i in range(300)]
        path = e.write_jsonl("people.jsonl", people)
        proxy = CuttingProxy(e.redis.port)
        try:
            res = e.ctl("import", path, sets=["redis.url=redis://127.0.0.1:%d/0" % proxy.port])
        finally:
            proxy.stop()
        self.assertTrue(proxy.cut, "the proxy never saw a transaction")
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertEqual(res.stdout.strip(), "imported 1, skipped 0, not confirmed 255")
        unconfirmed = [int(m.group(1)) for m in
                       re.finditer(r"^%s:(\d+): recipient cut-\d+: not confirmed" % re.escape(path), res.stderr, re.M)]
        self.assertEqual(unconfirmed, list(range(2, 257)))
        self.assertIn("%s: stopped after line 256: the lines after it were not read" % path, res.stderr)
        self.assertStored(e, ["cut-000"])
        self.assertStored(e, ["cut-256", "cut-299"], stored=False)
        self.assertNotIn("@example.com", res.stderr)

    def test_usage_and_connection_errors_exit_2(self):
        e = self.env()
        path = e.write_jsonl("people.jsonl", GOOD)
        self.assertEqual(e.ctl("import").returncode, 2, "missing argument")
        self.assertEqual(e.ctl("no-such-command", path).returncode, 2)
        closed = "redis.url=redis://127.0.0.1:%d/0" % harness.free_port()
        res = e.ctl("import", path, sets=[closed])
        self.assertEqual(res.returncode, 2, res.stderr)
        self.assertNotEqual(res.stderr, "")


EXEC = b"*1\r\n$4\r\nEXEC\r\n"


class CuttingProxy:
    """A loopback proxy in front of redis-server that passes everything
    until the first EXEC, forwards up to and including it, relays Redis's
    answers until they stop, and then closes the client's connection."""

    def __init__(self, redis_port):
        self.redis_port = redis_port
        self.cut = False
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.settimeout(30)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        server = socket.create_connection(("127.0.0.1", self.redis_port))
        last_answer = [time.monotonic()]

        def answers():
            while True:
                data = server.recv(65536)
                if not data:
                    return
                last_answer[0] = time.monotonic()
                client.sendall(data)

        threading.Thread(target=answers, daemon=True).start()
        pending = b""
        client.settimeout(30)
        while not self.cut:
            data = client.recv(65536)
            if not data:
                break
            pending += data
            i = pending.find(EXEC)
            if i >= 0:
                cut_at = time.monotonic()
                server.sendall(pending[:i + len(EXEC)])
                self.cut = True
                break
            # hold back only a tail that may be the start of an EXEC
            keep = next((k for k in range(len(EXEC) - 1, 0, -1) if pending.endswith(EXEC[:k])), 0)
            server.sendall(pending[:len(pending) - keep])
            pending = pending[len(pending) - keep:]
        if self.cut:   # Redis answers the whole transaction in one write: wait for it, then for quiet
            deadline = cut_at + 20 * harness.SLOW
            while time.monotonic() < deadline and (last_answer[0] <= cut_at
                                                   or time.monotonic() - last_answer[0] < 0.5):
                time.sleep(0.05)
        server.close()
        client.shutdown(socket.SHUT_WR)
        try:   # read what the client still sends until it gives up, so that no reset is sent
            while client.recv(65536):
                pass
        except OSError:
            pass
        client.close()

    def stop(self):
        self.listener.close()
        self.thread.join(timeout=10)


if __name__ == "__main__":
    harness.main()
