"""Plugins seen from outside: a plugin built for another ABI is refused with
one clear line; RETRY verdicts are retried and then fail over to the next
provider of the channel (the audit names the provider that took it); a
permanent REJECTED ends as failed/provider_rejected and writes nothing.
Uses the test-only plugins of tests/plugins (fake: scripted verdicts)."""

import os
import subprocess
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402

TEST_PLUGIN_DIR = os.environ.get("HERALD_TEST_PLUGIN_DIR", "")

PROVIDERS = """\
[channel email]
providers = {providers}

[channel sms]
providers = outbox

[provider outbox]
plugin = outbox
dir = outbox

[provider flaky]
plugin = fake
verdicts = {verdicts}
record = fake-calls.log
"""


def plugin_dir(e):
    """outbox.so from the build, fake.so and wrong_abi.so from the test plugins, in one directory."""
    d = e.path("plugins")
    os.makedirs(d, exist_ok=True)
    os.symlink(os.path.join(harness.PLUGIN_DIR, "outbox.so"), os.path.join(d, "outbox.so"))
    for name in ("fake", "fake_v1", "wrong_abi"):
        os.symlink(os.path.join(TEST_PLUGIN_DIR, name + ".so"), os.path.join(d, name + ".so"))
    return d


def config_with(e, providers, verdicts, extra=""):
    base = e.config_text()
    head = base[:base.index("[channel email]")]
    text = head + PROVIDERS.format(providers=providers, verdicts=verdicts) + extra
    text = text.replace("plugin_dir = %s" % harness.PLUGIN_DIR, "plugin_dir = %s" % plugin_dir(e))
    p = e.path("plugins.conf")
    with open(p, "w") as f:
        f.write(text)
    return p


def fake_calls(e):
    p = e.path("fake-calls.log")
    if not os.path.exists(p):
        return []
    with open(p) as f:
        return [line.split() for line in f if line.strip()]


ANN = person("p-ann", email="ann.plugins@example.com", channels=["email"], consent=["email"], first_name="Ann")


