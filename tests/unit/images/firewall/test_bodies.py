# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Body decoding and field extraction: what the scanner gets to see."""

from __future__ import annotations

import base64
import gzip
import json
import zlib

import brotli
import pytest

from bottle_firewall import bodies

LIMIT = 1 << 20


def texts(body, content_type):
    buffer = bodies.ScanBuffer()
    for where, data in bodies.extract(body, content_type):
        buffer.add(where, data)
    return buffer


def where_of(buffer, needle):
    joined = buffer.joined()
    return buffer.where_at(joined.index(needle))


@pytest.mark.parametrize("text, expected", [
    ("abc", "abc"),
    ("%41", "A"),
    ("%2541", "A"),
    ("%252541", "A"),
    ("%25252525252541", "A"),
    ("100%", "100%"),
    ("%zz", "%zz"),
])
def test_percent_decoding_repeats_until_stable(text, expected):
    assert bodies.percent_decode(text) == expected


def test_nfkc_folds_fullwidth_letters():
    assert bodies.normalize_text("ｇｈｐ＿ＡＢＣ") == "ghp_ABC"


def test_json_nested_fields_are_named_by_path():
    body = json.dumps({"messages": [{"role": "user", "content": [{"type": "text", "text": "NEEDLE-A"}]}],
                       "meta": {"NEEDLE-KEY": 1, "n": [1, "NEEDLE-B"]}}).encode()
    buffer = texts(body, "application/json")
    assert where_of(buffer, b"NEEDLE-A") == "body field $.messages[0].content[0].text"
    assert where_of(buffer, b"NEEDLE-KEY") == "body field $.meta key"
    assert where_of(buffer, b"NEEDLE-B") == "body field $.meta.n[1]"


def test_json_escapes_are_undone():
    body = b'{"a": "\\u0067\\u0068\\u0070_x"}'
    assert b"ghp_x" in texts(body, "application/json").joined()


def test_form_fields_are_decoded_and_named():
    buffer = texts(b"a=1&tok=%2567hp%5Fx&empty=", "application/x-www-form-urlencoded")
    assert b"ghp_x" in buffer.joined()
    assert where_of(buffer, b"ghp_x") == "body field tok"


def test_multipart_names_filenames_and_contents():
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nNEEDLE-1\r\n"
            b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"NEEDLE-2.txt\"\r\n"
            b"Content-Type: application/json\r\n\r\n{\"k\": \"NEEDLE-3\"}\r\n"
            b"--XyZ\r\nContent-Disposition: form-data; name=\"enc\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            + base64.b64encode(b"NEEDLE-4") + b"\r\n--XyZ--\r\n")
    buffer = texts(body, "multipart/form-data; boundary=XyZ")
    assert where_of(buffer, b"NEEDLE-1") == "body field note"
    assert where_of(buffer, b"NEEDLE-2") == "body field file (filename)"
    assert where_of(buffer, b"NEEDLE-3") == "body field file $.k"
    assert where_of(buffer, b"NEEDLE-4") == "body field enc"


@pytest.mark.parametrize("encoding, encode", [
    ("gzip", gzip.compress),
    ("x-gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some clients send it
    ("br", brotli.compress),
    ("gzip, br", lambda data: brotli.compress(gzip.compress(data))),
    ("identity", lambda data: data),
])
def test_content_encodings_are_undone(encoding, encode):
    data = b"the agent's request body " * 100
    assert bodies.decode_content(encode(data), encoding, LIMIT) == data


@pytest.mark.parametrize("data, encoding", [
    (gzip.compress(b"a") + gzip.compress(b"b"), "gzip"),        # a second member
    (gzip.compress(b"a") + b"\0\0\0\0", "gzip"),                 # NUL padding
    (gzip.compress(b"a") + b"trailing", "gzip"),                # garbage
    (zlib.compress(b"a") + b"trailing", "deflate"),             # after a zlib stream
    (zlib.compress(b"a")[2:-4] + b"trailing", "deflate"),       # after a raw deflate stream
    (brotli.compress(b"a") + b"trailing", "br"),
    (gzip.compress(zlib.compress(b"a") + b"inner"), "deflate, gzip"),  # inside a stacked layer
])
def test_bytes_after_the_end_of_a_compressed_stream_are_refused(data, encoding):
    """An upstream's decoder may read them (a second gzip member) where egress would not."""
    with pytest.raises(bodies.BodyError) as err:
        bodies.decode_content(data, encoding, LIMIT)
    assert err.value.rule == "body-decode"
    assert "after the end" in str(err.value) or "not valid" in str(err.value)


@pytest.mark.parametrize("encoding, encode", [
    ("gzip", gzip.compress), ("deflate", zlib.compress), ("br", brotli.compress)])
def test_bombs_stop_at_the_limit(encoding, encode):
    bomb = encode(b"\0" * (64 * LIMIT))
    with pytest.raises(bodies.BodyError) as err:
        bodies.decode_content(bomb, encoding, LIMIT)
    assert err.value.rule == "body-limit"


@pytest.mark.parametrize("encoding, data", [
    ("gzip", b"not gzip at all"),
    ("gzip", gzip.compress(b"x" * 1000)[:-12]),
    ("deflate", b"\xff\xfe garbage"),
    ("br", b"\xff\xfe garbage"),
    ("compress", b"whatever"),
    ("zstd", b"whatever"),
])
def test_corrupt_or_unknown_encodings_are_refused(encoding, data):
    with pytest.raises(bodies.BodyError) as err:
        bodies.decode_content(data, encoding, LIMIT)
    assert err.value.rule == "body-decode"


def test_an_identity_body_over_the_limit_is_refused():
    with pytest.raises(bodies.BodyError):
        bodies.decode_content(b"x" * (LIMIT + 1), "", LIMIT)


def test_decoded_forms_hex_base32_and_urlsafe_base64():
    secret = b"the-hidden-value-0123456789"
    buffer = b" ".join([secret.hex().encode(), secret.hex().upper().encode(), base64.b32encode(secret),
                        base64.urlsafe_b64encode(b"\xfb\xff" + secret), b"x" + secret.hex().encode()])
    found = [decoded for _offset, decoded in bodies.decoded_forms(buffer)]
    assert sum(secret in decoded for decoded in found) == 5, found


def test_binary_runs_are_not_decoded_as_text():
    sha = b"0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
    assert bodies.decoded_forms(b"want " + sha + b"\n") == []


def test_decoded_forms_unpadded_standard_base64():
    """kingfisher decodes padded standard base64 itself, not an unpadded run: the generated egress
    test (run_fuzz.py) found a provider token in unpadded base64 in a header reaching upstream."""
    token = b"ghp_Zq8xW3e5R7t9Y1u3I5o7P9a1S3d5F7g9H1j3"
    unpadded = base64.b64encode(token).rstrip(b"=")
    assert len(unpadded) % 4
    assert token in [decoded for _offset, decoded in bodies.decoded_forms(b"X-Note: " + unpadded)]
    padded_whole = base64.b64encode(token + b"ab")  # no padding needed: kingfisher's own job, not repeated
    assert len(padded_whole) % 4 == 0 and b"=" not in padded_whole
    assert bodies.decoded_forms(padded_whole) == []
