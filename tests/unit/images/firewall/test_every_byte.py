# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every byte the agent sends is scanned for the known secrets, whatever a parser makes of it,
and a body that is not what it declares is refused (issue 20: known secrets over raw bytes,
strict bodies). Driven through the hooks with fake flows (fakes.Proxy) and the real engine."""

from __future__ import annotations

import base64
import gzip
import json
import os
import zlib

import brotli
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakes import Headers, Proxy
from bottle_firewall import bodies, dlp

PASSWORD = "pa+ss!w0rd-Zq8x"  # a secret_env value no pattern rule knows: + and ! in it
PAT = "ghp_" + "Q7w2E9r4T1y6U3i8O5p0A2s7D4f9G1h6J3k8"
NUMERIC = "8675309123456"      # a secret of digits: a JSON number, not a string
AMPERSAND = "k3y&v=al;ue-Zq8x"  # splits into fields in a form
SPACED = "open sesame Zq8x"     # a form's + is its space
SECRETS = [PASSWORD, NUMERIC, AMPERSAND, SPACED]
HYPOTHESIS = settings(max_examples=150, derandomize=bool(os.environ.get("CI")), deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture
def proxy(firewall_factory):
    return Proxy(firewall_factory(secrets=SECRETS))


@pytest.fixture
def known_engine(engine):
    engine = dlp.Engine(engine.scanner)
    engine.known.load(SECRETS)
    return engine


def post(proxy, body, content_type=None, encoding=None, headers=None, path="/upload"):
    fields = {"Host": "www.example.com"}
    if content_type is not None:
        fields["Content-Type"] = content_type
    if encoding is not None:
        fields["Content-Encoding"] = encoding
    fields.update(headers or {})
    return proxy.https("www.example.com", "POST", path, fields, body)


def refused(proxy, flow, status, rule):
    assert flow.response is not None, "the request was not refused"
    assert flow.response.status_code == status, flow.response.text
    assert flow.response.headers["X-Bottle-Egress-Rule"] == rule, flow.response.text
    assert flow.response.text.startswith("blocked by egress: ")
    for secret in SECRETS + [PAT]:
        assert secret not in flow.response.text
    assert proxy.opened == [], "no upstream connection for a refused request"
    return flow.response.text


def passed(proxy, flow):
    assert flow.response is None, flow.response and flow.response.text
    assert proxy.opened, "the request went upstream"


def multipart(parts, boundary="b0uNdary", preamble=b"", epilogue=b""):
    out = preamble
    for head, content in parts:
        out += b"--" + boundary.encode() + b"\r\n" + head + b"\r\n\r\n" + content + b"\r\n"
    return out + b"--" + boundary.encode() + b"--\r\n" + epilogue


def gzip_named(data, name):
    """A gzip member whose header's FNAME field is ``name`` (not part of the decoded data)."""
    import io
    buffer = io.BytesIO()
    with gzip.GzipFile(filename=name, mode="wb", fileobj=buffer, mtime=0) as handle:
        handle.write(data)
    return buffer.getvalue()


# --- 1. known secrets where the parser does not look -----------------------------------------

# (name, body, content type, content encoding, where the known secret hides from the parser)
RAW_ONLY = [
    ("json-duplicate-key", b'{"note": "' + PASSWORD.encode() + b'", "note": "clean"}', "application/json", None),
    ("json-number", b'{"pin": ' + NUMERIC.encode() + b'}', "application/json", None),
    ("form-plus-is-not-a-space-upstream", b"a=1&note=" + PASSWORD.encode(), "application/x-www-form-urlencoded",
     None),
    ("form-ampersand-splits-the-value", b"a=1&note=" + AMPERSAND.encode(), "application/x-www-form-urlencoded",
     None),
    ("form-semicolon-separator", b"a=1;note=" + PASSWORD.encode(), "application/x-www-form-urlencoded", None),
    ("multipart-part-header", multipart([(b'Content-Disposition: form-data; name="a"\r\nX-Note: '
                                          + PASSWORD.encode(), b"clean")]), "multipart/form-data; boundary=b0uNdary",
     None),
    ("multipart-preamble", multipart([(b'Content-Disposition: form-data; name="a"', b"clean")],
                                     preamble=PASSWORD.encode() + b"\r\n"), "multipart/form-data; boundary=b0uNdary",
     None),
    ("multipart-epilogue", multipart([(b'Content-Disposition: form-data; name="a"', b"clean")],
                                     epilogue=PASSWORD.encode()), "multipart/form-data; boundary=b0uNdary", None),
    ("binary-body-percent-encoded", b"\xff\xfe\x00pw=pa%2Bss%21w0rd-Zq8x", "application/octet-stream", None),
    ("binary-body-double-percent-encoded", b"\xff\xfe\x00pw=pa%252Bss%2521w0rd-Zq8x", "application/octet-stream",
     None),
    ("declared-utf16", ("note: " + PASSWORD).encode("utf-16"), "text/plain; charset=utf-16", None),
    ("gzip-header-file-name", gzip_named(b"clean body", PASSWORD), "text/plain", "gzip"),
]


