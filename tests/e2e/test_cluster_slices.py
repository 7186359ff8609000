"""A recipients_key job in slices on a Redis Cluster (3 masters + 3
replicas), and the retention sweep of a campaign's per-node keys.

Two daemons ([daemon] slice) share one recipients_key job of a few thousand
people whose set lives on a slot of its own: the cut runs on that slot
(its slices' lists carry a tag of it) and publishes each slice on the
control plane's; both daemons run slices; nobody is sent twice, everyone
has exactly one terminal outcome, the job is cut once and counted once.
Then the campaign's records are made due: the sweep removes them and every
per-node key of the campaign (each node's run counters and norecord set,
the run's nodes set) on every master, and the campaign's progress still
counts everyone (the counters folded into the campaign hash first).

A cut whose cutting daemon died between the two halves of a step (a slice
closed on the source's slot, never published on the control plane's) is
resumed by the next run: the slice closed then is published with the
others, everyone sent once."""

import itertools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import job  # noqa: E402

N = int(os.environ.get("HERALD_E2E_CLUSTER_N", "3000"))
LUA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "daemon", "lua")


def crc16(data):
    """Redis Cluster's CRC16 (XMODEM)."""
    crc = 0
    for b in data:
        crc ^= b << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def slot_tag(slot):
    """herald's tag of a slot (rcluster_slot_tag): the first string of
    [a-z0-9], shortest first, whose CRC16 lands in it."""
    alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
    for n in range(1, 5):
        for t in itertools.product(alphabet, repeat=n):
            s = "".join(t)
            if crc16(s.encode()) % 16384 == slot:
                return s
    raise AssertionError("no tag for slot %d" % slot)


