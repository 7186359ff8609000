"""herald on a Redis Cluster (3 masters + 3 replicas, [redis] cluster).

--check-config --connect reaches every master (with an ACL user on every
node, naming the master of each refusal; saying why when no seed answers or
a seed is no cluster node); heraldctl imports people whose keys land on
every master, and stats, explain and simulate read them there; the
API reads and writes a person on each master (profile, preferences, consent,
suppression, erasure: each step on its slot); heraldctl enqueue puts a job
on the control plane's stream ({herald}:jobs), heraldctl campaign and the
API read its progress, the campaigns list and its outcomes (each record on
its person's slot, a recipients_key on its own); the link pages and the
Twilio webhook work on a cluster; a slot moved by hand is followed (MOVED),
one half-way through its migration too (ASK, ASKING); a master killed with
kill -9 makes the API answer 503 for its people (not 500, not a crash) and
/healthz and /metrics say herald waits for the cluster until its replica is
promoted, 200 after, the other masters' people answered all along; the
retention sweep scans every master, and so does [retention]
inactive_people's; a re-run campaign's earlier run keeps its counts (each
node's); heraldctl suppress writes on the master of the address's shard."""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, ledger, person  # noqa: E402
from test_api import Api  # noqa: E402
from test_monitoring import sample, scrape  # noqa: E402


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
        # Its contact data sealed ([privacy] key_file), on the person's own slot.
        self.assertNotIn("email", json.loads(e.r.hget("herald:r:{cr-000}", "profile")))
        self.assertTrue(e.r.hexists("herald:r:{cr-000}", "@0"))
        self.assertEqual(len(e.index("addr")), 30)
        # Imported again with a new address: the old one (read back from the
        # sealed fields) leaves the index, the new one joins it.
        moved = dict(people[-1], email="cr.029.moved@example.com")
        e.remember(moved)
        e.import_people([moved])
        addr = e.index("addr")
        self.assertEqual(len(addr), 30, "the old address's entry is dropped")
        self.assertIn(harness.index_member("email", "cr.029.moved@example.com"), addr)
        self.assertNotIn(harness.index_member("email", "cr.029@example.com"), addr)
        stats = json.loads(e.ctl_ok("stats").stdout)   # summed over the masters
        self.assertEqual((stats["people"], stats["sample"]), (30, 30), stats)
        self.assertGreater(stats["bytes_per_person"], 0)

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
        # The message path runs on the cluster too (tests/e2e/test_cluster.py): the campaign ends.
        c = e.wait_campaign_done("cl-1", herald=h, timeout=60)
        self.assertEqual((c["total"], c["sent"]), (30, 30), c)
        self.assertTrue(h.running())

        # Outcomes: the page's ids from the control plane, each record from its person's slot.
        doc = api.ok("GET", "/v1/campaigns/cl-1/outcomes?limit=100")
        self.assertEqual(sorted(i["recipient"] for i in doc["items"]), sorted(p["id"] for p in people))
        self.assertEqual({(i["outcome"], i["channel"]) for i in doc["items"]}, {("sent", "email")})
        self.assertEqual(len(api.ok("GET", "/v1/campaigns/cl-1/outcomes?outcome=sent&limit=100")["items"]), 30)
        # heraldctl explain and simulate read each person on its master.
        out = json.loads(e.ctl_ok("explain", "cl-1", "cr-001", "--json").stdout)
        self.assertEqual(out["recorded"]["record"]["state"], "sent", out)
        path = e.write("sim.json", json.dumps(job("cl-sim", recipients=[p["id"] for p in people] + ["nobody"],
                                                  channels=["email"])))
        forecast = json.loads(e.ctl_ok("simulate", path, "--json").stdout)
        self.assertEqual((forecast["total"], forecast["sent_by_channel"], forecast["suppressed"]),
                         (31, {"email": 30}, {"unknown_recipient": 1}), forecast)
        # A recipients_key lives on a slot of its own: its page is read there.
        e.r.sadd("lists:cl-2", *[p["id"] for p in people[:5]])
        e.enqueue(job("cl-2", recipients_key="lists:cl-2", channels=["email"]))
        doc = api.ok("GET", "/v1/campaigns/cl-2/outcomes?limit=100")
        self.assertEqual(sorted(i["recipient"] for i in doc["items"]), sorted(p["id"] for p in people[:5]))
        self.assertEqual(api.call("GET", "/v1/campaigns/nothing/outcomes")[0], 404)
        # The campaigns index and each campaign's hash share the control plane's slot.
        doc = api.ok("GET", "/v1/campaigns")
        self.assertEqual(sorted(i["id"] for i in doc["items"]), ["cl-1", "cl-2"])
        self.assertEqual(api.ok("GET", "/v1/campaigns/cl-1")["total"], 30)

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
        self.assertEqual(sorted(e.index("addr").values()), ["cw-ann", "cw-ann"])
        api.ok("POST", "/v1/recipients/cw-ann/consent", {"channel": "email", "granted": True, "source": "signup"},
               want=201)
        self.assertEqual(len(harness.ledger_raw(e, "cw-ann")), 1)
        # A new address: the old one leaves the index, the new one joins it.
        moved = dict(ann, email="ann.moved@example.com")
        e.remember(moved)
        api.ok("PUT", "/v1/recipients/cw-ann", moved, want=200)
        self.assertEqual(len(e.index("addr")), 2)
        # A preference change (no address): the person's slot alone.
        api.ok("PATCH", "/v1/recipients/cw-ann/preferences", {"topics": {"promotions": False}})
        self.assertIs(json.loads(e.r.hget("herald:r:{cw-ann}", "profile"))["topics"]["promotions"], False)
        rev = int(e.r.hget("herald:r:{cw-ann}", "rev"))
        # Suppressing the person's address moves their rev (decided again).
        doc = api.ok("PUT", "/v1/suppressions/email/ann.moved%40example.com", {"reason": "asked"})
        self.assertTrue(doc["changed"])
        self.assertEqual(int(e.r.hget("herald:r:{cw-ann}", "rev")), rev + 1)
        self.assertEqual(len(e.index("suppress")), 1)
        # Erasure: the person's keys go, the index entries go, tombstones stay.
        doc = api.ok("DELETE", "/v1/recipients/cw-ann")
        self.assertEqual(doc, {"id": "cw-ann", "erased": True, "tombstones": 2})
        self.assertEqual(e.r.exists("herald:r:{cw-ann}"), 0)
        self.assertEqual(e.index("addr"), {})
        self.assertEqual(len(e.index("tombstones")), 2)
        self.assertEqual(api.call("GET", "/v1/recipients/cw-ann")[0], 404)
        # The erased addresses come back tombstoned.
        doc = api.ok("PUT", "/v1/recipients/cw-ann", moved, want=201)
        self.assertEqual(sorted(doc["tombstoned"]), ["email", "sms"])
        self.assertEqual(e.r.exists("herald:addr", "herald:tombstones", "herald:suppress"), 0,
                         "no untagged control key on a cluster")
        self.assertEqual(h.healthz()[0], 200)
        self.assertEqual(h.stop(), 0, "a clean stop closes every master's connection")

    def test_acl_user_on_every_node(self):
        """[redis] user with docs/operations.md's rule plus the cluster's
        additions, on every node: --check-config --connect passes, and names
        each master where a command is refused; heraldctl and the API work as
        that user."""
        from test_redis_users import doc_line, HERALD_PW
        e = self.env(cluster=True)
        words = doc_line("herald")[5:] + ["~{herald}:*", "+cluster|shards", "+cluster|slots", "+asking", "+wait"]

        def set_user(drop=()):
            for port in e.redis.nodes:
                with e.redis.node(port) as n:
                    n.execute_command("ACL", "SETUSER", "herald", "reset", "on", ">" + HERALD_PW,
                                      *[w for w in words if w not in drop])
        set_user()
        config = e.write("acl.conf", e.config_text().replace(
            "[redis]\n", "[redis]\nuser = herald\npassword = %s\n" % HERALD_PW, 1))
        check = [harness.HERALD_BIN, "--config", config, "--check-config", "--connect"]
        res = subprocess.run(check, capture_output=True, text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("3 masters, as user herald", res.stdout)

        set_user(drop=("+hsetnx",))
        res = subprocess.run(check, capture_output=True, text=True, timeout=60)
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        refused = [l for l in res.stderr.splitlines() if "may not write a hash field once (HSETNX)" in l]
        self.assertEqual(sorted(l.split()[3] for l in refused),
                         sorted("127.0.0.1:%d:" % p for p, _ in e.redis.masters()), res.stderr)
        self.assertIn("{herald}:*", res.stderr)

        set_user()
        people = crowd(6)
        for p in people:
            e.remember(p)
        path = e.write_jsonl("acl-people.jsonl", people)
        self.assertEqual(e.ctl_ok("import", path, config=config).stdout.strip(), "imported 6, skipped 0")
        h = e.start_herald(config=config)
        api = Api(e)
        for p in people:
            self.assertEqual(self.get(api, p["id"])[0], 200)

    def test_no_seed_answers(self):
        """Seeds that do not answer: --check-config --connect says so, the
        daemon says so once and answers 503 (healthz and the API), never a crash;
        a seed that is a Redis without cluster mode: both say why."""
        e = self.env(cluster=True)
        seeds = e.redis.seeds
        dead = ", ".join("127.0.0.1:%d" % harness.free_port() for _ in range(2))
        config = e.write("dead.conf", e.config_text().replace("cluster = %s" % seeds, "cluster = %s" % dead))
        res = subprocess.run([harness.HERALD_BIN, "--config", config, "--check-config", "--connect"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(res.returncode, 1, res.stdout)
        self.assertIn("cannot reach the redis cluster (no seed of [redis] cluster answered)", res.stderr)
        h = e.start_herald(config=config, wait_healthy=False)
        harness.wait_for("the daemon to say no seed answers",
                         lambda: "no seed node answers" in h.log(), 10)
        code, health = h.healthz()
        self.assertEqual((code, health["status"]), (503, "starting"), health)
        api = Api(e)
        self.assertEqual(api.call("GET", "/v1/recipients/anyone", direct=True)[0], 503)
        self.assertEqual(len([l for l in h.log_lines() if "no seed node answers" in l]), 1)
        self.assertTrue(h.running())

        # A seed that is a Redis without cluster mode: said why, in both.
        plain = harness.RedisServer(e.path("plain")).start()
        self.addCleanup(plain.stop, True)
        config = e.write("plain.conf", e.config_text().replace("cluster = %s" % seeds,
                                                               "cluster = 127.0.0.1:%d" % plain.port))
        res = subprocess.run([harness.HERALD_BIN, "--config", config, "--check-config", "--connect"],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(res.returncode, 1, res.stdout)
        self.assertIn("refused CLUSTER SHARDS: is it in cluster mode", res.stderr)
        h2 = e.start_herald(config=config, wait_healthy=False, sets=harness.Env.other_listeners())
        harness.wait_for("the daemon to say the seed is no cluster node",
                         lambda: "cluster support disabled" in h2.log(), 10)
        self.assertTrue(h2.running())

    def test_pages_on_a_cluster(self):
        """The link pages read and write a person on its master: the
        preference page renders, a one-click unsubscribe turns the topic off."""
        from test_prefpage import form, http, make_token
        e = self.env(cluster=True)
        ann = person("cp-ann", email="ann.pages@example.com", channels=["email"], consent=["email"],
                     topics={"promotions": True})
        e.import_people([ann])
        e.start_herald()
        base = "http://127.0.0.1:%d" % e.public_port
        later = int(time.time()) + 3600
        code, _, text = http("GET", base + "/p/" + make_token("p", "cp-ann", "cp-c1", "promotions", "email", later))
        self.assertEqual(code, 200, text)
        self.assertIn("promotions", text)
        body, ctype = form({"List-Unsubscribe": "One-Click"})
        code, _, text = http("POST", base + "/u/" + make_token("u", "cp-ann", "cp-c1", "promotions", "email", later),
                             body, ctype)
        self.assertEqual(code, 200, text)
        topics = json.loads(e.r.hget("herald:r:{cp-ann}", "profile")).get("topics", {})
        self.assertIs(topics.get("promotions"), False)

    def test_sms_stop_on_a_cluster(self):
        """A Twilio STOP: the consent change and its dedupe key on the
        person's slot, the count on the control plane's, once per message."""
        from test_webhooks import sid, sms_params, tw_post, write_config
        e = self.env(cluster=True)
        e.import_people([person("cs-sms", phone="+15550109001", channels=["sms"], consent=["sms"])])
        h = e.start_herald(config=write_config(e, "tw.conf"))
        stop = sms_params("+15550109001", "STOP", sid(1))
        for _ in range(2):   # Twilio redelivers: applied once
            status, _, _ = tw_post(e, stop)
            self.assertEqual(status, 200)
        self.assertEqual([(r["granted"], r["source"]) for r in ledger(e, "cs-sms")],
                         [(True, "e2e-test"), (False, "sms_keyword")])
        self.assertEqual(e.r.hget(e.key("webhook:counts"), "twilio:stop"), "1")
        self.assertTrue(h.running())

    def test_retention_sweeps_every_master(self):
        """The sweep of expired once-only records scans each master in turn."""
        e = self.env(cluster=True)
        people = crowd(30)
        e.import_people(people)
        self.assertEqual(len(self.by_master(e, people)), 3)
        for p in people:
            e.r.hset("herald:r:{%s}" % p["id"], mapping={"c:old": "sent 1-0 r1 1700000000 email/",
                                                          "c:new": "sent 2-0 r1 1700000000 email/"})
        e.r.hset(e.key("campaign:old"), mapping={"state:1-0": "done", "run": "1"})
        e.r.zadd(e.key("retention"), {"old": 1})
        h = e.start_herald(sets=("retention.sweep_every=1s",))
        left = lambda: [p["id"] for p in people if e.r.hexists("herald:r:{%s}" % p["id"], "c:old")]  # noqa: E731
        harness.wait_for("the sweep to remove every record of the campaign", lambda: not left(), 30)
        self.assertEqual([p["id"] for p in people if not e.r.hexists("herald:r:{%s}" % p["id"], "c:new")], [],
                         "another campaign's records stay")
        harness.wait_for("the campaign marked expired", lambda: e.r.hget(e.key("campaign:old"), "records"), 10)
        self.assertIn("once-only records removed campaigns=1 people_scanned=30", h.log())

    def test_inactive_people_on_every_master(self):
        """[retention] inactive_people: the people without consent and without
        activity for the limit go on every master; those with consent stay."""
        e = self.env(cluster=True, log_level="info")
        idle = [person("ci-%02d" % i, email="ci.%02d@example.com" % i, channels=["email"]) for i in range(12)]
        kept = crowd(6)
        e.import_people(idle + kept)
        self.assertEqual(len(self.by_master(e, idle)), 3, "the idle people are on every master")
        past = int(time.time()) - 7200
        for p in idle + kept:
            e.r.hset("herald:r:{%s}" % p["id"], "act", past)
        conf = e.write("inactive.conf", e.config_text() + "\n[retention]\ninactive_people = 1h\nsweep_every = 1s\n")
        h = e.start_herald(config=conf)
        harness.wait_for("the idle people erased on every master",
                         lambda: not [p for p in idle if e.r.exists("herald:r:{%s}" % p["id"])], 30)
        harness.wait_for("a full sweep", lambda: "inactive people sweep done" in h.log(), 30)
        self.assertEqual([p["id"] for p in kept if not e.r.exists("herald:r:{%s}" % p["id"])], [],
                         "people with consent stay")
        self.assertEqual(len(e.index("tombstones")), len(idle))
        self.assertEqual(h.stop(), 0)

    def test_earlier_run_counts_and_suppress(self):
        """A re-run campaign: its first run's counts (summed over the nodes)
        stay in `runs`, in heraldctl campaign and the API. heraldctl
        suppress of an address whose shard is on another master than the
        control plane's: written there, the owner's rev moved."""
        e = self.env(cluster=True)
        people = crowd(12)
        e.import_people(people)
        h = e.start_herald()
        ids = [p["id"] for p in people]
        e.enqueue(job("cr-runs", recipients=ids, channels=["email"]))
        e.wait_campaign_done("cr-runs", herald=h, timeout=60)
        harness.wait_for("the first run finished", lambda: e.r.hget(e.key("campaign:cr-runs"), "finished_at"), 10)
        e.enqueue(job("cr-runs", recipients=ids, channels=["email"], rerun=True))
        harness.wait_for("the second run done", lambda: (lambda c: c.get("run") == 2 and c["state"] == "done")(
            e.campaign("cr-runs")), 60)
        for doc in (e.campaign("cr-runs"), Api(e).ok("GET", "/v1/campaigns/cr-runs")):
            runs = {r["run"]: r for r in doc["runs"]}
            self.assertEqual((runs[1]["total"], runs[1]["sent"]), (12, 12), runs[1])
            self.assertEqual((runs[2]["total"], runs[2]["sent"], runs[2]["suppressed"]),
                             (12, 0, {"duplicate": 12}), runs[2])
            self.assertEqual((doc["run"], doc["sent"]), (2, 0), doc)

        control = e.redis.master_of(e.key("jobs"))
        addr = [p["email"] for p in people
                if e.redis.master_of(harness.index_shard_key(
                    "suppress", harness.index_member("email", p["email"]))) != control][0]
        owner = [p["id"] for p in people if p["email"] == addr][0]
        rev = int(e.r.hget("herald:r:{%s}" % owner, "rev"))
        self.assertEqual(e.ctl_ok("suppress", "email", addr).stdout.strip(), "suppressed (email)")
        self.assertIn(harness.index_member("email", addr), e.index("suppress"))
        self.assertEqual(int(e.r.hget("herald:r:{%s}" % owner, "rev")), rev + 1)
        self.assertEqual(e.ctl_ok("suppress", "email", addr).stdout.strip(), "suppressed (email)")
        self.assertEqual(int(e.r.hget("herald:r:{%s}" % owner, "rev")), rev + 1, "once: unchanged the second time")
        self.assertEqual(h.stop(), 0)

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
        with e.redis.node(dst) as n:
            rev = int(n.hget(key, "rev"))
        self.assertEqual(api.call("PUT", "/v1/recipients/%s" % pid, p, direct=True)[0], 200)
        self.assertEqual(self.get(api, pid)[1]["profile"]["email"], p["email"])
        with e.redis.node(dst) as n:   # written on the slot's new master
            self.assertEqual(int(n.hget(key, "rev")), rev + 1)

        # A slot half-way through a migration: its key is already on the
        # target, the source answers ASK; herald sends ASKING and the command
        # there, once.
        pid2 = [p["id"] for p in people if e.redis.slot("herald:r:{%s}" % p["id"]) != e.redis.slot(key)][0]
        key2 = "herald:r:{%s}" % pid2
        slot2, src2 = e.redis.slot(key2), e.redis.master_of(key2)
        dst2 = [p for p, _ in e.redis.masters() if p != src2][0]
        with e.redis.node(src2) as s, e.redis.node(dst2) as d:
            d.execute_command("CLUSTER SETSLOT", slot2, "IMPORTING", e.redis.node_id(src2))
            s.execute_command("CLUSTER SETSLOT", slot2, "MIGRATING", e.redis.node_id(dst2))
            rev2 = int(s.hget(key2, "rev"))
            keys = s.execute_command("CLUSTER GETKEYSINSLOT", slot2, 100)
            s.execute_command("MIGRATE", "127.0.0.1", dst2, "", 0, 10000, "KEYS", *keys)
            with self.assertRaises(harness.redis.exceptions.ResponseError) as cm:
                s.hget(key2, "profile")
            self.assertIn("ASK", str(cm.exception))
            # A write of single-key steps (a multi-key read there may get
            # TRYAGAIN from Redis while the slot moves: a 503 with Retry-After).
            for i in range(2):
                p2 = person(pid2, email="ask%d.%s@example.com" % (i, pid2), channels=["email"])
                e.remember(p2)
                status, doc = api.call("PUT", "/v1/recipients/%s" % pid2, p2, direct=True)
                self.assertEqual(status, 200, doc)
            pipe = d.pipeline(transaction=False)   # one connection: ASKING applies to the next command
            pipe.execute_command("ASKING")
            pipe.hget(key2, "rev")   # both writes landed on the target (the contact data is sealed)
            self.assertEqual(int(pipe.execute()[1]), rev2 + 2)
            for port in list(e.redis.nodes):
                with e.redis.node(port) as n:
                    try:
                        n.execute_command("CLUSTER SETSLOT", slot2, "NODE", e.redis.node_id(dst2))
                    except harness.redis.exceptions.ResponseError:
                        pass
        self.assertEqual(self.get(api, pid2)[0], 200)
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
        # A GET reads the person and the suppression shard of each address:
        # those with nothing on the victim answer all along.
        def untouched(pid):
            m = harness.index_member("email", "cr.%s@example.com" % pid[3:])
            return e.redis.master_of(harness.index_shard_key("suppress", m)) != victim
        others = [pid for p, ids in where.items() if p != victim for pid in ids if untouched(pid)][:4]
        self.assertTrue(others, "some people have nothing on the victim")
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
        text = scrape(h.admin_port)
        self.assertEqual(sample(text, "herald_redis_connected"), 0.0)
        self.assertEqual(sample(text, "herald_redis_cluster_masters"), 3.0)
        self.assertGreaterEqual(sample(text, "herald_redis_cluster_masters_down") +
                                sample(text, "herald_redis_cluster_unserved_slots"), 1.0)
        self.assertTrue(h.running())

        del index
        harness.wait_for("the replica's promotion", lambda: e.redis.master_of("herald:r:{%s}" % pid) != victim, 30)
        e.redis.wait_ok()
        status, doc = harness.wait_for("200 again for the person", lambda: (lambda r: r if r[0] == 200 else None)(
            self.get(api, pid)), 30)
        self.assertEqual(doc["profile"]["email"], "cr.%s@example.com" % pid[3:])
        h.wait_healthy(30)
        self.assertEqual(h.healthz()[1]["redis_cluster"]["masters_down"], 0)
        text = scrape(h.admin_port)
        self.assertEqual((sample(text, "herald_redis_connected"), sample(text, "herald_redis_cluster_masters_down"),
                          sample(text, "herald_redis_cluster_unserved_slots")), (1.0, 0.0, 0.0))
        self.assertGreaterEqual(sample(text, "herald_redis_cluster_map_refreshes_total"), 2.0)
        self.assertTrue(h.running())
        # Said once when it started waiting for the cluster, once when it ended.
        said = [l for l in h.log_lines() if "redis cluster:" in l]
        self.assertEqual(len([l for l in said if "unreachable, " in l]), 1, "\n".join(said))
        self.assertEqual(len([l for l in said if "every master reachable" in l]), 1, "\n".join(said))


    def test_rotate_key_on_every_master(self):
        """heraldctl rotate-key re-encrypts the people of every master (each
        written on its slot's master), --status shows each master's progress,
        a pass cut short resumes on the master it stopped at, and once the
        census shows the old key unused, it can go: everyone is read and sent
        to with their own address."""
        e = self.env(cluster=True)
        people = crowd(30)
        e.import_people(people)
        where = self.by_master(e, people)
        self.assertEqual(len(where), 3, where)
        k2, k3 = "e2e2 " + "c3" * 32, "e2e3 " + "d4" * 32
        e.write_keys(k2 + "\n" + harness.E2E_KEY + "\n")
        out = e.ctl_ok("rotate-key").stdout
        self.assertIn("rotated to key 'e2e2': 30 rewritten, 0 already under it", out)
        stats = json.loads(e.ctl_ok("stats").stdout)
        self.assertEqual((stats["people"], stats["masters_counted"], stats["contact_data"]),
                         (30, 3, {"sealed_by_key": {"e2e2": 30}, "plaintext": 0}), stats)
        status = json.loads(e.ctl_ok("rotate-key", "--status").stdout)
        self.assertEqual((status["state"], status["rewritten"]), ("done", 30), status)
        self.assertEqual({int(m["master"].rsplit(":", 1)[1]): (m["state"], m["people"]) for m in status["masters"]},
                         {port: ("done", len(ids)) for port, ids in where.items()}, status)

        # e2e1 seals nobody on any master now: retired, it may leave the key file.
        self.assertIn("counted on 3 masters", e.ctl_ok("retire-key", "e2e1").stdout)
        # A pass to e2e3 that stopped once the first master was done: its
        # state names the next master ("1:0"), its lock lapsed.
        e.write_keys(k3 + "\n" + k2 + "\n")
        first = int(status["masters"][0]["master"].rsplit(":", 1)[1])
        saved = {"state": "running", "key": "e2e3", "cursor": "1:0", "masters": "3", "rewritten": "0",
                 "people:0": str(len(where[first]))}
        saved.update({"master:%d" % i: m["master"] for i, m in enumerate(status["masters"])})
        e.r.delete(e.key("rotate"))
        e.r.hset(e.key("rotate"), mapping=saved)
        stopped = json.loads(e.ctl_ok("rotate-key", "--status").stdout)
        self.assertEqual([(m["state"], m["people"]) for m in stopped["masters"]],
                         [("done", len(where[first])), ("scanning", 0), ("waiting", 0)], stopped)
        res = e.ctl_ok("rotate-key")
        self.assertIn("resuming the pass to key 'e2e3'", res.stderr)
        self.assertEqual(json.loads(e.ctl_ok("stats").stdout)["contact_data"]["sealed_by_key"],
                         {"e2e2": len(where[first]), "e2e3": 30 - len(where[first])})
        for pid in where[first]:   # the master done before the stop was not read again
            at0 = e.rb.hget("herald:r:{%s}" % pid, "@0")
            self.assertEqual(at0[2:2 + at0[1]], b"e2e2", pid)
        # e2e2 still seals the first master's people: it cannot be retired yet.
        res = e.ctl("retire-key", "e2e2")
        self.assertEqual(res.returncode, 1, res.stdout + res.stderr)
        n = len(where[first])
        self.assertIn("key 'e2e2' still seals %d %s (counted on 3 masters)" % (n, "person" if n == 1 else "people"),
                      res.stderr)
        # A full pass seals the rest; then the census says e2e2 is unused.
        self.assertIn("%d rewritten" % len(where[first]), e.ctl_ok("rotate-key").stdout)
        self.assertEqual(json.loads(e.ctl_ok("stats").stdout)["contact_data"],
                         {"sealed_by_key": {"e2e3": 30}, "plaintext": 0})

        e.write_keys(k3 + "\n")   # e2e2 not retired yet: the daemon refuses to start
        h = e.start_herald(wait_healthy=False)
        self.assertEqual(h.wait_exit(60), 1, h.log()[-2000:])
        self.assertIn("key 'e2e2' is no longer in key_file but is not retired", h.log())
        e.ctl_ok("retire-key", "e2e2")
        self.assertEqual(e.r.hget(e.key("keys"), "e2e2").split()[0], "retired")
        h = e.start_herald()
        api = Api(e)
        for p in people:
            self.assertEqual(api.ok("GET", "/v1/recipients/%s" % p["id"])["profile"]["email"], p["email"])
        e.enqueue(job("rot-1", recipients=[p["id"] for p in people], channels=["email"]))
        c = e.wait_campaign_done("rot-1", herald=h, timeout=60)
        self.assertEqual((c["sent"], c["failed"]), (30, {}), c)
        by = {p["id"]: p["email"] for p in people}
        self.assertEqual(sorted((m["recipient"], m["to"]) for m in e.outbox_json("rot-1").values()),
                         sorted(by.items()))

if __name__ == "__main__":
    harness.main()
