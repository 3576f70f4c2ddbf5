# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Entropy, known-secret variants, the places a refusal names, rate limit and audit lines."""

from __future__ import annotations

import base64
import io
import json

import pytest

from bottle_firewall import audit, dlp, ratelimit

RANDOM_TOKEN = "q8Xv2LmN4pR7sT1wY9zK3bH6jD0fG5cA"


def _raise(exc):
    """Raise ``exc`` (for a lambda standing in for a function that fails)."""
    raise exc


@pytest.mark.parametrize("path", [
    "/search?q=" + RANDOM_TOKEN,
    "/upload/" + RANDOM_TOKEN + "/x",
    "/x?a=1&data=" + base64.urlsafe_b64encode(b"\x8f\x01" + RANDOM_TOKEN.encode()).decode(),
    "/x?t=" + RANDOM_TOKEN.replace("q", "%71"),
])
def test_entropy_flags_random_url_values(path):
    assert dlp.entropy_hit(path, 20, 4.5) is not None


@pytest.mark.parametrize("path", [
    "/packages/f9/9b/335f9764261e915ed497fcdeb11df5dfd6f7bf257d4a6a2a686d80da4d54/requests-2.32.3-py3-none-any.whl",
    "/packages/kingfisher_secret_scanner-1.5.0-cp310-abi3-manylinux_2_28_x86_64.whl.metadata",
    "/packages/cryptography-45.0.7-cp311-abi3-manylinux_2_34_x86_64.whl",
    "/packages/nvidia_cudnn_cu12-9.1.0.70-py3-none-manylinux2014_x86_64.whl",
    "/simple/typing-extensions/",
    "/lodash/-/lodash-4.17.21.tgz",
    "/@anthropic-ai%2fclaude-code",
    "/@anthropic-ai/claude-code/-/claude-code-2.0.14.tgz",
    "/repos/owner/repo/git/commits/4b825dc642cb6eb9a060e54bf8d69288fbee4904",
    "/v2/library/debian/blobs/sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "/api/items/550e8400-e29b-41d4-a716-446655440000?expand=owner",
    "/golang.org/x/tools/@v/v0.0.0-20240112132812-db90d7aa6ee6.zip",
    "/search?q=how+to+configure+an+nginx+reverse+proxy+with+tls",
    "/v1/messages?beta=true",
])
def test_package_manager_urls_do_not_trip_entropy(path):
    assert dlp.entropy_hit(path, 20, 4.5) is None


def test_secret_variants_cover_every_alignment_inside_a_blob():
    secret = "s3cr3t-value-for-the-bottle"
    forms = dlp.secret_variants(secret)
    for prefix in (b"", b"a", b"ab", b"abc", b"abcd"):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            blob = encode(prefix + secret.encode() + b"trailing bytes").decode()
            assert any(form in blob for form in forms), (prefix, encode)
    assert secret.encode().hex() in forms and secret.encode().hex().upper() in forms
    assert any(form in base64.b32encode(secret.encode()).decode() for form in forms)


def test_short_known_secrets_are_skipped_and_logged(caplog):
    known = dlp.KnownSecrets(["abc12", "long-enough-secret"])
    assert known.count == 1 and known.unprotected == 1
    assert "NOT protected" in caplog.text and "abc12" not in caplog.text


