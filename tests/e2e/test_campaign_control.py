"""Steering a live campaign: pause, resume, cancel.

An operator pauses a rate-limited campaign running on one of two daemons
(heraldctl or POST /v1/campaigns/{id}/pause): within a second the provider
gets no more requests, and nothing is sent while it stays paused, across a
restart of both daemons; resume sends exactly the rest, each recipient
once. A cancel records every unsent recipient suppressed/cancelled and
leaves the sent ones as they are; it is final (pause and resume are then
refused with 409), and a cancel of a paused campaign finishes it at once.
Every recipient ends with exactly one terminal audit record that its
once-only record agrees with, and the sink's count per recipient is 0 or 1.
The API calls go through Prism in proxy mode (harness Env.api_url), checked
against docs/openapi.yaml, except those against the contract on purpose."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import job  # noqa: E402

TOKEN = "e2e-admin-token-0123456789"


class CampaignControl(harness.HeraldTestCase):

    def setup_campaign(self, n, cid, rate="10/s"):
        srv = FaultServer([{"status": 202}])
        self.addCleanup(srv.stop)
        e = self.env(log_level="info", drain_timeout="10s")
        conf = e.hook_config(srv.url, provider="rate = %s\nconcurrency = 4" % rate)
        ppl = harness.people(n, cid + "-")
        e.import_people(ppl)
        return srv, e, conf, [p["id"] for p in ppl]

    def api(self, e, method, path, token=TOKEN, direct=False):
        """direct: straight to herald, not through the Prism proxy (a request
        against the contract on purpose: no token, a bad id, a wrong method)."""
        return e.api(method, path, token=token, direct=direct)

    def quiet_for(self, srv, seconds):
        """The sink's count does not move for `seconds`; returns it."""
        n = srv.count()
        time.sleep(seconds)
        self.assertEqual(srv.count(), n, "requests while the campaign was paused or cancelled")
        return n

    def wait_state(self, e, cid, state, timeout=10):
        return harness.wait_for("campaign %s %s" % (cid, state),
                                lambda: e.campaign(cid) if e.campaign(cid)["state"] == state else None, timeout, 0.1)

    def events(self, e, cid):
        """The campaign's events in herald:events, in order: [(event, fields)]."""
        return [(f["event"], f) for _, f in e.r.xrange("herald:events") if f.get("campaign") == cid]

    def records(self, e, cid, ids):
        """{id: (outcome, reason)} from the audit, after checking each id has
        exactly one terminal record and its once-only record agrees."""
        by = self.assertOneTerminalEach(e.audit(cid), ids)
        for rid in ids:
            rec = e.r.hget("herald:r:{%s}" % rid, "c:" + cid)
            self.assertEqual(rec.split(" ")[0] if rec else None, by[rid]["outcome"], rid)
        return {k: (v["outcome"], v["reason"]) for k, v in by.items()}

    def test_pause_holds_across_restarts_then_resume_sends_the_rest(self):
        srv, e, conf, ids = self.setup_campaign(60, "cc-pause")
        h1 = e.start_herald(config=conf, sets=["daemon.consumer=one"])
        h2 = e.start_herald(config=conf, sets=["daemon.consumer=two", *e.other_listeners()])
        entry = e.enqueue(job("cc-pause", recipients=ids, channels=["email"]))
        harness.wait_for("the first requests", lambda: srv.count() >= 5, 20, 0.02)
        at_command = srv.count()
        out = e.ctl_ok("pause", "cc-pause").stdout
        self.assertIn("paused", out)
        # Within a second (plus what the providers already had) the sink goes quiet.
        time.sleep(1.5)
        sent = self.quiet_for(srv, 2.0)
        self.assertLess(sent, 60, "the campaign finished before the pause took effect")
        c = self.wait_state(e, "cc-pause", "paused")
        self.assertEqual(c["pending"], 60 - sent, "progress while paused: %r" % c)
        self.assertTrue(e.acked(entry), "the paused job is parked, not left pending in the stream")
        print("pause: %d requests when the command was given, %d more before it took effect (rate 10/s), "
              "%d kept" % (at_command, sent - at_command, 60 - sent), file=sys.stderr)
        # A second pause changes nothing; a resume of a running campaign is refused below.
        self.assertIn("already", e.ctl_ok("pause", "cc-pause").stdout)
        # Both daemons restart: still paused, nothing sent.
        self.assertEqual(h1.stop(), 0)
        self.assertEqual(h2.stop(), 0)
        h1 = e.start_herald(config=conf, sets=["daemon.consumer=one"])
        h2 = e.start_herald(config=conf, sets=["daemon.consumer=two", *e.other_listeners()])
        self.quiet_for(srv, 2.0)
        self.assertEqual(e.campaign("cc-pause")["state"], "paused")
        status, doc = self.api(e, "POST", "/v1/campaigns/cc-pause/resume")
        self.assertEqual((status, doc["result"], doc["state"]), (200, "ok", "running"), doc)
        e.wait_campaign_done("cc-pause", herald=h1, timeout=60)
        recs = self.records(e, "cc-pause", ids)
        self.assertEqual(set(recs.values()), {("sent", "")})
        per = harness.requests_by_recipient(srv)
        self.assertEqual({k: v for k, v in per.items() if v != 1}, {}, "requests per recipient other than one")
        self.assertEqual(sorted(per), sorted(ids))
        status, doc = self.api(e, "POST", "/v1/campaigns/cc-pause/resume")
        self.assertEqual(status, 409, doc)
        # Its events: started once (not again after the restarts, nor for the
        # resumed run), paused once (the second pause changed nothing),
        # resumed, then finished with the counts.
        evs = self.events(e, "cc-pause")
        self.assertEqual([n for n, _ in evs], ["started", "paused", "resumed", "finished"], evs)
        self.assertEqual(evs[0][1]["entry"], entry)
        fin = evs[-1][1]
        self.assertEqual((fin["total"], fin["sent"], fin["suppressed"], fin["failed"], fin["unknown"]),
                         ("60", "60", "0", "0", "0"), fin)
        self.assertRegex(fin["at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        self.assertEqual(h1.stop(), 0)
        self.assertEqual(h2.stop(), 0)

    def test_cancel_records_the_unsent_and_is_final(self):
        srv, e, conf, ids = self.setup_campaign(60, "cc-cancel", rate="4/s")  # 15 s: the cancel (through Prism) lands mid-way
        h = e.start_herald(config=conf)
        e.enqueue(job("cc-cancel", recipients=ids, channels=["email"]))
        harness.wait_for("the first requests", lambda: srv.count() >= 5, 20, 0.02)
        status, doc = self.api(e, "POST", "/v1/campaigns/cc-cancel/cancel")
        self.assertEqual((status, doc["result"]), (200, "ok"), doc)
        c = self.wait_state(e, "cc-cancel", "cancelled", timeout=15)
        sent = self.quiet_for(srv, 1.5)
        recs = self.records(e, "cc-cancel", ids)
        outcomes = {}
        for v in recs.values():
            outcomes[v] = outcomes.get(v, 0) + 1
        self.assertEqual(outcomes, {("sent", ""): sent, ("suppressed", "cancelled"): 60 - sent}, outcomes)
        self.assertEqual((c["sent"], c["suppressed"].get("cancelled"), c["pending"]), (sent, 60 - sent, 0), c)
        per = harness.requests_by_recipient(srv)
        self.assertEqual({k: v for k, v in per.items() if v != 1}, {})
        self.assertEqual(sorted(per), sorted(k for k, v in recs.items() if v[0] == "sent"))
        # Final: pause and resume are refused, a second cancel changes nothing.
        for action in ("pause", "resume"):
            status, doc = self.api(e, "POST", "/v1/campaigns/cc-cancel/" + action)
            self.assertEqual(status, 409, (action, doc))
            res = e.ctl("pause" if action == "pause" else "resume", "cc-cancel")
            self.assertEqual(res.returncode, 1, res.stderr)
        self.assertIn("already", e.ctl_ok("cancel", "cc-cancel").stdout)
        evs = self.events(e, "cc-cancel")
        self.assertEqual([n for n, _ in evs], ["started", "cancelled", "finished"], evs)
        fin = evs[-1][1]
        self.assertEqual((fin["sent"], fin["suppressed"]), (str(sent), str(60 - sent)), fin)
        self.assertEqual(h.stop(), 0)

    def test_cancel_of_a_paused_campaign_finishes_it(self):
        srv, e, conf, ids = self.setup_campaign(40, "cc-pc")
        h = e.start_herald(config=conf)
        e.enqueue(job("cc-pc", recipients=ids, channels=["email"]))
        harness.wait_for("the first requests", lambda: srv.count() >= 3, 20, 0.02)
        e.ctl_ok("pause", "cc-pc")
        self.wait_state(e, "cc-pc", "paused")
        sent = srv.count()
        e.ctl_ok("cancel", "cc-pc")
        c = self.wait_state(e, "cc-pc", "cancelled", timeout=15)
        self.quiet_for(srv, 1.0)
        self.assertEqual(srv.count(), sent)
        recs = self.records(e, "cc-pc", ids)
        self.assertEqual(sum(1 for v in recs.values() if v == ("suppressed", "cancelled")), 40 - sent, recs)
        self.assertEqual(c["pending"], 0, c)
        self.assertEqual(h.stop(), 0)

    def test_bad_requests_change_nothing(self):
        srv, e, conf, ids = self.setup_campaign(3, "cc-bad")
        h = e.start_herald(config=conf)
        self.assertEqual(self.api(e, "POST", "/v1/campaigns/nosuch/pause")[0], 404)
        self.assertEqual(self.api(e, "POST", "/v1/campaigns/cc-bad/pause", token=None, direct=True)[0], 401)
        self.assertEqual(self.api(e, "POST", "/v1/campaigns/bad%20id/pause", direct=True)[0], 400)
        self.assertEqual(self.api(e, "GET", "/v1/campaigns/nosuch/pause", direct=True)[0], 405)
        res = e.ctl("pause", "nosuch")
        self.assertEqual(res.returncode, 1)
        self.assertIn("no campaign", res.stderr)
        res = e.ctl("pause", "a@b.example")  # never echoed back
        self.assertEqual(res.returncode, 1)
        self.assertNotIn("a@b.example", res.stderr)
        self.assertEqual(e.r.keys("herald:campaign:nosuch*"), [])
        # A job refused to the dead letters is a `failed` event (named when its id is valid).
        e.xadd_job(json.dumps({"id": "cc-broken", "topic": "news"}))
        harness.wait_for("the failed event", lambda: self.events(e, "cc-broken"), 20)
        name, ev = self.events(e, "cc-broken")[0]
        self.assertEqual(name, "failed")
        self.assertTrue(ev["error"], ev)
        # A campaign that runs normally is not touched by any of that.
        e.enqueue(job("cc-bad", recipients=ids, channels=["email"]))
        e.wait_campaign_done("cc-bad", herald=h, timeout=30)
        status, doc = self.api(e, "POST", "/v1/campaigns/cc-bad/resume")
        self.assertEqual(status, 409, doc)
        self.assertEqual(h.stop(), 0)


if __name__ == "__main__":
    harness.main()
