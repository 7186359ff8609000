"""harness.py - what herald's end-to-end tests share.

Each test gets an Env: its own redis-server on a free loopback port in a temp
dir, its own config file (plugin_dir from the environment, the outbox in the
temp dir, the admin API on a free port), and helpers to run heraldctl and to
start and stop herald with its stderr captured to a file. Everything started
is killed when the test ends, passes or fails (and, through PR_SET_PDEATHSIG,
when the Python process itself is killed by a CTest timeout).

Waiting is always bounded polling (wait_for); a fixed sleep is never an
assertion. At teardown every herald log is checked for the secrets the test
registered (email addresses, phone numbers, message bodies): logs must carry
ids only.

The admin API's traffic can go through Prism in proxy mode (Env.api_url):
every request and answer is then checked against docs/openapi.yaml, and a
test whose traffic broke the contract fails at teardown with Prism's lines.

Environment (set by tests/e2e/CMakeLists.txt; defaults point into build/):
  HERALD_BIN, HERALDCTL_BIN, HERALD_PLUGIN_DIR
  HERALD_E2E_KEEP=1   keep the temp dir of each test (its path is printed)
  HERALD_E2E_PRISM=0  Env.api_url() goes straight to herald, never through Prism
"""

import ctypes
import fcntl
import json
import hashlib
import hmac
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HERALD_BIN = os.environ.get("HERALD_BIN", os.path.join(ROOT, "build", "herald"))
HERALDCTL_BIN = os.environ.get("HERALDCTL_BIN", os.path.join(ROOT, "build", "heraldctl"))
PLUGIN_DIR = os.environ.get("HERALD_PLUGIN_DIR", os.path.join(ROOT, "build", "channels"))
LOCALES_DIR = os.path.join(ROOT, "config", "locales")  # the shipped catalogues
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
OPENAPI = os.path.join(ROOT, "docs", "openapi.yaml")
PRISM_API = os.environ.get("HERALD_E2E_PRISM", "1") != "0"

# Sanitizer builds are slower: scale every deadline.
SLOW = 2.0 if os.environ.get("ASAN_OPTIONS") or "asan" in HERALD_BIN else 1.0

TERMINAL = ("sent", "suppressed", "failed", "unknown")
CLK_TCK = os.sysconf("SC_CLK_TCK")

_libc = ctypes.CDLL(None, use_errno=True)


# Configs hold secrets (the admin token, link_secret): herald refuses one that
# group or others may read, as ssh refuses such a key. Every file a test
# writes is its own alone.
os.umask(0o077)


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when the test process dies."""
    _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _ephemeral_start():
    """The first port the kernel hands out on its own (to every outgoing
    connection's local end: a client of Redis, curl to a sink)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


_PORTS_LOW = 10000
_PORTS_HIGH = max(_PORTS_LOW + 1000, _ephemeral_start())


def _port_lock_dir():
    d = os.path.join(tempfile.gettempdir(), "herald-test-ports")
    if not os.path.isdir(d):
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o1777)   # shared by every user's tests, as /tmp is
    return d


_port_locks = {}   # port -> open file whose flock says "this process holds it"


def _hold_port(port):
    """Claims `port` for this process among every test process of the machine:
    an exclusive flock on a file named after it, held until the process ends
    (the kernel drops it then, however the process ends). Between two uses of
    one port (a daemon stopped, then started again on it) no other test can
    draw it, which the bind check alone cannot promise."""
    try:
        f = open(os.path.join(_port_lock_dir(), str(port)), "a")
    except OSError:   # no lock to take (another user's file): the bind check alone
        _port_locks[port] = None
        return True
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        return False
    _port_locks[port] = f
    return True


def free_port():
    """A loopback port free now and held for this process until it ends.
    Drawn at random below the kernel's ephemeral range: a port the kernel
    picks (bind to 0) is also what it gives the next outgoing connection's
    local end, and one of the tests running beside this one could take it
    before the server that was given it binds ("address already in use").
    Held (_hold_port) because a test stops a daemon and starts it again on
    the same ports: the test running beside it must not draw one meanwhile.
    Never handed out twice in one process: the admin and public listeners of
    one test must not share one."""
    rng = random.SystemRandom()
    while True:
        port = rng.randrange(_PORTS_LOW, _PORTS_HIGH)
        if port in _port_locks:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        if not _hold_port(port):
            continue
        return port


def wait_for(what, predicate, timeout, interval=0.1):
    """Poll predicate() until it returns something truthy; return it.
    Raises AssertionError naming `what` after `timeout` seconds (scaled)."""
    deadline = time.monotonic() + timeout * SLOW
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0fs waiting for %s (last: %r)" % (timeout * SLOW, what, last))
        time.sleep(interval)


