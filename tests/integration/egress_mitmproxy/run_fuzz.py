# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A generated test (Hypothesis) against the real egress (mitmdump 12.1.2 + the working copy's
addon, from bottle_init's argv; see run_channels.py) and a raw recording upstream on loopback.

Hypothesis builds odd requests: methods, request targets (proxy absolute form, origin form and
absolute form inside a CONNECT tunnel, another host's authority), header name case, chunking,
gzip, header shapes (duplicate Host, obs-fold, a space before the colon, split values, both
Content-Length and Transfer-Encoding), ``Upgrade`` (a good WebSocket handshake, a bad key, h2c, a made-up protocol), an upstream
that answers 101, and WebSocket frames (text, ping, pong, close reason). Each carries a known
secret (a ``secret_env`` value with ``+`` and ``!``, no pattern rule knows it) or a provider
token: the known secret in one of the encodings egress handles (raw, base64 std/url padded or
not, hex lower/upper, base32, percent-encoded), the token as issued. The invariant, for every
example:

1. No form of either secret (``dlp.secret_variants``, as received and percent-decoded, gzip
   streams inflated) is ever received by the upstream. (This config has no route, so no
   credential is injected: the one exception, a route's credential in its own header to its own
   host, does not arise.)
2. The audit is true: when no byte of the request reached the upstream, egress answered it
   (a refusal with its rule is audited ``block``, or mitmproxy itself rejected a malformed
   request, unaudited, with no ``allow``); when bytes reached it, an ``allow`` was audited
   and no ``request`` ``block``.

Hypothesis is not in the bundle image: tests/integration/egress_mitmproxy.sh mounts the repo
venv's hypothesis and sortedcontainers read-only at $HYPOTHESIS_PATH (pure Python).
``max_examples`` is fixed; ``derandomize`` when ``CI`` is set."""

import asyncio
import base64
import gzip
import os
import sys
import tempfile
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if os.environ.get("HYPOTHESIS_PATH"):
    sys.path.insert(0, os.environ["HYPOTHESIS_PATH"])

import run_channels as rc  # noqa: E402

MAX_EXAMPLES = int(os.environ.get("BOTTLE_FUZZ_EXAMPLES", "150"))  # about 40 s
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "PROPFIND", "FOO", "get"]
ENCODINGS = ["raw", "b64", "b64url", "b64nopad", "hex", "HEX", "b32", "pct"]
PLACES = ["path", "query", "header", "body", "chunked-body", "gzip-body", "ws-text", "ws-ping", "ws-pong", "ws-close",
          "after-101"]
TARGETS = ["proxy-absolute", "tunnel-origin", "tunnel-absolute-same", "tunnel-absolute-other"]
UPGRADES = [None, "h2c", "raw", "websocket-bad-key"]


def encode(value, how):
    raw = value.encode()
    return {
        "raw": value,
        "b64": base64.b64encode(raw).decode(),
        "b64url": base64.urlsafe_b64encode(raw).decode(),
        "b64nopad": base64.b64encode(raw).decode().rstrip("="),
        "hex": raw.hex(),
        "HEX": raw.hex().upper(),
        "b32": base64.b32encode(raw).decode(),
        "pct": "".join("%%%02X" % b for b in raw),
    }[how]


def case(name, upper):
    return name.upper() if upper else name.lower()


def build(port, ex):
    """(first bytes to send, bytes to send after the answer, whether the request asks for 101 or ws)."""
    secret = encode(ex["secret"], ex["encoding"])
    place, target = ex["place"], ex["target"]
    method = ex["method"]
    path, query, headers, body, after = "/p", "", [], b"", b""
    ws = place.startswith("ws-")
    if place == "path":
        path = "/p/" + secret
    elif place == "query":
        query = "?q=" + secret
    elif place == "header":
        headers.append((case("X-Note", ex["upper"]), secret))
    elif place in ("body", "chunked-body"):
        body = ("data=" + secret).encode()
    elif place == "gzip-body":
        body = gzip.compress(("data=" + secret).encode())
        headers.append((case("Content-Encoding", ex["upper"]), "gzip"))
    elif place == "after-101":
        headers.append(("X-Answer", "101"))
        after = ("raw " + secret).encode() * 3
    if ws:
        method = "GET"
        key = base64.b64encode(os.urandom(16)).decode()
        headers += [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key),
                    ("Sec-WebSocket-Version", "13")]
        opcode = {"ws-text": 0x1, "ws-ping": 0x9, "ws-pong": 0xA, "ws-close": 0x8}[place]
        payload = secret.encode()[:123 if opcode != 0x1 else None]
        if opcode == 0x8:
            payload = b"\x03\xe8" + payload
        after = rc.frame(0x9, b"hello") + rc.frame(opcode, payload)
    elif ex["upgrade"]:
        value = "websocket" if ex["upgrade"] == "websocket-bad-key" else ex["upgrade"]
        headers += [("Upgrade", value), ("Connection", "Upgrade")]
        if ex["upgrade"] == "websocket-bad-key":
            headers += [("Sec-WebSocket-Key", "c2hvcnQ="), ("Sec-WebSocket-Version", "13")]
    authority = "127.0.0.1:%d" % port
    if target == "proxy-absolute":
        line_target = "http://%s%s%s" % (authority, path, query)
    elif target == "tunnel-origin":
        line_target = path + query
    elif target == "tunnel-absolute-same":
        line_target = "http://%s%s%s" % (authority, path, query)
    else:
        line_target = "http://other.example%s%s" % (path, query)
    head = ["%s %s HTTP/1.1" % (method, line_target), "%s: %s" % (case("Host", ex["upper"]), authority)]
    shape = ex["shape"]
    if shape == "dup-host":
        head.append("Host: other.example")
    for name, value in headers:
        if shape == "obs-fold" and name.lower() == "x-note":
            head.append("%s: x\r\n %s" % (name, value))  # obsolete line folding
        elif shape == "space-before-colon" and name.lower() == "x-note":
            head.append("%s : %s" % (name, value))
        elif shape == "split-header" and name.lower() == "x-note":
            head += ["%s: %s" % (name, value[:len(value) // 2]), "%s: %s" % (name, value[len(value) // 2:])]
        else:
            head.append("%s: %s" % (name, value))
    if place == "chunked-body":
        head.append("Transfer-Encoding: chunked")
        if shape == "cl-te":  # request smuggling: both framings
            head.append("Content-Length: 3")
        size = ex["chunk"]
        chunks = [body[i:i + size] for i in range(0, len(body), size)]
        payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    else:
        if body:
            head.append("Content-Length: %d" % len(body))
        payload = body
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
    prefix = b""
    if target.startswith("tunnel"):
        prefix = ("CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n" % (authority, authority)).encode()
    return prefix, request, after


async def send(egress_port, prefix, request, after):
    reader, writer = await asyncio.open_connection("127.0.0.1", egress_port)
    answer = b""
    try:
        if prefix:
            writer.write(prefix)
            await writer.drain()
            answer += await rc.read_head(reader, 20)
        writer.write(request)
        await writer.drain()
        answer += await rc.read_head(reader, 10)
        if after:
            writer.write(after)
            await writer.drain()
            await asyncio.sleep(0.3)
            answer += await asyncio.wait_for(reader.read(65536), 1)
    except (asyncio.TimeoutError, ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()
    return answer


def inflated(data):
    """Every gzip/zlib stream in ``data``, inflated (what an upstream would read)."""
    out, at = [], data.find(b"\x1f\x8b")
    while at != -1:
        try:
            out.append(zlib.decompressobj(31).decompress(data[at:], 1 << 20))
        except zlib.error:
            pass
        at = data.find(b"\x1f\x8b", at + 1)
    return b"".join(out)


def check(ex, recorder, first, egress, audit_before, answer, outcomes):
    received = b"".join(bytes(r) for r in recorder.received[first:])
    frames = b"".join(p for index, frames in recorder.all_frames.items() if index >= first for _o, p in frames)
    everything = received + b"\n" + frames + b"\n" + inflated(received)
    rc.assert_no_secret(everything, "example %r" % (ex,))
    lines = egress.audit()[audit_before:]
    requests = [line for line in lines if line["event"] == "request"]
    outcomes["went" if received else "refused"] += 1
    if received:
        assert any(line["action"] == "allow" for line in requests), "bytes went, no allow: %r %r" % (ex, lines)
        assert not any(line["action"] == "block" for line in requests), "bytes went, audited block: %r %r" % (
            ex, lines)
    else:
        assert not any(line["action"] == "allow" for line in requests), "audited allow, nothing went: %r %r" % (
            ex, lines)
        egress_refusal = b"x-bottle-egress-rule" in answer.lower()
        if egress_refusal:
            assert any(line["action"] == "block" for line in lines), "refused, not audited block: %r %r" % (ex, lines)


def main():
    try:
        from hypothesis import HealthCheck, given, settings, strategies as st
    except ImportError as exc:
        print("FAIL run_fuzz: hypothesis is not importable (%s); tests/integration/egress_mitmproxy.sh mounts it "
              "from the repo's .venv (requirements.txt) or $HYPOTHESIS_SITE" % exc, flush=True)
        print("0 passed, 1 failed", flush=True)
        return 1

    # The known secret in every handled encoding; the provider token as the provider spells it
    # and the provider token in every one of them too (pattern rules, over the decoded forms).
    secrets = st.one_of(st.tuples(st.just(rc.KNOWN), st.sampled_from(ENCODINGS)),
                        st.tuples(st.just(rc.PAT), st.sampled_from(ENCODINGS)))
    examples = st.fixed_dictionaries({
        "secret_encoding": secrets,
        "place": st.sampled_from(PLACES),
        "target": st.sampled_from(TARGETS),
        "method": st.sampled_from(METHODS),
        "upgrade": st.sampled_from(UPGRADES),
        "upper": st.booleans(),
        "shape": st.sampled_from(["plain", "dup-host", "obs-fold", "space-before-colon", "split-header", "cl-te"]),
        "chunk": st.integers(1, 40),
    })
    loop = asyncio.new_event_loop()
    tmp = tempfile.mkdtemp()
    recorder = loop.run_until_complete(rc.Recorder("auto").start())
    config = rc.config_for(recorder.port, websocket=True)
    config["rate_limit"] = {"requests_per_minute": 100000, "burst": 100000}
    egress = loop.run_until_complete(rc.Egress(tmp, config).start())
    count = [0]
    outcomes = {"went": 0, "refused": 0}

    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=bool(os.environ.get("CI")),
              suppress_health_check=list(HealthCheck))
    @given(examples)
    def invariant(ex):
        count[0] += 1
        ex = dict(ex)
        ex["secret"], ex["encoding"] = ex.pop("secret_encoding")
        first, audit_before = len(recorder.received), len(egress.audit())
        prefix, request, after = build(recorder.port, ex)
        answer = loop.run_until_complete(send(egress.port, prefix, request, after))
        loop.run_until_complete(asyncio.sleep(0.05))
        check(ex, recorder, first, egress, audit_before, answer, outcomes)

    try:
        invariant()
        # Bytes that reached the upstream after their example was checked are checked here.
        loop.run_until_complete(asyncio.sleep(1))
        rc.assert_no_secret(b"".join(bytes(r) for r in recorder.received) + b"".join(
            p for frames in recorder.all_frames.values() for _o, p in frames), "late bytes of any example")
        # Not vacuous: some requests went (the recorder works, the checks ran on real bytes), some
        # were refused.
        assert outcomes["went"] and outcomes["refused"], outcomes
    except Exception:
        import traceback
        print("FAIL test_no_secret_reaches_the_upstream_and_the_audit_is_true\n    "
              + traceback.format_exc().replace("\n", "\n    "), flush=True)
        print("    mitmdump: " + egress.output()[-1500:], flush=True)
        print("0 passed, 1 failed", flush=True)
        return 1
    finally:
        egress.stop()
        recorder.server.close()
    print("ok   test_no_secret_reaches_the_upstream_and_the_audit_is_true (%d examples: %d went upstream, %d refused)"
          % (count[0], outcomes["went"], outcomes["refused"]), flush=True)
    print("1 passed, 0 failed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
