#!/usr/bin/env python
"""The load of bench/soak.py, run inside a bottle's agent container (Python standard library only).

Sends requests ``--start`` .. ``--start + --count - 1`` of a fixed mix through the agent's proxy
(HTTPS_PROXY / HTTP_PROXY, as every client in the bottle), ``--workers`` threads, each keeping its
connections alive the way an agent's HTTP client does. Request ``i`` is of kind ``kind_of(i)``:

  get        GET https://HOST/v1/soak/<i>                    a small JSON answer (200)
  post       POST https://HOST/v1/post, a ``--post-bytes`` body   (200)
  download   GET https://HOST/bytes?n=<--download-bytes>     (200, read to the end)
  sse        GET https://HOST/sse?events=20&interval_ms=0    (200, the stream to its end; the server closes)
  websocket  an RFC 6455 session on wss://HOST/ws: 10 messages echoed, then a close (101)
  refused    GET http://blocked.bottle.test/ (plain HTTP, not on the allowlist: egress's 403 allowlist)
  dlp        POST https://HOST/v1/leak with a provider token in the body (egress's 403, a DLP rule)

Prints one JSON object: ``{"kinds": {kind: {status: n}}, "up": bytes, "down": bytes, "errors": [...],
"seconds": s}``. Every exchange has a deadline; an error is counted (status "error") and the worker
reconnects.
"""

import argparse
import base64
import http.client
import json
import os
import socket
import ssl
import struct
import sys
import threading
import time
from urllib.parse import urlsplit

HOST = "allowed.bottle.test"
REFUSED_HOST = "blocked.bottle.test"
# Out of 100: the shares of each kind (kind_of), in a fixed interleaved order.
MIX = (("get", 74), ("post", 10), ("refused", 5), ("sse", 4), ("dlp", 3), ("websocket", 3), ("download", 1))
# A GitHub token shape that egress's DLP rules know (never a real token).
LEAK = "ghp_" + "Zq8xW3e5R7t9Y1u3I5o7P9a1S3d5F7g9H1j3"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TIMEOUT = 60

_ORDER = [kind for kind, share in MIX for _n in range(share)]
# Spread the kinds: index i takes _SPREAD[i % 100], a fixed shuffle (stride 37 is coprime with 100).
_SPREAD = [_ORDER[(n * 37) % 100] for n in range(100)]


def kind_of(index):
    return _SPREAD[index % 100]


def expected_counts(start, count):
    out = {}
    for index in range(start, start + count):
        kind = kind_of(index)
        out[kind] = out.get(kind, 0) + 1
    return out


def proxy_address(name):
    url = os.environ.get(name) or os.environ.get(name.lower()) or ""
    parts = urlsplit(url)
    if not parts.hostname:
        raise SystemExit("%s is not set: run inside a bottle's agent (its proxy variables)" % name)
    return parts.hostname, parts.port or 80


def tls_context():
    cafile = os.environ.get("SSL_CERT_FILE") or os.environ.get("REQUESTS_CA_BUNDLE")
    return ssl.create_default_context(cafile=cafile)


