"""heraldctl's progress: `campaign ID --watch` prints one plain key=value
line per second when stdout is not a terminal and redraws one line with a
bar in place on a terminal (a pty), until the campaign is done; `import`
draws its progress on stderr only when stderr is a terminal, and its summary
on stdout either way.
"""

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import tty

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import job, person  # noqa: E402

PLAIN = re.compile(r"^campaign=(\S+) state=(\S+) total=(\d+) sent=(\d+) suppressed=(\d+) deferred=(\d+) "
                   r"failed=(\d+) unknown=(\d+) pending=(\d+) rate=(\S+)/s left=(\S+)$")


def people(n, prefix):
    return [person("%s%d" % (prefix, i), email="%s%d.progress@example.com" % (prefix, i), channels=["email"],
                   consent=["email"], first_name="P%d" % i) for i in range(n)]


def read_pty(master, proc, timeout):
    """Everything the child wrote to the pty until it exited."""
    out = b""
    deadline = time.monotonic() + timeout * harness.SLOW
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed its side
                break
            if not data:
                break
            out += data
        elif proc.poll() is not None:
            break
    return out


class Progress(harness.HeraldTestCase):

    def ctl_cmd(self, e, *args):
        return [harness.HERALDCTL_BIN, "--config", e.config] + list(args)

    def test_watch_plain_lines_until_done(self):
        e = self.env()
        n = 5
        e.import_people(people(n, "p-w"))
        e.enqueue(job("watch-1", recipients=["p-w%d" % i for i in range(n)] + ["p-ghost"], channels=["email"]))
        proc = subprocess.Popen(self.ctl_cmd(e, "campaign", "watch-1", "--watch"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        # Nothing runs the campaign yet: the watch reports it queued and keeps going.
        first = proc.stdout.readline()
        m = PLAIN.match(first.rstrip("\n"))
        self.assertTrue(m, first)
        self.assertEqual(m.group(1, 2, 3, 4, 9, 11), ("watch-1", "queued", "0", "0", "0", "--"))
        second = proc.stdout.readline()
        self.assertTrue(PLAIN.match(second.rstrip("\n")), second)
        self.assertIsNone(proc.poll(), "the watch ended before the campaign did")
        h = e.start_herald()
        out, err = proc.communicate(timeout=60 * harness.SLOW)
        self.assertEqual(proc.returncode, 0, err)
        self.assertEqual(err, "")
        lines = (first + second + out).splitlines()
        for line in lines:
            self.assertTrue(PLAIN.match(line), line)
            self.assertNotIn("\x1b", line)
        last = PLAIN.match(lines[-1])
        self.assertEqual(last.group(2, 3, 4, 5, 7, 9), ("done", "6", "5", "1", "0", "0"))
        self.assertEqual(last.group(11), "0s")
        self.assertEqual([l for l in lines if "state=done" in l], [lines[-1]], "it stops at the first done")
        self.assertEqual(h.stop(), 0)

    def test_watch_unknown_campaign(self):
        e = self.env()
        res = e.ctl("campaign", "no-such-campaign", "--watch")
        self.assertEqual(res.returncode, 1)
        self.assertEqual(res.stdout, "")
        self.assertIn("campaign no-such-campaign: no such campaign", res.stderr)
        # A wrong flag is a usage error, not a watch.
        res = e.ctl("campaign", "x", "--wach")
        self.assertEqual(res.returncode, 2)

    def test_watch_redraws_on_a_terminal(self):
        e = self.env()
        n = 4
        e.import_people(people(n, "p-t"))
        e.enqueue(job("watch-tty", recipients=["p-t%d" % i for i in range(n)], channels=["email"]))
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # 120 columns
        tty.setraw(slave)  # no \n -> \r\n: the bytes as heraldctl wrote them
        proc = subprocess.Popen(self.ctl_cmd(e, "campaign", "--watch", "watch-tty"), stdout=slave,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        os.close(slave)
        self.addCleanup(os.close, master)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        # The first frame arrives before anything runs the campaign.
        r, _, _ = select.select([master], [], [], 10 * harness.SLOW)
        self.assertTrue(r, "no first frame")
        first = os.read(master, 65536).decode()
        h = e.start_herald()
        out = first + read_pty(master, proc, 60).decode()
        self.assertEqual(proc.wait(10), 0, proc.stderr.read())
        frames = [f.replace("\x1b[K", "") for f in out.split("\r") if f]
        self.assertGreaterEqual(len(frames), 2, repr(out))
        self.assertTrue(frames[0].startswith("watch-tty queued ["), frames[0])
        self.assertIn("] 0% 0/0  sent 0", frames[0])  # the total is known once it runs
        self.assertIn("left", frames[0])
        last = frames[-1]
        self.assertTrue(last.startswith("watch-tty done [####"), last)
        self.assertIn("100% 4/4  sent 4  suppressed 0  deferred 0  failed 0", last)
        self.assertTrue(last.endswith("\n"), "the last frame stays on screen: %r" % last)
        self.assertEqual(out.count("\n"), 1, "frames are redrawn in place, one line in all")
        # Lines fit the terminal (one column spare: no wrap at the last).
        self.assertTrue(all(len(f.rstrip("\n")) <= 119 for f in frames), frames)
        self.assertEqual(h.stop(), 0)

    def test_watch_interrupted_ends_its_line(self):
        e = self.env()
        e.import_people(people(1, "p-x"))
        e.enqueue(job("watch-int", recipients=["p-x0"], channels=["email"]))
        master, slave = pty.openpty()
        tty.setraw(slave)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
        proc = subprocess.Popen(self.ctl_cmd(e, "campaign", "watch-int", "--watch"), stdout=slave,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
        os.close(slave)
        self.addCleanup(os.close, master)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        r, _, _ = select.select([master], [], [], 10 * harness.SLOW)
        self.assertTrue(r, "no first frame")
        out = os.read(master, 65536)
        proc.send_signal(signal.SIGINT)  # Ctrl-C
        out += read_pty(master, proc, 10)
        self.assertEqual(proc.wait(10), 130)
        self.assertTrue(out.startswith(b"\rwatch-int queued ["), out)
        self.assertTrue(out.endswith(b"\n"), "the prompt must not land on the progress line: %r" % out[-40:])

    def test_import_progress_only_on_a_terminal(self):
        e = self.env()
        n = 700  # three windows of 256
        rows = people(n, "p-i")
        for p in rows:
            e.remember(p)
        path = e.write_jsonl("people.jsonl", rows)
        with open(path, "a") as f:
            f.write("{not json\n")
        # stderr a pipe: the bad line and nothing else; the summary on stdout.
        res = e.ctl("import", path)
        self.assertEqual(res.returncode, 1)
        self.assertEqual(res.stdout, "imported %d, skipped 1\n" % n)
        self.assertRegex(res.stderr, r"^%s:%d: not valid JSON \(column \d+\)\n$" % (re.escape(path), n + 1))
        # stderr a terminal: progress frames, cleared before the error line and the end.
        master, slave = pty.openpty()
        tty.setraw(slave)
        proc = subprocess.Popen([harness.HERALDCTL_BIN, "--config", e.config, "import", path],
                                stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL)
        os.close(slave)
        self.addCleanup(os.close, master)
        err = read_pty(master, proc, 60).decode()
        out = proc.stdout.read().decode()
        self.assertEqual(proc.wait(10), 1)
        self.assertEqual(out, "imported %d, skipped 1\n" % n)
        frames = [f for f in err.split("\r") if f.startswith("import [")]
        self.assertGreaterEqual(len(frames), 1, repr(err))
        self.assertRegex(frames[0], r"^import \[[#.]+\] \d+% line 256  imported 256  skipped 0 ")
        # Before the error line and at the end the progress line is taken off the screen.
        self.assertIn("\r\x1b[K%s:%d: not valid JSON (column " % (path, n + 1), err)
        # Frames and clears taken out, what is left is what a pipe gets.
        rest = re.sub(r"\rimport \[[^\r\n]*\x1b\[K", "", err).replace("\r\x1b[K", "")
        self.assertEqual(rest, res.stderr)
        for p in rows[:3]:
            self.assertNotIn(p["email"], err)


if __name__ == "__main__":
    harness.main()
