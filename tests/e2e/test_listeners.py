"""The two HTTP listeners, seen from outside, over raw sockets where it
matters: [admin] listen answers the /v1 API, /metrics and /healthz and
nothing else; [public] listen answers the link pages and the provider
webhooks and nothing else (404 for the rest, both ways). Each listener's
limits hold against a client that misbehaves: one client holding more
connections than its share does not starve the others, idle keep-alive
connections are closed, a webhook without its signature header is refused
401 before its body is read, a chunked trailer never authenticates, and the
refusals are logged once, not once each. Every reply says
Cache-Control: no-store and X-Content-Type-Options: nosniff."""

import json
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import person  # noqa: E402

TOKEN = "e2e-admin-token-0123456789"   # harness.BASE_CONFIG
TWILIO = """
[provider twilio]
plugin = sms_twilio
account_sid = AC0123456789abcdef0123456789abcdef
auth_token = e2e-twilio-auth-token-0123456789
from = +15005550006
"""


def connect(port, source=None, timeout=5):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if source:
        s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_response(s):
    """(status, headers dict lower-cased, body bytes) of one response, or None at EOF."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, headers, rest[:n]


def request(port, method, path, headers=(), body=b"", source=None):
    s = connect(port, source)
    try:
        lines = ["%s %s HTTP/1.1" % (method, path), "Host: t", "Connection: close"]
        lines += ["%s: %s" % h for h in headers]
        if body:
            lines.append("Content-Length: %d" % len(body))
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        return read_response(s)
    finally:
        s.close()


def closed_by_server(s):
    """True once the server has closed s (EOF or reset), False on timeout."""
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


class Listeners(harness.HeraldTestCase):

    def start(self, public="", sets=()):
        e = self.env()
        text = e.config_text().replace("[public]\n", "[public]\npublic_url = https://prefs.example.test\n" + public)
        text = text.replace("[channel sms]\nproviders = outbox", "[channel sms]\nproviders = twilio")
        config = e.write("listeners.conf", text + TWILIO)
        h = e.start_herald(config=config, sets=sets)
        return e, h

    def metric(self, e, name, listener, limit):
        status, _, body = request(e.admin_port, "GET", "/metrics")
        self.assertEqual(status, 200)
        want = '%s{listener="%s",limit="%s"}' % (name, listener, limit)
        for line in body.decode().splitlines():
            if line.startswith(want + " "):
                return int(line.split()[-1])
        self.fail("%s not in /metrics" % want)

    def test_each_route_answers_on_its_own_listener_only(self):
        e, h = self.start()
        e.import_people([person("ann", email="ann.listen@example.com", channels=["email"], consent=["email"])])
        auth = [("Authorization", "Bearer " + TOKEN)]
        admin, public = e.admin_port, e.public_port

        # The admin listener: the API, /metrics, /healthz.
        self.assertEqual(request(admin, "GET", "/healthz")[0], 200)
        self.assertEqual(request(admin, "GET", "/metrics")[0], 200)
        status, headers, body = request(admin, "GET", "/v1/recipients/ann", auth)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("cache-control"), "no-store")
        self.assertEqual(headers.get("x-content-type-options"), "nosniff")
        # ...and not the public routes: the router's own 404.
        for method, path in (("GET", "/u/sometoken"), ("GET", "/p/sometoken"),
                             ("POST", "/v1/webhooks/sendgrid"), ("POST", "/v1/webhooks/twilio")):
            status, headers, body = request(admin, method, path, body=b"x" if method == "POST" else b"")
            self.assertEqual((status, json.loads(body)), (404, {"error": "not found"}), "%s %s on admin" % (method, path))
            self.assertEqual(headers.get("x-content-type-options"), "nosniff")

        # The public listener: the pages and the webhooks...
        status, headers, body = request(public, "GET", "/u/not-a-valid-token")
        self.assertIn(status, (400, 403), body)   # the page's own refusal, not the router's 404
        self.assertEqual(headers.get("cache-control"), "no-store")
        self.assertEqual(headers.get("x-content-type-options"), "nosniff")
        self.assertEqual(request(public, "POST", "/v1/webhooks/twilio", body=b"From=x")[0], 401)
        # ...and nothing else, not even with the right token.
        for method, path, hdrs in (("GET", "/healthz", ()), ("GET", "/metrics", ()),
                                   ("GET", "/v1/recipients/ann", auth), ("DELETE", "/v1/recipients/ann", auth)):
            status, _, body = request(public, method, path, hdrs)
            self.assertEqual((status, json.loads(body)), (404, {"error": "not found"}), "%s %s on public" % (method, path))
        self.assertEqual(request(admin, "GET", "/v1/recipients/ann", auth)[0], 200)   # the DELETE did nothing
        self.assertIn("public=127.0.0.1:%d" % public, h.log())
        self.assertNotIn("[public] listen is not set", h.log())

    def test_without_public_listen_the_admin_listener_serves_both_and_says_so(self):
        e = self.env()
        text = e.config_text().replace("[public]\nlisten = 127.0.0.1:%d\n" % e.public_port,
                                       "[admin]\npublic_url = https://prefs.example.test\n", 1)
        # The old layout: no [public] section, public_url under [admin].
        text = text.replace("[admin]\npublic_url = https://prefs.example.test\n", "")
        text = text.replace("link_secret = e2e-link-secret-0123456789\n",
                            "link_secret = e2e-link-secret-0123456789\npublic_url = https://prefs.example.test\n")
        self.assertNotIn("[public]", text)
        old = e.write("old.conf", text + TWILIO)
        out = subprocess.run([harness.HERALD_BIN, "--check-config", "--config", old], capture_output=True, text=True)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("[admin] public_url is deprecated: move it to [public] public_url", out.stderr)
        h = e.start_herald(config=old)
        self.assertEqual(request(e.admin_port, "GET", "/healthz")[0], 200)
        self.assertEqual(request(e.admin_port, "POST", "/v1/webhooks/twilio", body=b"From=x")[0], 401)
        self.assertIn(request(e.admin_port, "GET", "/u/not-a-valid-token")[0], (400, 403))
        log = h.log()
        self.assertIn("[public] listen is not set", log)
        self.assertIn("[admin] public_url is deprecated", log)
        with self.assertRaises(OSError):
            request(e.public_port, "GET", "/u/x")   # nothing listens there

    def test_one_client_over_its_share_does_not_starve_the_others(self):
        e, h = self.start("max_connections = 12\nmax_connections_per_client = 4\nidle_timeout = 1s\n")
        # One client (127.0.0.1) opens 20 connections and starts a request on
        # each, never finishing it (not idle: a full listener would keep them).
        hog = [connect(e.public_port) for _ in range(20)]
        for s in hog:
            s.sendall(b"POST /v1/webhooks/twilio HTTP/1.1\r\nHost: t\r\n")
        for s in hog:
            s.settimeout(2)
        closed = sum(closed_by_server(s) for s in hog)
        self.assertEqual(closed, 16)   # 4 kept: its share

        # Other clients (other loopback addresses) are all answered meanwhile.
        for i in range(10):
            status, _, _ = request(e.public_port, "POST", "/v1/webhooks/twilio", body=b"From=x",
                                   source="127.0.0.%d" % (2 + i))
            self.assertEqual(status, 401)
        self.assertEqual(self.metric(e, "herald_http_limit_hits_total", listener="public",
                                     limit="max_connections_per_client"), 16)
        # The admin listener has limits of its own: untouched.
        self.assertEqual(self.metric(e, "herald_http_limit_hits_total", listener="admin",
                                     limit="max_connections_per_client"), 0)
        # Sixteen hits, one line.
        hits = [l for l in h.log_lines() if "max_connections_per_client limit hit" in l]
        self.assertEqual(len(hits), 1, hits)
        self.assertIn("listener=public", hits[0])
        for s in hog:
            s.close()

    def test_idle_connections_are_closed_and_late_requests_get_408(self):
        e, h = self.start("idle_timeout = 1s\nheader_timeout = 1s\n")
        # Keep-alive: answered, then closed once idle.
        s = connect(e.public_port, timeout=10)
        s.sendall(b"GET /u/not-a-valid-token HTTP/1.1\r\nHost: t\r\n\r\n")
        status, headers, _ = read_response(s)
        self.assertIn(status, (400, 403))
        self.assertNotEqual(headers.get("connection"), "close")
        s2 = connect(e.public_port, timeout=10)   # a second one, never used
        self.assertTrue(closed_by_server(s))
        self.assertTrue(closed_by_server(s2))
        s.close()
        s2.close()
        # Headers that never end: 408, then closed.
        s = connect(e.public_port, timeout=10)
        s.sendall(b"GET /u/x HTTP/1.1\r\nHost: t\r\n")
        self.assertEqual(read_response(s)[0], 408)
        s.close()
        self.assertGreaterEqual(self.metric(e, "herald_http_limit_hits_total", listener="public",
                                            limit="idle_timeout"), 2)
        self.assertEqual(self.metric(e, "herald_http_limit_hits_total", listener="public",
                                     limit="header_timeout"), 1)

    def test_a_webhook_without_its_signature_is_refused_before_its_body(self):
        e, h = self.start()
        for path, name in (("/v1/webhooks/twilio", "twilio"), ("/v1/webhooks/sendgrid", "sendgrid")):
            s = connect(e.public_port)
            # A megabyte announced, not a byte of it sent: the answer comes anyway.
            s.sendall(("POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n" % path).encode())
            status, headers, body = read_response(s)
            if name == "twilio":
                self.assertEqual(status, 401, body)
                self.assertEqual(json.loads(body), {"error": "signature required"})
            else:   # no provider here takes SendGrid's callbacks: refused whatever comes
                self.assertEqual(status, 404, body)
                self.assertEqual(json.loads(body), {"error": "no provider of that name takes callbacks"})
            self.assertEqual(headers.get("connection"), "close")
            s.close()

        # Refusals are logged once, then counted: not a line each.
        for _ in range(200):
            self.assertEqual(request(e.public_port, "POST", "/v1/webhooks/twilio", body=b"From=x")[0], 401)
        lines = [l for l in h.log_lines() if "twilio: refused" in l]
        self.assertEqual(len(lines), 1, lines)

    def test_a_trailer_never_becomes_a_header(self):
        e, h = self.start()
        e.import_people([person("ann", email="ann.trailer@example.com", channels=["email"], consent=["email"])])
        # The bearer token as a chunked trailer: not authenticated.
        s = connect(e.admin_port)
        s.sendall(b"GET /v1/recipients/ann HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"0\r\nAuthorization: Bearer " + TOKEN.encode() + b"\r\n\r\n")
        status, headers, body = read_response(s)
        self.assertEqual(status, 401, body)
        self.assertNotIn(b"ann.trailer", body)
        # The same as a header is.
        s.sendall(b"GET /v1/recipients/ann HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer " + TOKEN.encode()
                  + b"\r\n\r\n")
        self.assertEqual(read_response(s)[0], 200)
        s.close()
        # A webhook's signature as a trailer does not count either.
        s = connect(e.public_port)
        s.sendall(b"POST /v1/webhooks/twilio HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"6\r\nFrom=x\r\n0\r\nX-Twilio-Signature: AAAA\r\n\r\n")
        self.assertEqual(read_response(s)[0], 401)
        s.close()

    def test_bad_listener_settings_are_config_errors(self):
        e = self.env()
        for extra, says in (("max_connections_per_client = 0\n", "[public] max_connections_per_client"),
                            ("listen = 127.0.0.1:%d\n" % e.admin_port, "[public] listen: the same address"),
                            ("idle_timeout = forever\n", "[public] idle_timeout")):
            text = e.config_text().replace("[public]\nlisten = 127.0.0.1:%d\n" % e.public_port, "[public]\n" + extra)
            out = subprocess.run([harness.HERALD_BIN, "--check-config", "--config", e.write("bad.conf", text)],
                                 capture_output=True, text=True)
            self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
            self.assertIn(says, out.stderr)


if __name__ == "__main__":
    harness.main()
