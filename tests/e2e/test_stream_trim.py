"""[retention]: herald deletes by age the audit records, the campaign events
and the suppression changes older than `audit`, and the dead letters older
than `dead_letters` (30 days by default), at start and after a reload (and
each minute, which this test does not wait for). Entries are seeded with
stream ids in the past, as Redis would have given them then: an entry's id
is the time it was added. Nothing younger, and no other stream, is touched;
what was deleted is counted on /metrics."""

import os
import re
import signal
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

DAY_MS = 86400 * 1000


def metric(port, name, labels):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as resp:
        text = resp.read().decode()
    m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
    return float(m.group(1)) if m else None


def ids(r, key):
    return [i for i, _ in r.xrange(key)]


class Retention(harness.HeraldTestCase):

    def seed(self, e, key, ages_days):
        """One entry per age (days before now, with a few ms apart), oldest
        first; returns their ids. The layout key says these are a daemon's
        of this version (an audit stream alone would read as layout 1)."""
        e.r.set("herald:layout", harness.LAYOUT)
        now = int(time.time() * 1000)
        out = []
        for n, age in enumerate(ages_days):
            eid = "%d-%d" % (now - int(age * DAY_MS), n)
            out.append(e.r.xadd(key, {"seeded": str(age)}, id=eid))
        return out

    def test_trims_by_age_at_start_and_at_reload(self):
        e = self.env(log_level="info")
        audit = self.seed(e, "herald:audit", [400, 2, 0.5])
        events = self.seed(e, "herald:events", [3, 0.5])
        admin = self.seed(e, "herald:admin", [3, 0.5])
        dead = self.seed(e, "herald:dead", [31, 29, 0.5])
        jobs_before = e.r.xlen("herald:jobs")
        e.r.xadd("herald:other", {"seeded": "old"}, id="1000-0")   # not herald's to trim

        h = e.start_herald(sets=["retention.audit=1d"])
        harness.wait_for("the first trim", lambda: len(ids(e.r, "herald:dead")) == 2 or None, 20)
        harness.wait_for("the audit trimmed", lambda: len(ids(e.r, "herald:audit")) == 1 or None, 10)
        self.assertEqual(ids(e.r, "herald:audit"), audit[2:], "older than 1d: deleted; younger: kept")
        self.assertEqual(ids(e.r, "herald:events"), events[1:])
        self.assertEqual(ids(e.r, "herald:admin"), admin[1:])
        self.assertEqual(ids(e.r, "herald:dead"), dead[1:], "dead letters: 30 days by default")
        self.assertEqual(ids(e.r, "herald:other"), ["1000-0"])
        self.assertEqual(e.r.xlen("herald:jobs"), jobs_before)
        for stream, n in (("audit", 2), ("events", 1), ("admin", 1), ("dead", 1)):
            self.assertEqual(metric(e.admin_port, "herald_retention_trimmed_total", '{stream="%s"}' % stream), n,
                             stream)

        # a reload with a shorter age applies at once
        with open(e.config, "a") as f:
            f.write("\n[retention]\naudit = 1d\ndead_letters = 1d\n")
        h.signal(signal.SIGHUP)
        harness.wait_for("the dead letters trimmed to 1 day", lambda: ids(e.r, "herald:dead") == dead[2:] or None, 20)
        self.assertEqual(metric(e.admin_port, "herald_retention_trimmed_total", '{stream="dead"}'), 2)
        self.assertEqual(ids(e.r, "herald:audit"), audit[2:])
        self.assertEqual(h.stop(), 0)

    def test_what_a_group_still_needs_is_kept(self):
        """An event a consumer group has not read, or read and not
        acknowledged (not yet POSTed to [events] url: herald-events), stays
        however old; what every group has had goes."""
        e = self.env(log_level="info")
        events = self.seed(e, "herald:events", [5, 4, 3, 2, 0.5])
        e.r.xgroup_create("herald:events", "herald-events", id=events[1])     # A, B delivered
        got = e.r.xreadgroup("herald-events", "c1", {"herald:events": ">"}, count=1)
        self.assertEqual(got[0][1][0][0], events[2])                          # C read, not acked
        h = e.start_herald(sets=["retention.audit=1d"])
        harness.wait_for("A and B deleted", lambda: ids(e.r, "herald:events") == events[2:] or None, 20)
        self.assertEqual(metric(e.admin_port, "herald_retention_trimmed_total", '{stream="events"}'), 2)

        e.r.xack("herald:events", "herald-events", events[2])
        with open(e.config, "a") as f:
            f.write("\n[retention]\naudit = 1d\n")
        h.signal(signal.SIGHUP)   # a round at once: C acked, D (2 days) never read by the group
        harness.wait_for("C deleted", lambda: ids(e.r, "herald:events") == events[3:] or None, 20)
        self.assertEqual(h.stop(), 0)

    def test_empty_keeps_everything(self):
        """dead_letters empty, then audit empty (the default): nothing of that
        stream is deleted for its age, however old, while the other one is
        trimmed in the same round (which shows that the round ran)."""
        e = self.env(log_level="info")
        audit = self.seed(e, "herald:audit", [3000, 1500, 1])
        dead = self.seed(e, "herald:dead", [3000, 40, 1])
        base = e.config_text()
        e.write("herald.conf", base + "\n[retention]\naudit = 2000d\ndead_letters =\n")
        h = e.start_herald()
        harness.wait_for("the audit trimmed", lambda: ids(e.r, "herald:audit") == audit[1:] or None, 20)
        self.assertEqual(ids(e.r, "herald:dead"), dead, "dead letters kept forever")

        e.write("herald.conf", base + "\n[retention]\naudit =\n")
        h.signal(signal.SIGHUP)
        harness.wait_for("the dead letters trimmed", lambda: ids(e.r, "herald:dead") == dead[2:] or None, 20)
        self.assertEqual(ids(e.r, "herald:audit"), audit[1:], "no audit age by default")
        self.assertEqual(metric(e.admin_port, "herald_retention_trimmed_total", '{stream="audit"}'), 1)
        self.assertEqual(h.stop(), 0)

    def test_trim_refused_is_logged_once_and_herald_goes_on(self):
        """A Redis user without XTRIM: one line naming the command, the daemon
        keeps working, nothing deleted."""
        e = self.env(log_level="info")
        dead = self.seed(e, "herald:dead", [40])
        e.r.execute_command("ACL", "SETUSER", "default", "-xtrim")
        self.addCleanup(lambda: e.r.execute_command("ACL", "SETUSER", "default", "+xtrim"))
        h = e.start_herald()
        harness.wait_for("the refusal logged", lambda: "trimming stream=dead by age failed" in h.log() or None, 20)
        self.assertEqual(ids(e.r, "herald:dead"), dead)
        self.assertEqual(h.log().count("by age failed"), 1, "one line while it lasts")
        self.assertEqual(h.healthz()[0], 200)
        self.assertEqual(h.stop(), 0)


if __name__ == "__main__":
    harness.main()
