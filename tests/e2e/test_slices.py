"""A campaign in slices ([daemon] slice): a large inline job is cut into
slices, each a stream entry that any daemon claims.

Two daemons on one 10,000-recipient campaign each send at least 35% of it
(told apart by the run named in each person's once-only record), inline or
a recipients_key set (its ids copied into the slices' own lists). With one
of two daemons killed (SIGKILL) in the middle of its slices, the other takes
them over and finishes the campaign (inline, or a recipients_key list that
holds some ids twice). Each: every recipient exactly one
terminal outcome that its once-only record agrees with, progress counting
each once and "done", nobody sent twice."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import job  # noqa: E402

REACHED = ("sent", "pending", "unknown")  # once-only records of a message handed to the provider
RUN_RE = re.compile(r"job started campaign=\S+ entry=\S+ run=(\S+)\.\d+ ")


def run_ids(h):
    """The run id prefixes a daemon's log names ("<run id>.<n>")."""
    return set(RUN_RE.findall(h.log()))


class SliceChecks:
    """What the slice tests check (test_slices_three.py and
    test_slices_quiet.py use it too)."""

    def records(self, e, cid, ids):
        pipe = e.r.pipeline(transaction=False)
        for rid in ids:
            pipe.hget("herald:r:{%s}" % rid, "c:" + cid)
        return dict(zip(ids, pipe.execute()))

    def people_env(self, n, prefix):
        """An env with n people: (env, their ids)."""
        e = self.env(log_level="info")
        ppl = harness.people(n, prefix)
        e.import_people(ppl)
        return e, [p["id"] for p in ppl]

    def kill_env(self, n, prefix, rate, slice_size):
        """A recording sink limited to rate, daemons with claim_idle 2 s, n people."""
        srv = FaultServer([{"status": 202}])
        self.addCleanup(srv.stop)
        e, ids = self.people_env(n, prefix)
        conf = e.hook_config(srv.url, provider="rate = %s\nconcurrency = 8" % rate,
                             daemon="claim_idle = 2s\nslice = %d" % slice_size)
        return srv, e, conf, ids

    def assertFinishedAfterKill(self, e, srv, cid, ids, survivor, label, killed=1):
        """Every recipient one terminal outcome, sent or (what a killed daemon
        had handed to the provider) unknown, nobody requested twice."""
        by = self.assertConsistent(e, cid, ids)
        outcomes = {}
        for r in by.values():
            outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
        print("%s after a kill: outcomes %r" % (label, outcomes), file=sys.stderr)
        self.assertEqual(set(outcomes) - {"sent", "unknown"}, set())
        # Only what a killed daemon had handed to the provider when it died is
        # unknown: its requests in flight (concurrency 8) and its gates'
        # lookahead (by default the concurrency), per slice it ran.
        self.assertLessEqual(outcomes.get("unknown", 0), 4 * 16 * killed)
        per = harness.requests_by_recipient(srv)
        self.assertEqual({k: v for k, v in per.items() if v > 1}, {}, "recipients sent twice")
        sent = {k for k, r in by.items() if r["outcome"] == "sent"}
        self.assertEqual(sent - set(per), set(), "sent without a request")
        self.assertIn("took over a job", survivor.log())
        return per

    def assertFairShares(self, e, cid, ids, hs, label):
        """Every person's record names one of the daemons' runs, and each
        daemon sent at least 35% / (daemons / 2) of them."""
        count = self.count_by_daemon(e, cid, ids, hs)
        print("%s: sent per daemon %r" % (label, count), file=sys.stderr)
        self.assertEqual(sum(count), len(ids))
        for c in count:
            self.assertGreaterEqual(c, 0.7 * len(ids) / len(hs))

    def count_by_daemon(self, e, cid, ids, hs, states=None):
        """[people whose once-only record names one of daemon i's runs] (only
        records in one of states, when given)."""
        runs = [run_ids(h) for h in hs]
        for i in range(len(runs)):
            for j in range(i + 1, len(runs)):
                self.assertFalse(runs[i] & runs[j])
        count = [0] * len(hs)
        for rec in self.records(e, cid, ids).values():
            if not rec or (states and harness.record_state(rec) not in states):
                continue
            run = rec.split(" ")[2].rsplit(".", 1)[0]
            for d, mine in enumerate(runs):
                if run in mine:
                    count[d] += 1
        return count


