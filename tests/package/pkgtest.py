"""pkgtest.py - what the packaging tests share: the e2e harness (a private
redis-server, herald's log checks), a sd_notify listener, and starting an
installed herald with the installed example config.

Environment (tests/package/CMakeLists.txt): HERALD_BUILD_DIR (the build tree
to install from), HERALD_SOURCE_DIR.
"""

import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "e2e"))
import harness  # noqa: E402

SOURCE_DIR = os.environ.get("HERALD_SOURCE_DIR", harness.ROOT)
BUILD_DIR = os.environ.get("HERALD_BUILD_DIR", os.path.join(harness.ROOT, "build"))

# Where a package may put files (FHS): nothing else.
FHS_PREFIXES = ("etc/herald/", "usr/bin/", "usr/sbin/", "usr/lib/", "usr/share/doc/herald/", "usr/share/herald/")


NotifySocket = harness.NotifySocket  # systemd's NOTIFY_SOCKET, shared with the e2e tests


def version_info(binary):
    """herald --version as a dict: plugin_dir default, systemd notify."""
    res = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    assert res.returncode == 0, res.stderr
    info = {}
    for line in res.stdout.splitlines()[1:]:
        k, _, v = line.partition(": ")
        info[k] = v
    return info


def staged_locales(plugin_dir, binary):
    """The staged catalogues: where the binary's default locales_dir is,
    under the root the staged plugin_dir is under."""
    info = version_info(binary)
    default = info["plugin_dir default"].lstrip("/").split("/")
    locales = info["locales_dir default"].lstrip("/").split("/")
    # The staged tree holds the default's last parts (all of them in a
    # package root, those below the prefix in a `cmake --install --prefix`).
    for lead in range(len(default)):
        tail = os.path.join(*default[lead:])
        if plugin_dir.endswith("/" + tail) and default[:lead] == locales[:lead]:
            return os.path.join(plugin_dir[:-len(tail)], *locales[lead:])
    raise AssertionError("%s is not the staged %s" % (plugin_dir, info["plugin_dir default"]))


def start_installed(test, e, binary, config, plugin_dir, notify=None):
    """Starts an installed herald on the installed example config, pointed at
    the test's redis and a free admin port (the only --set overrides besides
    the staged plugin, catalogue and outbox directories). Returns the harness.Herald."""
    cmd = [binary, "--config", config,
           "--set", "redis.url=" + e.redis.url,
           "--set", "admin.listen=127.0.0.1:%d" % e.admin_port,
           "--set", "daemon.plugin_dir=" + plugin_dir,
           "--set", "daemon.locales_dir=" + staged_locales(plugin_dir, binary),
           "--set", "provider outbox.dir=" + e.outbox]
    old = os.environ.get("NOTIFY_SOCKET")
    if notify:
        os.environ["NOTIFY_SOCKET"] = notify.path
    try:
        e.n_logs += 1
        h = harness.Herald(e, cmd, e.path("herald-%d.log" % e.n_logs))
    finally:
        if old is None:
            os.environ.pop("NOTIFY_SOCKET", None)
        else:
            os.environ["NOTIFY_SOCKET"] = old
    e.heralds.append(h)
    return h


def run_and_notify(test, e, binary, config, plugin_dir):
    """The installed daemon answers /healthz, tells systemd READY=1 with a
    status, then STOPPING=1 on SIGTERM, and exits 0."""
    notify = NotifySocket(e.path("notify.sock"))
    test.addCleanup(notify.close)
    h = start_installed(test, e, binary, config, plugin_dir, notify)
    h.wait_healthy()
    ready = harness.wait_for("READY=1 on NOTIFY_SOCKET", lambda: notify.saw("READY", "1"), 10)
    test.assertIn("serving on 127.0.0.1:%d" % e.admin_port, ready[0].get("STATUS", ""))
    test.assertEqual(notify.saw("STOPPING"), [], "STOPPING=1 before any signal")
    test.assertEqual(h.stop(), 0, h.log()[-2000:])
    test.assertTrue(notify.saw("STOPPING", "1"), "no STOPPING=1 on SIGTERM: %r" % notify.poll())
    return h


def main():
    harness.main()
