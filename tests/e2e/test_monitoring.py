"""docs/monitoring against a running herald: the Prometheus rules pass
`promtool check rules` and their unit tests (each alert fires on sample
series), the Grafana dashboard parses, and every metric the dashboard and
the rules query is one herald's /metrics exports. The two gauges the alerts
need follow the daemon: herald_redis_connected drops to 0 while Redis is
away; herald_provider_circuit_open{provider} is 1 while the circuit is open.
"""

import json
import os
import re
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import job, person  # noqa: E402
from test_faults import config_with  # noqa: E402

MON = os.path.join(harness.ROOT, "docs", "monitoring")
METRIC = re.compile(r"\b(herald_[a-z_]+)\b")
# PromQL words that look like herald metrics but are not (none today); `up`
# is Prometheus's own.


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as resp:
        return resp.read().decode()


def exported(text):
    """Series names /metrics declares (# TYPE), histograms with their suffixes."""
    names = set()
    for m in re.finditer(r"^# TYPE (\S+) (\S+)$", text, re.M):
        names.add(m.group(1))
        if m.group(2) == "histogram":
            names.update(m.group(1) + s for s in ("_bucket", "_sum", "_count"))
    return names


def sample(text, name, **labels):
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + ("{" + want + "}" if labels else " ")):
            return float(line.rsplit(" ", 1)[1])
    return None


def dashboard_exprs():
    with open(os.path.join(MON, "herald-dashboard.json")) as f:
        dash = json.load(f)
    exprs = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            exprs.append(t["expr"])
    exprs.append(json.dumps(dash["templating"]))
    return dash, exprs


def rule_exprs():
    # The rules file is YAML; its expressions are the `expr:` values (one line
    # or a `|` block), enough to find the metric names without a YAML module.
    with open(os.path.join(MON, "herald-alerts.yml")) as f:
        return [f.read()]


class Monitoring(harness.HeraldTestCase):

    def test_promtool_checks_and_unit_tests_the_rules(self):
        res = subprocess.run(["promtool", "check", "rules", "herald-alerts.yml"], cwd=MON, capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertIn("SUCCESS: 8 rules found", res.stdout + res.stderr)
        res = subprocess.run(["promtool", "test", "rules", "herald-alerts.test.yml"], cwd=MON, capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        # Every alert has a case where it fires.
        with open(os.path.join(MON, "herald-alerts.yml")) as f:
            alerts = re.findall(r"^\s+- alert: (\w+)$", f.read(), re.M)
        with open(os.path.join(MON, "herald-alerts.test.yml")) as f:
            tests = f.read()
        for a in alerts:
            self.assertRegex(tests, r"alertname: %s\n\s+exp_alerts:\n\s+- exp_labels" % a, a)

    def test_dashboard_and_rules_query_only_exported_metrics(self):
        dash, exprs = dashboard_exprs()
        self.assertEqual(dash["uid"], "herald-overview")
        ids = [p["id"] for p in dash["panels"]]
        self.assertEqual(len(ids), len(set(ids)), "panel ids are unique")
        used = {n for e in exprs + rule_exprs() for n in METRIC.findall(e)}
        self.e = e = self.env()
        e.start_herald()
        # The queue's gauges (herald_queue_lag, herald_queue_pending) are
        # known once the daemon created its consumer group, a few round trips
        # after /healthz answers; until then they are absent, not 0. So the
        # daemon is scraped until it exports every family queried, for a
        # while: one it never exports still fails below.
        have = set()

        def complete():
            nonlocal have
            have = exported(scrape(e.admin_port))
            return not used - have
        try:
            harness.wait_for("every family queried exported", complete, 10)
        except AssertionError:
            pass
        self.assertEqual(sorted(used - have), [], "queried but not exported")
        # The dashboard shows every family herald exports.
        families = {n for n in have if not n.endswith(("_bucket", "_sum", "_count"))} | {"herald_provider_latency_seconds"}
        dash_used = {n for e2 in exprs for n in METRIC.findall(e2)}
        shown = {n for n in families if any(u == n or u.startswith(n + "_") for u in dash_used)}
        self.assertEqual(sorted(families - shown), [], "exported but on no panel")

    def test_redis_connected_follows_redis(self):
        self.e = e = self.env()
        e.start_herald()
        text = scrape(e.admin_port)
        self.assertEqual(sample(text, "herald_redis_connected"), 1.0)
        self.assertEqual(sample(text, "herald_provider_circuit_open", provider="outbox"), 0.0)
        e.redis.stop()
        harness.wait_for("herald_redis_connected 0", lambda: sample(scrape(e.admin_port), "herald_redis_connected") == 0.0,
                         20)
        e.redis.start()
        harness.wait_for("herald_redis_connected 1", lambda: sample(scrape(e.admin_port), "herald_redis_connected") == 1.0,
                         30)

    def test_circuit_open_gauge(self):
        self.e = e = self.env()
        srv = FaultServer([{"status": 503}])
        self.addCleanup(srv.stop)
        e.import_people([person("p-circ", email="p-circ.mon@example.com", channels=["email"], consent=["email"])])
        conf = config_with(e, srv.url, providers="hook",
                           extra="retries = 0\ncircuit_failures = 1\ncircuit_cooldown = 1h\n")
        h = e.start_herald(config=conf)
        self.assertEqual(sample(scrape(e.admin_port), "herald_provider_circuit_open", provider="hook"), 0.0)
        e.enqueue(job("mon-circ", recipients=["p-circ"], channels=["email"]))
        harness.wait_for("the hook circuit to open",
                         lambda: sample(scrape(e.admin_port), "herald_provider_circuit_open", provider="hook") == 1.0, 30)
        self.assertEqual(sample(scrape(e.admin_port), "herald_provider_circuit_open", provider="outbox"), 0.0)
        self.assertEqual(h.stop(), 0)


if __name__ == "__main__":
    harness.main()