def cpu_ticks(pid):
    """utime + stime of a process, in clock ticks (/proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


class RedisServer:
    """A private redis-server on 127.0.0.1, no persistence unless asked."""

    def __init__(self, datadir, port=None, extra_args=()):
        self.datadir = datadir
        self.extra_args = list(extra_args)   # e.g. ["--enable-debug-command", "yes"]
        self.fixed_port = port is not None   # a restart must come back on the same port
        self.port = port or free_port()
        self.proc = None
        self.log_path = os.path.join(datadir, "redis.log")
        os.makedirs(datadir, exist_ok=True)

    @property
    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def start(self, attempts=5):
        """Starts redis-server; a port another test took between free_port() and
        the bind is retried on a new one (unless the port is fixed)."""
        for attempt in range(attempts):
            try:
                self._start_once()
                self.fixed_port = True   # herald knows this port now: restarts reuse it
                return self
            except AssertionError as e:
                if self.fixed_port or "in use" not in str(e) or attempt == attempts - 1:
                    raise
                self.port = free_port()

    def _start_once(self):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", self.datadir, "--daemonize", "no", "--protected-mode", "yes"] + self.extra_args,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        log.close()
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1)

        def up():
            if self.proc.poll() is not None:
                raise AssertionError("redis-server exited: %s" % open(self.log_path).read()[-2000:])
            try:
                return client.ping()
            except redis.exceptions.RedisError:
                return False
        wait_for("redis-server on port %d" % self.port, up, 10, 0.05)
        client.close()
        time.sleep(0.05)
        if self.proc.poll() is not None:   # the answer came from someone else's server
            raise AssertionError("redis-server exited: %s" % open(self.log_path).read()[-2000:])
        return self

    def stop(self, kill=False):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class RedisCluster:
    """A private Redis Cluster on 127.0.0.1: `masters` masters with `replicas`
    replicas each (3 + 3 by default), every node a redis-server of its own
    with cluster-enabled yes and no persistence, in datadir/node-<port>.

    seeds is the `[redis] cluster` value; client() a cluster-aware redis-py
    client; node(port) a plain client of one node. kill_master(i) kill -9s
    the i-th master (by slot order) and waits until a replica serves its
    slots; reshard() moves slots with redis-cli --cluster reshard in the
    background (returns the Popen, wait() it). stop() kills every node."""

    def __init__(self, datadir, masters=3, replicas=1, extra_args=()):
        self.datadir = datadir
        self.n_masters = masters
        self.n_replicas = replicas
        self.extra_args = list(extra_args)
        self.nodes = {}   # port -> Popen (killed nodes are gone from it)
        self._client = None
        os.makedirs(datadir, exist_ok=True)

    # --- start and stop ---------------------------------------------------

    def _start_node(self, port):
        d = os.path.join(self.datadir, "node-%d" % port)
        os.makedirs(d, exist_ok=True)
        log = open(os.path.join(d, "redis.log"), "ab")
        proc = subprocess.Popen(
            [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no",
             "--dir", d, "--daemonize", "no", "--protected-mode", "yes",
             "--cluster-enabled", "yes", "--cluster-config-file", os.path.join(d, "nodes.conf"),
             "--cluster-port", str(free_port()),   # not port + 10000, which may be taken or too high
             "--cluster-node-timeout", "1000"] + self.extra_args,
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        log.close()
        client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)

        def up():
            if proc.poll() is not None:
                raise AssertionError("redis-server (cluster node %d) exited: %s"
                                     % (port, open(os.path.join(d, "redis.log")).read()[-2000:]))
            try:
                return client.ping()
            except redis.exceptions.RedisError:
                return False
        try:
            wait_for("cluster node on port %d" % port, up, 10, 0.05)
        finally:
            client.close()
        self.nodes[port] = proc

    def start(self):
        total = self.n_masters * (1 + self.n_replicas)
        for _ in range(total):
            for attempt in range(5):   # a port taken between free_port() and the bind: another one
                try:
                    self._start_node(free_port())
                    break
                except AssertionError as e:
                    if "in use" not in str(e) or attempt == 4:
                        raise
        addrs = ["127.0.0.1:%d" % p for p in self.nodes]
        res = subprocess.run(["redis-cli", "--cluster", "create"] + addrs
                             + ["--cluster-replicas", str(self.n_replicas), "--cluster-yes"],
                             capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        if res.returncode != 0:
            raise AssertionError("redis-cli --cluster create failed:\n%s%s" % (res.stdout, res.stderr))
        self.wait_ok()
        # And every replica past its first sync: a WAIT before that answers 0
        # (a loaded machine takes seconds), and a failover would find none ready.
        self.wait_synced()
        return self

    def wait_ok(self, timeout=30):
        """Every live node says cluster_state:ok and agrees on the masters'
        slots (all 16384 covered)."""
        def ok():
            for port in self.nodes:
                try:
                    with redis.Redis(host="127.0.0.1", port=port, socket_timeout=1) as c:
                        if c.execute_command("CLUSTER INFO").get("cluster_state") != "ok":
                            return False
                except redis.exceptions.RedisError:
                    return False
            return sum(hi - lo + 1 for _, ranges in self.masters() for lo, hi in ranges) == 16384
        wait_for("the cluster to say cluster_state:ok", ok, timeout, 0.1)
        if self._client is not None:
            self._client.close()
            self._client = None

    def stop(self):
        if self._client is not None:
            self._client.close()
            self._client = None
        for proc in self.nodes.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.nodes = {}

    # --- what tests use ---------------------------------------------------

    @property
    def seeds(self):
        """The `[redis] cluster` value: every live node (any one would do)."""
        return ", ".join("127.0.0.1:%d" % p for p in self.nodes)

    def node(self, port):
        return redis.Redis(host="127.0.0.1", port=port, decode_responses=True, socket_timeout=10)

    def client(self):
        """A cluster-aware redis-py client (follows MOVED/ASK itself). kill_master(),
        move_slot() and wait_ok() close it: call client() again after them."""
        if self._client is None:
            self._client = redis.RedisCluster(host="127.0.0.1", port=next(iter(self.nodes)),
                                                      decode_responses=True, socket_timeout=10)
        return self._client

    def _shards(self):
        """CLUSTER SLOTS from any live node: [(lo, hi, master port, [replica ports])]."""
        for port in self.nodes:
            try:
                with redis.Redis(host="127.0.0.1", port=port, socket_timeout=2) as c:
                    rows = c.execute_command("CLUSTER SLOTS")
            except redis.exceptions.RedisError:
                continue
            out = []
            for row in rows:
                if isinstance(row, dict):   # redis-py may parse it into {(lo, hi): {...}}
                    raise AssertionError("unexpected CLUSTER SLOTS shape")
                lo, hi, master = row[0], row[1], row[2]
                out.append((int(lo), int(hi), int(master[1]), [int(r[1]) for r in row[3:]]))
            return out
        raise AssertionError("no cluster node answers CLUSTER SLOTS")

    def masters(self):
        """[(master port, [(lo, hi), ...])] ordered by lowest slot."""
        by = {}
        for lo, hi, port, _ in self._shards():
            by.setdefault(port, []).append((lo, hi))
        return sorted(((p, sorted(r)) for p, r in by.items()), key=lambda m: m[1][0][0])

    def master_of(self, key):
        """The port of the master serving key now."""
        slot = self.slot(key)
        for lo, hi, port, _ in self._shards():
            if lo <= slot <= hi:
                return port
        raise AssertionError("no master serves slot %d" % slot)

    def slot(self, key):
        with self.node(next(iter(self.nodes))) as c:
            return int(c.execute_command("CLUSTER KEYSLOT", key))

    def node_id(self, port):
        with self.node(port) as c:
            return c.execute_command("CLUSTER MYID")

    def wait_synced(self, timeout=30, masters=None):
        """Every replica of masters (ports; None: all) finished its first
        sync: one that did not must not take over, and CLUSTER SLOTS leaves
        it out while it loads."""
        def synced():
            for lo, hi, p, rs in self._shards():
                if masters is not None and p not in masters:
                    continue
                if self.n_replicas and not rs:
                    return False
                for r in rs:
                    try:
                        with self.node(r) as c:
                            if c.info("replication").get("master_link_status") != "up":
                                return False
                    except redis.exceptions.RedisError:
                        return False
            return True
        wait_for("the replicas in sync", synced, timeout, 0.1)

    def kill_master(self, i, timeout=30):
        """kill -9 the i-th master (masters() order); wait until one of its
        replicas is promoted and the cluster is ok again. Returns (killed port,
        promoted port)."""
        port, ranges = self.masters()[i]
        self.wait_synced(timeout, [port])
        replicas = [r for lo, hi, p, rs in self._shards() if p == port for r in rs]
        proc = self.nodes.pop(port)
        proc.kill()
        proc.wait()
        new = self._wait_promoted(port, ranges[0][0], timeout)
        self.wait_ok(timeout)
        assert new in replicas or not replicas, (new, replicas)
        return port, new

    def _wait_promoted(self, port, slot, timeout):
        """Waits until a live node other than port serves slot; returns its port."""
        def promoted():
            try:
                shards = self._shards()
            except AssertionError:
                return None
            for a, b, p, _ in shards:
                if a <= slot <= b and p != port and p in self.nodes:
                    return p
            return None
        return wait_for("a replica of master %d to be promoted" % port, promoted, timeout, 0.1)

    def stall_master(self, i, seconds, timeout=30):
        """SIGSTOP the i-th master (masters() order) for `seconds`, longer
        than the node timeout: one of its replicas is promoted meanwhile,
        and the old master comes back as a replica of it (what a loaded
        machine or a long fork can do). Returns (stalled port, promoted port)."""
        port, ranges = self.masters()[i]
        self.wait_synced(timeout, [port])
        proc = self.nodes[port]
        os.kill(proc.pid, signal.SIGSTOP)
        try:
            new = self._wait_promoted(port, ranges[0][0], timeout)
            time.sleep(max(0.0, seconds))
        finally:
            os.kill(proc.pid, signal.SIGCONT)
        self.wait_ok(timeout)
        return port, new

    def reshard(self, slots, src, dst):
        """Move `slots` slots from master port src to master port dst with
        redis-cli --cluster reshard, in the background: returns the Popen."""
        return subprocess.Popen(
            ["redis-cli", "--cluster", "reshard", "127.0.0.1:%d" % src,
             "--cluster-from", self.node_id(src), "--cluster-to", self.node_id(dst),
             "--cluster-slots", str(slots), "--cluster-yes", "--cluster-pipeline", "100"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
            preexec_fn=_die_with_parent)

    def move_slot(self, slot, src, dst):
        """Move one slot and its keys from master port src to dst by hand
        (SETSLOT IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE), as an operator
        would: the keys answer MOVED from src afterwards."""
        src_id, dst_id = self.node_id(src), self.node_id(dst)
        with self.node(src) as s, self.node(dst) as d:
            d.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", src_id)
            s.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", dst_id)
            while True:
                keys = s.execute_command("CLUSTER GETKEYSINSLOT", slot, 100)
                if not keys:
                    break
                s.execute_command("MIGRATE", "127.0.0.1", dst, "", 0, 10000, "KEYS", *keys)
            for port in list(self.nodes):
                with self.node(port) as c:
                    try:
                        c.execute_command("CLUSTER SETSLOT", slot, "NODE", dst_id)
                    except redis.exceptions.ResponseError:
                        pass   # a replica refuses SETSLOT: it learns from its master
        self.wait_ok()


class NotifySocket:
    """A unix datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setblocking(False)
        self.messages = []

    def poll(self):
        """Reads what arrived; returns every message so far (each a dict)."""
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return self.messages
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            self.messages.append(fields)

    def saw(self, key, value=None):
        return [m for m in self.poll() if key in m and (value is None or m[key] == value)]

    def close(self):
        self.sock.close()