@pytest.mark.parametrize("name, body, content_type, encoding", RAW_ONLY, ids=[case[0] for case in RAW_ONLY])
def test_a_known_secret_the_parser_does_not_extract_is_found_in_the_raw_bytes(
        proxy, name, body, content_type, encoding):
    flow = post(proxy, body, content_type, encoding)
    text = refused(proxy, flow, 403, "known-secret")
    assert "found in body" in text


@pytest.mark.parametrize("name, body, content_type, encoding", RAW_ONLY[:9], ids=[case[0] for case in RAW_ONLY[:9]])
def test_the_fields_alone_miss_these(known_engine, name, body, content_type, encoding):
    """What the raw scan adds: the parsed fields alone do not carry the secret."""
    buffer = bodies.ScanBuffer()
    for where, data in bodies.extract(body, content_type, strict=True):
        buffer.add(where, data)
    buffer.add_decoded_forms()
    assert known_engine.known.find(buffer.joined()) is None or name == "json-duplicate-key"


def test_duplicate_json_keys_are_all_extracted():
    document = bodies.extract(b'{"a": "one", "a": "two", "b": {"a": "three"}}', "application/json", strict=True)
    assert sorted(document[0][0].texts) == ["a", "a", "a", "b", "one", "three", "two"]


def test_a_provider_token_in_a_duplicate_key_is_found(proxy):
    flow = post(proxy, b'{"note": "' + PAT.encode() + b'", "note": "clean"}', "application/json")
    assert flow.response is not None and flow.response.headers["X-Bottle-Egress-Rule"].startswith("dlp:")
    assert "found in body field $.note" in refused(proxy, flow, 403, flow.response.headers["X-Bottle-Egress-Rule"])


@pytest.mark.parametrize("headers, where", [
    ({"X-Note": PASSWORD.encode("latin-1").decode("utf-8", "surrogateescape")}, "header X-Note"),
    ({"X-Trace": "p\xe4ss-Zq8x-" + PASSWORD}, "header X-Trace"),
    ({PASSWORD.replace("+", "-").replace("!", "-"): "x"}, "header"),
])
def test_known_secrets_in_raw_header_fields(firewall_factory, headers, where):
    proxy = Proxy(firewall_factory(secrets=SECRETS + [PASSWORD.replace("+", "-").replace("!", "-")]))
    flow = proxy.https("www.example.com", "GET", "/", dict({"Host": "www.example.com"}, **headers))
    text = refused(proxy, flow, 403, "known-secret")
    assert "found in " + where in text


def test_a_header_value_in_latin1_is_matched_byte_for_byte(firewall_factory):
    """mitmproxy decodes header bytes with surrogateescape; the str scan re-encodes them
    differently, the raw scan reads the bytes as they came."""
    secret = "p\xe4sswort-Zq8x"
    proxy = Proxy(firewall_factory(secrets=[secret]))
    value = secret.encode("latin-1").decode("utf-8", "surrogateescape")
    engine = proxy.fw.engine
    assert engine.scan_head("/", [("X-Pw", value)]) is None, "the str scan alone misses it"
    flow = proxy.https("www.example.com", "GET", "/", {"Host": "www.example.com", "X-Pw": value})
    refused(proxy, flow, 403, "known-secret")


def test_the_method_and_the_raw_target_are_scanned(proxy):
    # A method that is no HTTP method is refused before any scan (protocol.py), without echoing it.
    flow = proxy.https("www.example.com", PASSWORD, "/")
    assert PASSWORD not in refused(proxy, flow, 405, "method")
    raw_target = "/x/" + PASSWORD.encode("latin-1").decode("utf-8", "surrogateescape")
    flow = proxy.https("www.example.com", "GET", raw_target.replace("+", "%2B"))
    refused(proxy, flow, 403, "known-secret")


