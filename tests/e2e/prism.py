"""prism.py - Prism (@stoplight/prism-cli, installed by `scripts/deps.sh --npm`
under .deps/) as a validating mock of a provider's published OpenAPI spec,
or (with upstream) as a validating proxy in front of herald's own API
(`prism proxy docs/openapi.yaml http://127.0.0.1:PORT --errors`): every
request and answer passing through is checked against the document, and
violations() lists what did not match.

Owns one `prism mock` (or `prism proxy`) process per Prism object: started on a free loopback
port, its output captured to a log file, stopped (and waited for) by stop().
It never edits a spec and never listens beyond 127.0.0.1. Invariant: once
start() returns, the mock answers on its port; after stop() the process is
gone (and it also dies with the test process, through PR_SET_PDEATHSIG).

Prism runs with --errors: a request that violates the spec gets a 4xx and
an `sl-violations` header, never a made-up success.
"""

import os
import subprocess
import urllib.error
import urllib.request

import harness

PRISM_BIN = os.environ.get("HERALD_PRISM_BIN", os.path.join(harness.ROOT, ".deps", "node_modules", ".bin", "prism"))
# The providers' published specs, copied into the repository with their
# licences (tests/e2e/specs/SOURCES.md says where each came from).
SPECS_DIR = os.environ.get("HERALD_PROVIDER_SPECS", os.path.join(os.path.dirname(os.path.abspath(__file__)), "specs"))


def available():
    """'' when Prism can run, else why not."""
    if not os.access(PRISM_BIN, os.X_OK):
        return "Prism not installed at %s (run scripts/deps.sh --npm)" % PRISM_BIN
    return ""


class Prism:
    def __init__(self, spec, log_path, upstream=None):
        self.spec = spec
        self.upstream = upstream   # proxy mode: the server Prism forwards to
        self.port = harness.free_port()
        self.log_path = log_path
        self.proc = None
        self.log_file = None

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def start(self, timeout=60, attempts=5):
        """Starts Prism; a port taken between free_port() and Prism's bind (other
        tests pick ports at the same time) is retried on a new port."""
        for attempt in range(attempts):
            try:
                return self._start_once(timeout)
            except AssertionError as e:
                if "EADDRINUSE" not in str(e) or attempt == attempts - 1:
                    raise
                self.port = harness.free_port()

    def _start_once(self, timeout):
        if self.log_file:
            self.log_file.close()
        self.log_file = open(self.log_path, "w")
        if self.upstream:
            argv = [PRISM_BIN, "proxy", "-h", "127.0.0.1", "-p", str(self.port), "--errors", self.spec, self.upstream]
        else:
            argv = [PRISM_BIN, "mock", "-h", "127.0.0.1", "-p", str(self.port), "--errors", self.spec]
        self.proc = subprocess.Popen(
            argv,
            stdout=self.log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=harness._die_with_parent, start_new_session=True)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("prism exited (%s):\n%s" % (self.proc.returncode, self.log()[-3000:]))
            try:
                urllib.request.urlopen(self.url + "/", timeout=2).close()
            except urllib.error.HTTPError:
                pass   # any HTTP answer (404 for an unknown path) means it is listening
            except OSError:
                return False
            return True
        # Prism prints "Prism is listening" once every route is mounted.
        harness.wait_for("prism on %s" % self.url,
                         lambda: up() and "Prism is listening" in self.log(), timeout, 0.2)
        return self

    def log(self):
        if self.log_file:
            self.log_file.flush()
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def requests(self, path_part=""):
        """How many requests Prism received (to paths containing path_part)."""
        n = 0
        for line in self.log().splitlines():
            if "Request received" in line and path_part in line:
                n += 1
        return n

    def violations(self):
        """Lines of the log where Prism found a request or an answer that does
        not match the document (errors and warnings alike): empty when all
        traffic passed clean. In proxy mode with --errors a violating answer
        is replaced by a 500 with an sl-violations header, and Prism logs it."""
        bad = []
        for line in self.log().splitlines():
            if "[HTTP SERVER] get / " in line:
                continue   # start()'s probe of "/", which no document has
            low = line.lower()
            if ("violation" in low or "\u2716" in line or " error " in low or "warning" in low
                    or "not valid" in low or "unable to match" in low):
                bad.append(line.strip())
        return bad

    def stop(self):
        if self.proc and self.proc.poll() is None:
            # Its own session: node and any child it spawned go together.
            try:
                os.killpg(self.proc.pid, 15)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        if self.log_file:
            self.log_file.close()
            self.log_file = None


def start_providers(state, tag):
    """Mocks of SendGrid's and Twilio's published specs for a test module's
    setUpModule: state["sg"], state["tw"] once both answer; state["all"]
    for stop_providers (the first one stopped again if the second fails)."""
    logdir = os.environ.get("TMPDIR", "/tmp")
    sg = Prism(os.path.join(SPECS_DIR, "tsg_mail_v3.json"),
               os.path.join(logdir, "herald-prism-%s-sendgrid-%d.log" % (tag, os.getpid())))
    tw = Prism(os.path.join(SPECS_DIR, "twilio_api_v2010.json"),
               os.path.join(logdir, "herald-prism-%s-twilio-%d.log" % (tag, os.getpid())))
    state["all"] = [sg, tw]
    try:
        sg.start()
        tw.start()
    except Exception:
        stop_providers(state)
        raise
    state["sg"], state["tw"] = sg, tw


def stop_providers(state):
    """tearDownModule's half of start_providers: each mock stopped, its log
    removed unless HERALD_E2E_KEEP is set."""
    for p in state.get("all", []):
        p.stop()
        if os.path.exists(p.log_path) and not os.environ.get("HERALD_E2E_KEEP"):
            os.unlink(p.log_path)
