# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The channels of docs/firewall-channels.md against the real egress: mitmdump 12.1.2 with the
working copy's addon, started from the argv bottle_init builds, on 127.0.0.1 in the bundle
image; a client; and a raw recording upstream on loopback that logs every byte it receives
(WebSocket frames unmasked). Each test plants a known secret no pattern rule knows
(``secret_env``) and a provider token, and proves that none of their bytes reach the upstream
and that the audit is true: ``block`` iff no byte of the request reached the upstream.

Also: the mitmproxy options that open a channel, as bottle_init sets them, loaded into
mitmproxy's own ``Options``, compared with the inventory's table."""

import asyncio
import base64
import hashlib
import json
import os
import shlex
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.environ.get("BOTTLE_SRC", "/src"))
sys.dont_write_bytecode = True

import bottle_init  # noqa: E402

KNOWN = "pa+ss!w0rd-Zq8x"
PAT = "ghp_" + "Zq8xW3e5R7t9Y1u3I5o7P9a1S3d5F7g9H1j3"
CAP = 64 * 1024

# docs/firewall-channels.md, "Options that open a channel": the value each must have in egress.
CHANNEL_OPTIONS = {
    "rawtcp": False,             # no raw TCP: not for unknown bytes in a tunnel, not after a 101
    "http3": False,              # no QUIC / HTTP/3 (and no UDP layer is reachable in regular mode)
    "websocket": True,           # WebSocket through the addon (websocket_message + layers.py)
    "http2": True,               # HTTP/2: the same hooks as HTTP/1 (requestheaders/request)
    "connection_strategy": "lazy",  # no upstream connection before the request hooks decided
    "stream_large_bodies": None,  # request bodies buffered (the per-chunk cap: layers.py)
    "body_size_limit": None,     # would cut downloads; the request cap is the addon's
    "allow_hosts": [],           # an allow/ignore list would relay unlisted hosts untouched
    "ignore_hosts": [],
    "tcp_hosts": [],             # a tcp_hosts match relays raw TCP
    "udp_hosts": [],
    "validate_inbound_headers": True,  # off, request smuggling (CL+TE, duplicate CL) reaches the layers
    "store_streamed_bodies": False,
    "upstream_cert": True,
    "server": True,
}
MODES = {False: ["regular@0.0.0.0:8888"], True: ["transparent@127.0.0.1:%d" % bottle_init.EGRESS_CHAIN_PORT]}


def egress_sets(chained):
    argv, _env = bottle_init.daemon_command("egress", chained=chained)
    sets, mode, host, port = [], None, None, None
    for index, arg in enumerate(argv):
        if arg == "--set":
            sets.append(argv[index + 1])
        elif arg == "--mode":
            mode = argv[index + 1]
        elif arg == "--listen-host":
            host = argv[index + 1]
        elif arg == "--listen-port":
            port = argv[index + 1]
    return argv, sets, "%s@%s:%s" % (mode, host, port)


async def options_as_run(chained):
    from mitmproxy import options
    from mitmproxy.tools import dump
    opts = options.Options()
    master = dump.DumpMaster(opts)
    _argv, sets, mode = egress_sets(chained)
    opts.set(*[s for s in sets if not s.startswith(("confdir=", "ssl_verify_upstream_trusted_ca="))])
    opts.update(mode=[mode])
    return master, opts


async def test_channel_options_are_the_inventorys(tmp):
    import logging
    handlers = list(logging.getLogger().handlers)
    try:
        await _channel_options_are_the_inventorys()
    finally:  # DumpMaster's log handlers belong to this test's event loop
        logging.getLogger().handlers[:] = handlers


async def _channel_options_are_the_inventorys():
    for chained in (False, True):
        master, opts = await options_as_run(chained)
        for name, expected in CHANNEL_OPTIONS.items():
            actual = getattr(opts, name)
            actual = list(actual) if isinstance(actual, (list, tuple)) else actual
            assert actual == expected, "option %s is %r, the inventory says %r (chained=%s)" % (
                name, actual, expected, chained)
        assert list(opts.mode) == MODES[chained], opts.mode
    # The table is not vacuous: mitmproxy's defaults would open raw TCP and QUIC.
    from mitmproxy import options
    defaults = options.Options()
    from mitmproxy.tools import dump
    dump.DumpMaster(defaults)
    assert defaults.rawtcp is True and defaults.http3 is True


async def test_layer_patches_are_in_force(tmp):
    from bottle_firewall import layers
    status = layers.install(object())
    assert status.websocket_control and status.request_cap and status.upstream_text, status
    from mitmproxy.proxy.layers import websocket as websocket_layer
    from mitmproxy.proxy.layers.http import HttpStream
    assert getattr(websocket_layer.WebsocketLayer.relay_messages, "bottle_patched", False)
    assert getattr(HttpStream.state_consume_request_body, "bottle_patched", False)
    assert getattr(HttpStream.handle_protocol_error, "bottle_patched", False)


async def test_layer_patches_fail_closed_on_another_mitmproxy(tmp):
    from bottle_firewall import layers
    from mitmproxy import version
    saved_status, saved_version = layers.STATE.status, version.VERSION
    try:
        layers.STATE.status, version.VERSION = None, "12.1.3"
        status = layers.install(object())
        assert not status.websocket_control and not status.request_cap and "12.1.3" in status.reason, status
    finally:
        layers.STATE.status, version.VERSION = saved_status, saved_version

    class Changed:
        def relay_messages(self, event):  # not mitmproxy's source
            yield from ()
    reasons = []
    assert layers._check(Changed, "relay_messages", "WebsocketLayer.relay_messages", reasons) is False
    assert "changed" in reasons[0], reasons
    assert layers._check(Changed, "missing", "HttpStream.state_consume_request_body", reasons) is False


# --- the real proxy --------------------------------------------------------------------------

class Recorder:
    """A raw upstream on 127.0.0.1: logs every byte per connection and answers per ``mode``:
    ``ok`` (200), ``101`` (a 101 naming another protocol, then silence), ``ws`` (a real
    WebSocket handshake, then frames are unmasked into ``frames``)."""

    def __init__(self, mode="ok"):
        self.mode = mode
        self.received = []  # bytearray per connection
        self.frames = []    # (opcode, unmasked payload) of ws frames from the proxy (last connection)
        self.all_frames = {}  # index of the connection -> its frames
        self.server = None

    async def start(self):
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def all(self):
        return b"".join(bytes(r) for r in self.received)

    async def serve(self, reader, writer):
        buf = bytearray()
        self.received.append(buf)
        index = len(self.received) - 1
        answered = False
        mode = self.mode
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                buf += data
                if not answered and b"\r\n\r\n" in buf:
                    answered = True
                    head = bytes(buf).split(b"\r\n\r\n", 1)[0]
                    if mode == "auto":  # per request: x-answer: 101, a WebSocket handshake, or 200
                        lower = head.lower()
                        mode = "101" if b"\r\nx-answer: 101" in lower else (
                            "ws" if b"\r\nupgrade: websocket" in lower else "ok")
                    if mode == "ok":
                        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    elif mode == "500":
                        writer.write(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops")
                    elif mode == "101":
                        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw\r\nConnection: upgrade\r\n\r\n")
                    elif mode == "ws":
                        key = [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                               if line.lower().startswith(b"sec-websocket-key:")][0]
                        accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                                                  .digest())
                        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                     b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
                    await writer.drain()
                if mode == "ws" and answered:
                    rest = bytes(buf).split(b"\r\n\r\n", 1)[1]
                    self.frames = self.all_frames[index] = parse_frames(rest)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()


def parse_frames(data):
    frames, at = [], 0
    while at + 2 <= len(data):
        opcode = data[at] & 0x0F
        masked, length = data[at + 1] & 0x80, data[at + 1] & 0x7F
        at += 2
        if length == 126:
            length = struct.unpack(">H", data[at:at + 2])[0]
            at += 2
        elif length == 127:
            length = struct.unpack(">Q", data[at:at + 8])[0]
            at += 8
        mask = data[at:at + 4] if masked else b"\0\0\0\0"
        at += 4 if masked else 0
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(data[at:at + length]))
        at += length
        frames.append((opcode, payload))
    return frames


def frame(opcode, payload):
    mask = os.urandom(4)
    head = bytes([0x80 | opcode])
    head += bytes([0x80 | len(payload)]) if len(payload) < 126 else bytes([0x80 | 126]) + struct.pack(">H", len(payload))
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def secret_forms():
    from bottle_firewall import dlp
    forms = set()
    for value in (KNOWN, PAT):
        forms.update(dlp.secret_variants(value) if hasattr(dlp, "secret_variants") else [value.encode()])
        forms.add(value.encode())
    return [f if isinstance(f, bytes) else f.encode() for f in forms]


def readings(data):
    """``data`` as received, and percent-decoded (an upstream decodes %2B as +)."""
    from urllib.parse import unquote_to_bytes
    return [data, unquote_to_bytes(data), unquote_to_bytes(data.replace(b"+", b" "))]


def assert_no_secret(data, what):
    for reading in readings(data):
        for form in secret_forms():
            assert form not in reading, "%s: a form of a planted secret reached the upstream: %r" % (what, form[:12])


class Egress:
    """mitmdump with bottle_init's argv (listener, confdir and script pointed at the test's)."""

    def __init__(self, tmp, config):
        self.tmp, self.config = tmp, config

    async def start(self):
        home = self.tmp
        for name, content in (("egress.json", self.config), ("tokens.json", {}), ("secrets.json", [KNOWN])):
            with open(os.path.join(home, name), "w", encoding="utf-8") as handle:
                json.dump(content, handle)
        self.audit_path = os.path.join(home, "audit.jsonl")
        argv, _sets, _mode = egress_sets(False)
        self.port = free_port()
        run = []
        skip = 0
        for index, arg in enumerate(argv):
            if skip:
                skip -= 1
                continue
            if arg in ("--listen-host", "--listen-port"):
                skip = 1
                continue
            if arg == "--set" and argv[index + 1].startswith(("confdir=", "ssl_verify_upstream_trusted_ca=")):
                skip = 1
                continue
            if arg == "-s":
                run += ["-s", os.path.join(os.environ.get("BOTTLE_SRC", "/src"), "egress_addon.py")]
                skip = 1
                continue
            run.append(arg)
        run += ["--listen-host", "127.0.0.1", "--listen-port", str(self.port), "--set", "confdir=" + home + "/conf"]
        cache = "/opt/egress/rules-cache" if os.access("/opt/egress/rules-cache", os.W_OK) else home + "/rules"
        env = dict(os.environ, HOME=home, BOTTLE_EGRESS_CONFIG=home + "/egress.json",
                   BOTTLE_EGRESS_TOKENS=home + "/tokens.json", BOTTLE_EGRESS_SECRETS=home + "/secrets.json",
                   BOTTLE_EGRESS_RULES_CACHE=cache, BOTTLE_EGRESS_AUDIT=self.audit_path,
                   # The checkout, then the collection's files it shares (egress_mitmproxy.sh mounts them).
                   PYTHONPATH=os.pathsep.join(filter(None, (os.environ.get("BOTTLE_SRC", "/src"),
                                                            os.environ.get("PYTHONPATH")))))
        self.log = open(os.path.join(home, "mitmdump.log"), "wb")
        self.proc = subprocess.Popen(run, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("mitmdump exited: " + self.output())
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                await asyncio.sleep(0.2)
        raise AssertionError("mitmdump did not listen: " + self.output() + " " + shlex.join(run))

    def output(self):
        with open(os.path.join(self.tmp, "mitmdump.log"), "rb") as handle:
            return handle.read().decode("utf-8", "replace")[-3000:]

    def audit(self):
        if not os.path.exists(self.audit_path):
            return []
        with open(self.audit_path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]

    def rss_peak_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def config_for(port, websocket=False, cap=CAP):
    return {"version": 2, "mode": "firewall", "allowed_hosts": ["127.0.0.1"], "ports": [port],
            "trusted_domains": ["127.0.0.1"], "websocket_hosts": ["127.0.0.1"] if websocket else [],
            "dlp": {"max_body_bytes": cap}, "rate_limit": {"requests_per_minute": 6000, "burst": 1000}}


async def read_head(reader, timeout):
    """What egress answers, at least its whole head (or all until it closes or ``timeout``)."""
    answer = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in answer:
        chunk = await asyncio.wait_for(reader.read(65536), max(0.1, deadline - time.monotonic()))
        if not chunk:
            break
        answer += chunk
    return answer


async def exchange(port, data, read_timeout=20.0, then=b""):
    """Send ``data`` to egress, read its answer (a whole head, or until close or timeout), send ``then``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    answer = b""
    try:
        answer = await read_head(reader, read_timeout)
        if then:
            writer.write(then)
            await writer.drain()
            await asyncio.sleep(0.5)
            more = await asyncio.wait_for(reader.read(65536), 1.0)
            answer += more
    except (asyncio.TimeoutError, ConnectionError):
        pass
    writer.close()
    return answer