class ClusterSlices(harness.HeraldTestCase):

    def assertAllSentOnce(self, e, srv, cid, entry, ids, herald):
        """The campaign done and every slice acknowledged; everyone sent,
        exactly once, and counted once. Returns the progress."""
        c = e.wait_campaign_done(cid, herald=herald, timeout=150 * harness.SLOW)
        harness.wait_for("every slice acknowledged", lambda: e.pending() == 0 and e.acked(entry), 30)
        by = self.assertConsistent(e, cid, ids)
        self.assertEqual({r["outcome"] for r in by.values()}, {"sent"})
        per = harness.requests_by_recipient(srv)
        self.assertEqual({k: v for k, v in per.items() if v > 1}, {}, "recipients sent twice")
        self.assertEqual(set(per), set(ids), "everyone got one message")
        self.assertEqual((c["total"], c["sent"]), (len(ids), len(ids)), c)
        return c

    def keys_on_masters(self, e, pattern):
        """Every key matching pattern, on every master."""
        out = []
        for port, _ in e.redis.masters():
            with e.redis.node(port) as n:
                out += list(n.scan_iter(pattern, count=1000))
        return out

    def test_sliced_recipients_key_then_per_node_keys_swept(self):
        srv = FaultServer([{"status": 202}])
        self.addCleanup(srv.stop)
        e = self.env(cluster=True, log_level="info")
        ppl = harness.people(N, "cs-")
        e.import_people(ppl)
        ids = [p["id"] for p in ppl]
        e.r.sadd("lists:cs-big", *ids)
        source = e.redis.master_of("lists:cs-big")
        self.assertNotEqual(e.redis.slot("lists:cs-big"), e.redis.slot(e.key("jobs")),
                            "the source is on a slot of its own")
        conf = e.hook_config(srv.url, provider="concurrency = 16", daemon="slice = 500")
        one = e.start_herald(config=conf, sets=("daemon.consumer=one",))
        two = e.start_herald(config=conf, sets=("daemon.consumer=two",) + e.other_listeners())
        entry = e.enqueue(job("cs-big", recipients_key="lists:cs-big", channels=["email"]))
        self.assertAllSentOnce(e, srv, "cs-big", entry, ids, one)
        logs = one.log_lines() + two.log_lines()
        sliced = [l for l in logs if "job sliced campaign=cs-big " in l]
        self.assertEqual(len(sliced), 1, "the job is cut once")
        self.assertIn("slices=%d recipients=%d" % ((N + 499) // 500, N), sliced[0])
        for h in (one, two):
            self.assertIn("job started campaign=cs-big", h.log(), "both daemons ran slices")
        harness.wait_for("the slices' lists dropped",
                         lambda: not self.keys_on_masters(e, "herald:cut:*:slice:*"), 10, 0.1)
        # The cut's own state stayed on the source's master (a day, then expires).
        cut = self.keys_on_masters(e, "herald:cut:*")
        self.assertTrue(cut, "the cut's state")
        self.assertEqual({e.redis.master_of(k) for k in cut}, {source})
        self.assertEqual(e.r.scard("lists:cs-big"), N, "the operator's key is left as it was")
        self.assertEqual(one.stop(), 0)
        self.assertEqual(two.stop(), 0)

        # Retention: the records made due now; the sweep takes every
        # per-node key of the campaign with them.
        tags = e.r.smembers(e.key("campaign:cs-big:nodes:1"))
        self.assertGreaterEqual(len(tags), 3, tags)
        node_keys = self.keys_on_masters(e, "herald:n:*:campaign:cs-big:*")
        self.assertTrue([k for k in node_keys if k.endswith(":1")], node_keys)
        e.r.zadd(e.key("retention"), {"cs-big": 1})
        h = e.start_herald(config=conf, sets=("retention.sweep_every=1s",))
        harness.wait_for("the per-node keys removed", lambda: "per-node keys removed" in h.log(), 60)
        self.assertEqual(self.keys_on_masters(e, "herald:n:*:campaign:cs-big:*"), [])
        self.assertEqual(e.r.exists(e.key("campaign:cs-big:nodes:1")), 0)
        self.assertEqual([i for i in ids[:200] if e.r.hexists("herald:r:{%s}" % i, "c:cs-big")], [])
        after = e.campaign("cs-big")
        self.assertEqual((after["total"], after["sent"], after["state"]), (N, N, "done"), after)
        self.assertEqual(after["runs"][0]["sent"], N)
        self.assertEqual(h.stop(), 0)

    def test_cut_resumed_after_a_crash_between_its_halves(self):
        srv = FaultServer([{"status": 202}])
        self.addCleanup(srv.stop)
        e = self.env(cluster=True, log_level="info")
        n = 1200
        ppl = harness.people(n, "cc-")
        e.import_people(ppl)
        ids = [p["id"] for p in ppl]
        e.r.sadd("lists:cs-crash", *ids)
        entry = e.enqueue(job("cs-crash", recipients_key="lists:cs-crash", channels=["email"]))
        # A cutting daemon's first step on the source's slot, then its
        # death before the publishing half: a slice of 500 closed (or two),
        # nothing in the stream.
        base = "herald:cut:{%s}:%s" % (slot_tag(e.redis.slot("lists:cs-crash")), entry)
        with open(os.path.join(LUA, "job_cut.lua")) as f:
            step = e.r.eval(f.read(), 3, "lists:cs-crash", base, base + ":seen",
                            "", entry, "", "set", "500", "1000", base + ":slice:")
        self.assertEqual(step[0], "more")   # SSCAN's COUNT is a hint: about 1000 ids read
        self.assertGreaterEqual(step[1], 1)
        self.assertEqual(e.r.llen(base + ":slice:0"), 500)
        self.assertEqual(e.r.xlen(e.key("jobs")), 1, "no slice published")

        conf = e.hook_config(srv.url, provider="concurrency = 16", daemon="slice = 500")
        h = e.start_herald(config=conf)
        self.assertAllSentOnce(e, srv, "cs-crash", entry, ids, h)   # the crashed step's slice too
        self.assertIn("job sliced campaign=cs-crash entry=%s slices=3 recipients=%d" % (entry, n), h.log())
        # The run went on from the staged cut (not a cut of its own from the start).
        self.assertEqual(e.r.hmget(base, "done", "k", "kept"), ["1", "3", str(n)])
        self.assertEqual(h.stop(), 0)


if __name__ == "__main__":
    harness.main()
