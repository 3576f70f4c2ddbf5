# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Issue 20, content side, under mitmproxy 12 itself with the real kingfisher (see harness.py):
every class of body and head where a parser would not see a known secret, every body that is
not what it declares, route paths, and responses that echo the injected credential.

For each class two things are planted: a secret_env value no pattern rule knows
(``pa+ss!w0rd-Zq8x``) and a provider token (``ghp_`` + 36). Each request must be refused with
the expected rule, by egress's own response, and no server connection may be asked for."""

import base64
import gzip
import io
import json
import os
import sys
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import brotli  # noqa: E402
from harness import KNOWN_SECRET, PAT, ROUTE_TOKEN, main  # noqa: E402
from mitmproxy import connection, http  # noqa: E402
from mitmproxy.proxy.layers import http as http_layer  # noqa: E402
from mitmproxy.test import tflow, tutils  # noqa: E402

PASSWORD = "pa+ss!w0rd-Zq8x"
BOUNDARY = "b0uNdary"
MULTIPART = "multipart/form-data; boundary=" + BOUNDARY


def multipart(parts, preamble=b"", epilogue=b""):
    out = preamble
    for head, content in parts:
        out += b"--" + BOUNDARY.encode() + b"\r\n" + head + b"\r\n\r\n" + content + b"\r\n"
    return out + b"--" + BOUNDARY.encode() + b"--\r\n" + epilogue


def gzip_named(data, name):
    buffer = io.BytesIO()
    with gzip.GzipFile(filename=name, mode="wb", fileobj=buffer, mtime=0) as handle:
        handle.write(data)
    return buffer.getvalue()


def pct(text):
    return "".join("%%%02X" % b for b in text.encode()).encode()


# name -> function(secret) -> (body, content type, content encoding); rule expected for the
# password (a known secret) and for the provider token (None: any dlp:* rule).
RAW_CLASSES = {
    "json-duplicate-key": lambda s: (b'{"note": "' + s.encode() + b'", "note": "clean"}', "application/json", None),
    "form-plus-and-ampersand": lambda s: (b"a=1&note=" + s.encode(), "application/x-www-form-urlencoded", None),
    "form-semicolon": lambda s: (b"a=1;note=" + s.encode(), "application/x-www-form-urlencoded", None),
    "multipart-part-header": lambda s: (multipart([(b'Content-Disposition: form-data; name="a"\r\nX-Note: '
                                                    + s.encode(), b"clean")]), MULTIPART, None),
    "multipart-preamble": lambda s: (multipart([(b'Content-Disposition: form-data; name="a"', b"clean")],
                                               preamble=s.encode() + b"\r\n"), MULTIPART, None),
    "multipart-epilogue": lambda s: (multipart([(b'Content-Disposition: form-data; name="a"', b"clean")],
                                               epilogue=s.encode()), MULTIPART, None),
    "binary-percent-encoded": lambda s: (b"\xff\xd8\xff\x00pw=" + pct(s), "application/octet-stream", None),
    "bom-in-front": lambda s: (b"\xff\xfe\x00 token " + s.encode(), "application/octet-stream", None),
    "declared-utf16": lambda s: (("note: " + s).encode("utf-16"), "text/plain; charset=utf-16", None),
    "gzip-header-file-name": lambda s: (gzip_named(b"clean", s), "text/plain", "gzip"),
}
STRICT_CLASSES = {
    "json-not-json": (lambda s: (b'{"note": "' + s.encode() + b'"', "application/json", None), "body-parse"),
    "form-bad-percent": (lambda s: (b"a=50%zz&pw=" + s.encode(), "application/x-www-form-urlencoded", None),
                         "body-parse"),
    "multipart-no-boundary": (lambda s: (multipart([(b'Content-Disposition: form-data; name="a"', s.encode())]),
                                         "multipart/form-data", None), "body-parse"),
    "multipart-truncated": (lambda s: (multipart([(b'Content-Disposition: form-data; name="a"', s.encode())])[:-14],
                                       MULTIPART, None), "body-parse"),
    "multipart-malformed-part": (lambda s: (b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: form-data\r\n"
                                            + s.encode() + b"\r\n--" + BOUNDARY.encode() + b"--\r\n", MULTIPART,
                                            None), "body-parse"),
    "gzip-second-member": (lambda s: (gzip.compress(b"clean") + gzip.compress(s.encode()), "text/plain", "gzip"),
                           "body-decode"),
    "gzip-trailing-garbage": (lambda s: (gzip.compress(b"clean") + b"\0" + s.encode(), "text/plain", "gzip"),
                              "body-decode"),
    "deflate-trailing": (lambda s: (zlib.compress(b"clean") + zlib.compress(s.encode()), "text/plain", "deflate"),
                         "body-decode"),
    "br-trailing": (lambda s: (brotli.compress(b"clean") + brotli.compress(s.encode()), "text/plain", "br"),
                    "body-decode"),
    "stacked-inner-trailing": (lambda s: (gzip.compress(zlib.compress(b"clean") + zlib.compress(s.encode())),
                                          "text/plain", "deflate, gzip"), "body-decode"),
    "zstd": (lambda s: (b"(\xb5/\xfd" + s.encode(), "text/plain", "zstd"), "body-decode"),
}


