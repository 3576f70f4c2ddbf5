# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fake of supervise's release endpoint (images/bundle/supervise.py, POST /release and
GET /release/<id>) on 127.0.0.1:<free port>, in a thread: the firewall's hooks run in their
own event loops (fakes.Proxy), so the fake serves from outside them, over real sockets.

``decide(id) -> (status, note)`` scripts the operator; every POST is kept (raw bytes and
JSON) so that a test can check what egress sent."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeSupervise:
    def __init__(self, post_status=201, decide=None, post_body=None):
        self.post_status = post_status
        self.post_body = post_body
        self.decide = decide or (lambda proposal_id, polls: ("pending", ""))
        self.posts = []          # raw bytes of each POST /release body
        self.polls = {}          # id -> number of GETs
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, code, body):
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with fake.lock:
                    fake.posts.append(raw)
                    number = len(fake.posts)
                if fake.post_body is not None:
                    return self._send(fake.post_status, fake.post_body)
                if fake.post_status != 201:
                    return self._send(fake.post_status, {"error": "scripted %d" % fake.post_status})
                return self._send(201, {"id": "%016x" % (0xabc000 + number), "status": "pending"})

            def do_GET(self):  # noqa: N802
                proposal_id = self.path[len("/release/"):]
                with fake.lock:
                    fake.polls[proposal_id] = fake.polls.get(proposal_id, 0) + 1
                    polls = fake.polls[proposal_id]
                status, note = fake.decide(proposal_id, polls)
                if status == 404:
                    return self._send(404, {"error": "no release proposal"})
                return self._send(200, {"id": proposal_id, "status": status, "note": note})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def sent(self):
        """Every POST body egress sent, decoded."""
        return [json.loads(raw) for raw in self.posts]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def approve_after(n, note=""):
    return lambda proposal_id, polls: ("approved", note) if polls >= n else ("pending", "")


def reject_after(n, note=""):
    return lambda proposal_id, polls: ("rejected", note) if polls >= n else ("pending", "")
