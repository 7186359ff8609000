"""Campaign runs, HTTP enqueue, the campaign list and outcomes per campaign.

- POST /v1/campaigns validates the job as the daemon does (400 with the
  same sentence), registers run 1 and adds it to the stream (202, Location);
  an Idempotency-Key gives the same answer for the same body, 409 for
  another; while the run is live, or once it finished without
  "rerun": true, another enqueue of the id is 409 and adds nothing.
- A rerun is run 2 with its own counts; it reaches only the person the
  first run did not (once-only per person across runs), and the first run's
  figures stay as they were in GET /v1/campaigns/{id}'s runs.
- A job XADDed into the stream while the id's run is live (scheduled for
  later), or after it finished without rerun, is dead-lettered with the
  sentence; with rerun it runs.
- GET /v1/campaigns pages newest first with a stable cursor;
  GET /v1/campaigns/{id}/outcomes pages the run's recipients (inline ids,
  a recipients_key SET) with outcome, reason and channel from the
  once-only records, filters by outcome, and never shows an address.
Every request goes through the Prism proxy check (harness Env.api_url),
except those sent against the contract on purpose."""

import json
import os
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402

TOKEN = "e2e-admin-token-0123456789"   # harness.BASE_CONFIG


def call(e, method, path, body=None, raw=None, headers=None, token=TOKEN, direct=False):
    """(status, headers (names without case), parsed JSON)."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(e.api_url(direct) + path, data=data, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.headers, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, err.headers, json.loads(err.read() or b"null")


PEOPLE = [person("r-a", email="r-a.runs@example.com", channels=["email"], consent=["email"], first_name="A"),
          person("r-b", email="r-b.runs@example.com", channels=["email"], consent=["email"], first_name="B"),
          person("r-c", email="r-c.runs@example.com", channels=["email"], first_name="C"),
          person("r-d", email="r-d.runs@example.com", channels=["email"], consent=["email"],
                 topics={"promotions": False}, first_name="D")]
IDS = [p["id"] for p in PEOPLE]


class CampaignRuns(harness.HeraldTestCase):

    def setup_env(self):
        e = self.env(log_level="info")
        e.import_people(PEOPLE)
        for p in PEOPLE:
            e.secrets.add(p["email"])
        return e

    def wait_finished(self, e, cid, run):
        def fin():
            c = e.campaign(cid)
            return c if c.get("run") == run and c.get("finished_at") else None
        return harness.wait_for("campaign %s run %d finished" % (cid, run), fin, 30, 0.1)

    def sent_per_person(self, e, cid):
        per = {}
        for r in e.audit(cid):
            if r["outcome"] == "sent":
                per[r["recipient"]] = per.get(r["recipient"], 0) + 1
        return per

    def assertNoAddress(self, doc):
        text = json.dumps(doc)
        for p in PEOPLE:
            self.assertNotIn(p["email"], text)

    def test_http_enqueue_runs_and_outcomes(self):
        e = self.setup_env()
        h = e.start_herald()
        j1 = job("runs-1", recipients=IDS, channels=["email"])
        e.remember_job(j1)

        # Refusals first: nothing reaches the stream.
        status, _, doc = call(e, "POST", "/v1/campaigns", body=j1, token=None, direct=True)
        self.assertEqual(status, 401)
        bad = dict(j1)
        del bad["topic"]
        status, _, doc = call(e, "POST", "/v1/campaigns", body=bad, direct=True)
        self.assertEqual((status, doc), (400, {"error": "topic: missing"}))
        status, _, doc = call(e, "POST", "/v1/campaigns", body=dict(j1, rerun="yes"), direct=True)
        self.assertEqual((status, doc), (400, {"error": "rerun: must be true or false"}))
        status, _, doc = call(e, "POST", "/v1/campaigns", raw=b'{"id": "runs-1",', direct=True)
        self.assertEqual(status, 400)
        self.assertTrue(doc["error"].startswith("job is not valid JSON") or "JSON" in doc["error"], doc)
        status, _, doc = call(e, "POST", "/v1/campaigns", raw=b"", direct=True)
        self.assertEqual(status, 400)
        status, _, doc = call(e, "POST", "/v1/campaigns", body=j1, headers={"Idempotency-Key": "a b"}, direct=True)
        self.assertEqual(status, 400)
        self.assertIn("Idempotency-Key", doc["error"])
        self.assertEqual(e.r.xlen("herald:jobs") if e.r.exists("herald:jobs") else 0, 0)
        self.assertFalse(e.r.exists("herald:campaign:runs-1"))

        # Run 1, with an Idempotency-Key.
        status, hdrs, first = call(e, "POST", "/v1/campaigns", body=j1, headers={"Idempotency-Key": "crm-1"})
        self.assertEqual(status, 202, first)
        self.assertEqual(hdrs.get("Location"), "/v1/campaigns/runs-1")
        self.assertEqual((first["id"], first["run"]), ("runs-1", 1))
        status, _, again = call(e, "POST", "/v1/campaigns", body=j1, headers={"Idempotency-Key": "crm-1"})
        self.assertEqual((status, again), (202, first))
        status, _, doc = call(e, "POST", "/v1/campaigns", body=dict(j1, topic="news"),
                              headers={"Idempotency-Key": "crm-1"})
        self.assertEqual((status, doc), (409, {"error": "Idempotency-Key: already used with another body"}))
        self.assertEqual(e.r.xlen("herald:jobs"), 1, "a replayed or refused enqueue added a job")
        ttl = [e.r.ttl(k) for k in e.r.keys("herald:idempotency:*")]
        self.assertEqual(len(ttl), 1)
        self.assertTrue(86000 < ttl[0] <= 86400, ttl)

        # Live or finished: another enqueue of the id is refused.
        status, _, doc = call(e, "POST", "/v1/campaigns", body=j1)
        self.assertEqual(status, 409, doc)
        self.assertIn("campaign runs-1: run 1 ", doc["error"])
        c1 = self.wait_finished(e, "runs-1", 1)
        self.assertEqual((c1["state"], c1["total"], c1["sent"], c1["suppressed"]),
                         ("done", 4, 2, {"no_consent": 1, "topic_opt_out": 1}), c1)
        status, _, doc = call(e, "POST", "/v1/campaigns", body=j1)
        self.assertEqual((status, doc["error"]),
                         (409, 'campaign runs-1: run 1 has finished; to run it again, say "rerun": true in the job '
                               '(people it reached are not sent to again)'))
        self.assertEqual(e.r.xlen("herald:jobs"), 1)

        # r-c consents; the rerun reaches r-c only.
        status, _, _ = call(e, "POST", "/v1/recipients/r-c/consent",
                            body={"channel": "email", "granted": True, "source": "e2e"})
        self.assertEqual(status, 201)
        status, _, second = call(e, "POST", "/v1/campaigns", body=dict(j1, rerun=True))
        self.assertEqual((status, second["run"]), (202, 2), second)
        self.assertNotEqual(second["entry"], first["entry"])
        c2 = self.wait_finished(e, "runs-1", 2)
        self.assertEqual((c2["total"], c2["sent"], c2["suppressed"]),
                         (4, 1, {"duplicate": 2, "topic_opt_out": 1}), c2)
        self.assertEqual(self.sent_per_person(e, "runs-1"), {"r-a": 1, "r-b": 1, "r-c": 1})

        # The runs, counted apart.
        status, _, doc = call(e, "GET", "/v1/campaigns/runs-1")
        self.assertEqual(status, 200)
        self.assertEqual([(r["run"], r["state"], r["total"], r["sent"]) for r in doc["runs"]],
                         [(1, "done", 4, 2), (2, "done", 4, 1)])
        self.assertEqual((doc["run"], doc["sent"]), (2, 1))
        out = json.loads(e.ctl_ok("campaign", "runs-1").stdout)
        self.assertEqual([r["run"] for r in out["runs"]], [1, 2])

        # A third run still reaches nobody twice (the duplicates left the records as they were).
        status, _, third = call(e, "POST", "/v1/campaigns", body=dict(j1, rerun=True))
        self.assertEqual(third["run"], 3)
        c3 = self.wait_finished(e, "runs-1", 3)
        self.assertEqual((c3["sent"], c3["suppressed"]), (0, {"duplicate": 3, "topic_opt_out": 1}), c3)
        self.assertEqual(self.sent_per_person(e, "runs-1"), {"r-a": 1, "r-b": 1, "r-c": 1})

        # Outcomes, paged (inline ids).
        rows, cursor, pages = [], None, 0
        while True:
            q = "?limit=3" + ("&cursor=" + cursor if cursor else "")
            status, _, page = call(e, "GET", "/v1/campaigns/runs-1/outcomes" + q)
            self.assertEqual(status, 200, page)
            self.assertLessEqual(len(page["items"]), 3)
            rows += page["items"]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        self.assertEqual(pages, 2)
        self.assertNoAddress(rows)
        by = {r["recipient"]: r for r in rows}
        self.assertEqual(sorted(by), IDS)
        self.assertEqual({k: (v["outcome"], v["reason"], v["channel"]) for k, v in by.items()},
                         {"r-a": ("sent", None, "email"), "r-b": ("sent", None, "email"),
                          "r-c": ("sent", None, "email"), "r-d": ("suppressed", "topic_opt_out", None)})
        self.assertEqual(by["r-a"]["entry"], first["entry"])
        self.assertEqual(by["r-c"]["entry"], second["entry"])
        status, _, page = call(e, "GET", "/v1/campaigns/runs-1/outcomes?outcome=suppressed")
        self.assertEqual([r["recipient"] for r in page["items"]], ["r-d"])
        status, _, page = call(e, "GET", "/v1/campaigns/runs-1/outcomes?outcome=failed")
        self.assertEqual((page["items"], page["next_cursor"]), ([], None))

        # Bad queries.
        for q, says in (("?limit=0", "limit:"), ("?limit=1001", "limit:"), ("?limit=x", "limit:"),
                        ("?cursor=abc", "cursor:"), ("?outcome=bogus", "outcome:"), ("?colour=red", "query:"),
                        ("?limit=1&limit=2", "query:")):
            status, _, doc = call(e, "GET", "/v1/campaigns/runs-1/outcomes" + q, direct=True)
            self.assertEqual(status, 400, q)
            self.assertIn(says, doc["error"])
        status, _, doc = call(e, "GET", "/v1/campaigns/nope/outcomes")
        self.assertEqual((status, doc), (404, {"error": "campaign not found"}))
        status, _, doc = call(e, "GET", "/v1/campaigns/nope")
        self.assertEqual((status, doc), (404, {"error": "campaign not found"}))
        self.assertEqual(h.stop(), 0)

    def test_list_and_recipients_key_outcomes(self):
        e = self.setup_env()
        h = e.start_herald()
        e.r.sadd("herald:lists:runs", *IDS, "bad id@example.com")
        e.secrets.add("bad id@example.com")
        ids = []
        for n in range(5):
            cid = "list-%d" % n
            j = job(cid, recipients_key="herald:lists:runs", channels=["email"]) if n == 4 else \
                job(cid, recipients=IDS[:2], channels=["email"])
            status, _, doc = call(e, "POST", "/v1/campaigns", body=j)
            self.assertEqual(status, 202, doc)
            ids.append(cid)
            time.sleep(0.005)   # distinct first-enqueue times
        for cid in ids:
            harness.wait_for(cid, lambda: e.campaign(cid).get("finished_at"), 30, 0.1)

        seen, cursor = [], None
        while True:
            status, _, page = call(e, "GET", "/v1/campaigns?limit=2" + ("&cursor=" + cursor if cursor else ""))
            self.assertEqual(status, 200, page)
            seen += [(c["id"], c["state"], c["run"]) for c in page["items"]]
            if cursor is None:
                # Enqueued while paging: comes first, never into a later page.
                status, _, _ = call(e, "POST", "/v1/campaigns", body=job("list-new", recipients=["r-a"],
                                                                         channels=["email"]))
                self.assertEqual(status, 202)
            cursor = page["next_cursor"]
            if cursor is None:
                break
        self.assertEqual(seen, [(cid, "done", 1) for cid in reversed(ids)])
        status, _, page = call(e, "GET", "/v1/campaigns?limit=1")
        self.assertEqual(page["items"][0]["id"], "list-new")
        status, _, doc = call(e, "GET", "/v1/campaigns?cursor=no-such-campaign")
        self.assertEqual(status, 400)
        self.assertIn("cursor:", doc["error"])

        # A job over the 64 KiB of other bodies is taken (up to 256 KiB); more is 413.
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        big = job("list-big", recipients=["x%05d" % i for i in range(10000)], channels=["email"], not_before=later)
        self.assertGreater(len(json.dumps(big)), 64 * 1024)
        status, _, doc = call(e, "POST", "/v1/campaigns", body=big)
        self.assertEqual((status, doc["run"]), (202, 1), doc)
        status, _, doc = call(e, "POST", "/v1/campaigns", raw=b" " * (256 * 1024 + 1), direct=True)
        self.assertEqual(status, 413)

        # A SET source: SSCAN pages; the entry that is no id is not listed.
        rows, cursor = [], None
        for _ in range(50):
            status, _, page = call(e, "GET", "/v1/campaigns/list-4/outcomes?limit=2"
                                   + ("&cursor=" + cursor if cursor else ""))
            self.assertEqual(status, 200, page)
            rows += page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        self.assertNoAddress(rows)
        self.assertNotIn("bad id", json.dumps(rows))
        self.assertEqual(sorted((r["recipient"], r["outcome"], r["reason"]) for r in rows),
                         [("r-a", "sent", None), ("r-b", "sent", None), ("r-c", "suppressed", "no_consent"),
                          ("r-d", "suppressed", "topic_opt_out")])
        self.assertEqual(h.stop(), 0)

    def test_stream_path_refused_while_live(self):
        e = self.setup_env()
        h = e.start_herald()
        later = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        j = job("stream-1", recipients=IDS, channels=["email"])
        e.remember_job(j)
        entry1 = e.enqueue(dict(j, not_before=later))
        harness.wait_for("scheduled", lambda: e.campaign("stream-1")["state"] == "scheduled", 10, 0.1)

        # Scheduled for later: the run is live, a second XADD is dead-lettered.
        e.xadd_job(json.dumps(j))
        dead = harness.wait_for("dead letter", lambda: e.dead(), 10, 0.1)
        self.assertEqual(dead[0]["error"], "campaign stream-1: run 1 is not finished (queued, scheduled, running, "
                                           "paused or waiting for quiet hours): wait for its end, or cancel it")
        res = e.ctl("enqueue", e.write("again.json", json.dumps(j)))
        self.assertEqual(res.returncode, 1)
        self.assertIn("campaign stream-1: run 1 is not finished", res.stderr)

        # Cancelled, the run finishes; without rerun the next is refused, with it it runs.
        status, _, _ = call(e, "POST", "/v1/campaigns/stream-1/cancel")
        self.assertEqual(status, 200)
        c = self.wait_finished(e, "stream-1", 1)
        self.assertEqual((c["state"], c["suppressed"]), ("cancelled", {"cancelled": 4}))
        e.xadd_job(json.dumps(j))
        harness.wait_for("second dead letter", lambda: len(e.dead()) == 2, 10, 0.1)
        self.assertIn("run 1 has finished", e.dead()[1]["error"])
        e.xadd_job(json.dumps(dict(j, rerun=True)))
        c = self.wait_finished(e, "stream-1", 2)
        self.assertEqual((c["state"], c["sent"]), ("done", 2))
        status, _, doc = call(e, "GET", "/v1/campaigns/stream-1")
        self.assertEqual([(r["run"], r["state"]) for r in doc["runs"]], [(1, "cancelled"), (2, "done")])
        self.assertTrue(e.acked(entry1))
        self.assertEqual(h.stop(), 0)


if __name__ == "__main__":
    harness.main()