class Herald:
    """One running herald process, its stderr in log_path."""

    def __init__(self, env, args, log_path, admin_port=None):
        self.env = env
        self.admin_port = admin_port or env.admin_port  # its own, when started with other_listeners()
        self.log_path = log_path
        self.args = args
        self.log_file = open(log_path, "ab")
        self.proc = subprocess.Popen(args, stdout=self.log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent)
        self.pid = self.proc.pid

    def running(self):
        return self.proc.poll() is None

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def log_lines(self):
        return self.log().splitlines()

    def healthz(self):
        """(status code, parsed JSON or None); (None, None) if nothing answers."""
        url = "http://127.0.0.1:%d/healthz" % self.admin_port
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                body = resp.read()
                code = resp.status
        except urllib.error.HTTPError as e:
            body = e.read()
            code = e.code
        except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
            return None, None
        try:
            return code, json.loads(body)
        except ValueError:
            return code, None

    def wait_healthy(self, timeout=20):
        def ok():
            if not self.running():
                raise AssertionError("herald exited with %s before it was healthy; log:\n%s"
                                     % (self.proc.returncode, self.log()[-4000:]))
            code, body = self.healthz()
            return code == 200 and body and body.get("status") == "ok"
        wait_for("herald /healthz to answer 200 status ok", ok, timeout)
        return self

    def cpu_ticks(self):
        return cpu_ticks(self.pid)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout):
        """Wait for the process to end; return its exit code (AssertionError if it does not)."""
        try:
            return self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            raise AssertionError("herald did not exit within %.0fs; log tail:\n%s" % (timeout * SLOW, self.log()[-3000:]))

    def stop(self, timeout=20):
        """SIGTERM and wait: returns the exit code."""
        if self.running():
            self.signal(signal.SIGTERM)
        return self.wait_exit(timeout)

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log_file.close()


