"""GET /metrics: Prometheus text whose counters match what the campaign did,
with no id or address in it, and the stream gauges read from Redis."""

import os
import re
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402

PEOPLE = [
    person("m-sent1", email="mia.one@example.com", channels=["email"], consent=["email"]),
    person("m-sent2", email="max.two@example.com", channels=["email"], consent=["email"]),
    person("m-noconsent", email="ned.three@example.com", channels=["email"]),
]

# name{labels} value: the only line shape the text format allows besides comments.
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? '
                    r'(-?[0-9.e+]+|\+Inf|NaN)$')


def parse(text):
    """{(name, frozenset(labels)): value}; fails on any malformed line."""
    out, typed = {}, set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            typed.add(line.split()[2])
            continue
        if line.startswith("#") or not line:
            continue
        m = SAMPLE.match(line)
        if not m:
            raise AssertionError("not a Prometheus sample line: %r" % line)
        labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        base = re.sub(r"_(bucket|sum|count)$", "", m.group(1))
        if m.group(1) not in typed and base not in typed:
            raise AssertionError("sample without a # TYPE line: %r" % line)
        out[(m.group(1), labels)] = float(m.group(3))
    return out


class Metrics(harness.HeraldTestCase):

    def scrape(self):
        url = "http://127.0.0.1:%d/metrics" % self.e.admin_port
        with urllib.request.urlopen(url, timeout=5) as resp:
            self.assertEqual(resp.status, 200)
            self.assertTrue(resp.headers["Content-Type"].startswith("text/plain; version=0.0.4"))
            return resp.read().decode()

    def test_counters_follow_the_campaign(self):
        self.e = e = self.env()
        e.import_people(PEOPLE)
        h = e.start_herald()
        # The lag is absent until the daemon's consumer group exists (it is
        # created as the job reader starts, just after /healthz answers).
        lag = ("herald_queue_lag", frozenset())

        def lag_known():
            m = parse(self.scrape())
            return m if lag in m else None
        before = harness.wait_for("the consumer group's lag", lag_known, 10)
        self.assertEqual(before.get(lag), 0.0)
        e.enqueue(job("metrics-1", recipients=["m-sent1", "m-sent2", "m-noconsent", "m-ghost"]))
        e.wait_campaign_done("metrics-1", herald=h)
        text = self.scrape()
        got = parse(text)

        def msgs(outcome, reason, channel):
            key = ("herald_messages_total",
                   frozenset({("channel", channel), ("outcome", outcome), ("reason", reason)}))
            return got.get(key, 0)

        self.assertEqual(msgs("sent", "", "email"), 2)
        self.assertEqual(msgs("suppressed", "no_consent", "email"), 1)
        self.assertEqual(msgs("suppressed", "unknown_recipient", ""), 1)
        # the outbox answers every message: two accepted, no latency (not an HTTP provider)
        self.assertEqual(got.get(("herald_provider_requests_total",
                                  frozenset({("provider", "outbox"), ("verdict", "accepted")}))), 2)
        self.assertEqual(got.get(("herald_jobs_done_total", frozenset())), 1)
        self.assertEqual(got.get(("herald_queue_pending", frozenset())), 0)
        self.assertEqual(got.get(("herald_in_flight", frozenset())), 0)
        # counts only: no recipient id, campaign id or address is a label
        for secret in ["m-sent1", "metrics-1", "mia.one@example.com", "example.com"]:
            self.assertNotIn(secret, text)

        # a job held until later shows in the scheduled gauge, read from Redis at scrape time
        later = job("metrics-later", recipients=["m-sent1"])
        later["not_before"] = "2099-01-01T00:00:00Z"
        e.enqueue(later)
        harness.wait_for("the held job to be counted",
                         lambda: parse(self.scrape()).get(("herald_scheduled_jobs", frozenset())) == 1, 10)

if __name__ == "__main__":
    harness.main()
