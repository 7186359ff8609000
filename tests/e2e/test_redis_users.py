"""The Redis users of docs/operations.md ("Redis users"), their rules read
from the document itself: herald (daemon and heraldctl) runs as its own user
with exactly the commands it sends, and a marketing system as the
integrator's user adds a job and follows it on herald:events while it is
refused everything else (a person's hash, the audit, the dead letters, the
jobs stream's contents: NOPERM). The herald rule lists the same commands as
`--check-config --connect` tries, and every command of the Lua scripts."""

import glob
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

import redis

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402

OPS = os.path.join(harness.ROOT, "docs", "operations.md")
HERALD_PW = "e2e-herald-user-pw-0123456789"
INTEGRATOR_PW = "e2e-integrator-pw-0123456789"
TOKEN = "e2e-admin-token-0123456789"


def doc_line(user):
    with open(OPS) as f:
        for line in f:
            if line.startswith("ACL SETUSER %s on >PASSWORD " % user):
                return line.split()
    raise AssertionError("docs/operations.md gives no ACL SETUSER line for %s" % user)


def set_user(r, user, password, drop=()):
    words = doc_line(user)
    rules = [w for w in words[5:] if w not in drop]
    r.execute_command("ACL", "SETUSER", user, "reset", "on", ">" + password, *rules)


def allowed_commands(user):
    return {w[1:].lower() for w in doc_line(user)[5:] if w.startswith("+") and not w.startswith("+@")}


def api(port, method, path, body=None):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method,
                                 data=json.dumps(body).encode() if body is not None else None,
                                 headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