BASE_CONFIG = """\
# herald e2e config (written by tests/e2e/harness.py)
[daemon]
plugin_dir = {plugin_dir}
locales_dir = {locales_dir}
log_level = {log_level}
drain_timeout = {drain_timeout}

[redis]
url = {redis_url}

[admin]
listen = 127.0.0.1:{admin_port}
token = e2e-admin-token-0123456789
link_secret = e2e-link-secret-0123456789

[public]
listen = 127.0.0.1:{public_port}

[privacy]
key_file = keys

[channel email]
providers = outbox

[channel sms]
providers = outbox

[provider outbox]
plugin = outbox
dir = outbox
"""

# The [privacy] key_file of every Env ("keys" beside herald.conf): one key,
# so that contact data is stored encrypted as in production.
E2E_KEY = "e2e1 " + "5a" * 32


HOOK_SECRET = "e2e-webhook-secret-0123456789"

HOOK_PROVIDERS = """\
[channel email]
providers = {providers}

[channel sms]
providers = outbox

[provider outbox]
plugin = outbox
dir = outbox

[provider hook]
plugin = webhook
url = {url}
secret = %s
{extra}
""" % HOOK_SECRET


LINK_SECRET = "e2e-link-secret-0123456789"
INDEX_SHARDS = 16   # daemon/addrindex.h


def index_key(secret=LINK_SECRET):
    """The index key of a config without [privacy] index_key_file."""
    return hmac.new(secret.encode(), b"herald index key", hashlib.sha256).digest()


def plain_member(channel, normalised):
    """A layout 2 member: "<channel>:<sha256 hex of the normalised address>"."""
    return "%s:%s" % (channel, hashlib.sha256(normalised.encode()).hexdigest())


def index_member(channel, normalised, key=None):
    """The keyed member (layout 3) of a normalised address: 16 bytes."""
    return hmac.new(key or index_key(), plain_member(channel, normalised).encode(), hashlib.sha256).digest()[:16]


def index_shard_key(kind, member, prefix="herald"):
    """kind: addr, suppress, suppress:info, tombstones. The address index
    is in buckets by the member's first 12 bits (layout 4), under the
    shard's hash tag."""
    key = "%s:%s:{i%x}" % (prefix, kind, member[0] >> 4)
    return key + ":%03x" % (member[0] << 4 | member[1] >> 4) if kind == "addr" else key


