"""test_install.py - `cmake --install` into a staging prefix: the file list,
the systemd unit through `systemd-analyze verify`, and the installed herald
started with the installed example config (healthz, READY=1, STOPPING=1).
"""

import os
import re
import shutil
import subprocess
import tempfile

import pkgtest
from pkgtest import harness


def cache_value(name):
    with open(os.path.join(pkgtest.BUILD_DIR, "CMakeCache.txt")) as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split("=", 1)[1].strip()
    raise AssertionError("%s not in CMakeCache.txt" % name)


class InstallTest(harness.HeraldTestCase):
    @classmethod
    def setUpClass(cls):
        cls.stage = tempfile.mkdtemp(prefix="herald-install-")
        res = subprocess.run(["cmake", "--install", pkgtest.BUILD_DIR, "--prefix", cls.stage],
                             capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stdout + res.stderr
        cls.files = sorted(os.path.relpath(os.path.join(d, f), cls.stage)
                           for d, _, fs in os.walk(cls.stage) for f in fs)
        cls.prefix = cache_value("CMAKE_INSTALL_PREFIX")
        cls.libdir = cache_value("CMAKE_INSTALL_LIBDIR")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.stage, ignore_errors=True)

    def staged(self, *parts):
        return os.path.join(self.stage, *parts)

    def test_file_list(self):
        lib = self.libdir
        want = ["bin/heraldctl", "sbin/herald",
                "etc/herald/herald.conf.example",
                "lib/systemd/system/herald.service", "lib/sysusers.d/herald.conf",
                "share/doc/herald/README.md", "share/doc/herald/operations.md", "share/doc/herald/config.md",
                "share/doc/herald/monitoring/herald-dashboard.json",
                "share/doc/herald/monitoring/herald-alerts.yml", "share/doc/herald/localisation.md",
                "share/herald/locales/en.po", "share/herald/locales/de.po", "share/herald/locales/ko.po"]
        want += ["%s/herald/channels/%s.so" % (lib, p)
                 for p in ("outbox", "webhook", "email_sendgrid", "sms_twilio", "email_smtp")]
        for f in want:
            self.assertIn(f, self.files)
        # Nothing from the build tree's tests (fake plugins) or anything else.
        allowed = ("bin/", "sbin/", "etc/herald/", "%s/herald/channels/" % lib, "lib/systemd/system/",
                   "lib/sysusers.d/", "share/doc/herald/", "share/herald/locales/")
        self.assertEqual([f for f in self.files if not f.startswith(allowed)], [])
        self.assertFalse(any("fake" in f or "wrong_abi" in f for f in self.files), self.files)
        for exe in ("bin/heraldctl", "sbin/herald"):
            self.assertTrue(os.access(self.staged(exe), os.X_OK), exe)
        # The example holds placeholder secrets: not for everyone's eyes.
        self.assertEqual(os.stat(self.staged("etc/herald/herald.conf.example")).st_mode & 0o777, 0o640)

    def test_default_plugin_dir_is_where_plugins_are_installed(self):
        info = pkgtest.version_info(self.staged("sbin/herald"))
        self.assertEqual(info["plugin_dir default"],
                         os.path.join(self.prefix, self.libdir, "herald", "channels"))
        self.assertEqual(info["systemd notify"], "yes")
        self.assertEqual(info["locales_dir default"], os.path.join(self.prefix, "share", "herald", "locales"))

    def test_installed_example(self):
        with open(self.staged("etc/herald/herald.conf.example")) as f:
            text = f.read()
        # The build tree's paths are gone: the default plugin_dir, the unit's state dir.
        self.assertNotIn("../build", text)
        self.assertNotIn("../var", text)
        self.assertIn("\n# plugin_dir = %s\n" % os.path.join(self.prefix, self.libdir, "herald", "channels"), text)
        self.assertIn("\ndir = /var/lib/herald/outbox\n", text)
        self.assertIn("\n# locales_dir = %s\n" % os.path.join(self.prefix, "share", "herald", "locales"), text)

    def test_unit_verifies(self):
        with open(self.staged("lib/systemd/system/herald.service")) as f:
            unit = f.read()
        binary = os.path.join(self.prefix, "sbin", "herald")
        conf = "/etc/herald/herald.conf" if self.prefix == "/usr" else os.path.join(self.prefix, "etc/herald/herald.conf")
        self.assertIn("ExecStart=%s --config %s\n" % (binary, conf), unit)
        for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "User=herald", "NoNewPrivileges=yes",
                     "CapabilityBoundingSet=\n", "ProtectSystem=strict", "ProtectHome=yes", "PrivateTmp=yes",
                     "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "SystemCallFilter=@system-service",
                     "ConfigurationDirectory=herald", "StateDirectory=herald"):
            self.assertIn(line, unit)
        self.assertNotIn("@", re.sub(r"@system-service|@privileged|@resources", "", unit.split("[Unit]", 1)[1]),
                         "a template variable was left unreplaced")
        # systemd-analyze checks that ExecStart's binary exists: point it at the staged one.
        d = tempfile.mkdtemp(prefix="herald-unit-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "herald.service")
        with open(path, "w") as f:
            f.write(unit.replace(binary, self.staged("sbin/herald")))
        res = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True, timeout=60)
        # Unknown keys and bad values are only warnings: any output is a failure.
        self.assertEqual((res.returncode, res.stdout + res.stderr), (0, ""))
        # The sandbox as systemd rates it: exposure 2.0 or less ("OK"; 1.4 today).
        res = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", path],
                             capture_output=True, text=True, timeout=60)
        self.assertEqual(res.returncode, 0, res.stdout[-600:] + res.stderr)

    def test_installed_sysusers(self):
        with open(self.staged("lib/sysusers.d/herald.conf")) as f:
            lines = [l for l in f if l.strip() and not l.startswith("#")]
        self.assertEqual([l.split()[:2] for l in lines], [["u", "herald"]])

    def test_installed_herald_runs_with_installed_example(self):
        e = self.env(log_level="info")
        config = self.staged("etc/herald/herald.conf.example")
        plugins = self.staged(self.libdir, "herald", "channels")
        res = subprocess.run([self.staged("sbin/herald"), "--config", config, "--check-config",
                              "--set", "daemon.plugin_dir=" + plugins, "--set", "provider outbox.dir=" + e.outbox,
                              "--set", "daemon.locales_dir=" + pkgtest.staged_locales(plugins, self.staged("sbin/herald"))],
                             capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual((res.returncode, res.stdout.strip()), (0, "configuration OK"), res.stderr)
        pkgtest.run_and_notify(self, e, self.staged("sbin/herald"), config, plugins)
        # The installed heraldctl works with the same file.
        ctl = subprocess.run([self.staged("bin/heraldctl"), "--config", config, "--set", "redis.url=" + e.redis.url,
                              "campaign", "none-such"], capture_output=True, text=True, timeout=60,
                             stdin=subprocess.DEVNULL)
        self.assertEqual(ctl.returncode, 0, ctl.stderr)
        self.assertIn('"state": "unknown"', ctl.stdout)

    def test_no_ready_while_redis_is_down(self):
        """READY=1 waits for Redis: a unit would not count as started while
        herald cannot work; STATUS says what it waits for."""
        e = self.env(log_level="info")
        e.redis.stop()
        notify = pkgtest.NotifySocket(e.path("notify.sock"))
        self.addCleanup(notify.close)
        config = self.staged("etc/herald/herald.conf.example")
        h = pkgtest.start_installed(self, e, self.staged("sbin/herald"), config,
                                    self.staged(self.libdir, "herald", "channels"), notify)
        status = harness.wait_for("a STATUS about redis", lambda: [m for m in notify.poll()
                                                                   if "waiting for redis" in m.get("STATUS", "")], 10)
        self.assertIn("127.0.0.1:%d" % e.redis.port, status[0]["STATUS"])
        self.assertEqual(notify.saw("READY"), [])
        e.redis.start()
        harness.wait_for("READY=1 once redis is back", lambda: notify.saw("READY", "1"), 20)
        self.assertEqual(h.stop(), 0)


if __name__ == "__main__":
    pkgtest.main()