class RedisUsers(harness.HeraldTestCase):

    def test_rule_lists_what_herald_sends(self):
        """The documented rule, the probes of --check-config --connect and
        the Lua scripts name the same commands."""
        with open(os.path.join(harness.ROOT, "daemon", "store_check.c")) as f:
            src = re.sub(r"\\\n\s*", " ", f.read())   # the X-macro lists, one line each
        probed = set()
        for args in re.findall(r'X\(("[^"]*"(?:,\s*"[^"]*")+)\)', src):
            words = re.findall(r'"([^"]*)"', args)[1:]
            cmd = words[0].lower()
            if cmd in ("xinfo", "xgroup", "script", "memory"):
                cmd += "|" + words[1].lower()
            probed.add(cmd)
        probed.add("discard")
        doc = allowed_commands("herald")
        self.assertEqual(doc - {"select"}, probed, "docs/operations.md's rule and store_check.c's probes differ")
        lua = set()
        for path in glob.glob(os.path.join(harness.ROOT, "daemon", "lua", "*.lua")):
            with open(path) as f:
                for cmd, sub in re.findall(r"redis\.p?call\('([A-Za-z]+)'(?:, '([A-Za-z]+)')?", f.read()):
                    cmd = cmd.lower()
                    lua.add(cmd + "|" + sub.lower() if cmd in ("xinfo", "xgroup") else cmd)
        self.assertTrue(lua, "no redis.call found")
        self.assertEqual(lua - doc, set(), "commands of the Lua scripts missing from the rule")

    def test_herald_and_integrator_users(self):
        e = self.env(log_level="info")
        set_user(e.r, "herald", HERALD_PW)
        set_user(e.r, "integrator", INTEGRATOR_PW)
        text = re.sub(r"(?m)^url = .*$", "url = redis://herald@127.0.0.1:%d/0\npassword = %s"
                      % (e.redis.port, HERALD_PW), e.config_text())
        e.config = e.write("users.conf", text)
        os.chmod(e.config, 0o600)
        e.secrets.update({HERALD_PW, INTEGRATOR_PW})

        res = subprocess.run([harness.HERALD_BIN, "--config", e.config, "--check-config", "--connect"],
                             capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        self.assertNotIn("may not", res.stdout + res.stderr)
        self.assertEqual(e.r.keys("herald:*"), [], "the check leaves nothing behind")

        # an old dead letter, for the trim herald's user must be able to do
        e.r.set("herald:layout", harness.LAYOUT)
        old = e.r.xadd("herald:dead", {"error": "old", "entry": "", "job_entry": "1-0"},
                       id="%d-0" % (int(time.time() * 1000) - 40 * 86400 * 1000))
        people = [person("u-%d" % i, email="user%d.acl@example.com" % i, channels=["email"], consent=["email"],
                         first_name="U%d" % i) for i in range(3)]
        e.import_people(people)   # heraldctl, as herald
        h = e.start_herald()
        harness.wait_for("the old dead letter trimmed", lambda: e.r.xrange("herald:dead", old, old) == [] or None, 20)
        self.assertIn("herald", [c.get("user") for c in e.r.client_list()])

        # the marketing system, as the integrator
        ri = redis.Redis(host="127.0.0.1", port=e.redis.port, username="integrator", password=INTEGRATOR_PW,
                         decode_responses=True, socket_timeout=10)
        good = job("acl-campaign", recipients=[p["id"] for p in people], channels=["email"])
        e.remember_job(good)
        entry = ri.xadd("herald:jobs", {"job": json.dumps(good)}, maxlen=100000, approximate=True)
        c = e.wait_campaign_done("acl-campaign", herald=h)
        self.assertEqual(c["sent"], 3)
        events = [f for _, f in ri.xrange("herald:events") if f.get("campaign") == "acl-campaign"]
        self.assertEqual([f["event"] for f in events], ["started", "finished"])
        self.assertEqual(events[0]["entry"], entry)
        read = ri.xread({"herald:events": "0-0"}, count=100)
        self.assertEqual(len(read[0][1]), len(ri.xrange("herald:events")))

        # a refused job, dead-lettered by herald's user
        ri.xadd("herald:jobs", {"job": '{"id": "acl-bad"}'})
        harness.wait_for("the dead letter", lambda: len(e.dead()) == 1 or None, 20)

        refused = [
            ("a person's hash", lambda: ri.hgetall("herald:r:{u-0}")),
            ("a person's hash, with a read command it has", lambda: ri.xrange("herald:r:{u-0}")),
            ("the audit", lambda: ri.xrange("herald:audit")),
            ("the dead letters", lambda: ri.xrange("herald:dead")),
            ("the jobs stream's contents", lambda: ri.xrange("herald:jobs")),
            ("writing an event", lambda: ri.xadd("herald:events", {"event": "forged"})),
            ("the suppression list", lambda: ri.smembers("herald:suppress:{i0}")),
            ("deleting jobs", lambda: ri.xdel("herald:jobs", entry)),
            ("listing keys", lambda: ri.keys("*")),
        ]
        for what, call in refused:
            with self.subTest(refused=what):
                with self.assertRaises(redis.exceptions.NoPermissionError):
                    call()

        # the API's person scripts run as herald's user too
        self.assertEqual(api(e.admin_port, "PUT", "/v1/recipients/api-1",
                             {"email": "api.acl@example.com", "channels": ["email"]})[0], 201)
        e.secrets.add("api.acl@example.com")
        self.assertEqual(api(e.admin_port, "GET", "/v1/recipients/api-1")[0], 200)
        self.assertEqual(api(e.admin_port, "POST", "/v1/recipients/api-1/consent",
                             {"channel": "email", "granted": True, "source": "e2e"})[0] // 100, 2)
        self.assertEqual(api(e.admin_port, "PUT", "/v1/suppressions/email/api.acl%40example.com",
                             {"reason": "e2e acl"})[0] // 100, 2)
        self.assertEqual(api(e.admin_port, "DELETE", "/v1/recipients/api-1")[0], 200)
        self.assertEqual(api(e.admin_port, "POST", "/v1/campaigns/acl-campaign/pause")[0] // 100, 2)
        self.assertNotIn("NOPERM", h.log())
        self.assertEqual(h.stop(), 0)

    def test_check_names_a_missing_command(self):
        """A herald rule without XTRIM (or XDEL): --check-config --connect says which."""
        e = self.env()
        set_user(e.r, "herald", HERALD_PW, drop=("+xtrim", "+hsetnx"))
        text = re.sub(r"(?m)^url = .*$", "url = redis://herald@127.0.0.1:%d/0\npassword = %s"
                      % (e.redis.port, HERALD_PW), e.config_text())
        config = e.write("users.conf", text)
        os.chmod(config, 0o600)
        res = subprocess.run([harness.HERALD_BIN, "--config", config, "--check-config", "--connect"],
                             capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        out = res.stdout + res.stderr
        self.assertEqual(res.returncode, 1, out)
        self.assertRegex(out, r"(?m)^redis: user herald may not delete old stream entries \(\[retention\]\) \(XTRIM\)")
        self.assertRegex(out, r"(?m)^redis: user herald may not write a hash field once \(HSETNX\)")
        self.assertEqual(len(re.findall(r"(?m)^redis: user herald may not", out)), 2, out)
        self.assertEqual(e.r.keys("herald:*"), [], "queued writes are discarded")


if __name__ == "__main__":
    harness.main()