class Env:
    """Everything one test runs against. Use through HeraldTestCase.env()."""

    def __init__(self, name, log_level="debug", drain_timeout="5s", redis_args=(), cluster=False):
        """cluster: a RedisCluster (3 masters + 3 replicas) instead of one
        redis-server; the config names its seeds ([redis] cluster), self.r is
        a cluster-aware client and self.redis the RedisCluster."""
        self.dir = tempfile.mkdtemp(prefix="herald-e2e-%s-" % name)
        self.cluster = cluster
        if cluster:
            self.redis = RedisCluster(os.path.join(self.dir, "redis"), extra_args=redis_args).start()
            self.r = self.redis.client()
        else:
            self.redis = RedisServer(os.path.join(self.dir, "redis"), extra_args=redis_args).start()
            self.r = redis.Redis(host="127.0.0.1", port=self.redis.port, decode_responses=True, socket_timeout=10)
        # Bytes as stored: the keyed indexes' members and a person's encrypted
        # fields are binary, not text.
        self.rb = (redis.RedisCluster(host="127.0.0.1", port=next(iter(self.redis.nodes)), socket_timeout=10)
                   if cluster else redis.Redis(host="127.0.0.1", port=self.redis.port, socket_timeout=10))
        self.admin_port = free_port()
        self.public_port = free_port()   # [public] listen: the link pages and the provider webhooks
        self.outbox = os.path.join(self.dir, "outbox")   # `dir = outbox`, relative to the config file
        self.log_level = log_level
        self.drain_timeout = drain_timeout
        self.write_keys(E2E_KEY + "\n")
        self.config = self.write_config(BASE_CONFIG, "herald.conf")
        self.heralds = []
        self.secrets = set()   # text that must never appear in a herald log
        self.n_logs = 0
        self.prism = None      # the Prism proxy in front of the admin API, once api_url() started it

    # --- the admin API, through Prism --------------------------------------

    def api_url(self, direct=False):
        """The admin API's base URL. Through a Prism proxy validating every
        request and answer against docs/openapi.yaml (started at first use,
        stopped with the Env; the test fails at teardown on any violation),
        unless direct: for a request the test sends against the contract on
        purpose (no token, malformed JSON, a value the schema refuses), which
        Prism would answer itself instead of herald. HERALD_E2E_PRISM=0, or
        Prism not installed (scripts/deps.sh --npm), goes straight to herald."""
        direct_url = "http://127.0.0.1:%d" % self.admin_port
        if direct or not PRISM_API:
            return direct_url
        if self.prism is None:
            import prism   # noqa: E402 (tests/e2e/prism.py; imports this module)
            why = prism.available()
            if why:
                sys.stderr.write("api_url: straight to herald: %s\n" % why)
                self.prism = False
            else:
                self.prism = prism.Prism(OPENAPI, self.path("prism-proxy.log"), upstream=direct_url).start()
        return self.prism.url if self.prism else direct_url

    def api(self, method, path, token="e2e-admin-token-0123456789", direct=False):
        """(status, parsed JSON body) of a bodiless admin API request, through
        the Prism proxy check (api_url) unless direct."""
        req = urllib.request.Request(self.api_url(direct) + path, data=b"" if method == "POST" else None,
                                     method=method)
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"null")

    # --- files -----------------------------------------------------------

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def config_text(self, template=BASE_CONFIG):
        text = template.format(plugin_dir=PLUGIN_DIR, locales_dir=LOCALES_DIR, log_level=self.log_level,
                               drain_timeout=self.drain_timeout,
                               redis_url="" if self.cluster else self.redis.url, admin_port=self.admin_port,
                               public_port=self.public_port)
        if self.cluster:
            text = text.replace("url = \n", "cluster = %s\n" % self.redis.seeds, 1)
        return text

    def write_config(self, template, name):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(self.config_text(template))
        return p

    def write_keys(self, text, name="keys"):
        """The key file ([privacy] key_file), readable by its owner only."""
        p = self.path(name)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(p, 0o600)
        return p

    def write(self, name, text):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def write_jsonl(self, name, objects):
        return self.write(name, "".join(json.dumps(o) + "\n" for o in objects))

    def hook_config(self, url, name="hook.conf", provider="", daemon="", providers="hook", tail=""):
        """A config whose email goes to the webhook plugin at url (a FaultServer,
        the recording sink): provider lines for [provider hook], daemon lines
        for [daemon], the email channel's provider order, sections after."""
        base = self.config_text()
        if daemon:
            base = base.replace("[daemon]\n", "[daemon]\n" + daemon.rstrip("\n") + "\n")
        return self.write(name, base[:base.index("[channel email]")]
                          + HOOK_PROVIDERS.format(url=url, extra=provider, providers=providers) + tail)

    # --- heraldctl -------------------------------------------------------

    def ctl(self, *args, config=None, sets=()):
        cmd = [HERALDCTL_BIN, "--config", config or self.config]
        for s in sets:
            cmd += ["--set", s]
        cmd += list(args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120 * SLOW, stdin=subprocess.DEVNULL)

    def ctl_ok(self, *args, **kw):
        res = self.ctl(*args, **kw)
        if res.returncode != 0:
            raise AssertionError("heraldctl %s exited %d\nstdout: %s\nstderr: %s"
                                 % (" ".join(args), res.returncode, res.stdout, res.stderr))
        return res

    def remember(self, person):
        """Register a person's address and number as log secrets."""
        for k in ("email", "phone"):
            v = person.get(k)
            if v:
                self.secrets.add(v)
                if k == "phone" and v.startswith("+1"):
                    self.secrets.add(v[2:])

    def import_people(self, people, name="people.jsonl", config=None):
        """Import through heraldctl; every line must be accepted."""
        for p in people:
            self.remember(p)
        path = self.write_jsonl(name, people)
        res = self.ctl_ok("import", path, config=config)
        assert res.stdout.strip() == "imported %d, skipped 0" % len(people), res.stdout
        return res

    def keys(self, pattern):
        """KEYS on every master (sorted)."""
        return sorted(self.r.keys(pattern, target_nodes="primaries") if self.cluster else self.r.keys(pattern))

    def index(self, kind="addr"):
        """Every shard of a keyed index merged: {member: value} of a hash
        (addr, suppress:info), {member} of a set (suppress, tombstones)."""
        out = {} if kind in ("addr", "suppress:info") else set()
        keys = ["herald:%s:{i%x}" % (kind, s) for s in range(INDEX_SHARDS)]
        if kind == "addr":
            keys = self.keys("herald:addr:{i*}:*")
        for k in keys:
            if isinstance(out, dict):
                out.update({m: v.decode() for m, v in self.rb.hgetall(k).items()})
            else:
                out |= self.rb.smembers(k)
        return out

    def index_owner(self, channel, normalised):
        """Whom the address index names for an address (None: nobody)."""
        m = index_member(channel, normalised)
        v = self.rb.hget(index_shard_key("addr", m), m)
        return v.decode() if v is not None else None

    def is_suppressed(self, channel, normalised):
        m = index_member(channel, normalised)
        return bool(self.rb.sismember(index_shard_key("suppress", m), m))

    def suppress(self, channel, address):
        self.secrets.add(address)
        return self.ctl_ok("suppress", channel, address)

    def remember_job(self, job):
        """Register the literal text of a job's content as log secrets."""
        parts = list(job.get("content", {}).values())
        while parts:
            part = parts.pop()
            if not isinstance(part, dict):
                continue
            for v in part.values():
                if isinstance(v, dict):  # content per language
                    parts.append(v)
                    continue
                for chunk in v.split("{{"):
                    chunk = chunk.split("}}")[-1].strip()
                    if len(chunk) >= 12:
                        self.secrets.add(chunk)

    def enqueue(self, job, name=None):
        self.remember_job(job)
        path = self.write(name or "job-%s.json" % job["id"], json.dumps(job))
        res = self.ctl_ok("enqueue", path)
        entry = res.stdout.strip()
        assert "-" in entry, "enqueue printed %r, not a stream entry id" % res.stdout
        return entry

    def key(self, name):
        """A control-plane key's name: herald:<name>, or {herald}:<name> on a cluster."""
        return ("{herald}:" if self.cluster else "herald:") + name

    def xadd_job(self, text):
        """What a marketing system does: XADD herald:jobs * job <text> ({herald}:jobs on a cluster)."""
        return self.r.xadd(self.key("jobs"), {"job": text})

    def campaign(self, cid):
        res = self.ctl_ok("campaign", cid)
        return json.loads(res.stdout)

    def wait_campaign_done(self, cid, timeout=60, herald=None):
        seen = {}

        def done():
            if herald is not None and not herald.running():
                raise AssertionError("herald exited (%s) while waiting for campaign %s; log tail:\n%s"
                                     % (herald.proc.returncode, cid, herald.log()[-3000:]))
            c = self.campaign(cid)
            seen["campaign"] = c
            return c if c.get("state") == "done" else None
        try:
            return wait_for("campaign %s to be done" % cid, done, timeout, 0.2)
        except AssertionError as e:
            raise AssertionError("%s\nlast progress: %s\n%s" % (e, seen.get("campaign"), stall_figures(herald))) from None

    # --- herald ----------------------------------------------------------

    @staticmethod
    def other_listeners():
        """--set overrides giving a second daemon on this host listeners of its
        own (both ports of the config are the first one's)."""
        return ("admin.listen=127.0.0.1:%d" % free_port(), "public.listen=127.0.0.1:%d" % free_port())

    def start_herald(self, sets=(), wait_healthy=True, config=None):
        self.n_logs += 1
        cmd = [HERALD_BIN, "--config", config or self.config]
        for s in sets:
            cmd += ["--set", s]
        port = None
        for sv in sets:
            if sv.startswith("admin.listen="):
                port = int(sv.rsplit(":", 1)[1])
        h = Herald(self, cmd, self.path("herald-%d.log" % self.n_logs), admin_port=port)
        self.heralds.append(h)
        if wait_healthy:
            h.wait_healthy()
        return h

    # --- what herald left in Redis and the outbox -------------------------

    def audit(self, campaign=None):
        """The audit records, oldest first. On a cluster: of every node's
        audit stream (named in {herald}:audit:nodes) and the control plane's."""
        streams = ["herald:audit"]
        if self.cluster:
            streams = [self.key("audit")] + ["herald:n:{%s}:audit" % t for t in self.r.smembers(self.key("audit:nodes"))]
        entries = []
        for stream in streams:
            last = "-"
            while True:
                batch = self.r.xrange(stream, min=last, max="+", count=5000)
                if last != "-" and batch and batch[0][0] == last:
                    batch = batch[1:]
                if not batch:
                    break
                entries.extend(batch)
                last = batch[-1][0]
        entries.sort(key=lambda e: tuple(int(x) for x in e[0].split("-")))
        recs = [fields for _, fields in entries]
        if campaign is not None:
            recs = [f for f in recs if f.get("campaign") == campaign]
        return recs

    def dead(self):
        return [fields for _, fields in self.r.xrange(self.key("dead"))]

    def pending(self):
        """Entries of herald:jobs delivered to a consumer and not acked."""
        try:
            return self.r.xpending(self.key("jobs"), "herald")["pending"]
        except redis.exceptions.ResponseError:
            return 0

    def acked(self, entry):
        """Has the group read entry (and everything before it) and acked it all?"""
        try:
            groups = self.r.xinfo_groups(self.key("jobs"))
        except redis.exceptions.ResponseError:
            return False
        g = [g for g in groups if g["name"] == "herald"]
        if not g:
            return False
        last = tuple(int(x) for x in g[0]["last-delivered-id"].split("-"))
        return last >= tuple(int(x) for x in entry.split("-")) and self.pending() == 0

    def outbox_files(self, campaign):
        d = os.path.join(self.outbox, campaign)
        if not os.path.isdir(d):
            return {}
        return {name: os.path.join(d, name) for name in sorted(os.listdir(d))}

    def outbox_json(self, campaign):
        out = {}
        for name, path in self.outbox_files(campaign).items():
            with open(path) as f:
                out[name] = json.load(f)
        return out

    # --- teardown --------------------------------------------------------

    def leaked_secrets(self):
        """[(log file, secret, line)] for every secret found in any herald log."""
        found = []
        for h in self.heralds:
            try:
                text = h.log()
            except OSError:
                continue
            for line in text.splitlines():
                for s in self.secrets:
                    if s in line:
                        found.append((h.log_path, s, line))
        return found

    def cleanup(self):
        if self.prism:
            self.prism.stop()
        for h in self.heralds:
            h.kill()
        self.r.close()
        self.rb.close()
        if self.cluster:
            self.redis.stop()
        else:
            self.redis.stop(kill=True)
        if os.environ.get("HERALD_E2E_KEEP"):
            print("kept %s" % self.dir, file=sys.stderr)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