class Slices(SliceChecks, harness.HeraldTestCase):

    def shared_by_two(self, e, cid, ids, cut, **source):
        """Two daemons with slices of 1000 run campaign cid (source: its
        recipients or recipients_key): cut once (the log says `cut`), each
        person sent once, each daemon at least 35%. Returns the daemons."""
        n = len(ids)
        one = e.start_herald(sets=("daemon.slice=1000", "daemon.consumer=one"))
        two = e.start_herald(sets=("daemon.slice=1000", "daemon.consumer=two") + e.other_listeners())
        entry = e.enqueue(job(cid, channels=["email"], **source))
        e.wait_campaign_done(cid, timeout=180 * harness.SLOW, herald=one)
        harness.wait_for("every slice acknowledged", lambda: e.pending() == 0 and e.acked(entry), 30)
        by = self.assertConsistent(e, cid, ids)
        self.assertEqual({r["outcome"] for r in by.values()}, {"sent"})
        self.assertEqual(len(e.outbox_files(cid)), n, "one message per person")
        c = e.campaign(cid)
        self.assertEqual((c["total"], c["sent"]), (n, n))
        sliced = [l for l in one.log_lines() + two.log_lines() if "job sliced campaign=%s " % cid in l]
        self.assertEqual(len(sliced), 1, "the job is cut once")
        self.assertIn(cut, sliced[0])
        self.assertFairShares(e, cid, ids, [one, two], cid)
        return one, two

    def test_two_daemons_share_a_sliced_campaign(self):
        e, ids = self.people_env(10000, "sl-")
        one, two = self.shared_by_two(e, "sl-big", ids, "slices=10", recipients=ids)
        self.assertEqual(one.stop(), 0)
        self.assertEqual(two.stop(), 0)

    def test_daemon_killed_mid_slice_the_other_finishes(self):
        n = 4000
        srv, e, conf, ids = self.kill_env(n, "sk-", "400/s", 500)
        a = e.start_herald(config=conf, sets=["daemon.consumer=daemon-a"])
        b = e.start_herald(config=conf, sets=["daemon.consumer=daemon-b", *e.other_listeners()])
        e.enqueue(job("sl-kill", recipients=ids, channels=["email"]))
        harness.wait_for("both daemons running slices",
                         lambda: "job started campaign=sl-kill" in a.log() and
                         "job started campaign=sl-kill" in b.log() and srv.count() >= 800, 60, 0.02)
        a.kill()
        self.assertLess(srv.count(), n, "the campaign finished before the kill")
        e.wait_campaign_done("sl-kill", timeout=180 * harness.SLOW, herald=b)
        harness.wait_for("every slice acknowledged", lambda: e.pending() == 0, 30)
        self.assertFinishedAfterKill(e, srv, "sl-kill", ids, b, "slices")
        self.assertEqual(b.stop(), 0)

    def test_two_daemons_share_a_sliced_recipients_key_set(self):
        # recipients_key: a SET of 10,000 ids. The cut copies the ids into
        # the slices' own lists, each id once; both daemons run slices.
        n = 10000
        e, ids = self.people_env(n, "sk-")
        e.r.sadd("lists:big", *ids)
        one, two = self.shared_by_two(e, "sk-big", ids, "slices=10 recipients=10000", recipients_key="lists:big")
        harness.wait_for("the slices' lists dropped", lambda: not list(e.r.scan_iter("herald:cut:*")), 10, 0.1)
        self.assertEqual(e.r.scard("lists:big"), n, "the operator's key is left as it was")
        self.assertEqual(one.stop(), 0)
        self.assertEqual(two.stop(), 0)

    def test_recipients_key_list_killed_mid_slice_the_other_finishes(self):
        # A LIST holding each of 10,000 ids, 500 of them twice: each person is
        # in one slice. One daemon is killed in the middle of its slices; the
        # other takes them over and finishes, nobody sent twice.
        n = 10000
        srv, e, conf, ids = self.kill_env(n, "sl-", "1000/s", 500)
        e.r.rpush("lists:big", *ids)
        e.r.rpush("lists:big", *ids[:500])
        a = e.start_herald(config=conf, sets=["daemon.consumer=daemon-a"])
        b = e.start_herald(config=conf, sets=["daemon.consumer=daemon-b", *e.other_listeners()])
        e.enqueue(job("slk-kill", recipients_key="lists:big", channels=["email"]))

        def both_sent_a_part():
            per = harness.requests_by_recipient(srv)
            return min(self.count_by_daemon(e, "slk-kill", list(per), [a, b])) >= 0.2 * n
        harness.wait_for("both daemons running slices", both_sent_a_part, 120 * harness.SLOW, 0.2)
        a.kill()
        self.assertLess(srv.count(), n, "the campaign finished before the kill")
        e.wait_campaign_done("slk-kill", timeout=180 * harness.SLOW, herald=b)
        harness.wait_for("every slice acknowledged", lambda: e.pending() == 0, 30)
        self.assertFinishedAfterKill(e, srv, "slk-kill", ids, b, "recipients_key slices")
        c = e.campaign("slk-kill")
        self.assertEqual(c["total"], n, "each id counted once, however often the list holds it")
        harness.wait_for("the slices' lists dropped", lambda: not list(e.r.scan_iter("herald:cut:*")), 10, 0.1)
        self.assertEqual(b.stop(), 0)


if __name__ == "__main__":
    harness.main()