async def run_proxy(tmp, mode, websocket, body):
    recorder = await Recorder(mode).start()
    egress = await Egress(tmp, config_for(recorder.port, websocket)).start()
    try:
        return recorder, egress, await body(recorder, egress)
    finally:
        egress.stop()
        recorder.server.close()


def request(port, method="GET", path="/", headers=(), body=b"", target=None):
    target = target or "http://127.0.0.1:%d%s" % (port, path)
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: 127.0.0.1:%d" % port] + list(headers)
    if body:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def last_block(egress, rule):
    lines = [line for line in egress.audit() if line["action"] == "block"]
    assert lines, "no block in the audit: %s" % egress.audit()
    assert lines[-1]["rule"] == rule, lines[-1]
    return lines[-1]


async def test_101_to_a_plain_request_is_no_relay(tmp):
    secret = ("after-101 %s %s" % (KNOWN, PAT)).encode()

    async def body(recorder, egress):
        answer = await exchange(egress.port, request(recorder.port, path="/up"), then=secret * 4)
        return answer
    recorder, egress, answer = await run_proxy(tmp, "101", False, body)
    assert_no_secret(recorder.all(), "bytes after an upstream 101")
    assert b"GET /up HTTP/1.1" in recorder.all(), "the control request itself should have gone"
    assert not answer.startswith(b"HTTP/1.1 101"), answer[:200]
    last_block(egress, "switch-protocols")


