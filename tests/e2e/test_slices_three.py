"""A campaign in slices on three daemons ([daemon] slice): two campaigns
for the same 600 people (one inline, one a recipients_key set) cut into
slices of 100, run by three daemons on one redis-server against a provider
shared at rate = 20/s (at most 22 requests a second over any 10 s at the
recording sink) under a cap of one message a day (exact: one of the two
campaigns reaches each person). One daemon is killed (-9) in the middle of
its slices; the other two take them over and finish both. Each daemon sends
a fair part; nobody is sent twice."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job  # noqa: E402
from test_slices import REACHED, SliceChecks  # noqa: E402


class ThreeDaemons(SliceChecks, harness.HeraldTestCase):

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


if __name__ == "__main__":
    harness.main()
