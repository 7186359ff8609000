"""Configuration reload (SIGHUP and heraldctl reload) against a real
redis-server: what a reload changes applies to the running campaign and the
next one; messages in flight finish on the provider they started with while
new ones go to the new one, every recipient exactly once; an invalid file or
a restart-only key keeps the running configuration (errors logged as
--check-config prints them, the error counted); listeners move; a secret is
read again from its KEY_file; systemd hears RELOADING=1 then READY=1."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from faultserver import FaultServer  # noqa: E402
from harness import job, person  # noqa: E402

TOKEN = "e2e-admin-token-0123456789"


def get(port, path, token=None):
    """(status, body text); (None, None) when nothing answers."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path))
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=3) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
        return None, None


def metric(port, name, labels=""):
    code, text = get(port, "/metrics")
    assert code == 200, code
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


def recipients_of(server):
    return [json.loads(r["body"])["recipient"] for r in server.requests]


class Reload(harness.HeraldTestCase):

    def people(self, e, prefix, n):
        people = [person("%s%03d" % (prefix, i), email="%s.person%03d@example.com" % (prefix, i), channels=["email"],
                         consent=["email"], first_name="P%d" % i) for i in range(n)]
        e.import_people(people, name="%s.jsonl" % prefix)
        return [p["id"] for p in people]

    def reloaded(self, e, h, n):
        harness.wait_for("reload %d applied" % n,
                         lambda: h.log().count("configuration reloaded") >= n or None, 20)

    def test_provider_cap_concurrency_and_log_level_apply_at_reload(self):
        e = self.env(log_level="info")
        ids = self.people(e, "rl", 60)
        slow = FaultServer([{"status": 202, "delay": 0.25}])
        fast = FaultServer([{"status": 202}])
        self.addCleanup(slow.stop)
        self.addCleanup(fast.stop)
        cap = "\n[cap daily]\nchannel = any\nlimit = %d\nwindow = 24h\n"
        old = e.hook_config(slow.url, name="reload.conf", provider="concurrency = 4", tail=cap % 1000)
        notify = harness.NotifySocket(e.path("notify.sock"))
        self.addCleanup(notify.sock.close)
        os.environ["NOTIFY_SOCKET"] = notify.path
        try:
            h = e.start_herald(config=old)
        finally:
            os.environ.pop("NOTIFY_SOCKET", None)

        # A campaign starts on the slow provider; mid-campaign its URL (and
        # concurrency, and the log level) change.
        e.enqueue(job("r1", recipients=ids, channels=["email"]))
        harness.wait_for("the slow provider's first requests", lambda: slow.count() >= 6 or None, 30)
        self.assertNotIn(" debug ", h.log(), "log_level info at start")
        e.log_level = "debug"
        e.hook_config(fast.url, name="reload.conf", provider="concurrency = 1", tail=cap % 1000)
        h.signal(signal.SIGHUP)
        self.reloaded(e, h, 1)
        e.wait_campaign_done("r1", herald=h)
        by = self.assertConsistent(e, "r1", ids)
        self.assertEqual({r["outcome"] for r in by.values()}, {"sent"})
        on_slow, on_fast = recipients_of(slow), recipients_of(fast)
        self.assertGreaterEqual(len(on_slow), 6, "messages in flight finished on the old provider")
        self.assertGreater(len(on_fast), 0, "new messages went to the new provider")
        self.assertEqual(sorted(on_slow + on_fast), sorted(ids), "every recipient reached a provider exactly once")
        self.assertEqual(fast.max_concurrent, 1, "the new concurrency applies")
        log = h.log()
        self.assertIn(" debug ", log.split("configuration reloaded", 1)[1], "log_level debug after the reload")
        self.assertIn("a replaced configuration's providers are done and freed", log)
        self.assertRegex(log, r"info main: configuration reloaded \(SIGHUP\) reload=1 providers=2 caps=1")
        states = [m for m in notify.poll() if "READY" in m or "RELOADING" in m]
        self.assertEqual([list(m)[0] for m in states[:3]], ["READY", "RELOADING", "READY"], notify.messages)
        self.assertIn("MONOTONIC_USEC", states[1])

        # A cap lowered by the next reload applies to the next campaign.
        e.hook_config(fast.url, name="reload.conf", provider="concurrency = 1",
                      tail=cap % 1)
        h.signal(signal.SIGHUP)
        self.reloaded(e, h, 2)
        before = fast.count()
        e.enqueue(job("r2", recipients=ids[:10], channels=["email"]))
        e.wait_campaign_done("r2", herald=h)
        self.assertEqual({(r["outcome"], r["reason"]) for r in e.audit("r2")}, {("suppressed", "cap:daily")})
        self.assertEqual(fast.count(), before, "nothing sent past the new cap")
        port = e.admin_port
        self.assertEqual(metric(port, "herald_config_reloads_total", '{result="ok"}'), 2)
        self.assertEqual(metric(port, "herald_config_reloads_total", '{result="error"}'), 0)
        self.assertIsNotNone(metric(port, "herald_config_loaded_timestamp_seconds"))
        self.assertEqual(h.stop(), 0)

    def test_invalid_file_and_restart_keys_keep_the_running_config(self):
        e = self.env(log_level="info")
        ids = self.people(e, "iv", 5)
        good = e.config_text()
        path = e.write("live.conf", good)
        h = e.start_herald(config=path)

        # A bad value and an unknown key: both reported, as --check-config does.
        bad = good.replace("[daemon]\n", "[daemon]\nbatch = -5\nbogus_key = 1\n").replace(
            "[admin]\n", "[admin]\nlink_ttl = 2x\n")
        e.write("live.conf", bad)
        check = subprocess.run([harness.HERALD_BIN, "--config", path, "--check-config"], capture_output=True,
                               text=True, timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(check.returncode, 1)
        problems = [line for line in check.stderr.splitlines() if line.startswith(path + ":")]
        self.assertEqual(len(problems), 3, check.stderr)
        h.signal(signal.SIGHUP)
        harness.wait_for("the refusal", lambda: "reload refused" in h.log() or None, 20)
        log = h.log()
        for p in problems:
            self.assertIn("error config: " + p, log)
        self.assertIn("reload refused (SIGHUP): 3 errors in the file; the running configuration is kept", log)
        self.assertEqual(metric(e.admin_port, "herald_config_reloads_total", '{result="error"}'), 1)
        self.assertEqual(metric(e.admin_port, "herald_config_reloads_total", '{result="ok"}'), 0)
        # Still running, still sending, with the old configuration.
        e.enqueue(job("iv1", recipients=ids, channels=["email"]))
        e.wait_campaign_done("iv1", herald=h)
        self.assertEqual(len(e.outbox_files("iv1")), len(ids))

        # Keys only a restart can change: refused by name, nothing else applies.
        moved = free = harness.free_port()
        e.write("live.conf", good.replace("[redis]\n", "[redis]\nprefix = other\n")
                .replace("[daemon]\n", "[daemon]\nconsumer = someone-else\n")
                .replace("127.0.0.1:%d" % e.admin_port, "127.0.0.1:%d" % moved))
        h.signal(signal.SIGHUP)
        harness.wait_for("the second refusal", lambda: h.log().count("reload refused") == 2 or None, 20)
        self.assertIn("reload refused (SIGHUP): [daemon] consumer, [redis] prefix can change only at a restart; "
                      "the running configuration is kept", h.log())
        self.assertEqual(get(free, "/healthz")[0], None, "the admin listener did not move: all or nothing")
        self.assertEqual(metric(e.admin_port, "herald_config_reloads_total", '{result="error"}'), 2)
        self.assertTrue(h.running())

        # A new address that cannot be bound (the public one is taken): refused,
        # and the admin listener that could move did not.
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        moved = harness.free_port()
        e.write("live.conf", good.replace("127.0.0.1:%d" % e.admin_port, "127.0.0.1:%d" % moved)
                .replace("127.0.0.1:%d" % e.public_port, "127.0.0.1:%d" % taken.getsockname()[1]))
        h.signal(signal.SIGHUP)
        harness.wait_for("the bind refusal", lambda: h.log().count("reload refused") == 3 or None, 20)
        self.assertIn("reload refused (SIGHUP): a listener cannot bind; the running configuration is kept", h.log())
        self.assertIsNone(get(moved, "/healthz")[0])
        self.assertEqual(get(e.admin_port, "/healthz")[0], 200)

        # An unreadable file too.
        os.remove(path)
        h.signal(signal.SIGHUP)
        harness.wait_for("the fourth refusal", lambda: h.log().count("reload refused") == 4 or None, 20)
        self.assertIn("the file cannot be read", h.log())
        self.assertEqual(h.stop(), 0)

    def test_heraldctl_reload_moves_listeners_and_rereads_secret_files(self):
        e = self.env(log_level="info")
        token_file = e.write("token", "first-token-0123456789abcdef\n")
        os.chmod(token_file, 0o600)
        e.secrets.update({"first-token-0123456789abcdef", "second-token-0123456789abcdef"})
        base = e.config_text().replace("token = %s\n" % TOKEN, "token_file = %s\n" % token_file)
        path = e.write("live.conf", base)
        os.chmod(path, 0o600)
        h1 = e.start_herald(config=path, sets=("daemon.consumer=one",))
        other = e.other_listeners()
        h2 = e.start_herald(config=path, sets=("daemon.consumer=two",) + other)
        port2 = int(other[0].rsplit(":", 1)[1])
        harness.wait_for("the second daemon", lambda: get(port2, "/healthz")[0] == 200 or None, 20)
        self.assertEqual(get(e.admin_port, "/v1/campaigns/none", "first-token-0123456789abcdef")[0], 404)

        admin2, public2 = harness.free_port(), harness.free_port()
        with open(token_file, "w") as f:
            f.write("second-token-0123456789abcdef\n")
        e.write("live.conf", base.replace("127.0.0.1:%d" % e.admin_port, "127.0.0.1:%d" % admin2)
                .replace("127.0.0.1:%d" % e.public_port, "127.0.0.1:%d" % public2)
                .replace("[admin]\n", "[admin]\nmax_connections = 100\n"))
        res = e.ctl_ok("reload", config=path)
        self.assertIn("reload 1 requested", res.stdout)
        # Every daemon of the deployment reloads (h2 keeps its --set listeners).
        self.reloaded(e, h1, 1)
        self.reloaded(e, h2, 1)
        self.assertIn("configuration reloaded (heraldctl reload)", h2.log())
        harness.wait_for("the admin listener on its new port", lambda: get(admin2, "/healthz")[0] == 200 or None, 10)
        harness.wait_for("the old admin port closed", lambda: get(e.admin_port, "/healthz")[0] is None or None, 10)
        self.assertEqual(get(admin2, "/v1/campaigns/none", "second-token-0123456789abcdef")[0], 404)
        self.assertEqual(get(admin2, "/v1/campaigns/none", "first-token-0123456789abcdef")[0], 401)
        # The public routes moved too; the admin ones are not there.
        self.assertEqual(get(public2, "/u/nonsense")[0], 403)
        self.assertEqual(get(public2, "/healthz")[0], 404)
        self.assertIsNone(get(e.public_port, "/u/nonsense")[0])
        self.assertEqual(metric(admin2, "herald_config_reloads_total", '{result="ok"}'), 1)
        # Nothing new to apply: no reload until the counter moves again.
        self.assertEqual(h1.log().count("configuration reloaded"), 1)
        self.assertEqual(e.ctl("reload", "extra", config=path).returncode, 2)
        self.assertEqual(h1.stop(), 0)
        self.assertEqual(h2.stop(), 0)

    def test_a_running_campaign_takes_a_lowered_cap_from_its_next_batch(self):
        e = self.env(log_level="info")
        ids = self.people(e, "rc", 80)
        srv = FaultServer([{"status": 202}])
        self.addCleanup(srv.stop)
        cap = "\n[cap daily]\nchannel = any\nlimit = %d\nwindow = 24h\n"
        daemon = "batch = 5\nmax_in_flight = 10"
        path = e.hook_config(srv.url, name="live.conf", provider="concurrency = 1", daemon=daemon, tail=cap % 1000)
        h = e.start_herald(config=path)
        e.enqueue(job("rc0", recipients=ids, channels=["email"]))   # everyone has one message in 24h
        e.wait_campaign_done("rc0", herald=h)
        srv.script = [{"status": 202, "delay": 0.05}]
        e.enqueue(job("rc1", recipients=ids, channels=["email"]))
        harness.wait_for("rc1 under way", lambda: srv.count() >= 80 + 15 or None, 30)
        e.hook_config(srv.url, name="live.conf", provider="concurrency = 1", daemon=daemon, tail=cap % 1)
        h.signal(signal.SIGHUP)
        self.reloaded(e, h, 1)
        e.wait_campaign_done("rc1", herald=h)
        by = self.assertConsistent(e, "rc1", ids)
        outcomes = [(by[i]["outcome"], by[i]["reason"]) for i in ids]
        sent = outcomes.count(("sent", ""))
        capped = outcomes.count(("suppressed", "cap:daily"))
        self.assertEqual(sent + capped, len(ids))
        self.assertGreaterEqual(sent, 15, "sent before the reload")
        self.assertGreater(capped, 0, "the lowered cap applied to the rest of the running campaign")
        self.assertEqual(srv.count() - 80, sent, "each recipient sent at most once")
        self.assertEqual(h.stop(), 0)

    def test_a_lowered_rate_holds_the_next_campaign_back(self):
        e = self.env(log_level="info")
        ids = self.people(e, "rt", 3)
        srv = FaultServer([{"status": 202}])
        self.addCleanup(srv.stop)
        path = e.hook_config(srv.url, name="live.conf")
        h = e.start_herald(config=path)
        e.enqueue(job("rt0", recipients=ids, channels=["email"]))
        e.wait_campaign_done("rt0", herald=h)
        self.assertEqual(srv.count(), 3, "unlimited before the reload")
        e.hook_config(srv.url, name="live.conf", provider="rate = 1/h")
        h.signal(signal.SIGHUP)
        self.reloaded(e, h, 1)
        e.enqueue(job("rt1", recipients=ids, channels=["email"]))
        harness.wait_for("the first message under the new rate", lambda: srv.count() >= 4 or None, 20)
        time.sleep(1.5)
        self.assertEqual(srv.count(), 4, "one message an hour: the other two wait for their tokens")
        self.assertEqual(h.stop(), 0)   # the two waiting are given back, nothing lost
        self.assertEqual(srv.count(), 4)

    def test_listener_limits_change_in_place(self):
        e = self.env(log_level="info")
        path = e.write("live.conf", e.config_text())
        h = e.start_herald(config=path)
        idle = socket.create_connection(("127.0.0.1", e.admin_port))
        self.addCleanup(idle.close)
        self.assertEqual(get(e.admin_port, "/healthz")[0], 200, "two connections from one client: allowed")
        e.write("live.conf", e.config_text().replace("[admin]\n", "[admin]\nmax_connections_per_client = 1\n"))
        h.signal(signal.SIGHUP)
        self.reloaded(e, h, 1)
        self.assertIsNone(get(e.admin_port, "/healthz")[0], "the second connection is closed at once")
        idle.close()
        harness.wait_for("the idle connection gone", lambda: get(e.admin_port, "/healthz")[0] == 200 or None, 10)
        self.assertEqual(h.stop(), 0)


if __name__ == "__main__":
    harness.main()
