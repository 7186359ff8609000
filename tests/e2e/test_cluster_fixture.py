"""The RedisCluster fixture itself (tests/e2e/harness.py): three masters and
three replicas start and agree, a key written through the cluster client is
read back after its master is killed with kill -9 and its replica promoted,
a slot moved by hand answers from its new master, and a
reshard of 100 slots moves them and keeps every key."""

import os
import sys
import tempfile
import shutil

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class ClusterFixture(harness.HeraldTestCase):

    def test_start_kill_move(self):
        d = tempfile.mkdtemp(prefix="herald-e2e-cluster-fixture-")
        self.addCleanup(shutil.rmtree, d, True)
        c = harness.RedisCluster(d)
        self.addCleanup(c.stop)
        c.start()
        masters = c.masters()
        self.assertEqual(len(masters), 3)
        self.assertEqual(sum(hi - lo + 1 for _, r in masters for lo, hi in r), 16384)

        rc = c.client()
        keys = ["fixture:%d" % i for i in range(60)]
        for k in keys:
            rc.set(k, k)
        self.assertEqual(len({c.master_of(k) for k in keys}), 3, "60 keys land on every master")
        for k in keys:   # WAIT: the replicas have every write before the kill
            with c.node(c.master_of(k)) as n:
                self.assertEqual(n.execute_command("WAIT", 1, 5000), 1)

        victim = c.master_of(keys[0])
        index = [p for p, _ in masters].index(victim)
        killed, promoted = c.kill_master(index)
        self.assertEqual(killed, victim)
        self.assertNotEqual(promoted, victim)
        self.assertEqual(c.master_of(keys[0]), promoted)
        rc = c.client()
        self.assertEqual([rc.get(k) for k in keys], keys, "every key survives the failover")

        key = keys[1]
        src = c.master_of(key)
        dst = [p for p, _ in c.masters() if p != src][0]
        c.move_slot(c.slot(key), src, dst)
        self.assertEqual(c.master_of(key), dst)
        with c.node(src) as n:
            with self.assertRaises(harness.redis.exceptions.ResponseError) as cm:
                n.get(key)
            self.assertIn("MOVED", str(cm.exception))
        with c.node(dst) as n:
            self.assertEqual(n.get(key), key)

        (a, ra), (b, rb) = c.masters()[:2]
        before = sum(hi - lo + 1 for lo, hi in rb)
        proc = c.reshard(100, a, b)
        out, _ = proc.communicate(timeout=120 * harness.SLOW)
        self.assertEqual(proc.returncode, 0, out)
        c.wait_ok()
        after = sum(hi - lo + 1 for p, r in c.masters() if p == b for lo, hi in r)
        self.assertEqual(after, before + 100)
        self.assertEqual([c.client().get(k) for k in keys], keys, "every key survives the reshard")


if __name__ == "__main__":
    harness.main()