def test_a_secret_used_as_a_name_is_not_echoed(engine):
    engine.known.load(["name-that-is-secret"])
    hit = engine.scan_head("/x", [("name-that-is-secret", "v")])
    assert hit.rule == "known-secret" and "name-that-is-secret" not in hit.where
    body = json.dumps({"outer": {"ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8": {"x": "ghp_" + "Z" * 3 + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P"}}})
    hit = engine.scan_body(body.encode(), "application/json")
    assert hit is not None and "ghp_" not in hit.where and "a1B2" not in hit.where


def test_scanner_not_loaded_refuses_queries_and_bodies():
    engine = dlp.Engine(None, "ImportError")
    assert engine.scan_head("/x?q=1", []).rule == "dlp:unavailable"
    assert engine.scan_body(b"{}", "application/json").rule == "dlp:unavailable"
    assert engine.scan_head("/plain", [("Accept", "*/*")]) is None


def test_engine_start_fails_closed(monkeypatch):
    monkeypatch.setattr(dlp, "load_kingfisher", lambda cache_dir=None: _raise(RuntimeError("x")))
    engine = dlp.Engine.start()
    assert engine.scanner is None and engine.scan_body(b"x", "").rule == "dlp:unavailable"


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_rate_limiter_token_bucket():
    clock = Clock()
    limiter = ratelimit.RateLimiter(60, 3, clock)
    assert [limiter.check("a.example.com") for _index in range(3)] == [None, None, None]
    retry = limiter.check("b.example.com")
    assert retry == pytest.approx(1.0), "subdomains share their registrable domain's bucket"
    assert limiter.check("other.org") is None
    clock.now += 1.0
    assert limiter.check("example.com") is None
    assert limiter.check("example.com") is not None
    limiter.configure(0, 1)
    assert limiter.check("example.com") is None, "0 requests a minute disables the limit"


@pytest.mark.parametrize("host, domain", [
    ("a.b.example.co.uk", "example.co.uk"),
    ("api.github.com", "github.com"),
    ("x.y.githubusercontent.com", "y.githubusercontent.com"),
    ("192.0.2.7", "192.0.2.7"),
    ("localhost", "localhost"),
])
def test_registrable_domain(host, domain):
    assert ratelimit.registrable_domain(host) == domain


def test_audit_paths_keep_query_names_only():
    assert audit.path_for_audit("/search?q=secret&page=2") == "/search?q=&page="
    assert audit.path_for_audit("/a?flag&x=1#frag") == "/a?flag=&x="
    assert audit.path_for_audit("/plain") == "/plain"


def test_audit_lines_and_rotation(tmp_path):
    stream = io.StringIO()
    path = tmp_path / "audit.jsonl"
    log = audit.Audit(str(path), stream, max_bytes=300)
    for _index in range(5):
        log.record("request", "api.github.com", 443, "GET", "/repos/x?token=SECRETVALUE", rule="dlp:x",
                   action="block", status=403, nbytes=12)
    lines = stream.getvalue().splitlines()
    entry = json.loads(lines[0])
    assert list(entry) == list(audit.FIELDS)
    assert entry["path"] == "/repos/x?token=" and "SECRETVALUE" not in stream.getvalue()
    assert (tmp_path / "audit.jsonl.1").exists() and path.stat().st_size <= 300 + 200


# --- known secrets in one Vectorscan pass (kingfisher literal rules) ---------------------------

KNOWN_VALUES = ["correct-horse-battery-staple-42", "ghp_R0uteTokenValue0123456789abcdefABCD", "xxxxxxxxxx",
                "aaaaaaaaaaaa", "passwörd-ünïcode-42", "we'ird \"q\\uo(te)s[]*+?.$^{}|/- #x"]


def test_known_secrets_use_a_kingfisher_literal_database():
    known = dlp.KnownSecrets(KNOWN_VALUES)
    assert known.scanner is not None and known.automaton is None
    # kingfisher drops some matches by their text: those forms are searched plainly.
    assert b"xxxxxxxxxx" in known.plain and b"aaaaaaaaaaaa" in known.plain


@pytest.mark.parametrize("fallback", [False, True])
def test_every_form_of_every_known_secret_is_found_anywhere(monkeypatch, fallback):
    """The same verdict as a plain search for every form, whatever surrounds it (the kingfisher
    database and the Aho-Corasick fallback alike)."""
    if fallback:
        monkeypatch.setattr(dlp, "compile_literals", lambda forms: _raise(RuntimeError("no")))
    known = dlp.KnownSecrets(KNOWN_VALUES)
    assert (known.automaton is not None) == fallback
    forms = dlp._byte_forms(list(KNOWN_VALUES))
    rng = __import__("random").Random(7)
    for form in forms:
        for prefix, suffix in ((b"", b""), (b"x", b"y"), (b'{"a": "', b'"}'), (bytes(range(256)), b"\n\x00\n"),
                               (b"aaaaaaaaaaaa", b"xxxxxx"), (rng.randbytes(300), rng.randbytes(300))):
            data = prefix + form + suffix
            offset = known.find(data)
            assert offset is not None and offset <= len(prefix), (form, prefix)
    for _index in range(300):
        data = rng.randbytes(rng.randint(0, 200))
        expected = any(form in data for form in forms)
        assert (known.find(data) is not None) == expected
    assert known.find("text with passwörd-ünïcode-42 in it") is not None  # str: searched as UTF-8
    assert known.find(b"correct-horse-battery-stapl") is None


def test_known_secret_reload_replaces_the_database():
    known = dlp.KnownSecrets(["first-secret-value-1"])
    assert known.find(b"..first-secret-value-1..") == 2
    known.load(["second-secret-value-2"])
    assert known.find(b"..first-secret-value-1..") is None and known.find(b"second-secret-value-2") == 0
    known.load([])
    assert known.scanner is None and known.find(b"second-secret-value-2") is None


def _large_body(extra):
    filler = [{"role": "user", "content": "plain prose about the retry path %d " % i * 20} for i in range(600)]
    body = json.dumps({"messages": filler + [extra]}).encode()
    assert len(body) >= dlp.PARALLEL_BYTES
    return body


def test_large_body_finds_secrets_in_decoded_forms_scanned_after_the_parallel_pass(engine):
    engine.known.load(["correct-horse-battery-staple-42"])
    hidden = "prefix correct-horse-battery-staple-42 suffix".encode().hex()
    hit = engine.scan_body(_large_body({"role": "user", "content": "id " + hidden[:-2] + "0a"}), "application/json")
    assert hit == dlp.Hit("known-secret", "body field $.messages[600].content")
    token = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
    hit = engine.scan_body(_large_body({"role": "user", "content": "x " + ("token " + token).encode().hex()}),
                           "application/json")
    assert hit is not None and hit.rule.startswith("dlp:") and hit.where == "body field $.messages[600].content"
    assert engine.scan_body(_large_body({"role": "user", "content": "clean"}), "application/json") is None


# --- audit rotation (issue 23 item 5): numbered files, a bounded number kept ---------------------

def _fill(log, lines):
    for n in range(lines):
        log.record("request", "h%d.example" % n, 443, "GET", "/", nbytes=n)


def test_audit_rotates_into_numbered_files_the_newest_first(tmp_path):
    path = tmp_path / "egress.jsonl"
    log = audit.Audit(str(path), io.StringIO(), max_bytes=1000, keep=3)
    _fill(log, 100)  # ~13 KB: a dozen rotations, three kept
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["egress.jsonl", "egress.jsonl.1", "egress.jsonl.2", "egress.jsonl.3"]
    last = [json.loads(line)["bytes"] for name in ("egress.jsonl.3", "egress.jsonl.2", "egress.jsonl.1", "egress.jsonl")
            for line in (tmp_path / name).read_text().splitlines()]
    assert last == list(range(last[0], 100)), "the kept files hold the newest lines, in order, none lost between them"
    assert all((tmp_path / n).stat().st_size < 1000 + 200 for n in names)


def test_audit_keep_zero_keeps_every_line_and_a_smaller_keep_removes_the_rest(tmp_path):
    path = tmp_path / "egress.jsonl"
    log = audit.Audit(str(path), io.StringIO(), max_bytes=1000, keep=0)
    _fill(log, 100)
    files = sorted(tmp_path.iterdir())
    lines = [json.loads(line)["bytes"] for p in files for line in p.read_text().splitlines()]
    assert sorted(lines) == list(range(100)) and len(files) > 10
    log.configure(max_bytes=1000, keep=2)
    _fill(log, 10)  # the next rotation removes .2's older siblings too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["egress.jsonl", "egress.jsonl.1", "egress.jsonl.2"]


def test_an_audit_file_that_cannot_be_written_is_logged_not_raised(tmp_path, caplog):
    log = audit.Audit(str(tmp_path / "missing" / "egress.jsonl"), io.StringIO())
    entry = log.record("request", "a.example", 443, "GET", "/")
    assert entry["host"] == "a.example" and "cannot write the audit file" in caplog.text


def test_scan_host_is_remembered_only_while_the_detectors_are_the_same(engine):
    """The audit names a host on every line, so scan_host remembers its answer; a new set of
    known secrets or new entropy settings make it ask again."""
    host = "leak-first-secret-value-1.example.com"
    assert engine.scan_host(host) is None
    assert host in engine.hosts
    engine.known.load(["leak-first-secret-value-1"])
    hit = engine.scan_host(host)
    assert hit is not None and hit.rule == "known-secret"
    engine.known.load([])
    assert engine.scan_host(host) is None
    random_host = "q8Zr3KpX2vLm9TnB7wYc.example.com"
    engine.configure(64, 8.0)  # no label is that long or that random
    assert engine.scan_host(random_host) is None
    engine.configure(12, 3.0)
    assert engine.scan_host(random_host) is not None
    assert engine.hosts_stamp[1:3] == (12, 3.0)
