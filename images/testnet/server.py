"""The test "internet": an HTTPS (443) and HTTP (80) server under several names.

It records every request it receives as one JSON line in
/var/log/testnet/requests.jsonl, so a test can assert that a token arrived or that a
secret did not. A record holds: ts, scheme, sni (the TLS server name, https only),
method, host (from the Host header, port stripped), path, query (raw string), args
(the query parsed), headers (names lower-cased, repeated headers joined with ", "),
raw_headers ([name, value] pairs as received), body (utf-8 text, or base64 when the
bytes are not utf-8), body_encoding ("utf-8" or "base64") and body_bytes.

Endpoints (any host, any method):
  /sse?events=N&interval_ms=M   N server-sent events, each flushed, M ms apart
  /bytes?n=N                    N zero bytes (throughput benchmarks)
  /ws (GET, Upgrade: websocket) a WebSocket (RFC 6455) echoing every text and binary message,
                                answering pings, closing on a close (bench/soak.py)
  /status?code=N                a small JSON answer with HTTP status N (100 < N < 600: an upstream failing)
  anything else                 a small JSON echo of the request
except for Host api.anthropic.com (any port): the scripted Anthropic API of model.py (the
Messages API answering from the scenario file /srv/testnet/scenario.json; see model.py), and Host
api.openai.com: the scripted OpenAI Responses API of openai_model.py (same scenario file; HTTPS
server-sent events and the WebSocket transport Codex opens first, each client message recorded
with "websocket_message": true).

The test CA certificate is /srv/testnet/ca.pem (docker exec <c> cat /srv/testnet/ca.pem).
Python 3 standard library only.
"""

import base64
import hashlib
import importlib.util
import json
import os
import signal
import ssl
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LOG_PATH = os.environ.get("TESTNET_LOG", "/var/log/testnet/requests.jsonl")
CERT_DIR = os.environ.get("TESTNET_CERTS", "/srv/testnet")
MAX_BODY = 64 * 1024 * 1024
_log_lock = threading.Lock()