def with_secrets(env):
    env.fw.engine.known.load([PASSWORD, KNOWN_SECRET, ROUTE_TOKEN])


def raw_request(client, address, method, path, fields, body):
    """A request whose head is given as bytes (a header value in latin-1, an odd method)."""
    req = http.Request(host=address[0], port=address[1], method=method, scheme=b"https", authority=b"", path=path,
                       http_version=b"HTTP/1.1", headers=http.Headers(fields), content=body, trailers=None,
                       timestamp_start=0, timestamp_end=0)
    return tflow.tflow(client_conn=client, server_conn=connection.Server(address=address), req=req)


async def send_raw(env, host, method, path, fields, body=b""):
    client, connect = await env.connect(host)
    await env.hello(client, host)
    address = (connect.request.host, connect.request.port)
    flow = raw_request(client, address, method, path, [(b"Host", host.encode())] + fields, body)
    data = await env.send(flow)
    return flow, data


def refused_by_egress(flow, data, status, rule):
    """Refused by egress's own response, with ``rule``; no server connection was asked for."""
    assert flow.response is not None, "not refused"
    text = flow.response.get_text()
    got = flow.response.headers.get("x-bottle-egress-rule")
    assert flow.response.status_code == status, (flow.response.status_code, got, text)
    assert got == rule or (rule == "dlp:*" and got and got.startswith("dlp:")), (got, rule, text)
    assert text.startswith("blocked by egress: "), text
    assert data is None, "a server connection was asked for"
    assert PASSWORD not in text and PAT not in text
    return text


async def post(env, body, content_type, encoding):
    headers = [("Content-Type", content_type)] if content_type else []
    if encoding:
        headers.append(("Content-Encoding", encoding))
    return await env.https("www.example.com", "POST", "/upload", headers, body)


async def test_raw_classes_known_secret_and_provider_token(env):
    with_secrets(env)
    for name, make in RAW_CLASSES.items():
        for secret, rule in ((PASSWORD, "known-secret"), (PAT, "dlp:*")):
            flow, data = await post(env, *make(secret))
            try:
                refused_by_egress(flow, data, 403, rule)
            except AssertionError as exc:
                raise AssertionError("%s with %s: %s" % (name, secret[:4], exc)) from None
            line = env.audit()[-1]
            assert line["action"] == "block" and (line["rule"] == rule or rule == "dlp:*"), (name, line)


async def test_strict_classes_are_refused_400_with_their_rule(env):
    with_secrets(env)
    for name, (make, rule) in STRICT_CLASSES.items():
        for secret in (PASSWORD, PAT):
            flow, data = await post(env, *make(secret))
            try:
                refused_by_egress(flow, data, 400, rule)
            except AssertionError as exc:
                raise AssertionError("%s with %s: %s" % (name, secret[:4], exc)) from None
            assert env.audit()[-1]["rule"] == rule


async def test_the_head_as_sent_is_scanned_byte_for_byte(env):
    with_secrets(env)
    latin1 = "p\xe4sswort-Zq8x"
    env.fw.engine.known.load([PASSWORD, latin1])
    flow, data = await send_raw(env, "www.example.com", b"GET", b"/", [(b"X-Pw", latin1.encode("latin-1"))])
    assert "found in header X-Pw" in refused_by_egress(flow, data, 403, "known-secret")
    # A method that is no HTTP method is refused before any scan (protocol.py), without echoing it.
    for method in (PASSWORD, PAT):
        flow, data = await send_raw(env, "www.example.com", method.encode(), b"/", [])
        assert method not in refused_by_egress(flow, data, 405, "method")
    flow, data = await send_raw(env, "www.example.com", b"GET", b"/x/" + pct(PASSWORD).replace(b"%", b"%25"), [])
    refused_by_egress(flow, data, 403, "known-secret")
    flow, data = await send_raw(env, "www.example.com", b"GET", b"/", [(PASSWORD.encode(), b"1")])
    refused_by_egress(flow, data, 403, "known-secret")


async def test_real_client_bodies_pass(env):
    with_secrets(env)
    cases = [
        (json.dumps({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "50% \u00e9"}]}).encode(),
         "application/json", None),
        (b"", "application/json", None),
        (b"grant_type=authorization_code&code=abc&q=a+b", "application/x-www-form-urlencoded", None),
        (gzip.compress(b"ustar\x00" + bytes(range(256)) * 20) + b"%zz", "application/octet-stream", None),
        (gzip.compress(b"0032want " + b"a" * 40 + b"\n0000"), "application/x-git-upload-pack-request", "gzip"),
        (multipart([(b'Content-Disposition: form-data; name="content"; filename="p.tar.gz"\r\n'
                     b"Content-Type: application/octet-stream", gzip.compress(b"\xff" * 300))]), MULTIPART, None),
    ]
    for body, content_type, encoding in cases:
        flow, data = await post(env, body, content_type, encoding)
        assert flow.response is None, (content_type, flow.response and flow.response.get_text())
        assert data is not None and data.server.error is None


