#!/usr/bin/env python
"""The test "internet": an HTTPS (443) and HTTP (80) server under several names.

It records every request it receives as one JSON line in
/var/log/testnet/requests.jsonl (ts, scheme, method, host, path, query, headers,
body), so a test can assert that a token arrived or that a secret did not.

Endpoints: any path answers a small JSON echo; /sse?events=N&interval_ms=M
streams N server-sent events; /bytes?n=N streams N bytes.
"""

import base64
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOG_PATH = os.environ.get("TESTNET_LOG", "/var/log/testnet/requests.jsonl")
CERT_DIR = os.environ.get("TESTNET_CERTS", "/srv/testnet")
_log_lock = threading.Lock()


def record(entry, path=None):
    """Append one request record as a JSON line."""
    line = json.dumps(entry, sort_keys=True) + "\n"
    with _log_lock:
        with open(path or LOG_PATH, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()


def describe(handler, scheme, body):
    """The record of one request."""
    parts = urlsplit(handler.path)
    try:
        text = body.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError:
        text = base64.b64encode(body).decode("ascii")
        encoding = "base64"
    return {
        "ts": time.time(),
        "scheme": scheme,
        "method": handler.command,
        "host": (handler.headers.get("Host") or "").split(":")[0],
        "path": parts.path,
        "query": parts.query,
        "headers": {k.lower(): v for k, v in handler.headers.items()},
        "body": text,
        "body_encoding": encoding,
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every keep-alive response (and to every benchmark).
    disable_nagle_algorithm = True
    scheme = "http"
    server_version = "bottle-testnet/1"

    def log_message(self, fmt, *args):  # one line per request on stderr
        sys.stderr.write("%s %s\n" % (self.scheme, fmt % args))

    def _handle(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        entry = describe(self, self.scheme, body)
        record(entry)
        query = parse_qs(entry["query"])
        if entry["path"] == "/sse":
            return self._sse(int(query.get("events", ["5"])[0]), int(query.get("interval_ms", ["100"])[0]))
        if entry["path"] == "/bytes":
            return self._bytes(int(query.get("n", ["1048576"])[0]))
        payload = json.dumps({"ok": True, "host": entry["host"], "path": entry["path"],
                              "method": entry["method"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _sse(self, events, interval_ms):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for i in range(events):
            self.wfile.write(("id: %d\ndata: {\"event\": %d, \"ts\": %.6f}\n\n" % (i, i, time.time())).encode())
            self.wfile.flush()
            if i + 1 < events:
                time.sleep(interval_ms / 1000.0)
        self.close_connection = True

    def _bytes(self, count):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(count))
        self.end_headers()
        chunk = b"\0" * 65536
        while count > 0:
            n = min(count, len(chunk))
            self.wfile.write(chunk[:n])
            count -= n

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


class TLSHandler(Handler):
    scheme = "https"


def serve(port, handler, context=None):
    server = ThreadingHTTPServer(("0.0.0.0", port), handler)
    server.daemon_threads = True
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    os.makedirs(os.path.dirname(LOG_PATH), exist_ok=True)
    open(LOG_PATH, "a").close()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(CERT_DIR, "server.pem"), os.path.join(CERT_DIR, "server.key"))
    serve(int(os.environ.get("TESTNET_HTTPS_PORT", "443")), TLSHandler, context)
    serve(int(os.environ.get("TESTNET_HTTP_PORT", "80")), Handler)
    sys.stderr.write("testnet: serving https :443 and http :80, recording to %s\n" % LOG_PATH)
    threading.Event().wait()


if __name__ == "__main__":
    main()