def load_model(name="model"):
    """model.py (or ``name``.py), next to this file: loaded by path so that it needs no package or sys.path."""
    spec = importlib.util.spec_from_file_location(
        "testnet_" + name, os.path.join(os.path.dirname(os.path.abspath(__file__)), name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MODEL = load_model()
OPENAI = load_model("openai_model")


class BadRequest(Exception):
    """The request cannot be served; the message goes back with a 400."""


def record(entry, path=None):
    """Append one request record as a JSON line (whole lines only, even across threads)."""
    line = json.dumps(entry, sort_keys=True) + "\n"
    with _log_lock:
        with open(path or LOG_PATH, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()


def encode_body(body):
    """(text, encoding) for a request body: utf-8 when it decodes, else base64."""
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"


def header_fields(pairs):
    """Lower-cased header names; a repeated header's values joined with ", " as HTTP allows."""
    merged = {}
    for name, value in pairs:
        key = name.lower()
        merged[key] = merged[key] + ", " + value if key in merged else value
    return merged


def strip_port(host):
    """The Host header without its port (IPv6 literals keep their brackets)."""
    if host.startswith("["):
        return host.split("]")[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def describe(method, target, header_pairs, body, scheme, sni=None, now=None):
    """The record of one request."""
    parts = urlsplit(target)
    text, encoding = encode_body(body)
    headers = header_fields(header_pairs)
    return {
        "ts": time.time() if now is None else now,
        "scheme": scheme,
        "sni": sni,
        "method": method,
        "host": strip_port(headers.get("host", "")),
        "path": parts.path,
        "query": parts.query,
        "args": parse_qs(parts.query, keep_blank_values=True),
        "headers": headers,
        "raw_headers": [[name, value] for name, value in header_pairs],
        "body": text,
        "body_encoding": encoding,
        "body_bytes": len(body),
    }


def int_arg(args, name, default, low=0, high=None):
    """Query argument ``name`` as an int within [low, high], or BadRequest naming it."""
    raw = args.get(name, [str(default)])[0]
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest("%s=%r is not an integer" % (name, raw)) from None
    if value < low or (high is not None and value > high):
        raise BadRequest("%s=%d is out of range [%d, %s]" % (name, value, low, high))
    return value


def read_chunked(rfile):
    """A chunked request body, de-chunked (trailers skipped)."""
    body = bytearray()
    while True:
        size_line = rfile.readline(1024)
        try:
            size = int(size_line.split(b";")[0].strip(), 16)
        except ValueError:
            raise BadRequest("bad chunk size line %r" % size_line) from None
        if size == 0:
            while rfile.readline(1024).strip():
                pass
            return bytes(body)
        if len(body) + size > MAX_BODY:
            raise BadRequest("body larger than %d bytes" % MAX_BODY)
        body += rfile.read(size)
        rfile.readline(8)


WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_frame(opcode, payload):
    """One unmasked (server) WebSocket frame."""
    size = len(payload)
    if size < 126:
        head = struct.pack("!BB", 0x80 | opcode, size)
    elif size < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, size)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, size)
    return head + payload


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes: without this, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every keep-alive response (and to every benchmark).
    disable_nagle_algorithm = True
    scheme = "http"
    server_version = "bottle-testnet/1"

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        sys.stderr.write("%s %s\n" % (self.scheme, format % args))

    def sni(self):
        return None

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return read_chunked(self.rfile)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise BadRequest("Content-Length is not an integer") from None
        if length < 0 or length > MAX_BODY:
            raise BadRequest("Content-Length %d out of range" % length)
        return self.rfile.read(length) if length else b""

    def handle_any(self):
        if OPENAI.is_api_host(strip_port(self.headers.get("Host") or "")):
            headers = {name.lower(): value for name, value in self.headers.items()}
            if OPENAI.is_websocket(self.command, headers):
                record(describe(self.command, self.path, list(self.headers.items()), b"", self.scheme, self.sni()))
                return OPENAI.websocket(self, headers, record=record)
        try:
            body = self.read_body()
        except BadRequest as exc:
            self.close_connection = True
            return self.send_json(400, {"ok": False, "error": str(exc)})
        entry = describe(self.command, self.path, list(self.headers.items()), body, self.scheme, self.sni())
        record(entry)
        if MODEL.is_api_host(entry["host"]):
            response = MODEL.respond(entry["method"], self.path, entry["headers"], body)
            MODEL.log_line(entry["method"], self.path, response)
            return MODEL.write(self, response)
        if OPENAI.is_api_host(entry["host"]):
            response = OPENAI.respond(entry["method"], self.path, entry["headers"], body)
            MODEL.log_line(entry["method"], self.path, response)
            return OPENAI.write(self, response)
        try:
            if entry["path"] == "/ws" and (self.headers.get("Upgrade") or "").lower() == "websocket":
                return self.websocket_echo()
            if entry["path"] == "/sse":
                return self.stream_events(int_arg(entry["args"], "events", 5, 0, 100000),
                                          int_arg(entry["args"], "interval_ms", 100, 0, 60000))
            if entry["path"] == "/bytes":
                return self.stream_bytes(int_arg(entry["args"], "n", 1048576, 0))
            if entry["path"] == "/status":
                code = int_arg(entry["args"], "code", 500, 200, 599)
                return self.send_json(code, {"ok": code < 400, "status": code, "host": entry["host"]})
        except BadRequest as exc:
            return self.send_json(400, {"ok": False, "error": str(exc)})
        return self.send_json(200, {"ok": True, "scheme": entry["scheme"], "host": entry["host"],
                                    "method": entry["method"], "path": entry["path"],
                                    "query": entry["query"], "body_bytes": entry["body_bytes"]})

    def send_json(self, status, payload):
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def stream_events(self, events, interval_ms):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self.command == "HEAD":
            return
        for i in range(events):
            self.wfile.write(("id: %d\ndata: {\"event\": %d, \"ts\": %.6f}\n\n" % (i, i, time.time())).encode())
            self.wfile.flush()
            if i + 1 < events:
                time.sleep(interval_ms / 1000.0)

    def websocket_echo(self):
        key = self.headers.get("Sec-WebSocket-Key") or ""
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        while True:
            head = self.rfile.read(2)
            if len(head) < 2:
                return
            opcode, length = head[0] & 0x0F, head[1] & 0x7F
            if length == 126:
                length = struct.unpack("!H", self.rfile.read(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self.rfile.read(8))[0]
            mask = self.rfile.read(4) if head[1] & 0x80 else b"\0\0\0\0"
            raw = self.rfile.read(length)
            keys = (mask * (length // 4 + 1))[:length]
            data = (int.from_bytes(raw, "big") ^ int.from_bytes(keys, "big")).to_bytes(length, "big")
            answer = {0x1: 0x1, 0x2: 0x2, 0x9: 0xA, 0x8: 0x8}.get(opcode)
            if answer is not None:
                self.wfile.write(ws_frame(answer, data))
                self.wfile.flush()
            if opcode == 0x8:
                return

    def stream_bytes(self, count):
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(count))
        self.end_headers()
        if self.command == "HEAD":
            return
        chunk = b"\0" * 65536
        while count > 0:
            n = min(count, len(chunk))
            self.wfile.write(chunk[:n])
            count -= n

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = handle_any


class TLSHandler(Handler):
    scheme = "https"
    handshake_timeout = 10

    def setup(self):
        # The handshake runs here, in the connection's own thread: a client that stalls in it
        # must not hold up the accept loop (wrapping the listening socket would).
        self.request.settimeout(self.handshake_timeout)
        self.request.do_handshake()
        self.request.settimeout(None)
        super().setup()

    def sni(self):
        return getattr(self.request, "testnet_sni", None)


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, handler, context):
        self.context = context
        super().__init__(address, handler)

    def handle_error(self, request, client_address):
        # A client that does not trust the test CA (a probe meant to fail) is not a server error.
        error = sys.exc_info()[1]
        if isinstance(error, (ssl.SSLError, ConnectionError, TimeoutError)):
            sys.stderr.write("https %s: TLS handshake failed: %s\n" % (client_address[0], error))
            return
        super().handle_error(request, client_address)

    def get_request(self):
        sock, addr = self.socket.accept()
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


def tls_context(cert_dir):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(os.path.join(cert_dir, "server.pem"), os.path.join(cert_dir, "server.key"))

    def remember_sni(sslsock, server_name, _context):
        sslsock.testnet_sni = server_name

    context.sni_callback = remember_sni
    return context


def serve(server):
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    # As PID 1 of its container the server has no default SIGTERM action: exit on it, so that
    # `docker stop` is immediate instead of waiting for the kill timeout.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    os.makedirs(os.path.dirname(LOG_PATH), exist_ok=True)
    with open(LOG_PATH, "a", encoding="utf-8"):
        pass
    https_port = int(os.environ.get("TESTNET_HTTPS_PORT", "443"))
    http_port = int(os.environ.get("TESTNET_HTTP_PORT", "80"))
    serve(TLSServer(("0.0.0.0", https_port), TLSHandler, tls_context(CERT_DIR)))
    plain = ThreadingHTTPServer(("0.0.0.0", http_port), Handler)
    plain.daemon_threads = True
    serve(plain)
    sys.stderr.write("testnet: serving https :%d and http :%d, recording to %s\n" % (https_port, http_port, LOG_PATH))
    threading.Event().wait()


if __name__ == "__main__":
    main()
