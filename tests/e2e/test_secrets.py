"""Running herald as a service: secrets in files only herald may read, Redis as
its own ACL user (over TCP and over a unix socket), `--check-config --connect`
reporting authentication and permission problems, and the log as JSON lines or
with journald priorities."""

import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

TOKEN = "e2e-file-token-0123456789"
LINK = "e2e-file-link-secret-0123456789"
REDIS_PW = "e2e-redis-pw-0123456789"


def run(args, env=None):
    res = subprocess.run(args, capture_output=True, text=True, timeout=60 * harness.SLOW,
                         stdin=subprocess.DEVNULL, env=env)
    return res.returncode, res.stdout + res.stderr


def read(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def check(config, *extra, sets=()):
    cmd = [harness.HERALD_BIN, "--config", config]
    for s in sets:
        cmd += ["--set", s]
    return run(cmd + ["--check-config"] + list(extra))


def service_config(e, url, name="service.conf", mode=0o600, log_format="text"):
    """The harness's config with Redis at url as user herald, its password
    and the admin secrets in files (0600)."""
    for fname, value in (("token", TOKEN), ("link", LINK), ("redis-pw", REDIS_PW)):
        p = e.write(fname, value + "\n")
        os.chmod(p, 0o600)
    text = e.config_text()
    text = re.sub(r"(?m)^url = .*$", "url = %s\npassword_file = redis-pw" % url, text)
    text = re.sub(r"(?m)^token = .*$", "token_file = token", text)
    text = re.sub(r"(?m)^link_secret = .*$", "link_secret_file = link", text)
    text = text.replace("[daemon]\n", "[daemon]\nlog_format = %s\n" % log_format)
    p = e.write(name, text)
    os.chmod(p, mode)
    return p


def acl_user(e, name="herald", password=REDIS_PW, rules=("~*", "+@all")):
    e.r.execute_command("ACL", "SETUSER", name, "reset", "on", ">" + password, *rules)


def doc_rules(user):
    """The rules docs/operations.md ("Redis users") gives for a user, after its password."""
    with open(os.path.join(harness.ROOT, "docs", "operations.md")) as f:
        for line in f:
            if line.startswith("ACL SETUSER %s on >PASSWORD " % user):
                return tuple(line.split()[5:])
    raise AssertionError("docs/operations.md gives no ACL SETUSER line for %s" % user)


# The rules docs/operations.md gives for herald's own user.
DOC_RULES = doc_rules("herald")


def client_users(e):
    return [c.get("user") for c in e.r.client_list()]


class Secrets(harness.HeraldTestCase):

    def setUp(self):
        self.e = self.env()
        self.e.secrets.update({TOKEN, LINK, REDIS_PW})

    def campaign(self, e, cid, n=3):
        people = harness.people(n, cid.replace("-", "") + "p")
        e.import_people(people, name=cid + ".jsonl")
        e.enqueue(harness.job(cid, recipients=[p["id"] for p in people], channels=("email",)))
        return n

    def test_acl_user_over_tcp_with_secret_files(self):
        e = self.e
        acl_user(e, rules=DOC_RULES)
        e.config = service_config(e, "redis://herald@127.0.0.1:%d/0" % e.redis.port)
        code, out = check(e.config, "--connect")
        self.assertEqual(code, 0, out)
        self.assertIn("redis OK: 127.0.0.1:%d as user herald" % e.redis.port, out)
        self.assertIn("configuration OK", out)
        h = e.start_herald()
        # every connection herald and heraldctl open is the ACL user's
        self.assertIn("herald", client_users(e))
        n = self.campaign(e, "c-acl")
        c = e.wait_campaign_done("c-acl", herald=h)
        self.assertEqual(c["sent"], n)
        # the token came from the file: the API takes it
        req = harness.urllib.request.Request("http://127.0.0.1:%d/v1/campaigns/c-acl" % e.admin_port,
                                             headers={"Authorization": "Bearer " + TOKEN})
        with harness.urllib.request.urlopen(req, timeout=10) as resp:
            self.assertEqual(resp.status, 200)
        self.assertEqual(h.stop(), 0)

    def test_unix_socket(self):
        sock = os.path.join(self.e.dir, "redis", "redis.sock")
        e = self.env(redis_args=["--unixsocket", sock, "--unixsocketperm", "700"])
        e.secrets.update({TOKEN, LINK, REDIS_PW})
        acl_user(e)
        # no host, no port: only the socket can reach this Redis
        e.config = service_config(e, "unix://herald@%s?db=0" % sock)
        code, out = check(e.config, "--connect")
        self.assertEqual(code, 0, out)
        self.assertIn("redis OK: unix:%s as user herald" % sock, out)
        h = e.start_herald()
        socket_clients = [c for c in e.r.client_list() if c.get("user") == "herald"]
        self.assertTrue(socket_clients)
        self.assertTrue(all("redis.sock" in c.get("laddr", c.get("addr", "")) for c in socket_clients),
                        socket_clients)
        n = self.campaign(e, "c-sock")
        self.assertEqual(e.wait_campaign_done("c-sock", herald=h)["sent"], n)
        self.assertEqual(h.stop(), 0)

    def test_check_connect_reports_auth_and_permissions(self):
        e = self.e
        url = "redis://herald@127.0.0.1:%d/0" % e.redis.port
        config = service_config(e, url)
        # no such user yet: authentication fails, and says so without the password
        code, out = check(config, "--connect")
        self.assertEqual(code, 1, out)
        self.assertIn("authentication failed for user herald", out)
        self.assertNotIn(REDIS_PW, out)
        self.assertNotIn("configuration OK", out)
        # a user without some commands herald needs, and one without the keys
        acl_user(e, rules=("~*", "+@all", "-xautoclaim", "-evalsha"))
        code, out = check(config, "--connect")
        self.assertEqual(code, 1, out)
        self.assertRegex(out, r"(?m)^redis: user herald may not .*\(XAUTOCLAIM\): NOPERM")
        self.assertRegex(out, r"(?m)^redis: user herald may not .*\(EVALSHA\): NOPERM")
        self.assertEqual(len(re.findall(r"(?m)^redis: user herald may not", out)), 2, out)
        acl_user(e, rules=("~other:*", "+@all"))
        code, out = check(config, "--connect")
        self.assertEqual(code, 1, out)
        self.assertRegex(out, r"(?m)^redis: user herald may not read the jobs stream's consumer groups \(XINFO\): NOPERM")
        # the probes left nothing behind
        self.assertEqual(e.r.keys("herald:*"), [])
        # without --connect, Redis is not asked
        self.assertEqual(check(config)[0], 0)
        # nobody listening
        e.redis.stop()
        code, out = check(config, "--connect")
        self.assertEqual(code, 1, out)
        self.assertIn("cannot connect to redis at 127.0.0.1:%d" % e.redis.port, out)

    def test_wrong_password_is_logged_without_it(self):
        e = self.e
        acl_user(e, password="another-password-0123")
        e.config = service_config(e, "redis://herald@127.0.0.1:%d/0" % e.redis.port)
        h = e.start_herald(wait_healthy=False)
        harness.wait_for("herald to log the refused login",
                         lambda: "authentication failed for user herald" in h.log(), 20)
        self.assertNotIn(REDIS_PW, h.log())
        h.stop()

    def test_open_files_are_refused(self):
        e = self.e
        # a config holding the token in clear, readable by others
        open_conf = e.write("open.conf", e.config_text())
        os.chmod(open_conf, 0o644)
        code, out = check(open_conf)
        self.assertEqual(code, 1, out)
        self.assertRegex(out, r"(?m)^%s:\d+: \[admin\] token: permissions 0644 for '%s' are too open"
                         % (re.escape(open_conf), re.escape(open_conf)))
        self.assertNotIn("e2e-admin-token", out)
        h = e.start_herald(config=open_conf, wait_healthy=False)
        self.assertEqual(h.wait_exit(20), 1)
        # every secret in a file: the config itself may be world-readable
        acl_user(e)
        conf = service_config(e, "redis://herald@127.0.0.1:%d/0" % e.redis.port, mode=0o644)
        self.assertEqual(check(conf), (0, "configuration OK\n"))
        # but a secret file others may read is refused
        os.chmod(e.path("redis-pw"), 0o644)
        code, out = check(conf)
        self.assertEqual(code, 1, out)
        self.assertIn("[redis] password_file: permissions 0644 for '%s' are too open" % e.path("redis-pw"), out)
        self.assertNotIn(REDIS_PW, out)
        os.chmod(e.path("redis-pw"), 0o600)
        # KEY and KEY_file together
        both = e.write("both.conf", read(conf).replace("token_file = token", "token_file = token\ntoken = %s"
                                                              % TOKEN))
        code, out = check(both)
        self.assertEqual(code, 1, out)
        self.assertIn("give token or token_file, not both", out)

    def test_plugin_secret_file(self):
        e = self.e
        hook = e.write("hook-secret", harness.HOOK_SECRET + "\n")
        text = e.config_text().replace("[channel email]\nproviders = outbox",
                                       "[channel email]\nproviders = hook")
        text += "\n[provider hook]\nplugin = webhook\nurl = http://127.0.0.1:9/herald\nsecret_file = hook-secret\n"
        conf = e.write("hook.conf", text)
        self.assertEqual(check(conf), (0, "configuration OK\n"))
        # an unreadable secret file is one error, not also the plugin's "missing"
        os.chmod(hook, 0o604)
        code, out = check(conf)
        self.assertEqual(code, 1, out)
        at = text.splitlines().index("secret_file = hook-secret") + 1
        self.assertRegex(out, r"(?m)^%s:%d: \[provider hook\] secret_file: permissions 0604" % (re.escape(conf), at))
        self.assertIn("1 error in %s" % conf, out)
        self.assertNotIn(harness.HOOK_SECRET, out)

    def test_set_never_echoes(self):
        for s in ("admin.token=tiny-secret-x", "admin.tokentiny-secret-x", "tiny-secret-x",
                  "redis.url=redis://u:tiny-secret-x@127.0.0.1:99999/0"):
            with self.subTest(set=s):
                code, out = check(self.e.config, sets=[s])
                self.assertEqual(code, 1, out)
                self.assertNotIn("tiny-secret-x", out)

    def test_json_log_lines(self):
        e = self.e
        h = e.start_herald(sets=["daemon.log_format=json"])
        self.campaign(e, "c-json")
        e.wait_campaign_done("c-json", herald=h)
        self.assertEqual(h.stop(), 0)
        lines = h.log_lines()
        self.assertTrue(lines)
        objs = [json.loads(line) for line in lines]   # every line is one object
        for o in objs:
            self.assertEqual({"ts", "level", "module", "msg"} - set(o), set(), o)
            self.assertIn(o["level"], ("debug", "info", "warn", "error"))
            self.assertRegex(o["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
            self.assertTrue(all(isinstance(v, str) for v in o.values()), o)
        started = [o for o in objs if o["module"] == "main" and o["msg"].startswith("herald ")
                   and o["msg"].endswith(" started")]
        self.assertEqual(len(started), 1, objs[:5])
        self.assertEqual(started[0]["providers"], "1")
        self.assertIn("consumer", started[0])
        self.assertTrue(any(o.get("campaign") == "c-json" for o in objs))

    def test_journal_priorities(self):
        e = self.e
        log = e.path("journal.log")
        with open(log, "wb") as f:
            st = os.fstat(f.fileno())
            env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
            p = subprocess.Popen([harness.HERALD_BIN, "--config", e.config], stdout=f, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, env=env)
        try:
            harness.wait_for("herald to log its start", lambda: " started " in read(log), 20)
            e.redis.stop()   # a warning: redis unavailable
            harness.wait_for("the outage warning", lambda: "unavailable" in read(log), 20)
        finally:
            p.terminate()
            p.wait(20)
        prio = {"debug": "7", "info": "6", "warn": "4", "error": "3"}
        seen = set()
        for line in read(log).splitlines():
            m = re.match(r"^<(\d)>\S+ (debug|info|warn|error) \S+: ", line)
            self.assertTrue(m, "no priority prefix: %r" % line)
            self.assertEqual(m.group(1), prio[m.group(2)], line)
            seen.add(m.group(2))
        self.assertLessEqual({"debug", "info", "warn"}, seen)
        # not the journal (JOURNAL_STREAM names another file): no prefix
        other = e.path("other.log")
        with open(other, "wb") as f:
            env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
            p = subprocess.Popen([harness.HERALD_BIN, "--config", e.config, "--set", "admin.listen=127.0.0.1:0"],
                                 stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        try:
            harness.wait_for("herald to log its start", lambda: " started " in read(other), 20)
        finally:
            p.terminate()
            p.wait(20)
        self.assertTrue(all(not line.startswith("<") for line in read(other).splitlines()))


if __name__ == "__main__":
    harness.main()
