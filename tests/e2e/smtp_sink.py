"""smtp_sink.py - a loopback SMTP server for the tests (aiosmtpd, Debian's
python3-aiosmtpd): every message it accepts is saved as one JSON file in a
directory, {"helo", "mail_from", "rcpt_tos", "data_b64"}, and every TCP
connection is counted, so a test can prove that nothing was even dialled.

Owns only its directory and its port on 127.0.0.1. It never relays
anything anywhere. Scripted refusals, chosen by the recipient's local part:
  reject@...  -> 550 5.1.1 at RCPT (permanent)
  later@...   -> 450 4.2.1 at RCPT (temporary)
  bigdata@... -> 554 5.6.0 at the end of DATA
Invariant: a file appears only for a message answered 250 at the end of
DATA, written whole (temporary name, then rename).

Use it in-process (SmtpSink(dir).start() ... .stop()), or run it alone:
    python3 smtp_sink.py DIR [PORT]
"""

import base64
import json
import os
import socket
import sys
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Handler:
    def __init__(self, sink):
        self.sink = sink

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        local = address.split("@", 1)[0].lower()
        if local == "reject":
            return "550 5.1.1 No such user here"
        if local == "later":
            return "450 4.2.1 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if any(a.split("@", 1)[0].lower() == "bigdata" for a in envelope.rcpt_tos):
            return "554 5.6.0 Message refused"
        self.sink.save({
            "helo": session.host_name,
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "data_b64": base64.b64encode(envelope.original_content or envelope.content).decode("ascii"),
        })
        return "250 2.0.0 Message accepted for delivery"


class _Controller(Controller):
    def __init__(self, sink, **kw):
        self.sink = sink
        super().__init__(_Handler(sink), **kw)

    def factory(self):
        sink = self.sink

        class CountingSMTP(SMTP):
            def connection_made(self, transport):
                with sink.lock:
                    sink.connections += 1
                super().connection_made(transport)

        return CountingSMTP(self.handler, **self.SMTP_kwargs)


class SmtpSink:
    def __init__(self, directory, port=None):
        self.dir = directory
        os.makedirs(directory, exist_ok=True)
        self.port = port or _free_port()
        self.lock = threading.Lock()
        self.connections = 0
        self.n = 0
        self.controller = _Controller(self, hostname="127.0.0.1", port=self.port)

    def start(self):
        self.controller.start()
        return self

    def stop(self):
        self.controller.stop()

    def url(self):
        return "smtp://127.0.0.1:%d" % self.port

    def save(self, rec):
        with self.lock:
            self.n += 1
            name = "%06d.json" % self.n
        tmp = os.path.join(self.dir, "." + name)
        with open(tmp, "w") as f:
            json.dump(rec, f)
        os.rename(tmp, os.path.join(self.dir, name))

    def messages(self):
        """Every saved message, oldest first, with "data" as bytes."""
        out = []
        for name in sorted(os.listdir(self.dir)):
            if name.startswith(".") or not name.endswith(".json"):
                continue
            with open(os.path.join(self.dir, name)) as f:
                rec = json.load(f)
            rec["data"] = base64.b64decode(rec.pop("data_b64"))
            out.append(rec)
        return out


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        print("usage: smtp_sink.py DIR [PORT]", file=sys.stderr)
        sys.exit(2)
    sink = SmtpSink(sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else None).start()
    print("listening on %s, saving to %s" % (sink.url(), sink.dir), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        sink.stop()