def ws_frame(opcode, payload, mask=b"\x11\x22\x33\x44"):
    """One masked client frame."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, size)
    keys = (mask * (size // 4 + 1))[:size]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(keys, "big")).to_bytes(size, "big") if size else b""
    return head + mask + masked


def read_exact(sock, count):
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            raise ConnectionError("closed after %d of %d bytes" % (len(data), count))
        data += chunk
    return data


def ws_read(sock):
    """(opcode, payload) of one server frame (unmasked)."""
    head = read_exact(sock, 2)
    length = head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", read_exact(sock, 2))[0]
    elif length == 127:
        length = struct.unpack("!Q", read_exact(sock, 8))[0]
    return head[0] & 0x0F, read_exact(sock, length) if length else b""


def ws_session(sock, host, messages=10, size=1024):
    """Handshake on ``sock`` (already connected to ``host``), ``messages`` echoed, a close: (status, up, down)."""
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(("GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (host, key)).encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the WebSocket handshake: %r" % head[:80])
        head += chunk
    status = int(head.split(b" ", 2)[1])
    if status != 101:
        return status, 0, len(head)
    up = down = 0
    for number in range(messages):
        payload = (b"soak message %d " % number).ljust(size, b".")
        sock.sendall(ws_frame(0x1, payload))
        opcode, echoed = ws_read(sock)
        if opcode != 0x1 or echoed != payload:
            raise ConnectionError("WebSocket message %d came back as opcode %d, %d bytes" % (number, opcode, len(echoed)))
        up, down = up + size, down + size
    sock.sendall(ws_frame(0x8, struct.pack("!H", 1000)))
    ws_read(sock)
    return 101, up, down


class Worker(threading.Thread):
    def __init__(self, indices, post_bytes, download_bytes):
        super().__init__(daemon=True)
        self.indices = indices
        self.post = (b'{"soak": "' + b"x" * max(0, post_bytes - 13) + b'"}')[:max(post_bytes, 13)]
        self.download_bytes = download_bytes
        self.https_proxy = proxy_address("HTTPS_PROXY")
        self.http_proxy = proxy_address("HTTP_PROXY")
        self.context = tls_context()
        self.kinds, self.errors = {}, []
        self.up = self.down = 0
        self.tls = self.plain = None

    def count(self, kind, status):
        table = self.kinds.setdefault(kind, {})
        table[str(status)] = table.get(str(status), 0) + 1

    def https(self):
        if self.tls is None:
            self.tls = http.client.HTTPSConnection(*self.https_proxy, timeout=TIMEOUT, context=self.context)
            self.tls.set_tunnel(HOST, 443)
        return self.tls

    def exchange(self, conn, method, path, body=None, headers=None):
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        down = 0
        while True:
            chunk = response.read(65536)
            if not chunk:
                break
            down += len(chunk)
        self.up += len(body or b"")
        self.down += down
        if response.will_close:
            conn.close()
        return response.status

    def one(self, index):
        kind = kind_of(index)
        if kind == "get":
            return kind, self.exchange(self.https(), "GET", "/v1/soak/%d" % index)
        if kind == "post":
            return kind, self.exchange(self.https(), "POST", "/v1/post", self.post, {"Content-Type": "application/json"})
        if kind == "download":
            return kind, self.exchange(self.https(), "GET", "/bytes?n=%d" % self.download_bytes)
        if kind == "dlp":
            return kind, self.exchange(self.https(), "POST", "/v1/leak", b'{"token": "%s"}' % LEAK.encode(),
                                       {"Content-Type": "application/json"})
        if kind == "sse":
            conn = http.client.HTTPSConnection(*self.https_proxy, timeout=TIMEOUT, context=self.context)
            conn.set_tunnel(HOST, 443)
            try:
                return kind, self.exchange(conn, "GET", "/sse?events=20&interval_ms=0")
            finally:
                conn.close()
        if kind == "refused":
            if self.plain is None:
                self.plain = http.client.HTTPConnection(*self.http_proxy, timeout=TIMEOUT)
            return kind, self.exchange(self.plain, "GET", "http://%s/soak/%d" % (REFUSED_HOST, index),
                                       headers={"Host": REFUSED_HOST})
        # websocket: a tunnel of its own, TLS to the host through it, then the session.
        raw = socket.create_connection(self.https_proxy, timeout=TIMEOUT)
        try:
            raw.sendall(("CONNECT %s:443 HTTP/1.1\r\nHost: %s:443\r\n\r\n" % (HOST, HOST)).encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = raw.recv(4096)
                if not chunk:
                    raise ConnectionError("the proxy closed the CONNECT")
                head += chunk
            if not head.startswith(b"HTTP/1.1 200"):
                return kind, int(head.split(b" ", 2)[1])
            with self.context.wrap_socket(raw, server_hostname=HOST) as sock:
                status, up, down = ws_session(sock, HOST)
                self.up, self.down = self.up + up, self.down + down
                return kind, status
        finally:
            raw.close()

    def run(self):
        for index in self.indices:
            try:
                kind, status = self.one(index)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                kind, status = kind_of(index), "error"
                if len(self.errors) < 5:
                    self.errors.append("%d %s: %s: %s" % (index, kind, type(exc).__name__, exc))
                for conn in (self.tls, self.plain):
                    if conn is not None:
                        conn.close()
                self.tls = self.plain = None
            self.count(kind, status)
        for conn in (self.tls, self.plain):
            if conn is not None:
                conn.close()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", maxsplit=1)[0])
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--post-bytes", type=int, default=16384)
    parser.add_argument("--download-bytes", type=int, default=1048576)
    args = parser.parse_args(argv)
    indices = range(args.start, args.start + args.count)
    workers = [Worker(indices[w::args.workers], args.post_bytes, args.download_bytes) for w in range(args.workers)]
    began = time.monotonic()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    kinds = {}
    for worker in workers:
        for kind, table in worker.kinds.items():
            for status, n in table.items():
                kinds.setdefault(kind, {})[status] = kinds.get(kind, {}).get(status, 0) + n
    print(json.dumps({"kinds": kinds, "up": sum(w.up for w in workers), "down": sum(w.down for w in workers),
                      "errors": [e for w in workers for e in w.errors][:10], "seconds": time.monotonic() - began}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
