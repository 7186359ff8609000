"""test_deb.py - the .deb of scripts/package.sh: its control fields and
dependencies, its file list (FHS paths only), and the package unpacked into
a staging root with `dpkg-deb -x`: the unit verifies, the binary's default
plugin_dir is where the package put the plugins, and the unpacked herald
runs on the unpacked example config (healthz, READY=1, STOPPING=1).
"""

import os
import re
import shutil
import subprocess
import tempfile

import pkgtest
from pkgtest import harness


def run(*cmd, **kw):
    res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=kw.pop("timeout", 120), **kw)
    assert res.returncode == 0, "%s exited %d\n%s%s" % (" ".join(cmd), res.returncode, res.stdout, res.stderr)
    return res.stdout


class DebTest(harness.HeraldTestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="herald-deb-")
        out = run(os.path.join(pkgtest.SOURCE_DIR, "scripts", "package.sh"),
                  "--build-dir", os.path.join(pkgtest.BUILD_DIR, "pkg-build"), "--out", cls.tmp, timeout=900)
        cls.deb = out.strip().splitlines()[-1]
        assert cls.deb.endswith(".deb") and os.path.isfile(cls.deb), out
        cls.root = os.path.join(cls.tmp, "root")
        run("dpkg-deb", "-x", cls.deb, cls.root)
        # "-rwxr-xr-x root/root 536408 2026-12-06 03:55 ./usr/bin/heraldctl"
        cls.contents = []
        for line in run("dpkg-deb", "--contents", cls.deb).splitlines():
            f = line.split()
            cls.contents.append((f[0], f[1], f[5][2:]))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def field(self, name):
        return run("dpkg-deb", "-f", self.deb, name).strip()

    def files(self):
        return [p for mode, _, p in self.contents if not mode.startswith("d")]

    def test_control(self):
        self.assertEqual(self.field("Package"), "herald")
        with open(os.path.join(pkgtest.SOURCE_DIR, "CMakeLists.txt")) as f:
            version = re.search(r"project\(herald VERSION (\S+)", f.read()).group(1)
        self.assertEqual(self.field("Version"), version)
        self.assertEqual(self.field("Architecture"), run("dpkg", "--print-architecture").strip())
        self.assertIn("@", self.field("Maintainer"))
        self.assertTrue(self.field("Description"))
        # From dpkg-shlibdeps: every library the binaries link, with versions.
        depends = self.field("Depends")
        for lib in ("libc6", "libuv1", "libhiredis", "libjansson4", "libcurl4", "libssl3", "libinih1",
                    "libsystemd0", "tzdata"):
            self.assertIn(lib, depends)
        self.assertRegex(depends, r"libuv1 \(>= [0-9.]+\)")

    def test_file_list_is_fhs_only(self):
        files = self.files()
        self.assertEqual([p for p in files if not p.startswith(pkgtest.FHS_PREFIXES)], [])
        arch = run("dpkg-architecture", "-qDEB_HOST_MULTIARCH").strip()
        for p in ["usr/sbin/herald", "usr/bin/heraldctl", "etc/herald/herald.conf.example",
                  "usr/lib/systemd/system/herald.service", "usr/lib/sysusers.d/herald.conf",
                  "usr/share/doc/herald/monitoring/herald-alerts.yml",
                  "usr/share/doc/herald/monitoring/herald-dashboard.json", "usr/share/doc/herald/operations.md",
                  "usr/share/herald/locales/en.po", "usr/share/herald/locales/de.po",
                  "usr/share/herald/locales/ko.po", "usr/share/doc/herald/localisation.md"]:
            self.assertIn(p, files)
        self.assertEqual(sorted(os.path.basename(p) for p in files if "/herald/channels/" in p),
                         sorted(["email_sendgrid.so", "email_smtp.so", "outbox.so", "sms_twilio.so", "webhook.so"]))
        self.assertTrue(all(p.startswith("usr/lib/%s/herald/channels/" % arch) for p in files if p.endswith(".so")))
        self.assertEqual({owner for _, owner, _ in self.contents}, {"root/root"})
        self.assertFalse(any(p.startswith(("var/", "tmp/", "home/", "usr/local/", "opt/")) for p in files))

    def test_maintainer_scripts(self):
        control = os.path.join(self.tmp, "control")
        run("dpkg-deb", "-e", self.deb, control)
        with open(os.path.join(control, "conffiles")) as f:
            self.assertEqual(f.read().split(), ["/etc/herald/herald.conf.example"])
        for s in ("postinst", "prerm", "postrm"):
            p = os.path.join(control, s)
            self.assertTrue(os.access(p, os.X_OK), s)
            run("sh", "-n", p)
        with open(os.path.join(control, "postinst")) as f:
            self.assertIn("systemd-sysusers herald.conf", f.read())

    def test_default_plugin_dir_is_the_packaged_one(self):
        info = pkgtest.version_info(os.path.join(self.root, "usr/sbin/herald"))
        dirs = {os.path.dirname(p) for p in self.files() if p.endswith(".so")}
        self.assertEqual({info["plugin_dir default"]}, {"/" + d for d in dirs})
        self.assertEqual(info["systemd notify"], "yes")

    def test_unit_verifies(self):
        with open(os.path.join(self.root, "usr/lib/systemd/system/herald.service")) as f:
            unit = f.read()
        self.assertIn("ExecStart=/usr/sbin/herald --config /etc/herald/herald.conf\n", unit)
        path = os.path.join(self.tmp, "herald.service")
        with open(path, "w") as f:
            f.write(unit.replace("/usr/sbin/herald", os.path.join(self.root, "usr/sbin/herald")))
        res = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True, timeout=60)
        self.assertEqual((res.returncode, res.stdout + res.stderr), (0, ""))

    def test_unpacked_herald_runs(self):
        e = self.env(log_level="info")
        plugins = os.path.join(self.root, pkgtest.version_info(os.path.join(self.root, "usr/sbin/herald"))
                               ["plugin_dir default"].lstrip("/"))
        pkgtest.run_and_notify(self, e, os.path.join(self.root, "usr/sbin/herald"),
                               os.path.join(self.root, "etc/herald/herald.conf.example"), plugins)
        # And it delivers: the packaged heraldctl imports and enqueues on the
        # same file, the packaged outbox plugin writes the message.
        config = os.path.join(self.root, "etc/herald/herald.conf.example")
        ctl = [os.path.join(self.root, "usr/bin/heraldctl"), "--config", config, "--set", "redis.url=" + e.redis.url]
        person = {"id": "p1", "email": "p1@example.org", "channels": ["email"],
                  "consent": [{"channel": "email", "granted": True, "source": "test", "text_version": "v1"}]}
        e.remember(person)
        self.assertEqual(run(*ctl, "import", e.write_jsonl("people.jsonl", [person])).strip(), "imported 1, skipped 0")
        job = harness.job("pkg-1", recipients=["p1"], channels=("email",))
        e.remember_job(job)
        h = pkgtest.start_installed(self, e, os.path.join(self.root, "usr/sbin/herald"), config, plugins)
        h.wait_healthy()
        run(*ctl, "enqueue", e.write("job.json", harness.json.dumps(job)))
        harness.wait_for("the campaign to be done", lambda: '"state": "done"' in run(*ctl, "campaign", "pkg-1"), 30)
        self.assertIn('"sent": 1', run(*ctl, "campaign", "pkg-1"))
        self.assertEqual(len(e.outbox_files("pkg-1")), 1)
        self.assertEqual(h.stop(), 0)

if __name__ == "__main__":
    pkgtest.main()
