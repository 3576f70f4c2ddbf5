# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A response never carries back the credential egress injected (redact.py and the addon's
responseheaders/response hooks): masked in headers, trailers and the streamed body, across
every chunk boundary, through Content-Encodings."""

from __future__ import annotations

import base64
import gzip
import json
import os
import types
import zlib
from urllib.parse import quote

import brotli
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fakes import ROUTE_TOKEN, Headers
from bottle_firewall import addon, redact

TOKEN = "tok+en/with=odd-chars_0123456789abcdef"
FORMS = redact.credential_forms([TOKEN])
GENERATED = settings(max_examples=300, derandomize=bool(os.environ.get("CI")), deadline=None)


def carriers(token=TOKEN):
    raw = token.encode()
    return [raw, base64.b64encode(raw), base64.urlsafe_b64encode(raw), base64.b64encode(b"x" + raw),
            base64.b64encode(b"xy" + raw).rstrip(b"="), raw.hex().encode(), raw.hex().upper().encode(),
            base64.b32encode(raw), quote(token, safe="").encode(), token.replace("/", "\\/").encode()]


def streamed(redactor, chunks, empty_frames=False):
    """The body as the agent receives it: data events (mitmproxy never passes an empty one,
    except an empty HTTP/2 DATA frame: ``empty_frames``), then b"" at the end."""
    out = []
    chunks = [chunk for chunk in chunks if chunk or empty_frames]
    for chunk in chunks + [b""]:
        pieces = redactor(chunk)
        assert isinstance(pieces, list) and all(pieces), "never an empty chunk (it would end a chunked body)"
        out.extend(pieces)
    return b"".join(out)


def leaks(data, token=TOKEN):
    return [carrier for carrier in carriers(token) if carrier in data]


@pytest.mark.parametrize("index", range(len(carriers())))
def test_every_form_is_masked_keeping_the_length(index):
    body = b'{"headers": {"Authorization": "Bearer ' + carriers()[index] + b'"}}'
    out = redact.redact_message(body, FORMS)
    assert len(out) == len(body) and not leaks(out)
    assert b"*" * 20 in out and out.startswith(b'{"headers": {"Authorization": "Bearer ')


def test_a_body_without_the_credential_is_untouched():
    body = bytes(range(256)) * 40
    assert redact.redact_message(body, FORMS) == body
    assert streamed(redact.StreamRedactor(FORMS), [body[:1000], body[1000:]]) == body


def test_every_split_offset_of_an_echo():
    """The credential (and each of its forms) split at every byte: masked the same."""
    body = b"GET /anything\r\nauthorization: Bearer " + b" | ".join(carriers()) + b"\r\ntail"
    expected = redact.redact_message(body, FORMS)
    assert not leaks(expected)
    for offset in range(len(body) + 1):
        assert streamed(redact.StreamRedactor(FORMS), [body[:offset], body[offset:]]) == expected, offset


def test_every_pair_of_split_offsets_around_the_raw_credential():
    body = b"echo:" + TOKEN.encode() + b":" + TOKEN.encode()[:10]
    expected = redact.redact_message(body, FORMS)
    for first in range(len(body) + 1):
        for second in range(first, len(body) + 1):
            chunks = [body[:first], body[first:second], body[second:]]
            assert streamed(redact.StreamRedactor(FORMS), chunks) == expected, (first, second)


def test_one_byte_chunks():
    body = b"x" * 5 + TOKEN.encode() + b"y" * 5 + base64.b64encode(TOKEN.encode())
    assert streamed(redact.StreamRedactor(FORMS), [bytes([b]) for b in body]) == redact.redact_message(body, FORMS)


@GENERATED
@given(prefix=st.binary(max_size=80), suffix=st.binary(max_size=80), which=st.lists(
    st.integers(0, len(carriers()) - 1), min_size=1, max_size=4), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_generated_splits_equal_the_whole_and_never_leak(prefix, suffix, which, cuts):
    body = prefix + b"".join(carriers()[i] + prefix[:3] for i in which) + suffix
    cuts = sorted({min(c, len(body)) for c in cuts})
    chunks = [body[a:b] for a, b in zip([0] + cuts, cuts + [len(body)])]
    out = streamed(redact.StreamRedactor(FORMS), chunks)
    assert out == redact.redact_message(body, FORMS)
    assert len(out) == len(body) and not leaks(out)


@GENERATED
@given(prefix=st.binary(max_size=40), which=st.lists(st.integers(0, len(carriers()) - 1), min_size=1, max_size=3),
       cuts=st.lists(st.integers(0, 300), min_size=1, max_size=10))
def test_generated_empty_frames_anywhere_never_leak(prefix, which, cuts):
    """An empty HTTP/2 DATA frame is passed as b"" too (the end-of-message call): wherever
    they fall, no more than the first MIN_PARTIAL - 1 bytes of a form can pass."""
    body = prefix + b"".join(carriers()[i] + b"." for i in which)
    cuts = sorted({min(c, len(body)) for c in cuts})
    chunks = []
    for a, b in zip([0] + cuts, cuts + [len(body)]):
        chunks += [body[a:b], b""]
    out = streamed(redact.StreamRedactor(FORMS), chunks, empty_frames=True)
    assert len(out) == len(body)
    for form in FORMS:
        assert form[redact.MIN_PARTIAL - 1:] not in out, form
    assert not leaks(out)


def test_a_tail_that_starts_the_credential_is_masked_at_the_end():
    body = b"partial: " + TOKEN.encode()[:12]
    out = streamed(redact.StreamRedactor(FORMS), [body])
    assert out == b"partial: " + b"*" * 12
    assert streamed(redact.StreamRedactor(FORMS), [b"ends in tok"]) == b"ends in tok", "3 bytes: too short to mask"


def _chunks(data, size):
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


@pytest.mark.parametrize("coding, encode", [
    ("gzip", gzip.compress),
    ("gzip", lambda d: gzip.compress(d[:50]) + gzip.compress(d[50:])),    # two members
    ("deflate", zlib.compress),
    ("deflate", lambda d: zlib.compress(d)[2:-4]),                        # raw deflate
    ("br", brotli.compress),
    ("gzip, br", lambda d: brotli.compress(gzip.compress(d))),
])
@pytest.mark.parametrize("size", [1, 7, 64, 100000])
def test_compressed_responses_are_decoded_and_masked(coding, encode, size):
    body = json.dumps({"echo": TOKEN, "b64": base64.b64encode(TOKEN.encode()).decode(), "pad": "z" * 300}).encode()
    decoder, refusal = redact.decoder_for(coding)
    assert refusal is None
    out = streamed(redact.StreamRedactor(FORMS, decoder), _chunks(encode(body), size))
    assert out == redact.redact_message(body, FORMS) and not leaks(out)


@pytest.mark.parametrize("coding", ["zstd", "compress", "gzip, zstd"])
def test_codings_that_cannot_be_decoded_are_refused(coding):
    decoder, refusal = redact.decoder_for(coding)
    assert decoder is None and "cannot decode" in refusal


def test_identity_needs_no_decoder():
    assert redact.decoder_for("identity") == (None, None)
    assert redact.decoder_for("") == (None, None)


def test_a_corrupt_compressed_response_raises():
    decoder, _refusal = redact.decoder_for("gzip")
    with pytest.raises(redact.DecodeError):
        streamed(redact.StreamRedactor(FORMS, decoder), [b"\x1f\x8b\x08\x00garbage-not-gzip"])


def test_header_fields_are_masked_names_too():
    fields = [(b"X-Echo", b"Bearer " + TOKEN.encode()), (TOKEN.encode(), b"1"), (b"Date", b"today")]
    out, changed = redact.redact_fields(fields, FORMS)
    assert changed and not any(leaks(name) or leaks(value) for name, value in out)
    assert out[2] == (b"Date", b"today")
    assert redact.redact_fields([("Date", "today")], FORMS) == ([("Date", "today")], False)


# --- the addon ----------------------------------------------------------------------------------

def upstream_response(headers, status=200):
    return types.SimpleNamespace(status_code=status, headers=Headers(headers), stream=False, trailers=None,
                                 reason="OK")


def routed(proxy, path="/repos/o/r", method="GET"):
    flow = proxy.https("api.github.com", method, path, {"Host": "api.github.com", "Accept-Encoding": "gzip, br"})
    assert flow.response is None
    assert flow.request.headers.get("Authorization") == "Bearer " + ROUTE_TOKEN
    return flow


def test_an_injected_request_asks_for_an_unencoded_response(proxy):
    flow = routed(proxy)
    assert flow.request.headers.get("Accept-Encoding") == "identity"
    plain = proxy.https("www.example.com", "GET", "/", {"Host": "www.example.com", "Accept-Encoding": "gzip"})
    assert plain.request.headers.get("Accept-Encoding") == "gzip", "untouched where nothing was injected"


def test_an_echo_of_the_credential_is_masked_in_headers_and_body(proxy):
    flow = routed(proxy)
    echo = json.dumps({"headers": {"Authorization": "Bearer " + ROUTE_TOKEN}}).encode()
    flow.response = upstream_response([("Content-Type", "application/json"), ("Content-Length", str(len(echo))),
                                       ("X-Debug-Auth", "Bearer " + ROUTE_TOKEN)])
    proxy.fw.responseheaders(flow)
    assert callable(flow.response.stream)
    assert ROUTE_TOKEN not in flow.response.headers.get("X-Debug-Auth")
    assert flow.response.headers.get("Content-Length") == str(len(echo)), "masking keeps the length"
    body = streamed(flow.response.stream, [echo[:40], echo[40:]])
    assert ROUTE_TOKEN.encode() not in body and len(body) == len(echo)
    lines = [json.loads(line) for line in proxy.fw.audit.stream.lines]
    assert [line["rule"] for line in lines if line["event"] == "response"] == ["credential-echo"]
    assert ROUTE_TOKEN not in "".join(proxy.fw.audit.stream.lines)


def test_a_gzip_response_the_upstream_sent_anyway_is_decoded(proxy):
    flow = routed(proxy)
    echo = gzip.compress(b"you sent: " + base64.b64encode(b"Bearer " + ROUTE_TOKEN.encode()))
    flow.response = upstream_response([("Content-Encoding", "gzip"), ("Content-Length", str(len(echo)))])
    proxy.fw.responseheaders(flow)
    assert "Content-Encoding" not in flow.response.headers and "Content-Length" not in flow.response.headers
    body = streamed(flow.response.stream, _chunks(echo, 5))
    assert body.startswith(b"you sent: ") and not leaks(body, ROUTE_TOKEN)


def test_an_encoding_egress_cannot_undo_is_replaced_by_a_502(proxy):
    flow = routed(proxy)
    flow.response = upstream_response([("Content-Encoding", "zstd"), ("Content-Length", "10")])
    proxy.fw.responseheaders(flow)
    assert flow.response.status_code == 502
    assert flow.response.headers.get("X-Bottle-Egress-Rule") == "response-encoding"
    text = streamed(flow.response.stream, [b"(\xb5/\xfd" + ROUTE_TOKEN.encode()])
    assert text.startswith(b"blocked by egress: ") and ROUTE_TOKEN.encode() not in text
    assert flow.response.headers.get("Content-Length") == str(len(text))


def test_trailers_are_masked(proxy):
    flow = routed(proxy)
    flow.response = upstream_response([("Content-Type", "text/plain")])
    proxy.fw.responseheaders(flow)
    flow.response.trailers = Headers([("X-Echo", ROUTE_TOKEN)])
    proxy.fw.response(flow)
    assert ROUTE_TOKEN not in flow.response.trailers.get("X-Echo")


def test_responses_of_requests_without_a_credential_stream_untouched(proxy):
    flow = proxy.https("www.example.com", "GET", "/", {"Host": "www.example.com"})
    flow.response = upstream_response([("Content-Encoding", "zstd"), ("X-Echo", ROUTE_TOKEN)])
    proxy.fw.responseheaders(flow)
    # only counted (addon.ByteCount, no redactor inside): the bytes pass as they are
    assert isinstance(flow.response.stream, addon.ByteCount) and flow.response.stream.inner is None
    assert flow.response.stream(b"abc") == b"abc" and flow.response.headers.get("X-Echo") == ROUTE_TOKEN


def test_a_failure_while_redacting_kills_the_response(proxy, monkeypatch):
    flow = routed(proxy)
    flow.response = upstream_response([("Content-Type", "text/plain")])

    def broken(*_args):
        raise RuntimeError("boom")
    monkeypatch.setattr(redact, "credential_forms", broken)
    proxy.fw.responseheaders(flow)
    assert flow.error == "killed"


class _Message:
    def __init__(self, content, from_client):
        self.content, self.from_client, self.dropped = content, from_client, False

    def drop(self):
        self.dropped = True


def test_a_websocket_message_from_upstream_never_carries_the_credential_back(proxy):
    flow = routed(proxy, "/repos/o/r/ws")
    flow.websocket = types.SimpleNamespace(messages=[])
    echoes = [b"you said: Bearer " + ROUTE_TOKEN.encode(), base64.b64encode(ROUTE_TOKEN.encode()),
              b"clean", b"cut at the end: " + ROUTE_TOKEN.encode()[:6]]
    for content in echoes:
        flow.websocket.messages.append(_Message(content, from_client=False))
        proxy.run(proxy.fw.websocket_message(flow))
    seen = [m.content for m in flow.websocket.messages]
    assert ROUTE_TOKEN.encode() not in b"".join(seen)
    assert base64.b64encode(ROUTE_TOKEN.encode()) not in b"".join(seen)
    assert seen[2] == b"clean" and [len(c) for c in seen] == [len(c) for c in echoes], "masked in place"
    assert not seen[3].endswith(ROUTE_TOKEN.encode()[:6]), "a tail that starts the credential is masked too"
    assert not any(m.dropped for m in flow.websocket.messages)
    lines = [json.loads(line) for line in proxy.fw.audit.stream.lines]
    assert [(l["event"], l["rule"]) for l in lines if l.get("rule") == "credential-echo"] == [
        ("websocket", "credential-echo")] * 3


def test_a_websocket_message_where_nothing_was_injected_is_untouched(proxy):
    flow = proxy.https("www.example.com", path="/ws")
    flow.websocket = types.SimpleNamespace(messages=[_Message(b"echo " + ROUTE_TOKEN.encode(), from_client=False)])
    proxy.run(proxy.fw.websocket_message(flow))
    assert flow.websocket.messages[0].content == b"echo " + ROUTE_TOKEN.encode()


def test_a_stream_is_not_held_back_unless_its_tail_could_start_the_credential():
    """Server-sent events from a model API pass as they arrive: only a tail that is the start of
    a credential form waits for the next chunk (molecule's route SSE probe found events held)."""
    forms = redact.credential_forms([ROUTE_TOKEN])
    stream = redact.StreamRedactor(forms)
    event = b"event: ping\ndata: {}\n\n"
    assert stream(event) == [event], "an event with nothing of the credential goes out whole, at once"
    head = ROUTE_TOKEN.encode()[:8]
    assert stream(b"data: " + head) == [b"data: "], "the start of the credential is held"
    out = stream(ROUTE_TOKEN.encode()[8:] + b"\n\n")
    assert ROUTE_TOKEN.encode() not in b"".join(out) and b"".join(out).endswith(b"\n\n")
    assert set(b"".join(out)[:-2]) == {redact.MASK}


def _partial_tail_reference(data, forms):
    """partial_tail as first written: every form, every length, ``endswith``."""
    best = 0
    for form in forms:
        for length in range(min(len(form) - 1, len(data)), max(best, redact.MIN_PARTIAL - 1), -1):
            if data.endswith(form[:length]):
                best = length
                break
    return best


@GENERATED
@given(st.lists(st.binary(min_size=1, max_size=12), max_size=5), st.binary(max_size=40), st.integers(0, 12))
def test_generated_partial_tail_is_the_longest_held_prefix(forms, data, cut):
    """The prefix-set lookup answers what the form-by-form search answered, also for a tail
    cut out of a form (the case it exists for)."""
    if forms:
        data += forms[0][:cut]
    assert redact.partial_tail(data, forms) == _partial_tail_reference(data, forms)
    assert redact.partial_tail(bytearray(data), forms) == _partial_tail_reference(data, forms)


def test_credential_forms_are_the_same_list_each_time_and_not_shared():
    first = redact.credential_forms([ROUTE_TOKEN])
    first.append(b"changed by a caller")
    assert b"changed by a caller" not in redact.credential_forms([ROUTE_TOKEN])
    assert redact.credential_forms((ROUTE_TOKEN,)) == redact.credential_forms([ROUTE_TOKEN]) == first[:-1]