def test_a_known_secret_in_trailers_is_refused(proxy):
    client, connect = proxy.connect("www.example.com")
    proxy.hello(client, "www.example.com")
    from fakes import Flow, Request
    flow = Flow(client, Request("POST", connect.request.data.host, 443, "/t", {"Host": "www.example.com"}, b"x"))
    flow.request.trailers = Headers({"X-Checksum": "a=" + PASSWORD})
    proxy.send(flow, (connect.request.data.host, 443))
    assert "X-Checksum" in refused(proxy, flow, 403, "known-secret")


@pytest.mark.parametrize("bom", [b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff"])
@pytest.mark.parametrize("secret", [PASSWORD, PAT])
def test_a_byte_order_mark_in_front_does_not_blind_the_scanner(proxy, bom, secret):
    """kingfisher reads bytes that start with a UTF-16/32 BOM as that encoding: everything after
    it was invisible to both detectors."""
    flow = post(proxy, bom + b" token " + secret.encode(), "application/octet-stream")
    rule = flow.response.headers["X-Bottle-Egress-Rule"] if flow.response is not None else None
    assert rule == "known-secret" if secret == PASSWORD else (rule or "").startswith("dlp:"), rule
    refused(proxy, flow, 403, rule)


def test_a_space_in_a_secret_is_found_as_a_forms_plus(proxy):
    flow = post(proxy, b"note=" + SPACED.replace(" ", "+").encode(), "text/plain")
    refused(proxy, flow, 403, "known-secret")


@pytest.mark.parametrize("form", ["raw", "base64", "hex"])
def test_a_known_secret_in_a_compressed_body_is_found_in_each_encoding(proxy, form):
    value = {"raw": PASSWORD.encode(), "base64": base64.b64encode(PASSWORD.encode()),
             "hex": PASSWORD.encode().hex().encode()}[form]
    for encoding, encode in (("gzip", gzip.compress), ("deflate", zlib.compress), ("br", brotli.compress),
                             ("gzip, br", lambda data: brotli.compress(gzip.compress(data)))):
        flow = post(proxy, encode(b"data=" + value), "application/octet-stream", encoding)
        refused(proxy, flow, 403, "known-secret")
        proxy.opened.clear()


# --- 2. strict bodies ------------------------------------------------------------------------

STRICT = [
    ("json-not-json", b'{"note": "' + PASSWORD.encode() + b'"', "application/json", None, "body-parse"),
    ("json-suffix-not-json", b"not json " + PAT.encode(), "application/vnd.api+json", None, "body-parse"),
    ("json-bad-utf8", b'{"a": "\xff\xfe"}', "application/json; charset=utf-8", None, "body-parse"),
    ("json-unknown-charset", b'{"a": 1}', "application/json; charset=x-nonesuch", None, "body-parse"),
    ("form-bad-percent", b"a=50%zz&pw=" + PAT.encode(), "application/x-www-form-urlencoded", None, "body-parse"),
    ("form-not-utf8", b"a=%ff%fe&pw=x", "application/x-www-form-urlencoded", None, "body-parse"),
    ("multipart-no-boundary", multipart([(b'Content-Disposition: form-data; name="a"', PAT.encode())]),
     "multipart/form-data", None, "body-parse"),
    ("multipart-wrong-boundary", multipart([(b'Content-Disposition: form-data; name="a"', PAT.encode())]),
     "multipart/form-data; boundary=other", None, "body-parse"),
    ("multipart-truncated", multipart([(b'Content-Disposition: form-data; name="a"', PAT.encode())])[:-14],
     "multipart/form-data; boundary=b0uNdary", None, "body-parse"),
    ("multipart-part-without-blank-line",
     b"--b0uNdary\r\nContent-Disposition: form-data; name=\"a\"\r\n" + PAT.encode() + b"\r\n--b0uNdary--\r\n",
     "multipart/form-data; boundary=b0uNdary", None, "body-parse"),
    ("multipart-bad-delimiter-line", b"--b0uNdaryX\r\n\r\n" + PAT.encode() + b"\r\n--b0uNdary--\r\n",
     "multipart/form-data; boundary=b0uNdary", None, "body-parse"),
    ("multipart-bad-base64-part", multipart([(b'Content-Disposition: form-data; name="a"\r\n'
                                              b"Content-Transfer-Encoding: base64", b"!!not base64!!")]),
     "multipart/form-data; boundary=b0uNdary", None, "body-parse"),
    ("multipart-unknown-transfer-encoding", multipart([(b'Content-Disposition: form-data; name="a"\r\n'
                                                        b"Content-Transfer-Encoding: x-uuencode", b"begin 644")]),
     "multipart/form-data; boundary=b0uNdary", None, "body-parse"),
    ("gzip-second-member", gzip.compress(b"clean") + gzip.compress(PASSWORD.encode()), "text/plain", "gzip",
     "body-decode"),
    ("gzip-trailing-garbage", gzip.compress(b"clean") + b"\0\0garbage", "text/plain", "gzip", "body-decode"),
    ("deflate-trailing-compressed", zlib.compress(b"clean") + zlib.compress(PAT.encode()), "text/plain", "deflate",
     "body-decode"),
    ("br-trailing", brotli.compress(b"clean") + brotli.compress(PASSWORD.encode()), "text/plain", "br",
     "body-decode"),
    ("stacked-inner-trailing", gzip.compress(zlib.compress(b"clean") + zlib.compress(PAT.encode())), "text/plain",
     "deflate, gzip", "body-decode"),
    ("zstd", b"(\xb5/\xfd" + PAT.encode(), "text/plain", "zstd", "body-decode"),
    ("too-many-codings", b"x", "text/plain", "identity, gzip, gzip, gzip, gzip, gzip", "body-decode"),
]


@pytest.mark.parametrize("name, body, content_type, encoding, rule", STRICT, ids=[case[0] for case in STRICT])
def test_a_body_that_is_not_what_it_declares_is_refused(proxy, name, body, content_type, encoding, rule):
    flow = post(proxy, body, content_type, encoding)
    text = refused(proxy, flow, 400, rule)
    assert "request body" in text or "multipart" in text


def test_two_content_type_headers_are_refused(proxy):
    client, connect = proxy.connect("www.example.com")
    proxy.hello(client, "www.example.com")
    from fakes import Flow, Request
    headers = [("Host", "www.example.com"), ("Content-Type", "text/plain"), ("Content-Type", "application/json")]
    flow = Flow(client, Request("POST", connect.request.data.host, 443, "/", headers, b'{"a": 1}'))
    proxy.send(flow, (connect.request.data.host, 443))
    assert "2 content-type headers" in refused(proxy, flow, 400, "body-parse")


# --- no false refusal: what real clients send ----------------------------------------------------

def _requests_multipart():
    from urllib3.filepost import encode_multipart_formdata
    body, content_type = encode_multipart_formdata({
        ":action": "file_upload", "protocol_version": "1", "name": "pkg", "version": "1.0",
        "content": ("pkg-1.0.tar.gz", gzip.compress(b"\x00\x01tar bytes %zz \xff" * 100), "application/octet-stream"),
        "description": ("README.md", b"# pkg\n\nnot json {", "application/json"),
    })
    return body, content_type


REAL = [
    ("claude-code-json", json.dumps({"model": "claude-sonnet-4-5", "messages": [
        {"role": "user", "content": "fix the 50% case \u00e9\u4e2d"}], "stream": True}).encode(),
     "application/json", None),
    ("json-charset-upper", b'{"a": "b"}', "application/json; charset=UTF-8", None),
    ("json-bom", b'\xef\xbb\xbf{"a": "b"}', "application/json", None),
    ("json-utf16", json.dumps({"a": "b"}).encode("utf-16"), "application/json", None),
    ("json-latin1-declared", '{"a": "caf\xe9"}'.encode("latin-1"), "application/json; charset=iso-8859-1", None),
    ("json-scalar", b'"just a string"', "application/json", None),
    ("empty-json", b"", "application/json", None),
    ("blank-json", b" \r\n", "application/json", None),
    ("empty-form", b"", "application/x-www-form-urlencoded", None),
    ("npm-publish", json.dumps({"_id": "@scope/pkg", "name": "@scope/pkg", "versions": {"1.0.0": {}},
                                "_attachments": {"pkg-1.0.0.tgz": {"content_type": "application/octet-stream",
                                                                   "data": base64.b64encode(
                                                                       gzip.compress(b"\x00" * 500)).decode(),
                                                                   "length": 500}}}).encode(),
     "application/json", None),
    ("ndjson", b'{"a": 1}\n{"b": 2}\n', "application/x-ndjson", None),
    ("form-post", b"grant_type=authorization_code&code=abc&redirect_uri=https%3A%2F%2Fx.example%2Fcb&q=a+b+c",
     "application/x-www-form-urlencoded", None),
    ("form-curl-raw-space", b"name=John Doe&city=Z\xc3\xbcrich", "application/x-www-form-urlencoded", None),
    ("form-curl-json-without-type", b'{"title": "bug", "body": "details"}', "application/x-www-form-urlencoded",
     None),
    ("form-latin1-declared", b"name=Z%FCrich", "application/x-www-form-urlencoded; charset=iso-8859-1", None),
    ("tarball-upload", gzip.compress(b"ustar\x00" + bytes(range(256)) * 50) + b"%zz",
     "application/octet-stream", None),
    ("git-upload-pack-gzip", gzip.compress(b"0032want " + b"a" * 40 + b"\n00000009done\n"),
     "application/x-git-upload-pack-request", "gzip"),
    ("git-receive-pack", b"00a0" + b"0" * 40 + b" " + b"1" * 40 + b" refs/heads/main\x00 report-status\n0000PACK",
     "application/x-git-receive-pack-request", None),
    ("no-content-type-binary", b"\xff\xd8\xff\xe0 jpeg %zz", None, None),
    ("text-plain", b"50% of { the [ log", "text/plain; charset=utf-8", None),
    ("multipart-lf-only", b"--b\nContent-Disposition: form-data; name=\"a\"\n\nvalue\n--b--\n",
     "multipart/form-data; boundary=b", None),
    ("multipart-quoted-boundary", multipart([(b'Content-Disposition: form-data; name="a"', b"v")], boundary="a;b=c"),
     'multipart/form-data; boundary="a;b=c"', None),
    ("multipart-empty-form", b"--b0uNdary--\r\n", "multipart/form-data; boundary=b0uNdary", None),
    ("multipart-part-without-headers", b"--b0uNdary\r\n\r\nvalue\r\n--b0uNdary--\r\n",
     "multipart/form-data; boundary=b0uNdary", None),
    ("deflate-raw", zlib.compress(b'{"a": 1}')[2:-4], "application/json", "deflate"),
    ("gzip-json-empty-body", b"", "application/json", "gzip"),
]


@pytest.mark.parametrize("name, body, content_type, encoding", REAL, ids=[case[0] for case in REAL])
def test_what_real_clients_send_passes(proxy, name, body, content_type, encoding):
    passed(proxy, post(proxy, body, content_type, encoding))


def test_a_twine_style_multipart_upload_passes(proxy):
    body, content_type = _requests_multipart()
    passed(proxy, post(proxy, body, content_type))


# --- generated: a known secret anywhere in any body is refused, never passed -----------------------

CONTENT_TYPES = ["application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=b0uNdary",
                 "text/plain", "application/octet-stream", None, "application/vnd.x+json; charset=utf-8"]


def _wrapped(secret, how):
    raw = secret.encode()
    return {
        "raw": raw,
        "percent": "".join("%%%02X" % b for b in raw).encode(),
        "percent-twice": "".join("%%25%02X" % b for b in raw).encode(),
        "base64": base64.b64encode(raw),
        "base64url": base64.urlsafe_b64encode(raw).rstrip(b"="),
        "hex": raw.hex().encode(),
        "HEX": raw.hex().upper().encode(),
        "base32": base64.b32encode(raw),
    }[how]


@HYPOTHESIS
@given(secret=st.sampled_from(SECRETS),
       how=st.sampled_from(["raw", "percent", "percent-twice", "base64", "base64url", "hex", "HEX", "base32"]),
       before=st.binary(max_size=64), after=st.binary(max_size=64),
       content_type=st.sampled_from(CONTENT_TYPES), encoding=st.sampled_from([None, "gzip", "deflate", "br"]))
def test_generated_a_known_secret_anywhere_never_passes(known_engine, secret, how, before, after, content_type,
                                                        encoding):
    body = before + _wrapped(secret, how) + after
    sent = {None: lambda data: data, "gzip": gzip.compress, "deflate": zlib.compress,
            "br": brotli.compress}[encoding](body)
    layers = []
    try:
        decoded = bodies.decode_content(sent, encoding, 1 << 20, layers)
        hit = known_engine.scan_body(decoded, content_type or "", layers, True)
    except bodies.BodyError as exc:
        assert exc.rule in ("body-parse", "body-decode")
        return
    assert hit is not None, (body, content_type)
    assert hit.rule == "known-secret" or hit.rule.startswith("dlp:")


@HYPOTHESIS
@given(value=st.text(min_size=0, max_size=40), key=st.text(min_size=1, max_size=10),
       duplicate=st.booleans(), as_number=st.booleans())
def test_generated_json_with_a_planted_secret_never_passes(known_engine, value, key, duplicate, as_number):
    planted = NUMERIC if as_number else json.dumps(value + PASSWORD + value)
    members = ['%s: %s' % (json.dumps(key), planted)]
    if duplicate:
        members.append('%s: "clean"' % json.dumps(key))
    body = ("{" + ", ".join(members) + "}").encode()
    hit = known_engine.scan_body(body, "application/json", (), True)
    assert hit is not None and hit.rule == "known-secret"


@pytest.mark.parametrize("message", [
    '{"note": "' + PASSWORD + '", "note": "clean"}',
    '{"pin": ' + NUMERIC + '}',
    b"\xff\xfe\x00pw=pa%2Bss%21w0rd-Zq8x",
])
def test_a_websocket_message_is_scanned_as_sent_too(known_engine, message):
    hit = known_engine.scan_message(message)
    assert hit is not None and hit.rule == "known-secret" and hit.where.startswith("websocket message")


LARGE_FILLER = b" " * (dlp.PARALLEL_BYTES + 1000)


@pytest.mark.parametrize("name, body, content_type, encoding, rule", [
    ("json-duplicate-key", b'{"note": "' + PASSWORD.encode() + b'", "note": "clean", "pad": "' + LARGE_FILLER + b'"}',
     "application/json", None, "known-secret"),
    ("json-number", b'{"pad": "' + LARGE_FILLER + b'", "pin": ' + NUMERIC.encode() + b'}', "application/json", None,
     "known-secret"),
    ("binary-percent-known", b"\xff\xd8" + LARGE_FILLER + b"pa%2Bss%21w0rd-Zq8x", "application/octet-stream", None,
     "known-secret"),
    ("binary-percent-token", b"\xff\xd8" + LARGE_FILLER + b"t=ghp%5F" + PAT[4:].encode(), "application/octet-stream",
     None, "dlp:*"),
    ("gzip-file-name", gzip_named(LARGE_FILLER, PASSWORD), "text/plain", "gzip", "known-secret"),
    ("utf16", ("note: " + PASSWORD).encode("utf-16") + LARGE_FILLER.decode().encode("utf-16")[2:],
     "text/plain; charset=utf-16", None, "known-secret"),
])
def test_large_bodies_take_the_parallel_path_and_are_scanned_as_sent_too(
        proxy, name, body, content_type, encoding, rule):
    flow = post(proxy, body, content_type, encoding)
    got = flow.response.headers["X-Bottle-Egress-Rule"] if flow.response is not None else None
    assert got == rule or (rule == "dlp:*" and (got or "").startswith("dlp:")), (name, got)
    refused(proxy, flow, 403, got)


@HYPOTHESIS
@given(place=st.sampled_from(["method", "target", "name", "value"]),
       how=st.sampled_from(["raw", "percent", "percent-twice", "base64", "hex", "base32"]),
       before=st.binary(max_size=24).filter(lambda b: b"\r" not in b and b"\n" not in b),
       after=st.binary(max_size=24).filter(lambda b: b"\r" not in b and b"\n" not in b),
       secret=st.sampled_from([PASSWORD, AMPERSAND, SPACED, NUMERIC]))
def test_generated_a_known_secret_anywhere_in_the_head_never_passes(known_engine, place, how, before, after, secret):
    """The head as mitmproxy hands it over: str forms decoded with surrogateescape, raw bytes in
    ``data``/``fields``; the secret in any handled encoding, between arbitrary bytes."""
    from bottle_firewall import addon
    planted = before + _wrapped(secret, how) + after
    text = planted.decode("utf-8", "surrogateescape")
    method, path, fields = b"GET", b"/", [(b"Host", b"www.example.com")]
    if place == "method":
        method = planted
    elif place == "target":
        path = b"/x?q=" + planted
    elif place == "name":
        fields.append((planted or b"x", b"1"))
    else:
        fields.append((b"X-Note", planted))
    request = type("Request", (), {})()
    request.data = type("Data", (), {"method": method, "authority": b"", "path": path})()
    request.headers = Headers([(k.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape"))
                               for k, v in fields])
    request.headers.fields = fields
    str_items = [(k.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape")) for k, v in fields]
    hit = known_engine.scan_head(path.decode("utf-8", "surrogateescape"), str_items, raw=addon.raw_head(request))
    assert hit is not None, (place, how, text)