class Plugins(harness.HeraldTestCase):

    def test_wrong_abi_is_refused_with_one_line(self):
        e = self.env()
        conf = config_with(e, "outbox", "accept", extra="\n[provider odd]\nplugin = wrong_abi\n")
        r = subprocess.run([harness.HERALD_BIN, "--config", conf, "--check-config"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        lines = [l for l in r.stderr.splitlines() if "wrong_abi.so" in l]
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("[provider odd] plugin:", lines[0])
        self.assertIn("ABI version 3", lines[0])
        self.assertIn("needs version 2", lines[0])
        self.assertIn("or version 1", lines[0])
        # the daemon itself refuses to start on it
        r = subprocess.run([harness.HERALD_BIN, "--config", conf], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 1)

    def test_an_abi_version_1_plugin_still_loads_and_sends(self):
        e = self.env()
        e.import_people([ANN])
        conf = config_with(e, "old", "accept",
                           extra="\n[provider old]\nplugin = fake_v1\nverdicts = accept\nrecord = fake-calls.log\n")
        h = e.start_herald(config=conf)
        e.enqueue(job("abi-v1", recipients=["p-ann"], channels=["email"]))
        e.wait_campaign_done("abi-v1", herald=h, timeout=60)
        recs = self.assertOneTerminalEach(e.audit("abi-v1"), ["p-ann"])
        self.assertEqual((recs["p-ann"]["outcome"], recs["p-ann"]["provider"]), ("sent", "old"))
        self.assertEqual([c[:4] for c in fake_calls(e)], [["abi-v1", "p-ann", "email", "accept"]])
        # Version 1 has no feedback(): its provider takes no callbacks (nor
        # does a version 2 plugin without one).
        for name in ("old", "flaky"):
            req = urllib.request.Request("http://127.0.0.1:%d/v1/webhooks/%s" % (e.public_port, name),
                                         data=b"[]", headers={"Content-Type": "application/json"}, method="POST")
            with self.assertRaises(urllib.error.HTTPError) as cm:
                urllib.request.urlopen(req, timeout=10)
            self.assertEqual(cm.exception.code, 404)

    def test_fake_plugin_settings_are_checked(self):
        e = self.env()
        conf = config_with(e, "flaky", "accept, explode")
        r = subprocess.run([harness.HERALD_BIN, "--config", conf, "--check-config"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"plugins\.conf:\d+: \[provider flaky\] verdicts: unknown verdict \"explode\"")

    def test_retries_then_fails_over_to_the_next_provider(self):
        e = self.env()
        e.import_people([ANN])
        conf = config_with(e, "flaky, outbox", "retry")
        h = e.start_herald(config=conf)
        e.enqueue(job("failover-1", recipients=["p-ann"], channels=["email"]))
        e.wait_campaign_done("failover-1", herald=h, timeout=60)
        recs = self.assertOneTerminalEach(e.audit("failover-1"), ["p-ann"])
        self.assertEqual(recs["p-ann"]["outcome"], "sent")
        self.assertEqual(recs["p-ann"]["provider"], "outbox", "the audit names the provider that took it")
        calls = fake_calls(e)
        self.assertEqual(len(calls), 3, "one attempt and two retries at the failing provider: %r" % calls)
        self.assertTrue(all(c[:4] == ["failover-1", "p-ann", "email", "retry"] for c in calls))
        self.assertEqual(list(e.outbox_files("failover-1")), ["p-ann.email.json"])

    def test_retry_then_accept_on_the_same_provider(self):
        e = self.env()
        e.import_people([ANN])
        conf = config_with(e, "flaky, outbox", "retry, accept")
        h = e.start_herald(config=conf)
        e.enqueue(job("retry-1", recipients=["p-ann"], channels=["email"]))
        e.wait_campaign_done("retry-1", herald=h, timeout=60)
        recs = self.assertOneTerminalEach(e.audit("retry-1"), ["p-ann"])
        self.assertEqual((recs["p-ann"]["outcome"], recs["p-ann"]["provider"]), ("sent", "flaky"))
        self.assertEqual(recs["p-ann"]["provider_id"], "fake-1")
        self.assertEqual([c[3] for c in fake_calls(e)], ["retry", "accept"])
        self.assertEqual(e.outbox_files("retry-1"), {}, "the backup provider never saw it")

    def test_rejected_is_failed_and_can_be_tried_again(self):
        e = self.env()
        e.import_people([ANN])
        conf = config_with(e, "flaky, outbox", "reject")
        h = e.start_herald(config=conf)
        e.enqueue(job("reject-1", recipients=["p-ann"], channels=["email"]))
        c = e.wait_campaign_done("reject-1", herald=h, timeout=60)
        recs = self.assertOneTerminalEach(e.audit("reject-1"), ["p-ann"])
        self.assertEqual((recs["p-ann"]["outcome"], recs["p-ann"]["reason"]), ("failed", "provider_rejected"))
        self.assertEqual(c["failed"], {"provider_rejected": 1})
        self.assertEqual(len(fake_calls(e)), 1, "a permanent rejection is not retried, nor failed over")
        self.assertEqual(e.outbox_files("reject-1"), {})
        # a failure did not "reach" the person: a rerun of the campaign tries again
        e.enqueue(job("reject-1", recipients=["p-ann"], channels=["email"], rerun=True))
        wanted = 2
        harness.wait_for("second attempt", lambda: len(e.audit("reject-1")) == wanted or None, 60)
        self.assertEqual([r["reason"] for r in e.audit("reject-1")], ["provider_rejected"] * 2)

    def test_a_rejected_message_gives_the_cap_budget_back(self):
        e = self.env()
        e.import_people([ANN])
        cap = ("cap daily.channel=any", "cap daily.limit=1", "cap daily.window=24h")
        h = e.start_herald(config=config_with(e, "flaky", "reject"), sets=cap)
        e.enqueue(job("budget-1", recipients=["p-ann"], channels=["email"]))
        e.wait_campaign_done("budget-1", herald=h, timeout=60)
        self.assertEqual(e.audit("budget-1")[0]["outcome"], "failed")
        h.stop()
        # the failure did not count against the cap: the next campaign goes out
        h = e.start_herald(config=e.path("plugins.conf"), sets=cap + ("channel email.providers=outbox",))
        e.enqueue(job("budget-2", recipients=["p-ann"], channels=["email"]))
        e.wait_campaign_done("budget-2", herald=h, timeout=60)
        self.assertEqual(e.audit("budget-2")[0]["outcome"], "sent")
        # and now the cap holds
        e.enqueue(job("budget-3", recipients=["p-ann"], channels=["email"]))
        e.wait_campaign_done("budget-3", herald=h, timeout=60)
        self.assertEqual(e.audit("budget-3")[0]["reason"], "cap:daily")


if __name__ == "__main__":
    harness.main()
