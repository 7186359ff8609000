"""A loopback HTTP endpoint for the e2e fault tests, scripted per request.

FaultServer(script) answers the n-th POST with script[n] (the last entry
repeats). An entry is a dict:
  {"status": 202, "headers": {...}, "body": "...", "delay": 0.3}
  {"hang": True}   never answers (until the server stops)
  {"status": 202, "close_idle_after": 0.2}
                   answers, then closes the kept-alive connection once it
                   has been idle that long (as servers with a keep-alive
                   timeout do), without a Connection: close header
  {"reset": True}  reads the whole request, then closes the connection with
                   SO_LINGER 0: the client gets a RST and no reply byte (on
                   a kept-alive connection, the case libcurl would silently
                   re-send on a fresh one)
  {"close": True}  reads the whole request, then closes the connection
                   normally (FIN) without a reply byte
The script can be replaced while the server runs (server.script = [...]).
It records every request (arrival time, headers, body) and the highest
number of requests it was handling at once.
"""

import http.server
import json
import socket
import struct
import threading
import time


def _drop(conn):
    try:
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class FaultServer:
    def __init__(self, script):
        self.script = list(script) or [{"status": 202}]
        self.requests = []        # dicts: at, path, headers, body
        self.max_concurrent = 0
        self._concurrent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                pass

            def finish(self):
                try:
                    super().finish()
                except OSError:
                    pass  # the connection was reset on purpose

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with server._lock:
                    idx = len(server.requests)
                    server.requests.append({"at": time.monotonic(), "path": self.path,
                                            "headers": {k.lower(): v for k, v in self.headers.items()},
                                            "body": body})
                    server._concurrent += 1
                    server.max_concurrent = max(server.max_concurrent, server._concurrent)
                    action = server.script[min(idx, len(server.script) - 1)]
                try:
                    if action.get("reset"):
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        self.connection.close()
                        self.close_connection = True
                        return
                    if action.get("close"):
                        _drop(self.connection)
                        self.connection.close()
                        self.close_connection = True
                        return
                    if action.get("hang"):
                        server._stop.wait(60)
                        self.close_connection = True
                        return
                    if action.get("delay"):
                        time.sleep(action["delay"])
                    out = action.get("body", "")
                    if not isinstance(out, (bytes, str)):
                        out = json.dumps(out)
                    out = out.encode() if isinstance(out, str) else out
                    self.send_response(action.get("status", 202))
                    for k, v in action.get("headers", {}).items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(out)))
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(out)
                    if action.get("close_idle_after"):
                        self.wfile.flush()
                        conn = self.connection
                        threading.Timer(action["close_idle_after"], _drop, (conn,)).start()
                finally:
                    with server._lock:
                        server._concurrent -= 1

        class QuietServer(http.server.ThreadingHTTPServer):
            def handle_error(self, request, client_address):
                pass   # a client killed mid-request (the crash tests do) is no error of the sink's

        self.httpd = QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = "http://127.0.0.1:%d/hook" % self.port
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def count(self):
        with self._lock:
            return len(self.requests)

    def stop(self):
        self._stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
