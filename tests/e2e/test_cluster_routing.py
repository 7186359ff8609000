"""herald on a Redis Cluster (3 masters + 3 replicas, [redis] cluster):
--check-config --connect reaches every master; heraldctl imports people whose
keys land on every master; the API reads (GET) and writes (PUT) a person on
each master; heraldctl enqueue puts a job on the control plane's stream
({herald}:jobs) and heraldctl campaign reads its progress; a slot moved by
hand (CLUSTER SETSLOT + MIGRATE) is followed (MOVED) without an error; a
master killed with kill -9 makes the API answer 503 for its people (not 500,
not a crash) until its replica is promoted, and 200 after, with the other
masters' people answered all along."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402
from test_api import Api  # noqa: E402


def crowd(n):
    return [person("cr-%03d" % i, email="cr.%03d@example.com" % i, channels=["email"], consent=["email"],
                   first_name="C%d" % i) for i in range(n)]


class ClusterRouting(harness.HeraldTestCase):

    def by_master(self, e, people):
        """{master port: [person id, ...]} for where each person's hash lives now."""
        out = {}
        for p in people:
            out.setdefault(e.redis.master_of("herald:r:{%s}" % p["id"]), []).append(p["id"])
        return out

    def get(self, api, pid):
        return api.call("GET", "/v1/recipients/%s" % pid, direct=True)

    def test_people_and_jobs_on_every_master(self):
        e = self.env(cluster=True)
        res = subprocess.run([harness.HERALD_BIN, "--config", e.config, "--check-config", "--connect"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertIn("3 masters", res.stdout)

        people = crowd(30)
        e.import_people(people)
        where = self.by_master(e, people)
        self.assertEqual(len(where), 3, "30 people land on every master: %r" % where)
        # The person's hash is on its own slot, the address index on the control plane's.
        self.assertEqual(e.r.hget("herald:r:{cr-000}", "rev"), "1")
        self.assertEqual(json.loads(e.r.hget("herald:r:{cr-000}", "profile"))["email"], "cr.000@example.com")
        self.assertEqual(e.r.hlen(e.key("addr")), 30)

        h = e.start_herald()
        code, health = h.healthz()
        self.assertEqual(health["redis_cluster"], {"masters": 3, "masters_down": 0, "unserved_slots": 0})
        api = Api(e)
        for port, ids in where.items():
            doc = api.ok("GET", "/v1/recipients/%s" % ids[0])
            self.assertEqual(doc["profile"]["email"], "cr.%s@example.com" % ids[0][3:])
            p = dict(person(ids[0], email="new.%s@example.com" % ids[0], channels=["email"]))
            e.remember(p)
            api.ok("PUT", "/v1/recipients/%s" % ids[0], p, want=200)
            self.assertEqual(api.ok("GET", "/v1/recipients/%s" % ids[0])["profile"]["email"], p["email"])
        status, doc = api.call("GET", "/v1/recipients/nobody-here")
        self.assertEqual(status, 404, doc)

        entry = e.enqueue(job("cl-1", recipients=[p["id"] for p in people], channels=["email"]))
        self.assertTrue(e.r.xrange(e.key("jobs"), min=entry, max=entry), "the job is on {herald}:jobs")
        self.assertEqual(e.r.exists("herald:jobs"), 0, "no untagged control key on a cluster")
        c = harness.wait_for("the daemon to take the job", lambda: (lambda c: c if c["state"] != "queued" else None)(
            e.campaign("cl-1")), 30)
        self.assertEqual(c["total"], 30, c)
        self.assertTrue(h.running())

    def test_writes_across_slots(self):
        """The API's writes whose keys are on several slots (a person, the
        address index, the tombstones, the suppression list) go in steps on a
        cluster: each lands where it belongs, and erasure leaves tombstones."""
        e = self.env(cluster=True)
        api = Api(e)
        h = e.start_herald()
        ann = person("cw-ann", email="ann.cluster@example.com", phone="+15550188001", channels=["email", "sms"])
        e.remember(ann)
        doc = api.ok("PUT", "/v1/recipients/cw-ann", ann, want=201)
        self.assertEqual((doc["created"], doc["tombstoned"]), (True, []))
        self.assertEqual(sorted(e.r.hvals(e.key("addr"))), ["cw-ann", "cw-ann"])
        api.ok("POST", "/v1/recipients/cw-ann/consent", {"channel": "email", "granted": True, "source": "signup"},
               want=201)
        self.assertEqual(e.r.llen("herald:r:{cw-ann}:consent"), 1)
        # A new address: the old one leaves the index, the new one joins it.
        moved = dict(ann, email="ann.moved@example.com")
        e.remember(moved)
        api.ok("PUT", "/v1/recipients/cw-ann", moved, want=200)
        self.assertEqual(len(e.r.hgetall(e.key("addr"))), 2)
        rev = int(e.r.hget("herald:r:{cw-ann}", "rev"))
        # Suppressing the person's address moves their rev (decided again).
        doc = api.ok("PUT", "/v1/suppressions/email/ann.moved%40example.com", {"reason": "asked"})
        self.assertTrue(doc["changed"])
        self.assertEqual(int(e.r.hget("herald:r:{cw-ann}", "rev")), rev + 1)
        self.assertEqual(e.r.scard(e.key("suppress")), 1)
        # Erasure: the person's keys go, the index entries go, tombstones stay.
        doc = api.ok("DELETE", "/v1/recipients/cw-ann")
        self.assertEqual(doc, {"id": "cw-ann", "erased": True, "tombstones": 2})
        self.assertEqual(e.r.exists("herald:r:{cw-ann}", "herald:r:{cw-ann}:consent"), 0)
        self.assertEqual(e.r.hgetall(e.key("addr")), {})
        self.assertEqual(e.r.scard(e.key("tombstones")), 2)
        self.assertEqual(api.call("GET", "/v1/recipients/cw-ann")[0], 404)
        # The erased addresses come back tombstoned.
        doc = api.ok("PUT", "/v1/recipients/cw-ann", moved, want=201)
        self.assertEqual(sorted(doc["tombstoned"]), ["email", "sms"])
        self.assertEqual(e.r.exists("herald:addr", "herald:tombstones", "herald:suppress"), 0,
                         "no untagged control key on a cluster")
        self.assertEqual(h.healthz()[0], 200)

    def test_moved_slot_is_followed(self):
        e = self.env(cluster=True)
        people = crowd(6)
        e.import_people(people)
        h = e.start_herald()
        api = Api(e)
        pid = people[0]["id"]
        self.assertEqual(self.get(api, pid)[0], 200)
        key = "herald:r:{%s}" % pid
        src = e.redis.master_of(key)
        dst = [p for p, _ in e.redis.masters() if p != src][0]
        e.redis.move_slot(e.redis.slot(key), src, dst)
        self.assertEqual(e.redis.master_of(key), dst)
        # herald's map still says src: src answers MOVED, herald follows it.
        for _ in range(3):
            status, doc = self.get(api, pid)
            self.assertEqual(status, 200, doc)
            self.assertEqual(doc["profile"]["email"], people[0]["email"])
        p = person(pid, email="moved.%s@example.com" % pid, channels=["email"])
        e.remember(p)
        self.assertEqual(api.call("PUT", "/v1/recipients/%s" % pid, p, direct=True)[0], 200)
        with e.redis.node(dst) as n:
            self.assertIn("moved.", n.hget(key, "profile"))
        self.assertEqual(h.healthz()[0], 200)

    def test_master_killed_503_then_200(self):
        e = self.env(cluster=True)
        people = crowd(30)
        e.import_people(people)
        where = self.by_master(e, people)
        for port in where:   # every write is on a replica before the kill
            with e.redis.node(port) as n:
                n.execute_command("WAIT", 1, 5000)
        h = e.start_herald()
        api = Api(e)
        control = e.redis.master_of(e.key("jobs"))
        victim = [p for p in where if p != control][0]
        others = [pid for p, ids in where.items() if p != victim for pid in ids[:2]]
        index = [p for p, _ in e.redis.masters()].index(victim)

        proc = e.redis.nodes[victim]
        proc.kill()
        proc.wait()
        del e.redis.nodes[victim]
        pid = where[victim][0]
        status, doc = harness.wait_for("503 for a person on the killed master",
                                       lambda: (lambda r: r if r[0] != 200 else None)(self.get(api, pid)), 10)
        self.assertEqual(status, 503, doc)
        self.assertIn("error", doc)
        for other in others:   # the other masters answer all along
            self.assertEqual(self.get(api, other)[0], 200)
        code, health = h.healthz()
        self.assertEqual(code, 503, health)
        self.assertTrue(health["redis_cluster"]["masters_down"] >= 1 or health["redis_cluster"]["unserved_slots"] > 0)
        self.assertTrue(h.running())

        del index
        harness.wait_for("the replica's promotion", lambda: e.redis.master_of("herald:r:{%s}" % pid) != victim, 30)
        e.redis.wait_ok()
        status, doc = harness.wait_for("200 again for the person", lambda: (lambda r: r if r[0] == 200 else None)(
            self.get(api, pid)), 30)
        self.assertEqual(doc["profile"]["email"], "cr.%s@example.com" % pid[3:])
        h.wait_healthy(30)
        self.assertEqual(h.healthz()[1]["redis_cluster"]["masters_down"], 0)
        self.assertTrue(h.running())


if __name__ == "__main__":
    harness.main()