class HeraldTestCase(unittest.TestCase):
    """Base class: self.env() gives an Env cleaned up after the test, whose
    herald logs are checked for leaked secrets at teardown."""

    maxDiff = None

    def env(self, **kw):
        e = Env(self._testMethodName, **kw)
        self.addCleanup(e.cleanup)
        self.addCleanup(self._check_sanitizers, e)
        self.addCleanup(self._check_privacy, e)   # cleanups run last-in first-out
        self.addCleanup(self._check_contract, e)
        self.addCleanup(self._show_logs_on_failure, e)
        return e

    def _failed(self):
        result = getattr(getattr(self, "_outcome", None), "result", None)
        if result is None:
            return False
        return any(getattr(t, "test_case", t) is self for t, _ in result.failures + result.errors)

    def _show_logs_on_failure(self, e):
        if not self._failed():
            return
        for h in e.heralds:
            try:
                lines = h.log_lines()
            except OSError:
                continue
            sys.stderr.write("---- %s (%s, last 60 of %d lines) ----\n" % (os.path.basename(h.log_path),
                                                                      " ".join(h.args[1:]), len(lines)))
            sys.stderr.write("\n".join(lines[-60:]) + "\n")

    def _check_sanitizers(self, e):
        # A sanitizer report fails the test even where the exit code was not checked.
        for h in e.heralds:
            try:
                text = h.log()
            except OSError:
                continue
            for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
                if marker in text:
                    i = text.index(marker)
                    self.fail("%s in %s:\n%s" % (marker, os.path.basename(h.log_path), text[max(0, i - 200):i + 3000]))

    def _check_contract(self, e):
        # Traffic through the Prism proxy (Env.api_url) must match docs/openapi.yaml.
        if e.prism:
            bad = e.prism.violations()
            if bad:
                self.fail("the API's traffic does not match docs/openapi.yaml (Prism proxy, %s):\n  %s"
                          % (e.prism.log_path, "\n  ".join(bad[:30])))

    def _check_privacy(self, e):
        leaks = e.leaked_secrets()
        if leaks:
            lines = "\n".join("  %s: %r in: %s" % (os.path.basename(p), s, l) for p, s, l in leaks[:20])
            self.fail("herald's log contains addresses, numbers or message text:\n" + lines)

    def assertConsistent(self, e, cid, ids):
        """What a job leaves behind agrees with itself: each id one terminal
        audit record; for everyone with a profile, the once-only record holds
        exactly that outcome (no audit record without its outcome, and no
        outcome without its audit record); the campaign's progress counts
        every recipient once and nothing is left pending. Returns {id: audit}."""
        by = self.assertOneTerminalEach(e.audit(cid), ids)
        mismatched = []
        for rid in ids:
            rec = e.r.hget("herald:r:{%s}" % rid, "c:" + cid)
            has_profile = e.r.hexists("herald:r:{%s}" % rid, "profile")
            if not has_profile:
                continue
            state = record_state(rec)
            want = by[rid]["outcome"] if rid in by else None
            if by.get(rid, {}).get("reason") == "expired":
                continue   # an expired campaign's outcomes store no record
            if state != want:
                mismatched.append((rid, state, want))
        self.assertEqual(mismatched[:20], [], "%d once-only records disagree with the audit (id, record, audit)"
                         % len(mismatched))
        c = e.campaign(cid)
        done = c["sent"] + c["unknown"] + sum(c["suppressed"].values()) + sum(c["failed"].values())
        self.assertEqual((done, c["pending"], c["state"]), (len(ids), 0, "done"), "campaign progress: %r" % c)
        return by

    def assertOneTerminalEach(self, recs, ids):
        """Each id in ids has exactly one terminal audit record; return {id: record}."""
        by = {}
        for rec in recs:
            if rec["outcome"] in TERMINAL:
                by.setdefault(rec["recipient"], []).append(rec)
        twice = {k: v for k, v in by.items() if len(v) > 1}
        self.assertEqual(twice, {}, "recipients with more than one terminal audit record")
        missing = sorted(set(ids) - set(by))
        self.assertEqual(missing[:20], [], "%d recipients without a terminal audit record" % len(missing))
        extra = sorted(set(by) - set(ids))
        self.assertEqual(extra[:20], [], "audit records for recipients not in the campaign")
        return {k: v[0] for k, v in by.items()}