async def test_upgrade_other_than_websocket_is_refused_before_upstream(tmp):
    async def body(recorder, egress):
        answers = []
        for upgrade in ("h2c", "raw", "websocket"):  # websocket: not in websocket_hosts here
            extra = ["Upgrade: %s" % upgrade, "Connection: Upgrade, HTTP2-Settings", "X-K: %s" % KNOWN]
            if upgrade == "websocket":
                extra += ["Sec-WebSocket-Key: %s" % base64.b64encode(os.urandom(16)).decode(),
                          "Sec-WebSocket-Version: 13"]
            answers.append(await exchange(egress.port, request(recorder.port, path="/" + PAT, headers=extra)))
        return answers
    recorder, egress, answers = await run_proxy(tmp, "101", False, body)
    assert recorder.all() == b"", "an Upgrade request reached the upstream: %r" % recorder.all()[:200]
    for answer, rule in zip(answers, ("upgrade", "upgrade", "websocket")):
        assert answer.startswith(b"HTTP/1.1 403") and b"x-bottle-egress-rule: " + rule.encode() in answer.lower(), \
            answer[:300]
    assert [line["rule"] for line in egress.audit() if line["action"] == "block"][-3:] == [
        "upgrade", "upgrade", "websocket"]


async def test_absolute_target_inside_a_tunnel_must_name_the_tunnel(tmp):
    async def body(recorder, egress):
        connect = ("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % (recorder.port, recorder.port)).encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", egress.port)
        writer.write(connect)
        await writer.drain()
        established = await read_head(reader, 20)
        inner = ("GET http://other.example/%s?k=%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                 % (PAT, KNOWN, recorder.port)).encode()
        writer.write(inner)
        await writer.drain()
        refused = await read_head(reader, 20)
        writer.close()
        return established, refused
    recorder, egress, (established, refused) = await run_proxy(tmp, "ok", False, body)
    assert established.startswith(b"HTTP/1.1 200"), established
    assert refused.startswith(b"HTTP/1.1 403") and b"request-target" in refused.lower(), refused[:300]
    assert recorder.all() == b"", recorder.all()[:200]
    last_block(egress, "request-target")


async def test_unknown_method_is_refused(tmp):
    async def body(recorder, egress):
        return await exchange(egress.port, request(recorder.port, method="EXFIL", path="/" + KNOWN))
    recorder, egress, answer = await run_proxy(tmp, "ok", False, body)
    assert answer.startswith(b"HTTP/1.1 405"), answer[:300]
    assert recorder.all() == b""
    last_block(egress, "method")


async def test_a_clean_request_goes_and_is_audited_allow(tmp):
    async def body(recorder, egress):
        return await exchange(egress.port, request(recorder.port, method="POST", path="/fine", body=b"hello"))
    recorder, egress, answer = await run_proxy(tmp, "ok", False, body)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert b"POST /fine HTTP/1.1" in recorder.all() and recorder.all().endswith(b"hello")
    assert [line for line in egress.audit() if line["event"] == "request"][-1]["action"] == "allow", egress.audit()


async def test_the_health_probe_gets_the_firewalls_403_and_no_audit_line(tmp):
    """Issue 23: bottle-health's egress probe is answered by the firewall's own hook (its readable 403, rule
    health), and is neither an audit line nor a log line (every 2 s for days)."""
    import bottle_health

    async def body(recorder, egress):
        loop = asyncio.get_running_loop()
        # egress's first answer waits for its start-up (rules, scan service): not what the deadline measures.
        first = await exchange(egress.port, bottle_health.EGRESS_PROBE, 60)
        assert first.startswith(b"HTTP/1.1 403"), first[:200]
        for _n in range(3):
            await loop.run_in_executor(None, bottle_health.probe_egress, egress.port, 5.0)
        # the whole answer (the probe says Connection: close): its body may come after the head
        reader, writer = await asyncio.open_connection("127.0.0.1", egress.port)
        writer.write(bottle_health.EGRESS_PROBE)
        await writer.drain()
        try:
            return await asyncio.wait_for(reader.read(-1), 20.0)
        finally:
            writer.close()
    recorder, egress, answer = await run_proxy(tmp, "ok", False, body)
    assert answer.startswith(b"HTTP/1.1 403") and b"x-bottle-egress-rule: health" in answer.lower(), answer[:300]
    assert b"blocked by egress: a bottle-health probe" in answer, answer[:300]
    assert egress.audit() == [] and recorder.all() == b"", egress.audit()
    assert "bottle-health" not in egress.output()


async def outcome_of(egress, timeout=10.0):
    """(decision line, outcome line) of the last allowed request, waiting for the outcome."""
    deadline = time.monotonic() + timeout
    while True:
        lines = egress.audit()
        outcomes = [line for line in lines if line["event"] == "outcome"]
        if outcomes or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert outcomes, "no outcome line: %s" % lines
    decisions = [line for line in lines if line["event"] == "request" and line.get("flow") == outcomes[-1]["flow"]]
    assert decisions, "no decision line with the outcome's flow id: %s" % lines
    return decisions[-1], outcomes[-1]


async def test_an_allowed_request_has_an_outcome_line_with_status_bytes_and_its_flow_id(tmp):
    async def body(recorder, egress):
        return await exchange(egress.port, request(recorder.port, method="POST", path="/fine", body=b"hello")), \
            await outcome_of(egress)
    _recorder, _egress, (answer, (decision, outcome)) = await run_proxy(tmp, "ok", False, body)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert decision["action"] == "allow" and decision["bytes"] == 5
    assert (outcome["action"], outcome["status"], outcome["bytes"], outcome["down"]) == ("complete", 200, 5, 2), outcome
    assert outcome["duration"] >= 0


async def test_an_upstream_500_is_an_upstream_error_not_a_block(tmp):
    async def body(recorder, egress):
        return await exchange(egress.port, request(recorder.port, path="/broken")), await outcome_of(egress)
    _recorder, egress, (answer, (decision, outcome)) = await run_proxy(tmp, "500", False, body)
    assert answer.startswith(b"HTTP/1.1 500"), answer[:300]
    assert decision["action"] == "allow"
    assert (outcome["action"], outcome["rule"], outcome["status"]) == ("upstream-error", "upstream-status", 500)
    assert not [line for line in egress.audit() if line["action"] == "block"]


async def test_an_upstream_that_refuses_the_connection_is_an_upstream_error_not_a_block(tmp):
    closed = free_port()  # allowed by the config, nothing listens there

    async def body(recorder, egress):
        return await exchange(egress.port, request(closed, path="/x")), await outcome_of(egress)
    recorder = await Recorder("ok").start()
    egress = await Egress(tmp, dict(config_for(recorder.port), ports=[closed])).start()
    try:
        answer, (decision, outcome) = await body(recorder, egress)
    finally:
        egress.stop()
        recorder.server.close()
    assert answer.startswith(b"HTTP/1.1 502"), answer[:300]
    assert b"blocked" not in answer, answer[:300]
    assert decision["action"] == "allow"
    assert (outcome["action"], outcome["rule"]) == ("upstream-error", "upstream-connect"), outcome
    assert not [line for line in egress.audit() if line["action"] == "block"]


async def test_chunked_body_over_the_cap_is_refused_holding_at_most_the_cap(tmp):
    chunk = (("%s %s " % (KNOWN, PAT)) * 400).encode()[:16384]
    total = 32 * 1024 * 1024

    async def body(recorder, egress):
        await asyncio.sleep(0.5)
        before = egress.rss_peak_kib()
        reader, writer = await asyncio.open_connection("127.0.0.1", egress.port)
        head = ("POST http://127.0.0.1:%d/upload HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nTransfer-Encoding: chunked\r\n\r\n"
                % (recorder.port, recorder.port)).encode()
        writer.write(head)
        sent = 0

        async def send():
            nonlocal sent
            try:
                while sent < total:
                    writer.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                    sent += len(chunk)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
        sender = asyncio.create_task(send())
        answer = b""
        try:
            answer = await asyncio.wait_for(reader.read(65536), 30)
        except (asyncio.TimeoutError, ConnectionError):
            pass
        sender.cancel()
        writer.transport.abort()
        return answer, sent, egress.rss_peak_kib() - before
    recorder, egress, (answer, sent, grown_kib) = await run_proxy(tmp, "ok", False, body)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert b"scan limit of %d bytes" % CAP in answer, answer[:300]
    assert recorder.all() == b"", "a byte of the over-cap request reached the upstream"
    line = last_block(egress, "body-limit")
    assert CAP < line["bytes"] <= CAP + 65536, line
    # 32 MiB offered (or as much as egress read before closing): its peak RSS grew far less.
    assert grown_kib < 8 * 1024, "egress's peak RSS grew by %d KiB" % grown_kib


async def _websocket(recorder, egress, frames):
    key = base64.b64encode(os.urandom(16)).decode()
    handshake = request(recorder.port, path="/ws", headers=[
        "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"])
    reader, writer = await asyncio.open_connection("127.0.0.1", egress.port)
    writer.write(handshake)
    await writer.drain()
    answer = await read_head(reader, 20)
    for data in frames:
        writer.write(data)
        await writer.drain()
        await asyncio.sleep(0.3)
    rest = b""
    try:
        rest = await asyncio.wait_for(reader.read(65536), 2)
    except (asyncio.TimeoutError, ConnectionError):
        pass
    writer.close()
    return answer, rest


async def test_websocket_control_frames_are_scanned(tmp):
    for opcode, payload, kind in ((0x9, ("ping " + KNOWN).encode(), "ping"), (0xA, ("pong " + PAT).encode(), "pong"),
                                  (0x8, struct.pack(">H", 1000) + ("bye " + KNOWN).encode(), "close")):
        with tempfile.TemporaryDirectory() as sub:
            async def body(recorder, egress):
                return await _websocket(recorder, egress, [frame(0x9, b"clean-ping"), frame(opcode, payload),
                                                           frame(0x1, b"after")])
            recorder, egress, (answer, rest) = await run_proxy(sub, "ws", True, body)
            assert answer.startswith(b"HTTP/1.1 101"), answer[:300]
            payloads = [p for _op, p in recorder.frames]
            assert b"clean-ping" in payloads, "the clean ping should pass: %r" % recorder.frames
            assert_no_secret(recorder.all() + b"".join(payloads), "WebSocket %s frame" % kind)
            assert b"after" not in payloads, "a message after the refused frame went on"
            line = last_block(egress, "known-secret" if KNOWN.encode() in payload else "dlp:betterleaks.github-pat")
            assert line["event"] == "websocket" and kind in line["path"], line


async def test_websocket_data_message_still_scanned(tmp):
    async def body(recorder, egress):
        return await _websocket(recorder, egress, [frame(0x1, ("msg " + KNOWN).encode()), frame(0x1, b"ok")])
    recorder, egress, (answer, rest) = await run_proxy(tmp, "ws", True, body)
    assert answer.startswith(b"HTTP/1.1 101"), answer[:300]
    assert_no_secret(recorder.all() + b"".join(p for _o, p in recorder.frames), "WebSocket message")
    assert last_block(egress, egress.audit()[-1]["rule"])["event"] == "websocket"


def dns_query(name):
    labels = b"".join(bytes([len(part)]) + part for part in name.encode().split(b".")) + b"\0"
    message = struct.pack(">HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0) + labels + struct.pack(">HH", 1, 1)
    return struct.pack(">H", len(message)) + message


async def test_dns_in_a_tunnel_is_answered_refused_never_relayed(tmp):
    # mitmproxy's next_layer picks its DNS layer for a tunnel to port 53 or 5353 (5353: no root needed here).
    recorder = Recorder("ok")
    recorder.server = await asyncio.start_server(recorder.serve, "127.0.0.1", 5353)
    recorder.port = 5353
    egress = await Egress(tmp, config_for(5353)).start()
    try:
        label = base64.b32encode(KNOWN.encode()).decode().rstrip("=").lower()
        reader, writer = await asyncio.open_connection("127.0.0.1", egress.port)
        writer.write(b"CONNECT 127.0.0.1:5353 HTTP/1.1\r\nHost: 127.0.0.1:5353\r\n\r\n")
        await writer.drain()
        established = await read_head(reader, 20)
        writer.write(dns_query("%s.%s.example" % (label, PAT.lower())))
        await writer.drain()
        try:
            answer = await asyncio.wait_for(reader.read(4096), 5)
        except asyncio.TimeoutError:
            answer = b""
        writer.close()
    finally:
        egress.stop()
        recorder.server.close()
    assert established.startswith(b"HTTP/1.1 200"), established
    assert recorder.all() == b"", "a DNS query reached the upstream: %r" % recorder.all()[:100]
    assert len(answer) > 6 and answer[2:4] == b"\x12\x34" and answer[5] & 0x0F == 5, "not REFUSED: %r" % answer
    assert recorder.all() == b"", recorder.all()[:100]
    last_block(egress, "dns")


async def test_alpn_offers_reach_the_upstream_only_as_http_protocols(tmp):
    import ssl
    recorder = await Recorder("tls").start()  # logs the upstream ClientHello, never answers it
    egress = await Egress(tmp, config_for(recorder.port)).start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", egress.port)
        writer.write(("CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                      % (recorder.port, recorder.port)).encode())
        await writer.drain()
        established = await read_head(reader, 20)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        context.set_alpn_protocols(["x-" + KNOWN, PAT, "http/1.1"])
        await writer.start_tls(context)
        writer.write(("GET /alpn HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % recorder.port).encode())
        await writer.drain()
        try:
            await asyncio.wait_for(reader.read(4096), 3)
        except (asyncio.TimeoutError, ConnectionError, ssl.SSLError):
            pass
        writer.transport.abort()
    finally:
        egress.stop()
        recorder.server.close()
    assert established.startswith(b"HTTP/1.1 200"), established
    hello = recorder.all()
    assert hello[:1] == b"\x16", "egress did not open TLS upstream: %r" % hello[:40]
    assert b"http/1.1" in hello, "the HTTP offer should go"
    assert_no_secret(hello, "the upstream ClientHello's ALPN")


def main():
    tests = [(name, fn) for name, fn in globals().items() if name.startswith("test_")]
    passed = failed = 0
    for name, fn in tests:
        with tempfile.TemporaryDirectory() as tmp:
            try:
                asyncio.run(asyncio.wait_for(fn(tmp), 120))
            except BaseException as exc:  # noqa: B902 - report and go on
                import traceback
                failed += 1
                print("FAIL %s\n    %s" % (name, traceback.format_exc().replace("\n", "\n    ")), flush=True)
                log = os.path.join(tmp, "mitmdump.log")
                if os.path.exists(log):
                    with open(log, "rb") as handle:
                        print("    mitmdump: " + handle.read().decode("utf-8", "replace")[-1500:], flush=True)
                if isinstance(exc, KeyboardInterrupt):
                    raise
            else:
                passed += 1
                print("ok   %s" % name, flush=True)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