async def test_route_paths_are_decided_normalised(env):
    for path, rule in (("/repos/../user/keys", "route-path"), ("/repos/%2e%2e/user/keys", "route-path"),
                       ("/repos/x%5c..%5cuser", "route-path"), ("/%72epos/o/r", "route-path")):
        flow, data = await env.https("api.github.com", "GET", path, [("Authorization", "Bearer agent")])
        refused_by_egress(flow, data, 403, rule)
        assert flow.request.headers.get("authorization") is None
    flow, data = await env.https("api.github.com", "TRACE", "/repos/o/r")
    refused_by_egress(flow, data, 403, "route-trace")
    flow, data = await env.https("api.github.com", "GET", "/repos/o/r/git/refs/heads/feature%2Fx")
    assert flow.response is None and flow.request.headers["authorization"] == "Bearer " + ROUTE_TOKEN


def stream_through(flow, chunks):
    """What the HTTP layer does with a streamed response body (state_stream_response_body)."""
    out = []
    for chunk in list(chunks) + [b""]:
        pieces = flow.response.stream(chunk)
        pieces = [pieces] if isinstance(pieces, bytes) else list(pieces)
        assert all(pieces) or chunk == b"", "an empty data chunk would end a chunked body"
        out.extend(pieces)
    return b"".join(out)


async def routed(env):
    flow, data = await env.https("api.github.com", "GET", "/repos/o/r", [("Accept-Encoding", "gzip, br, zstd")])
    assert flow.response is None and data is not None
    assert flow.request.headers["authorization"] == "Bearer " + ROUTE_TOKEN
    assert flow.request.headers["accept-encoding"] == "identity"
    return flow


async def test_an_echo_of_the_injected_credential_is_masked(env):
    flow = await routed(env)
    echo = json.dumps({"headers": {"Authorization": "Bearer " + ROUTE_TOKEN},
                       "b64": base64.b64encode(ROUTE_TOKEN.encode()).decode()}).encode()
    flow.response = tutils.tresp(status_code=200, content=None, headers=http.Headers(
        [(b"Content-Type", b"application/json"), (b"Content-Length", str(len(echo)).encode()),
         (b"X-Echo", ("Bearer " + ROUTE_TOKEN).encode())]))
    await env.hook(http_layer.HttpResponseHeadersHook(flow))
    assert ROUTE_TOKEN not in flow.response.headers["x-echo"]
    assert flow.response.headers["content-length"] == str(len(echo))
    for size in (1, 3, 17, 4096):
        redactor = flow.response.stream.inner  # addon.ByteCount counts around the StreamRedactor
        redactor.__init__(redactor.forms, None, None)
        body = stream_through(flow, [echo[i:i + size] for i in range(0, len(echo), size)])
        assert len(body) == len(echo) and ROUTE_TOKEN.encode() not in body
        assert base64.b64encode(ROUTE_TOKEN.encode()) not in body
    flow.response.trailers = http.Headers([(b"X-Echo", ROUTE_TOKEN.encode())])
    await env.hook(http_layer.HttpResponseHook(flow))
    assert ROUTE_TOKEN not in flow.response.trailers["x-echo"]
    assert [line["rule"] for line in env.audit() if line["event"] == "response"] == ["credential-echo"]
    assert ROUTE_TOKEN not in env.fw.audit.stream.getvalue()


async def test_an_encoded_echo_is_decoded_or_refused(env):
    flow = await routed(env)
    echo = gzip.compress(b"you sent Bearer " + ROUTE_TOKEN.encode())
    flow.response = tutils.tresp(status_code=200, content=None, headers=http.Headers(
        [(b"Content-Encoding", b"gzip"), (b"Content-Length", str(len(echo)).encode())]))
    await env.hook(http_layer.HttpResponseHeadersHook(flow))
    assert "content-encoding" not in flow.response.headers and "content-length" not in flow.response.headers
    body = stream_through(flow, [echo[i:i + 5] for i in range(0, len(echo), 5)])
    assert body.startswith(b"you sent Bearer ") and ROUTE_TOKEN.encode() not in body
    flow = await routed(env)
    flow.response = tutils.tresp(status_code=200, content=None, headers=http.Headers(
        [(b"Content-Encoding", b"zstd"), (b"Content-Length", b"20")]))
    await env.hook(http_layer.HttpResponseHeadersHook(flow))
    assert flow.response.status_code == 502 and flow.response.headers["x-bottle-egress-rule"] == "response-encoding"
    text = stream_through(flow, [b"(\xb5/\xfd" + ROUTE_TOKEN.encode()])
    assert text.startswith(b"blocked by egress: ") and ROUTE_TOKEN.encode() not in text


if __name__ == "__main__":
    sys.exit(main(dict(globals())))
