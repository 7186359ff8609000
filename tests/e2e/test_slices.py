"""A campaign in slices ([daemon] slice): a large inline job is cut into
slices, each a stream entry that any daemon claims.

Two daemons on one 10,000-recipient campaign each send at least 35% of it
(told apart by the run named in each person's once-only record). With one
of two daemons killed (SIGKILL) in the middle of its slices, the other takes
them over and finishes the campaign. Each: every recipient exactly one
terminal outcome that its once-only record agrees with, progress counting
each once and "done", nobody sent twice."""

import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import job  # noqa: E402

REACHED = ("sent", "pending", "unknown")  # once-only records of a message handed to the provider
RUN_RE = re.compile(r"job started campaign=\S+ entry=\S+ run=(\S+)\.\d+ ")


def run_ids(h):
    """The run id prefixes a daemon's log names ("<run id>.<n>")."""
    return set(RUN_RE.findall(h.log()))


class Slices(harness.HeraldTestCase):

    def records(self, e, cid, ids):
        pipe = e.r.pipeline(transaction=False)
        for rid in ids:
            pipe.hget("herald:r:{%s}" % rid, "c:" + cid)
        return dict(zip(ids, pipe.execute()))

    def test_two_daemons_share_a_sliced_campaign(self):
        n = 10000
        e = self.env(log_level="info")
        ppl = harness.people(n, "sl-")
        e.import_people(ppl)
        ids = [p["id"] for p in ppl]
        one = e.start_herald(sets=("daemon.slice=1000", "daemon.consumer=one"))
        two = e.start_herald(sets=("daemon.slice=1000", "daemon.consumer=two") + e.other_listeners())
        entry = e.enqueue(job("sl-big", recipients=ids, channels=["email"]))
        e.wait_campaign_done("sl-big", timeout=180 * harness.SLOW, herald=one)
        harness.wait_for("every slice acknowledged", lambda: e.pending() == 0 and e.acked(entry), 30)
        by = self.assertConsistent(e, "sl-big", ids)
        self.assertEqual({r["outcome"] for r in by.values()}, {"sent"})
        self.assertEqual(len(e.outbox_files("sl-big")), n, "one message per person")
        c = e.campaign("sl-big")
        self.assertEqual((c["total"], c["sent"]), (n, n))
        sliced = [l for l in one.log_lines() + two.log_lines() if "job sliced campaign=sl-big" in l]
        self.assertEqual(len(sliced), 1, "the job is cut once")
        self.assertIn("slices=10", sliced[0])
        self.assertFairShares(e, "sl-big", ids, [one, two], "slices")
        self.assertEqual(one.stop(), 0)
        self.assertEqual(two.stop(), 0)

    def kill_env(self, n, prefix, rate, slice_size):
        """A recording sink limited to rate, daemons with claim_idle 2 s, n people."""
        srv = FaultServer([{"status": 202}])
        self.addCleanup(srv.stop)
        e = self.env(log_level="info")
        conf = e.hook_config(srv.url, provider="rate = %s\nconcurrency = 8" % rate,
                             daemon="claim_idle = 2s\nslice = %d" % slice_size)
        ppl = harness.people(n, prefix)
        e.import_people(ppl)
        return srv, e, conf, [p["id"] for p in ppl]

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
        # unknown: its requests in flight and its gates' lookahead, per slice it ran.
        self.assertLessEqual(outcomes.get("unknown", 0), 4 * 10 * killed)
        per = harness.requests_by_recipient(srv)
        self.assertEqual({k: v for k, v in per.items() if v > 1}, {}, "recipients sent twice")
        sent = {k for k, r in by.items() if r["outcome"] == "sent"}
        self.assertEqual(sent - set(per), set(), "sent without a request")
        self.assertIn("took over a job", survivor.log())
        return per

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
            if not rec or (states and rec.split(" ")[0] not in states):
                continue
            run = rec.split(" ")[2].rsplit(".", 1)[0]
            for d, mine in enumerate(runs):
                if run in mine:
                    count[d] += 1
        return count

    def test_two_daemons_share_a_sliced_recipients_key_set(self):
        # recipients_key: a SET of 10,000 ids (and a list holding ids twice is
        # cut below). The cut copies the ids into the slices' own lists, each
        # id once; both daemons run slices.
        n = 10000
        e = self.env(log_level="info")
        ppl = harness.people(n, "sk-")
        e.import_people(ppl)
        ids = [p["id"] for p in ppl]
        e.r.sadd("lists:big", *ids)
        one = e.start_herald(sets=("daemon.slice=1000", "daemon.consumer=one"))
        two = e.start_herald(sets=("daemon.slice=1000", "daemon.consumer=two") + e.other_listeners())
        entry = e.enqueue(job("sk-big", recipients_key="lists:big", channels=["email"]))
        e.wait_campaign_done("sk-big", timeout=180 * harness.SLOW, herald=one)
        harness.wait_for("every slice acknowledged", lambda: e.pending() == 0 and e.acked(entry), 30)
        by = self.assertConsistent(e, "sk-big", ids)
        self.assertEqual({r["outcome"] for r in by.values()}, {"sent"})
        self.assertEqual(len(e.outbox_files("sk-big")), n, "one message per person")
        c = e.campaign("sk-big")
        self.assertEqual((c["total"], c["sent"]), (n, n))
        sliced = [l for l in one.log_lines() + two.log_lines() if "job sliced campaign=sk-big" in l]
        self.assertEqual(len(sliced), 1, "the job is cut once")
        self.assertIn("slices=10 recipients=10000", sliced[0])
        self.assertFairShares(e, "sk-big", ids, [one, two], "recipients_key slices")
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
    def test_three_daemons_share_slices_a_rate_and_a_cap(self):
        # Three daemons on one redis-server and a provider shared at rate =
        # 20/s; two campaigns for the same 600 people (one inline, one a
        # recipients_key set), both cut into slices of 100, under a cap of one
        # message a day. One daemon is killed (-9) in the middle of its
        # slices; the others take them over and finish both campaigns.
        n = 600
        cap = ("cap daily.channel=any", "cap daily.limit=1", "cap daily.window=24h")
        srv, e, conf, ids = self.kill_env(n, "s3-", "20/s", 100)
        e.r.sadd("lists:s3", *ids)
        hs = [e.start_herald(config=conf, sets=cap + ("daemon.consumer=d%d" % i,) + e.other_listeners())
              for i in range(3)]
        e.enqueue(job("s3-inline", recipients=ids, channels=["email"]))
        e.enqueue(job("s3-key", recipients_key="lists:s3", channels=["email"]))

        def all_three_sending():
            if srv.count() < n / 2:
                return False
            per = harness.requests_by_recipient(srv)
            sent = [a + b for a, b in zip(self.count_by_daemon(e, "s3-inline", list(per), hs, REACHED),
                                          self.count_by_daemon(e, "s3-key", list(per), hs, REACHED))]
            return min(sent) >= 0.1 * n
        harness.wait_for("three daemons sending", all_three_sending, 120 * harness.SLOW, 0.2)
        victim = hs[2]
        victim.kill()
        self.assertLess(srv.count(), n, "the campaigns finished before the kill")
        for cid in ("s3-inline", "s3-key"):
            e.wait_campaign_done(cid, timeout=180 * harness.SLOW, herald=hs[0])
        harness.wait_for("every slice acknowledged", lambda: e.pending() == 0, 30)
        # Each person: one of the two campaigns reached them (sent, or unknown
        # for what the killed daemon had handed over), the other was capped.
        by = {cid: self.assertConsistent(e, cid, ids) for cid in ("s3-inline", "s3-key")}
        for rid in ids:
            got = [(by[c][rid]["outcome"], by[c][rid]["reason"]) for c in by]
            capped = [g for g in got if g == ("suppressed", "cap:daily")]
            reached = [g for g in got if g[0] in ("sent", "unknown")]
            self.assertEqual((len(capped), len(reached)), (1, 1), (rid, got))
        unknown = sum(1 for c in by for r in by[c].values() if r["outcome"] == "unknown")
        self.assertLessEqual(unknown, 4 * 10)
        per = harness.requests_by_recipient(srv)
        self.assertEqual({k: v for k, v in per.items() if v > 1}, {}, "recipients sent twice")
        sent = {k for c in by for k, r in by[c].items() if r["outcome"] == "sent"}
        self.assertEqual(sent - set(per), set(), "sent without a request")
        self.assertTrue(any("took over a job" in h.log() for h in hs[:2]))
        # Who sent what, and the shared rate at the sink.
        share = [a + b for a, b in zip(self.count_by_daemon(e, "s3-inline", ids, hs, REACHED),
                                       self.count_by_daemon(e, "s3-key", ids, hs, REACHED))]
        at = sorted(r["at"] for r in srv.requests)
        most = harness.most_in_window(at, 10.0)
        print("three daemons: sent per daemon %r (the last killed), at most %d requests in a 10 s window"
              % (share, most), file=sys.stderr)
        self.assertEqual(sum(share), n, "every person's record names a run of one of the daemons")
        for d in share:
            self.assertGreaterEqual(d, 0.1 * n)
        for d in share[:2]:
            self.assertGreaterEqual(d, 0.2 * n)
        self.assertLessEqual(most, 220, "more than 22 requests/s over a 10 s window")
        for h in hs[:2]:
            self.assertEqual(h.stop(), 0)

    def test_quiet_hours_and_not_before_across_slices(self):
        # A recipients_key campaign for later (not_before) is cut once it is
        # due; its SMS people are in quiet hours: each slice defers them, and
        # they are sent once the window ends; the email people at once. Two
        # daemons; each person one message, deferred at most once.
        e = self.env(log_level="info")
        mail = [harness.person("sq-m%03d" % i, email="sq.m%03d@example.com" % i, channels=["email"],
                               consent=["email"]) for i in range(200)]
        texts = [harness.person("sq-s%03d" % i, phone="+1555030%04d" % i, channels=["sms"], consent=["sms"])
                 for i in range(100)]
        e.import_people(mail + texts)
        ids = [p["id"] for p in mail + texts]
        e.r.sadd("lists:sq", *ids)
        window, end = harness.window_ending_soon()
        sets = ("daemon.slice=50", "quiet_hours.sms=%s" % window)
        one = e.start_herald(sets=sets + ("daemon.consumer=one",))
        two = e.start_herald(sets=sets + ("daemon.consumer=two",) + e.other_listeners())
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3))
        e.enqueue(job("sq", recipients_key="lists:sq", channels=["email", "sms"], not_before=later))
        harness.wait_for("the email people sent, the SMS people deferred",
                         lambda: len(e.audit("sq")) >= len(ids), 60 * harness.SLOW, 0.2)
        first = {}
        for r in e.audit("sq"):
            first.setdefault(r["recipient"], r)
        self.assertEqual({first[p["id"]]["outcome"] for p in mail}, {"sent"})
        self.assertEqual({(first[p["id"]]["outcome"], first[p["id"]]["reason"]) for p in texts},
                         {("deferred", "quiet_hours")})
        self.assertLess(time.time(), end, "the window ended too early for this test")
        sliced = [l for l in one.log_lines() + two.log_lines() if "job sliced campaign=sq " in l]
        self.assertEqual(len(sliced), 1, "the job is cut once, when due")
        self.assertIn("slices=6 recipients=300", sliced[0])
        c = e.wait_campaign_done("sq", herald=one, timeout=150)
        self.assertGreaterEqual(time.time(), end - 1, "sent before the window ended")
        self.assertEqual((c["total"], c["sent"], c["deferred"], c["pending"]), (300, 300, 0, 0))
        outcomes = {}
        for r in e.audit("sq"):
            outcomes.setdefault(r["recipient"], []).append(r["outcome"])
        for p in mail:
            self.assertEqual(outcomes[p["id"]], ["sent"], p["id"])
        for p in texts:
            self.assertEqual(outcomes[p["id"]], ["deferred", "sent"], p["id"])
        self.assertEqual(len(e.outbox_files("sq")), 300, "one message per person")
        harness.wait_for("the slices' lists dropped", lambda: not list(e.r.scan_iter("herald:cut:*")), 10, 0.1)
        self.assertEqual(one.stop(), 0)
        self.assertEqual(two.stop(), 0)


if __name__ == "__main__":
    harness.main()