def main():
    def on_term(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_term)
    if not os.access(HERALD_BIN, os.X_OK):
        print("herald binary not found at %s (set HERALD_BIN)" % HERALD_BIN, file=sys.stderr)
        sys.exit(1)
    unittest.main(verbosity=2)


def ledger_record(text):
    """A consent ledger entry (or a person's current consent field) as a
    dict: the compact form herald writes, "1|channel|granted|at|source|version",
    or JSON as written before it."""
    if text.startswith("{"):
        return json.loads(text)
    tag, channel, granted, at, source, version = text.split("|")
    assert tag == "1", text
    rec = {"channel": channel, "granted": granted == "1",
           "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(at))), "source": source}
    if version:
        rec["text_version"] = version
    return rec


def ledger_raw(e, pid):
    """The consent ledger of pid, oldest first, as stored (layout 4: the
    person hash's fields ~1, ~2, ...; a channel's name there stands for its
    current record, ~<channel>)."""
    h = {k.decode(): v for k, v in e.rb.hgetall("herald:r:{%s}" % pid).items()}  # sealed fields are binary
    out, n = [], 1
    while "~%d" % n in h:
        v = h["~%d" % n].decode()
        out.append(v if "|" in v or v.startswith("{") else h["~" + v].decode())
        n += 1
    return out


def ledger(e, pid):
    """The consent ledger of pid, oldest first, as dicts."""
    return [ledger_record(x) for x in ledger_raw(e, pid)]


def most_in_window(at, seconds):
    """The most of the sorted times `at` within any `seconds` long window."""
    most, j = 0, 0
    for i in range(len(at)):
        while j < len(at) and at[j] < at[i] + seconds:
            j += 1
        most = max(most, j - i)
    return most


def window_ending_soon():
    """A UTC quiet-hours window that holds now and ends at a minute boundary
    20..80 s away: (its text, its end as a unix time)."""
    now = time.time()
    end = (int(now) // 60 + 1) * 60
    if end - now < 20:
        end += 60
    hm = lambda t: time.strftime("%H:%M", time.gmtime(t))  # noqa: E731
    return "%s-%s" % (hm(end - 5 * 60), hm(end)), end


def requests_by_recipient(srv):
    """{recipient id: requests the webhook sink got for it} (from the signed body)."""
    per = {}
    for req in list(srv.requests):
        rid = json.loads(req["body"])["recipient"]
        per[rid] = per.get(rid, 0) + 1
    return per


# The key layout this build writes (daemon/store.h STORE_LAYOUT): what a
# test that stores a daemon's data by hand says it is.
LAYOUT = "5"

RECORD_STATES = {"p": "pending", "s": "sent", "f": "failed", "x": "suppressed", "u": "unknown", "d": "deferred",
                 "r": "reserved"}


def record_state(rec):
    """The state of a once-only record by name ("sent"), as written with its
    one-letter code or as records were written before the codes; None for none."""
    if not rec:
        return None
    word = rec.split(" ")[0]
    return RECORD_STATES.get(word, word)


def handed_states(r, recs):
    """The states of once-only records (record_state), a reservation its run
    handed to a provider read as "pending": on one Redis the handoff sets
    the reservation's bit in its run's handed log, `herald:handed:<run>`
    (layout 5; the record keeps saying reserved), where a run that takes
    the job over reads it."""
    states = [record_state(rec) for rec in recs]
    pipe = r.pipeline(transaction=False)
    asked = []
    for i, rec in enumerate(recs):
        words = rec.split(" ") if rec else []
        if states[i] == "reserved" and len(words) == 5 and words[4].isdigit():
            pipe.getbit("herald:handed:%s" % words[2], int(words[4]))
            asked.append(i)
    for i, bit in zip(asked, pipe.execute() if asked else []):
        if bit:
            states[i] = "pending"
    return states


def stall_figures(herald):
    """A daemon's figures on what it waits for (Redis, shared leases,
    providers): shown when a campaign does not end in time."""
    if herald is None:
        return ""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % herald.admin_port, timeout=5) as r:
            text = r.read().decode()
    except (OSError, ValueError) as ex:
        return "metrics unreadable: %s" % ex
    keep = ("herald_redis_", "herald_limit_", "herald_in_flight", "herald_provider_in_flight",
            "herald_provider_circuit_open", "herald_jobs_running", "herald_queue_", "herald_job_held")
    return "\n".join(ln for ln in text.splitlines() if ln.startswith(keep))


def people(n, prefix, channels=("email",)):
    """n consenting people with an email address each: ids <prefix>0000..."""
    return [person("%s%04d" % (prefix, i), email="%s%04d@example.com" % (prefix, i), channels=list(channels),
                   consent=list(channels), first_name="N%d" % i) for i in range(n)]


def person(pid, email=None, phone=None, channels=("email", "sms"), consent=(), topics=None, **attrs):
    """A recipient line for heraldctl import. consent: channels granted."""
    p = {"id": pid, "tz": "UTC", "locale": "en", "channels": list(channels)}
    if email:
        p["email"] = email
    if phone:
        p["phone"] = phone
    if attrs:
        p["attributes"] = attrs
    if topics is not None:
        p["topics"] = topics
    if consent:
        p["consent"] = [{"channel": ch, "granted": True, "source": "e2e-test", "text_version": "v1"} for ch in consent]
    return p


def job(cid, recipients=None, recipients_key=None, channels=("email", "sms"), topic="promotions", **extra):
    """A campaign job with personalised content for every channel listed."""
    content = {}
    if "email" in channels:
        content["email"] = {"subject": "Hello {{first_name}}, the e2e sale starts now",
                            "text": "Dear {{first_name}} {{last_name}}, this e2e body text is for you.",
                            "html": "<p>Dear {{first_name}}{{last_name}}, this e2e html body is for you.</p>"}
    if "sms" in channels:
        content["sms"] = {"text": "Hi {{first_name}}, this e2e sms body text is for you."}
    j = {"id": cid, "topic": topic, "channels": list(channels), "content": content}
    if recipients is not None:
        j["recipients"] = list(recipients)
    if recipients_key is not None:
        j["recipients_key"] = recipients_key
    j.update(extra)
    return j


def every_value(r):
    """Every key name, field and value of the test's Redis, as bytes."""
    out = []
    for k in r.scan_iter(count=1000):
        out.append(k)
        t = r.type(k)
        if t == b"string":
            out.append(r.get(k))
        elif t == b"hash":
            for f, v in r.hgetall(k).items():
                out += [f, v]
        elif t == b"set":
            out += list(r.smembers(k))
        elif t == b"zset":
            out += [m for m, _ in r.zrange(k, 0, -1, withscores=True)]
        elif t == b"list":
            out += r.lrange(k, 0, -1)
        elif t == b"stream":
            for _, fields in r.xrange(k):
                for f, v in fields.items():
                    out += [f, v]
    return out
