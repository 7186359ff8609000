"""kill -9 at random moments of a big campaign to a recording HTTP sink.

The sink logs every request (its Idempotency-Key and its recipient). After
HERALD_E2E_KILLS (30) kills and a last run to the end:
  - nobody got two requests (0 delivered twice), and each recipient's
    requests all carry one and the same idempotency key;
  - every recipient has exactly one terminal outcome, its once-only record
    and audit record agree, the campaign's counts add up;
  - `unknown` is exactly the messages handed to a provider when herald died
    (at a kill, their reservation's bit was set in its run's handed log,
    harness.handed_states): a message that was only
    reserved is sent by the next run, never called unknown. Of those, all
    but the few passing the handoff gate at the kill (recorded as handed,
    the request not yet on the wire: at most the provider's concurrency
    per kill) had reached the sink.
The figures are printed: kills, duplicates, recipients without an outcome,
unknown against requests in flight at the kills."""

import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import job  # noqa: E402

N = int(os.environ.get("HERALD_E2E_CRASH_N", "10000"))
KILLS = int(os.environ.get("HERALD_E2E_KILLS", "30"))
DELAY = float(os.environ.get("HERALD_E2E_CRASH_DELAY", "0.02"))   # the sink's answer time while killing



class CrashLoop(harness.HeraldTestCase):

    def test_kill_9_at_random_moments(self):
        # A slow sink while the kills go on: requests are in flight at every
        # kill, and the campaign outlasts them; then a fast one to finish.
        srv = FaultServer([{"status": 202, "delay": DELAY}])
        self.addCleanup(srv.stop)
        e = self.env(log_level=os.environ.get("HERALD_E2E_CRASH_LOG", "info"))
        conf = e.hook_config(srv.url, provider="concurrency = 8")
        ppl = harness.people(N, "ck-")
        e.import_people(ppl)
        ids = [p["id"] for p in ppl]
        cid = "crash-loop"
        rnd = random.Random(int(os.environ.get("HERALD_E2E_SEED", "7")))

        def requested():
            return {json.loads(r["body"])["recipient"] for r in list(srv.requests)}

        def handed():
            """Recipients handed to a provider: their reservation's bit in its
            run's handed log (or, as before layout 5, a record `pending`)."""
            pipe = e.r.pipeline(transaction=False)
            for rid in ids:
                pipe.hget("herald:r:{%s}" % rid, "c:" + cid)
            states = harness.handed_states(e.r, pipe.execute())
            return {rid for rid, st in zip(ids, states) if st == "pending"}

        entry = None
        at_kills = set()      # handed when herald died: these, and only these, end unknown
        in_flight = 0         # of them, requests the sink had
        at_gate = []          # per kill: handed, request not yet on the wire
        kills = 0
        for _ in range(KILLS):
            h = e.start_herald(config=conf)
            if entry is None:
                entry = e.enqueue(job(cid, recipients=ids, channels=["email"]))
            time.sleep(rnd.uniform(0.05, 0.6))
            h.kill()
            kills += 1
            time.sleep(0.15)   # what herald wrote to the sink's sockets arrives
            p, req = handed(), requested()
            in_flight += len(p & req - at_kills)
            at_gate.append(len(p - req - at_kills))
            at_kills |= p
            if e.acked(entry):
                break
        self.assertGreaterEqual(kills, KILLS, "the campaign finished before the kills: slow the sink down")
        self.assertFalse(e.acked(entry))
        srv.script = [{"status": 202}]
        h = e.start_herald(config=conf)
        e.wait_campaign_done(cid, herald=h, timeout=120)
        harness.wait_for("the job acknowledged", lambda: e.acked(entry), 20)
        by = self.assertConsistent(e, cid, ids)

        per, keys = {}, {}
        for r in list(srv.requests):
            rid = json.loads(r["body"])["recipient"]
            per[rid] = per.get(rid, 0) + 1
            keys.setdefault(rid, set()).add(r["headers"].get("idempotency-key"))
        twice = {k: v for k, v in per.items() if v > 1}
        unknown = {k for k, r in by.items() if r["outcome"] == "unknown"}
        outcomes = {}
        for r in by.values():
            outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
        print("crash loop: kills=%d recipients=%d duplicates=%d without_outcome=%d unknown=%d "
              "requests_in_flight_at_kills=%d handed_not_yet_sent_at_kills=%d (most at one kill %d) outcomes=%r"
              % (kills, N, len(twice), N - len(by), len(unknown), in_flight, sum(at_gate), max(at_gate),
                 outcomes), file=sys.stderr)
        self.assertEqual(twice, {}, "recipients delivered twice")
        self.assertEqual(sorted(unknown - at_kills)[:20], [], "unknown, yet never handed to a provider")
        self.assertEqual(sorted(at_kills - unknown)[:20], [], "handed when herald died, yet not unknown")
        # At a kill, handed and not at the sink: requests written but not yet
        # read by it (at most concurrency, 8), and what the gate cleared ahead
        # of the slots (at most `lookahead`, by default the concurrency, 8).
        self.assertLessEqual(max(at_gate), 8 + 8, "more handed-but-unsent messages at a kill than the provider's "
                                                  "concurrency and the gate's lookahead")
        self.assertEqual(len(unknown), in_flight + sum(at_gate))
        self.assertEqual(set(per), {k for k, r in by.items() if r["outcome"] in ("sent", "unknown")} - (at_kills - requested()))
        self.assertEqual({k: v for k, v in keys.items() if len(v) != 1 or None in v}, {},
                         "requests without a key, or one recipient under two keys")
        self.assertEqual(h.stop(), 0)


if __name__ == "__main__":
    harness.main()
