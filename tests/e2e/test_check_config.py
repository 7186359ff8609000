"""herald --check-config: the good config passes; each broken one fails with
exit 1 and a `FILE:LINE: [section] key: problem` line naming the right file,
line, section and key (the wording after that is free)."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def check(config, *sets, cwd=None):
    cmd = [harness.HERALD_BIN, "--config", config]
    for s in sets:
        cmd += ["--set", s]
    cmd.append("--check-config")
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=30 * harness.SLOW, cwd=cwd,
                         stdin=subprocess.DEVNULL)
    return res.returncode, res.stdout + res.stderr


def lineno(lines, text, after=None):
    """1-based number of the first line equal to text (after line `after`)."""
    start = (after or 0)
    for i in range(start, len(lines)):
        if lines[i].strip() == text:
            return i + 1
    raise AssertionError("%r not in config" % text)


class CheckConfig(harness.HeraldTestCase):

    def setUp(self):
        self.e = self.env()
        self.good = self.e.config_text().splitlines()

    def variant(self, name, lines):
        return self.e.write(name + ".conf", "\n".join(lines) + "\n")

    def assertReported(self, out, path, lines_ok, section, key):
        # key None: an error about the whole section, `[section]: problem` (or naming a key in it)
        keypat = r"( \S+)?" if key is None else " " + re.escape(key)
        pat = r"^%s:(%s): \[%s\]%s: \S" % (re.escape(path), "|".join(str(n) for n in lines_ok),
                                           re.escape(section), keypat)
        self.assertRegex(out, re.compile(pat, re.M), "expected an error for [%s] %s at line %s of %s"
                         % (section, key, "/".join(map(str, lines_ok)), path))

    def test_good_config(self):
        code, out = check(self.e.config)
        self.assertEqual(code, 0, out)
        self.assertEqual(out.strip(), "configuration OK")

    def test_good_config_from_another_directory(self):
        # relative paths (the outbox dir) are relative to the config file, not the cwd
        code, out = check(self.e.config, cwd="/")
        self.assertEqual((code, out.strip()), (0, "configuration OK"))

    def test_check_does_not_need_redis(self):
        self.e.redis.stop()
        code, out = check(self.e.config)
        self.assertEqual((code, out.strip()), (0, "configuration OK"))

    def test_example_config_is_valid(self):
        # a copy only its owner may read: the example holds (placeholder) secrets
        with open(os.path.join(harness.ROOT, "config", "herald.example.conf")) as f:
            example = self.e.write("example.conf", f.read())
        code, out = check(example, "daemon.plugin_dir=" + harness.PLUGIN_DIR, "daemon.locales_dir=" + harness.LOCALES_DIR,
                          "provider outbox.dir=" + self.e.path("example-outbox"),
                          "privacy.key_file=" + self.e.path("keys"))
        self.assertEqual((code, out.strip()), (0, "configuration OK"))

    def test_version_and_help(self):
        for flag in ("--version", "--help"):
            with self.subTest(flag=flag):
                res = subprocess.run([harness.HERALD_BIN, flag], capture_output=True, text=True, timeout=30,
                                     stdin=subprocess.DEVNULL)
                self.assertEqual(res.returncode, 0, res.stderr)
                self.assertIn("herald", (res.stdout + res.stderr).lower())
        res = subprocess.run([harness.HERALD_BIN, "--no-such-option"], capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL)
        self.assertNotEqual(res.returncode, 0)

    def cases(self):
        """[(name, lines, [(acceptable line numbers, section, key)])]"""
        g = self.good
        out = []

        lines = g + ["", "[bogus]", "colour = blue"]
        n = len(lines)
        out.append(("unknown-section", lines, [((n - 1, n), "bogus", None)]))

        lines = list(g)
        at = lineno(lines, "log_level = debug")
        lines.insert(at, "colour = blue")
        out.append(("unknown-key", lines, [((at + 1,), "daemon", "colour")]))

        lines = list(g)
        at = [i for i, l in enumerate(lines) if l.startswith("url = ")][0]
        lines[at] = "url = http://127.0.0.1:6379/0"
        out.append(("bad-redis-url", lines, [((at + 1,), "redis", "url")]))

        lines = g + ["", "[provider weird]", "plugin = no_such_plugin"]
        out.append(("unknown-plugin", lines, [((len(lines),), "provider weird", "plugin")]))

        lines = [l for l in g if l.strip() != "dir = outbox"]
        sec = lineno(lines, "[provider outbox]")
        out.append(("outbox-without-dir", lines, [((sec, sec + 1), "provider outbox", "dir")]))

        lines = list(g)
        at = lineno(lines, "dir = outbox")
        lines.insert(at, "colour = red")
        out.append(("outbox-unknown-setting", lines, [((at + 1,), "provider outbox", "colour")]))

        lines = list(g)
        at = lineno(lines, "providers = outbox", after=lineno(lines, "[channel email]"))
        lines[at - 1] = "providers = outbox, nowhere"
        out.append(("undefined-provider", lines, [((at,), "channel email", "providers")]))

        # a batch larger than what may be held at once could never be read
        lines = list(g)
        at = lineno(lines, "log_level = debug")
        lines.insert(at, "batch = 600")
        sec = lineno(lines, "[daemon]")
        out.append(("batch-above-max-in-flight", lines, [((sec,), "daemon", "batch")]))

        for bad in ("127.0.0.1:99999", "localhost", "127.0.0.1:http"):
            lines = list(g)
            at = [i for i, l in enumerate(lines) if l.startswith("listen = ")][0]
            lines[at] = "listen = " + bad
            out.append(("bad-listen-" + bad.replace(":", "_"), lines, [((at + 1,), "admin", "listen")]))
        return out

    def test_broken_configs(self):
        for name, lines, expected in self.cases():
            with self.subTest(config=name):
                path = self.variant(name, lines)
                code, out = check(path)
                self.assertEqual(code, 1, out)
                self.assertNotIn("configuration OK", out)
                for lines_ok, section, key in expected:
                    self.assertReported(out, path, lines_ok, section, key)

    def test_every_error_is_reported(self):
        lines = list(self.good)
        lines.insert(lineno(lines, "log_level = debug"), "colour = blue")
        url = [i for i, l in enumerate(lines) if l.startswith("url = ")][0]
        lines[url] = "url = http://127.0.0.1:6379/0"
        listen = [i for i, l in enumerate(lines) if l.startswith("listen = ")][0]
        lines[listen] = "listen = 127.0.0.1:99999"
        setting = lineno(lines, "dir = outbox")
        lines.insert(setting, "colour = red")
        path = self.variant("many", lines)
        code, out = check(path)
        self.assertEqual(code, 1, out)
        self.assertReported(out, path, (lineno(lines, "colour = blue"),), "daemon", "colour")
        self.assertReported(out, path, (url + 1,), "redis", "url")
        self.assertReported(out, path, (listen + 1,), "admin", "listen")
        self.assertReported(out, path, (setting + 1,), "provider outbox", "colour")

    def test_errors_in_line_order_one_per_problem(self):
        lines = list(self.good)
        # a plugin's error (found after the file is read) before the file's own
        lines.insert(lineno(lines, "dir = outbox"), "colour = red")
        lines.insert(lineno(lines, "log_level = debug"), "lgo_level = info")
        lines += ["", "[channel email]", "providers = outbox", "", "[chanel sms]", "providers = outbox"]
        path = self.variant("order", lines)
        code, out = check(path)
        self.assertEqual(code, 1, out)
        errors = [l for l in out.splitlines() if l.startswith(path + ":")]
        numbers = [int(l.split(":")[1]) for l in errors]
        self.assertEqual(numbers, sorted(numbers), out)
        self.assertEqual(len(errors), 4, out)   # the repeated section is one problem, not one per key
        self.assertIn("4 errors in %s" % path, out)
        self.assertReported(out, path, (lineno(lines, "lgo_level = info"),), "daemon", "lgo_level")
        self.assertIn("did you mean log_level?", out)
        self.assertReported(out, path, (len(lines) - 1,), "chanel sms", None)
        self.assertIn("did you mean [channel sms]?", out)
        second = [i + 1 for i, l in enumerate(lines) if l == "[channel email]"][1]
        self.assertRegex(out, r"(?m)^%s:%d: \[channel email\]: section appears twice" % (re.escape(path), second))

    def test_warnings_do_not_fail(self):
        lines = self.good + ["", "[provider spare]", "plugin = outbox", "dir = spare",
                             "", "[cap day]", "channel = any", "limit = 1", "window = 24h",
                             "", "[cap later]", "channel = email", "limit = 5", "window = 1h"]
        path = self.variant("warnings", lines)
        code, out = check(path)
        self.assertEqual(code, 0, out)
        self.assertRegex(out, r"(?m)^%s:%d: warning: \[provider spare\]: " % (re.escape(path),
                                                                              lineno(lines, "[provider spare]")))
        self.assertRegex(out, r"(?m)^%s:%d: warning: \[cap later\]: \[cap day\] .* never applies" % (
            re.escape(path), lineno(lines, "[cap later]")))
        self.assertIn("configuration OK", out)

    def test_key_file(self):
        # Without [privacy] key_file: valid, one warning that contact data is stored in clear.
        path = self.variant("nokeys", [l for l in self.good if l.strip() not in ("[privacy]", "key_file = keys")])
        code, out = check(path)
        self.assertEqual(code, 0, out)
        self.assertEqual(len(re.findall(r"(?m)^%s: warning: \[privacy\] key_file is not set: .* in clear" % re.escape(path),
                                        out)), 1, out)
        self.assertIn("configuration OK", out)
        # A key file its group or others may read: refused, naming the file and the fix.
        keys = self.e.path("keys")
        line = lineno(self.good, "key_file = keys")
        for mode in (0o640, 0o604):
            os.chmod(keys, mode)
            code, out = check(self.e.config)
            self.assertEqual(code, 1, out)
            self.assertReported(out, self.e.config, [line], "privacy", "key_file")
            self.assertIn("chmod 600 '%s'" % keys, out)
        os.chmod(keys, 0o600)
        # A line that is no key: the file and line are named, the key never.
        self.e.write_keys("e2e1 " + "5a" * 31 + "\n")
        code, out = check(self.e.config)
        self.assertEqual(code, 1, out)
        self.assertIn("%s:1: key 'e2e1' must be 64 hex digits" % keys, out)
        self.assertNotIn("5a5a5a", out)

    def test_bad_override(self):
        code, out = check(self.e.config, "redis.url=not-a-url")
        self.assertEqual(code, 1, out)
        self.assertRegex(out, re.compile(r"^--set: \[redis\] url: \S", re.M))
        code, out = check(self.e.config, "daemon.no_such_key=1")
        self.assertEqual(code, 1, out)
        self.assertRegex(out, re.compile(r"^--set: \[daemon\] no_such_key: \S", re.M))


if __name__ == "__main__":
    harness.main()
