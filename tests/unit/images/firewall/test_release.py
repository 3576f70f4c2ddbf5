# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dlp.action supervise: a DLP hit held for the operator (bottle_firewall/release.py), against a
fake of supervise's release endpoint on a real socket (fake_supervise.py)."""

from __future__ import annotations

import asyncio
import base64
import gzip
import itertools
import json
import os
import re
import socket
from urllib.parse import quote

import pytest

from fake_supervise import FakeSupervise, approve_after, reject_after
from fakes import BASE_CONFIG, KNOWN_SECRET, ROUTE_TOKEN, Flow, Proxy, Request, Sink, make_response
from test_dlp_corpus import CORPUS, KNOWN, PLACES, TOKEN, known_encodings, percent_all
from bottle_firewall import addon, bodies, dlp, policy, release
import bundle_format  # images/bundle/bundle_format.py (the collection's, linked): the versions egress reads
import supervise as supervise_module  # images/bundle/supervise.py: the other end of the contract

PAT = "ghp_" + "Q7w2E9r4T1y6U3i8O5p0A2s7D4f9G1h6J3k8"
JSON = {"Host": "www.example.com", "Content-Type": "application/json"}


@pytest.fixture
def supervise():
    fake = FakeSupervise()
    yield fake
    fake.close()


def supervised(url, timeout=5, **extra):
    return dict(BASE_CONFIG, dlp=dict({"action": "supervise", "supervise_timeout": timeout, "supervise_url": url},
                                      **extra))


@pytest.fixture
def held(firewall_factory, supervise):
    """A Proxy whose firewall holds DLP hits, asking the fake supervise, polling every 10 ms."""
    fw = firewall_factory(supervised(supervise.url))
    fw.hold_interval = 0.01
    return Proxy(fw)


def audit(proxy):
    return [json.loads(line) for line in proxy.fw.audit.stream.lines if '"event":"request"' in line]


def refused(flow, rule):
    assert flow.response is not None, "not refused"
    assert flow.response.status_code == 403, flow.response.text
    assert flow.response.headers["X-Bottle-Egress-Rule"] == rule
    return flow.response.text


def leaks(text, secret, size=10):
    """The ``size``-character windows of ``secret`` that occur in ``text`` (a POST body or excerpt),
    but for egress's own words there: the rule and the ``[redacted:<rule>]`` labels."""
    try:
        rule = json.loads(text)["rule"]
    except (ValueError, KeyError, TypeError):
        rule = None
    text = re.sub(r"\[redacted:[a-z0-9:._-]+\]", "[]", text)
    if rule:
        text = text.replace(json.dumps(rule), '""')
    return sorted({secret[i:i + size] for i in range(max(1, len(secret) - size + 1)) if secret[i:i + size] in text})


# --- policy --------------------------------------------------------------------------------------------

def test_the_new_dlp_keys_are_read_and_default_for_older_files():
    cfg = policy.parse_config({"version": 2, "dlp": {"max_body_bytes": 1000, "entropy_min_length": 20, "entropy_bits": 4.5,
                                                     "action": "supervise", "supervise_timeout": 600,
                                                     "supervise_url": "http://127.0.0.1:9101"}})
    assert cfg.dlp["action"] == "supervise" and cfg.dlp["supervise_timeout"] == 600
    assert policy.supervise_address(cfg.dlp["supervise_url"]) == ("127.0.0.1", 9101)
    old = policy.parse_config({"version": 2, "dlp": {"max_body_bytes": 1000}})
    assert (old.dlp["action"], old.dlp["supervise_timeout"], old.dlp["supervise_url"]) == \
        ("block", 120, "http://127.0.0.1:9101")
    assert policy.supervise_address("http://[::1]:9") == ("::1", 9)
    assert policy.supervise_address("http://localhost/") == ("localhost", 80)


@pytest.mark.parametrize("dlp, message", [
    ({"action": "allow"}, "dlp.action must be one of block, supervise"),
    ({"action": True}, "dlp.action must be one of"),
    ({"supervise_timeout": 4}, "dlp.supervise_timeout must be >= 5"),
    ({"supervise_timeout": 601}, "dlp.supervise_timeout must be 5..600"),
    ({"supervise_timeout": "60"}, "dlp.supervise_timeout must be an integer"),
    ({"supervise_timeout": True}, "dlp.supervise_timeout must be an integer, not a boolean"),
    ({"supervise_timeout": 60.0}, "dlp.supervise_timeout must be an integer"),
    ({"supervise_url": 9101}, "dlp.supervise_url must be a string"),
    ({"supervise_url": "https://127.0.0.1:9101"}, "must be http://<host>[:port]"),
    ({"supervise_url": "http://127.0.0.1:9101/release"}, "must be http://<host>[:port]"),
    ({"supervise_url": "http://u:p@127.0.0.1:9101"}, "must be http://<host>[:port]"),
    ({"supervise_url": "http://10.0.0.1:9101"}, "must point at the bundle's loopback"),
    ({"supervise_url": "http://supervise.example.com"}, "must point at the bundle's loopback"),
    ({"supervise_url": "http://0x7f.1:9101"}, "must point at the bundle's loopback"),
    ({"supervise_url": "http://127.0.0.1:99999"}, "is not a URL"),
    ({"supervise": "x"}, "unknown key 'supervise'"),
])
@pytest.mark.parametrize("version", bundle_format.EGRESS_VERSIONS)
def test_bad_dlp_keys_are_refused_naming_the_key(dlp, message, version):
    # Version 2: the section's other keys left out (their defaults); version 3: written, as bundle_config writes them.
    data = {"version": 2, "dlp": dlp} if version == 2 else \
        dict(bundle_format.fill_v2({"version": 2}), version=version, dlp=dict(bundle_format.DEFAULT_DLP, **dlp))
    with pytest.raises(policy.ConfigError) as err:
        policy.parse_config(data)
    assert message in str(err.value)


# --- the hold ------------------------------------------------------------------------------------------

def test_approved_is_released_once_with_the_route_credential(held, supervise):
    supervise.decide = approve_after(3)
    body = json.dumps({"title": "bug", "body": "the token is " + PAT}).encode()
    flow = held.https("api.github.com", "POST", "/repos/o/r/issues",
                      {"Host": "api.github.com", "Authorization": "Bearer placeholder",
                       "Content-Type": "application/json"}, body)
    assert flow.response is None and flow.error is None
    assert flow.request.headers.get("Authorization") == "Bearer " + ROUTE_TOKEN
    assert held.opened == [("140.82.112.6", 443)], "sent once, to the checked address"
    (sent,) = supervise.sent()
    assert sent == {"host": "api.github.com", "method": "POST", "path": "/repos/o/r/issues",
                    "rule": "dlp:betterleaks.github-pat", "where": "body field $.body",
                    "excerpt": "the token is [redacted:dlp:betterleaks.github-pat]"}
    proposal = "%016x" % (0xabc000 + 1)
    assert supervise.polls == {proposal: 3}
    lines = audit(held)
    assert [(e["action"], e["rule"], e.get("proposal"), e["route"]) for e in lines] == [
        ("hold", "dlp:betterleaks.github-pat", proposal, "api.github.com"),
        ("allow", "dlp:betterleaks.github-pat", proposal, "api.github.com")]
    assert PAT not in "".join(held.fw.audit.stream.lines)


def test_rejected_with_the_operators_note(held, supervise, caplog):
    supervise.decide = reject_after(2, "not this\none")
    flow = held.https("www.example.com", "POST", "/api", JSON, json.dumps({"x": PAT}).encode())
    assert refused(flow, "dlp:betterleaks.github-pat") == (
        "blocked by egress: dlp:betterleaks.github-pat found in body field $.x; the operator did not release "
        "it (the operator's note: not this one)\n")
    assert held.opened == []
    lines = audit(held)
    assert [(e["action"], e["rule"], e["status"]) for e in lines] == [
        ("hold", "dlp:betterleaks.github-pat", None), ("block", "dlp:betterleaks.github-pat", 403)]
    assert lines[0]["proposal"] == lines[1]["proposal"]
    assert PAT not in caplog.text


def test_no_decision_within_the_timeout(firewall_factory, supervise):
    fw = firewall_factory(supervised(supervise.url, timeout=7))
    ticks = itertools.count(0, 1.5)
    fw.hold_clock = lambda: next(ticks)
    fw.hold_interval = 0.001
    flow = Proxy(fw).https("www.example.com", "POST", "/api", JSON, json.dumps({"x": PAT}).encode())
    assert refused(flow, "dlp:betterleaks.github-pat").endswith(
        "found in body field $.x; no decision from the operator came within 7 s\n")
    assert 1 <= sum(supervise.polls.values()) <= 5
    assert [(e["action"], e["status"]) for e in audit(Proxy(fw))] == [("hold", None), ("block", 403)]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_supervise_down_refuses_saying_the_operator_could_not_be_asked(firewall_factory):
    proxy = Proxy(firewall_factory(supervised("http://127.0.0.1:%d" % free_port())))
    flow = proxy.https("www.example.com", "GET", "/api", {"Host": "www.example.com", "X-Note": PAT})
    assert refused(flow, "dlp:betterleaks.github-pat") == (
        "blocked by egress: dlp:betterleaks.github-pat found in header X-Note; the operator could not be asked "
        "(supervise is not reachable)\n")
    assert proxy.opened == []
    assert [(e["action"], e["rule"], e.get("proposal")) for e in audit(proxy)] == \
        [("block", "dlp:betterleaks.github-pat", None)]


@pytest.mark.parametrize("status, reason", [
    (429, "too many pending asks"),
    (400, "supervise refused the request for a decision as invalid"),
    (411, "no length"),
    (413, "the request for a decision was too large"),
    (500, "supervise failed (HTTP 500)"),
    (503, "supervise failed (HTTP 503)"),
    (200, "supervise answered HTTP 200"),
])
def test_anything_but_201_refuses(firewall_factory, status, reason):
    fake = FakeSupervise(post_status=status)
    try:
        proxy = Proxy(firewall_factory(supervised(fake.url)))
        flow = proxy.https("www.example.com", "POST", "/api", JSON, json.dumps({"x": PAT}).encode())
        text = refused(flow, "dlp:betterleaks.github-pat")
        assert text.endswith("; the operator could not be asked (%s)\n" % reason) or reason in text, text
        assert proxy.opened == [] and fake.polls == {}
    finally:
        fake.close()


@pytest.mark.parametrize("answer", [b"not json", b'{"status": "pending"}', b'{"id": "../x", "status": "pending"}',
                                    b'{"id": "abc", "status": "approved"}'])
def test_a_201_that_is_not_a_pending_proposal_refuses(firewall_factory, answer):
    fake = FakeSupervise(post_status=201, post_body=answer)
    try:
        proxy = Proxy(firewall_factory(supervised(fake.url)))
        flow = proxy.https("www.example.com", "POST", "/api", JSON, json.dumps({"x": PAT}).encode())
        assert "could not be asked (supervise's answer was not understood)" in \
            refused(flow, "dlp:betterleaks.github-pat")
        assert proxy.opened == [] and fake.polls == {}
    finally:
        fake.close()


def test_a_proposal_supervise_forgets_refuses(held, supervise):
    supervise.decide = lambda proposal_id, polls: (404, "")
    flow = held.https("www.example.com", "POST", "/api", JSON, json.dumps({"x": PAT}).encode())
    assert "the operator's decision could not be read (supervise no longer knows the proposal)" in \
        refused(flow, "dlp:betterleaks.github-pat")


def test_an_unknown_status_is_not_a_release(held, supervise):
    supervise.decide = lambda proposal_id, polls: ("Approved", "")
    flow = held.https("www.example.com", "POST", "/api", JSON, json.dumps({"x": PAT}).encode())
    refused(flow, "dlp:betterleaks.github-pat")
    assert held.opened == []


def test_with_action_block_a_hit_is_refused_as_before(firewall_factory, supervise):
    proxy = Proxy(firewall_factory(dict(BASE_CONFIG, dlp={"action": "block", "supervise_url": supervise.url})))
    flow = proxy.https("www.example.com", "POST", "/api", JSON, json.dumps({"x": PAT}).encode())
    assert refused(flow, "dlp:betterleaks.github-pat") == \
        "blocked by egress: dlp:betterleaks.github-pat found in body field $.x\n"
    flow = proxy.https("www.example.com", "GET", "/search?q=" + PAT)
    assert refused(flow, "dlp:betterleaks.github-pat") == "blocked by egress: dlp:betterleaks.github-pat found in url\n"
    assert supervise.posts == [] and proxy.opened == []
    assert [e["action"] for e in audit(proxy)] == ["block", "block"]


def test_refusals_that_are_not_request_dlp_hits_are_never_held(held, supervise):
    host = PAT.lower() + ".example.com"
    refused(held.https(host), "dlp:betterleaks.github-pat")               # a secret in the host: at CONNECT
    assert held.https("evil.test").response.status_code == 403            # allowlist
    refused(held.https("api.github.com", "DELETE", "/repos/o/r", {"Host": "api.github.com", "X-Note": PAT}),
            "route-matches")
    flow = held.https("www.example.com", path="/ws")
    flow.websocket = type("W", (), {"messages": []})()
    message = type("M", (), {"content": PAT.encode(), "from_client": True, "dropped": False,
                             "drop": lambda self: setattr(self, "dropped", True)})()
    flow.websocket.messages.append(message)
    held.run(held.fw.websocket_message(flow))
    assert message.dropped and held.fw.closed == [flow]
    assert supervise.posts == []


def test_a_request_with_hits_in_its_head_and_body_needs_both_released(held, supervise):
    supervise.decide = approve_after(1)
    flow = held.https("www.example.com", "POST", "/api", dict(JSON, **{"X-Note": KNOWN_SECRET}),
                      json.dumps({"x": PAT}).encode())
    assert flow.response is None and held.opened == [("93.184.216.34", 443)]
    assert [(p["rule"], p["where"]) for p in supervise.sent()] == [
        ("known-secret", "header X-Note"), ("dlp:betterleaks.github-pat", "body field $.x")]
    assert [e["action"] for e in audit(held)] == ["hold", "hold", "allow", "allow"]

    supervise.decide = reject_after(1)
    supervise.posts.clear()
    flow = held.https("www.example.com", "POST", "/api", dict(JSON, **{"X-Note": KNOWN_SECRET}),
                      json.dumps({"x": PAT}).encode())
    assert "found in header X-Note; the operator did not release it" in refused(flow, "known-secret")
    assert len(supervise.posts) == 1, "the first rejection ends it"


def test_an_error_while_holding_refuses_403(held, supervise, monkeypatch):
    async def boom(*args, **kwargs):
        raise RuntimeError("boom " + PAT)
    monkeypatch.setattr(release, "wait_for_decision", boom)
    flow = held.https("www.example.com", "POST", "/api", JSON, json.dumps({"x": PAT}).encode())
    assert "holding it for the operator failed (internal error RuntimeError)" in \
        refused(flow, "dlp:betterleaks.github-pat")
    assert held.opened == []


def hold_in_background(proxy, supervise, scenario):
    """requestheaders, then `request` as a task; ``scenario(task)`` runs once supervise was asked."""
    client, connect = proxy.connect("www.example.com")
    proxy.hello(client, "www.example.com")
    flow = Flow(client, Request("POST", connect.request.data.host, 443, "/api", JSON,
                                json.dumps({"x": PAT}).encode()))

    async def run():
        await proxy.fw.requestheaders(flow)
        task = asyncio.ensure_future(proxy.fw.request(flow))
        for _attempt in range(500):
            if supervise.polls:
                break
            await asyncio.sleep(0.01)
        assert supervise.polls, "never asked"
        await scenario(task)
    asyncio.run(run())
    return flow


@pytest.mark.parametrize("how", ["done", "disconnect", "cancel"])
def test_egress_stopping_or_the_agent_leaving_kills_a_held_request(held, supervise, how):
    async def scenario(task):
        if how == "done":
            held.fw.done()
            await task
        elif how == "disconnect":
            held.fw.client_disconnected(flow_client[0])
            await task
        else:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    flow_client = []
    original = held.fw.requestheaders

    async def remember(flow):
        flow_client.append(flow.client_conn)
        return await original(flow)
    held.fw.requestheaders = remember
    flow = hold_in_background(held, supervise, scenario)
    assert flow.error == "killed" and flow.response is None
    assert held.fw.waits == {}
    assert [(e["action"], e["rule"]) for e in audit(held)] == [
        ("hold", "dlp:betterleaks.github-pat"), ("block", "dlp:betterleaks.github-pat")]


def test_a_request_arriving_while_egress_stops_is_not_sent(held, supervise):
    held.fw.done()
    flow = held.https("www.example.com", "POST", "/api", JSON, json.dumps({"x": PAT}).encode())
    assert flow.error == "killed" and held.opened == []


def test_the_scanner_not_loaded_is_refused_not_held(firewall_factory, supervise):
    from bottle_firewall import dlp
    fw = firewall_factory(supervised(supervise.url))
    fw.engine = dlp.Engine(None, "ImportError")
    flow = Proxy(fw).https("www.example.com", "POST", "/api", JSON, b'{"x": 1}')
    refused(flow, "dlp:unavailable")
    assert supervise.posts == []


# --- what supervise is told: never the secret ---------------------------------------------------------------

def through_the_proxy(held, supervise, path="/api", headers=None, body=b"", encoding=None, content_type=None):
    supervise.decide = reject_after(1)
    supervise.posts.clear()
    headers = dict({"Host": "www.example.com"}, **(headers or {}))
    if content_type:
        headers["Content-Type"] = content_type
    if encoding:
        headers["Content-Encoding"] = encoding
    flow = held.https("www.example.com", "POST" if body else "GET", path, headers, body)
    assert flow.response is not None and flow.response.status_code == 403
    (raw,) = supervise.posts
    return raw.decode("ascii"), json.loads(raw)


def test_redaction_of_a_path_segment(held, supervise):
    raw, sent = through_the_proxy(held, supervise, "/upload/" + PAT + "/x?a=1&token=" + PAT + "&b=")
    assert sent["path"] == "/upload/[redacted]/x?a=&token=&b=" and sent["excerpt"] == "" and sent["where"] == "url"
    assert not leaks(raw, PAT, 6)


def test_redaction_of_a_query_value_and_a_query_name(held, supervise):
    raw, sent = through_the_proxy(held, supervise, "/search?q=" + quote(PAT) + "&page=2")
    assert sent["path"] == "/search?q=&page="
    raw, sent = through_the_proxy(held, supervise, "/search?" + PAT + "=1&page=2")
    assert sent["path"] == "/search?[redacted]=&page="
    assert not leaks(raw, PAT, 6)


def test_redaction_of_a_secret_across_segments(firewall_factory, supervise):
    fw = firewall_factory(supervised(supervise.url), secrets=["abc/def-ghi/jkl-mno"])
    fw.hold_interval = 0.01
    raw, sent = through_the_proxy(Proxy(fw), supervise, "/files/abc/def-ghi/jkl-mno/readme")
    assert sent["path"] == "/[redacted]" and sent["rule"] == "known-secret"
    assert "def-ghi" not in raw


def test_redaction_of_a_header(held, supervise):
    raw, sent = through_the_proxy(held, supervise, headers={"X-Debug": "ctx=build-42 token=" + PAT + "; retry"})
    assert sent["where"] == "header X-Debug"
    assert sent["excerpt"] == "X-Debug: ctx=build-42 [redacted:dlp:betterleaks.github-pat]; retry"
    assert not leaks(raw, PAT, 6)


def test_redaction_of_a_body_field_keeps_its_context(held, supervise):
    text = ("I checked the deployment logs and the failing step is the upload; " * 3 + "use " + PAT
            + " for the registry, then " + "rerun the pipeline and compare the artifacts; " * 3)
    raw, sent = through_the_proxy(held, supervise, body=json.dumps({"messages": [{"content": text}]}).encode(),
                                  content_type="application/json")
    excerpt = sent["excerpt"]
    assert "use [redacted:dlp:betterleaks.github-pat] for the registry, then" in excerpt
    assert len(excerpt) <= 200 and excerpt == excerpt.strip()
    assert excerpt.split(" ")[0] in text.split(" ") and excerpt.split(" ")[-1] in text.split(" "), \
        "no word cut in two at the edges"
    assert not leaks(raw, PAT, 6)


def test_redaction_of_every_finding_around_the_hit(held, supervise):
    other = CORPUS["Stripe"]
    body = ("config: " + KNOWN_SECRET + " next " + other + " and " + PAT).encode()
    raw, sent = through_the_proxy(held, supervise, body=body, content_type="text/plain")
    assert sent["rule"] == "known-secret"
    assert sent["excerpt"] == ("config: [redacted:known-secret] next [redacted:dlp:kingfisher.stripe.2] and "
                               "[redacted:dlp:betterleaks.github-pat]") or "[redacted:" in sent["excerpt"]
    for secret in (KNOWN_SECRET, other, PAT):
        assert not leaks(raw, secret, 8), secret


@pytest.mark.parametrize("encoding", ["gzip", "hex", "base64", "base64url", "percent"])
def test_redaction_of_encoded_hits(held, supervise, encoding):
    inner = "deploy with " + PAT + " please"
    if encoding == "gzip":
        raw, sent = through_the_proxy(held, supervise, body=gzip.compress(json.dumps({"note": inner}).encode()),
                                      encoding="gzip", content_type="application/json")
        assert sent["excerpt"] == "deploy with [redacted:dlp:betterleaks.github-pat] please"
    else:
        wrapped = {"hex": inner.encode().hex(), "base64": base64.b64encode(inner.encode()).decode(),
                   "base64url": base64.urlsafe_b64encode(b"\xfb" + inner.encode()).decode(),
                   "percent": percent_all(inner)}[encoding]
        raw, sent = through_the_proxy(held, supervise, body=("data: " + wrapped + " end").encode(),
                                      content_type="text/plain")
        assert sent["excerpt"] == {
            # a run egress decodes itself: the decoded text around the hit, marked so
            "hex": "[decoded] deploy with [redacted:dlp:betterleaks.github-pat] please",
            "base64url": "[decoded] \ufffddeploy with [redacted:dlp:betterleaks.github-pat] please",
            # standard base64 is decoded by kingfisher: its finding spans the whole blob
            "base64": "data: [redacted:dlp:betterleaks.github-pat] end",
            # the percent-decoded form of the body is scanned first
            "percent": "data: deploy with [redacted:dlp:betterleaks.github-pat] please end",
        }[encoding], sent["excerpt"]
        assert not leaks(raw, wrapped, 8)
    assert not leaks(raw, PAT, 6)


def redactor_post(engine, request, path="/api"):
    """What egress would POST for the first hit of ``request`` (test_dlp_corpus.PLACES' shape)."""
    if request[0] == "head":
        hit, path = engine.scan_head(request[1], request[2]), request[1]
    else:
        hit = engine.scan_body(bodies.decode_content(request[1], request[3], 1 << 24), request[2])
    if hit is None:
        return None, None  # not a hit at all (test_dlp_corpus covers what must be one)
    data = release.Redactor(engine).fields("www.example.com", "POST", path, hit)
    assert len(data) <= release.MAX_BODY
    sent = json.loads(data)
    assert len(sent["excerpt"]) <= release.MAX_EXCERPT
    assert all(c.isprintable() or c in "\n\t" for c in sent["excerpt"])
    assert sent["path"].isprintable() and sent["path"].startswith("/")
    supervise_module.check_release(sent)  # what supervise's endpoint accepts (images/bundle/supervise.py)
    return data.decode("ascii"), sent


@pytest.fixture(scope="module")
def corpus_proxy(tmp_path_factory, scanner):
    """One firewall holding every hit (no rate limit in the way), asking one fake supervise that
    rejects at once: what each corpus request makes egress POST is intercepted there."""
    fake = FakeSupervise(decide=reject_after(1))
    directory = tmp_path_factory.mktemp("corpus-hold")
    files = {"egress.json": dict(supervised(fake.url), rate_limit={"requests_per_minute": 10 ** 6, "burst": 10 ** 6}),
             "tokens.json": {}, "secrets.json": [KNOWN, TOKEN]}
    for name, content in files.items():
        (directory / name).write_text(json.dumps(content), encoding="utf-8")

    async def resolve(host, port):
        return ["93.184.216.34"]
    fw = addon.Firewall(*(str(directory / name) for name in files), audit_path="", engine=dlp.Engine(scanner),
                        resolver=resolve, respond=make_response, close_client=lambda flow: None, audit_stream=Sink())
    fw.hold_interval = 0.001
    yield Proxy(fw), fake
    fake.close()


def posted(corpus_proxy, request):
    """The raw POST egress sent supervise for ``request`` (test_dlp_corpus.PLACES' shape), None
    when it was no DLP hit at all (test_dlp_corpus covers what must be one)."""
    proxy, fake = corpus_proxy
    before = len(fake.posts)
    if request[0] == "head":
        flow = proxy.https("www.example.com", "GET", request[1], dict([("Host", "www.example.com")] + request[2]))
    else:
        headers = {"Host": "www.example.com", "Content-Type": request[2]}
        if request[3]:
            headers["Content-Encoding"] = request[3]
        flow = proxy.https("www.example.com", "POST", "/api", headers, request[1])
    if flow.response is None:
        assert len(fake.posts) == before
        return None
    assert flow.response.status_code == 403 and "the operator did not release it" in flow.response.text
    assert len(fake.posts) == before + 1, "one ask per request"
    raw = fake.posts[-1]
    assert len(raw) <= release.MAX_BODY
    sent = json.loads(raw)
    assert len(sent["excerpt"]) <= release.MAX_EXCERPT
    assert all(c.isprintable() or c in "\n\t" for c in sent["excerpt"])
    assert sent["path"].isprintable() and sent["path"].startswith("/")
    supervise_module.check_release(sent)  # what supervise's endpoint accepts (images/bundle/supervise.py)
    return raw.decode("ascii")


def secret_parts(value):
    """The parts of a corpus value that are secret: its runs of 8+ characters of a token alphabet
    (the names around them, such as ``aws_access_key_id=``, are not)."""
    names = ("aws_access_key_id", "aws_secret_access_key", "MAILGUN_API_KEY", "DISCORD_BOT_TOKEN",
             "MAPBOX_ACCESS_TOKEN", "NEW_RELIC_API_KEY", "DATADOG_API_KEY", "TELEGRAM_BOT_TOKEN", "PRIVATE KEY",
             "BEGIN RSA", "BEGIN OPENSSH", "END RSA", "END OPENSSH", "postgres://admin", "db.prod.acme-corp.net",
             "hooks.slack.com/services")
    for name in names:
        value = value.replace(name, " ")
    return [part for part in value.replace("=", " ").replace("\n", " ").replace(":", " ").split() if len(part) >= 8]


@pytest.mark.parametrize("place", sorted(PLACES))
@pytest.mark.parametrize("provider", sorted(CORPUS))
def test_no_part_of_a_provider_token_reaches_supervise(corpus_proxy, provider, place):
    value = CORPUS[provider]
    raw = posted(corpus_proxy, PLACES[place]("context before: " + value + " and after"))
    assert raw is not None
    for form in (value, quote(value, safe=""), percent_all(value), value.encode().hex(),
                 base64.b64encode(value.encode()).decode(), value.replace("\n", " ")):
        assert form not in raw
    for part in secret_parts(value):
        for form in (part, quote(part, safe=""), part.encode().hex(), base64.b64encode(part.encode()).decode()):
            assert not leaks(raw, form, 8), (provider, place, form, raw)


@pytest.mark.parametrize("value", [KNOWN, TOKEN])
@pytest.mark.parametrize("encoding", sorted(known_encodings(KNOWN)))
@pytest.mark.parametrize("place", sorted(PLACES))
def test_no_part_of_a_known_secret_reaches_supervise(corpus_proxy, value, encoding, place):
    wrapped = known_encodings(value)[encoding]
    raw = posted(corpus_proxy, PLACES[place]("see " + wrapped + " here"))
    if raw is None:
        return
    for form in (value, wrapped, quote(value, safe=""), quote(wrapped, safe="")):
        assert not leaks(raw, form, 6 if form is value else 8), (encoding, place, form, raw)


def test_the_post_stays_within_8_kib(engine):
    hit = engine.scan_head("/a?x=" + PAT, [])
    long_path = "/" + "/".join("segment%d" % i for i in range(600)) + "?x=" + PAT
    data = release.Redactor(engine).fields("www.example.com", "GET", long_path, hit)
    sent = json.loads(data)
    assert len(data) <= release.MAX_BODY and len(sent["path"]) <= release.MAX_PATH
    fields = {"host": "h", "method": "GET", "path": "/" + "\u00e9" * 2000, "rule": "r", "where": "w",
              "excerpt": "\u00e9" * 400}
    assert len(release.encode_fields(fields)) <= release.MAX_BODY


@pytest.mark.parametrize("method, expected", [("get", "GET"), ("PATCH", "PATCH"), ("PURGE", "PURGE"),
                                              ("X-Tr0ub4dor", "X-Tr0ub4dor"), ("Tr0ub4dor&3-bot", "OTHER"),
                                              ("a" * 17, "OTHER"), ("GET /x", "OTHER")])
def test_methods(engine, method, expected):
    engine.known.load(["Tr0ub4dor&3-bot"])
    assert release.Redactor(engine).method(method) == expected


def test_a_control_character_never_goes_out(engine):
    body = b"line one\r\nline\x00two \x1b[31m " + PAT.encode() + b"\ttab\n"
    _raw, sent = redactor_post(engine, ("body", body, "text/plain", None))
    assert sent["excerpt"] == "line one\nline?two ?[31m [redacted:dlp:betterleaks.github-pat]\ttab"


# --- the client --------------------------------------------------------------------------------------------

def test_the_client_against_odd_servers():
    async def serve(answer):
        async def handle(reader, writer):
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
            writer.close()
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        client = release.Supervise(server.sockets[0].getsockname()[:2], call_timeout=1)
        try:
            return await client.propose(b"{}", 5)
        except release.AskError as exc:
            return exc.reason
        finally:
            server.close()

    assert asyncio.run(serve(b'HTTP/1.1 201 Created\r\n\r\n{"id": "00000000000000aa", "status": "pending"}')) \
        == "00000000000000aa", "an answer without Content-Length ends with the connection"
    assert asyncio.run(serve(b"garbage\r\n\r\n")) == "supervise is not reachable"
    assert asyncio.run(serve(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")) == \
        "supervise is not reachable"
    assert asyncio.run(serve(b"HTTP/1.1 201 Created\r\nContent-Length: 99999999\r\n\r\n")) == \
        "supervise is not reachable"
    assert asyncio.run(serve(b"")) == "supervise is not reachable"


def test_the_client_gives_up_on_a_silent_server():
    async def run():
        async def handle(reader, writer):
            await asyncio.sleep(5)
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        client = release.Supervise(server.sockets[0].getsockname()[:2], call_timeout=0.2)
        try:
            with pytest.raises(release.AskError) as err:
                await client.propose(b"{}", 5)
            assert err.value.reason == "supervise did not answer in time"
            assert await client.status("00000000000000aa", 5) == (None, "")
        finally:
            server.close()
    asyncio.run(run())


# --- against the real supervise (images/bundle/supervise.py) ---------------------------------------------

@pytest.fixture
def real_supervise(tmp_path):
    store = supervise_module.Store(str(tmp_path / "store"))
    store.ensure()
    (tmp_path / "config").mkdir()
    server, _thread = supervise_module.start_internal(supervise_module.Releases(store, str(tmp_path / "config")),
                                                      port=0, poll_interval=0.02)
    server.store = store
    server.url = "http://127.0.0.1:%d" % server.server_address[1]
    yield server
    supervise_module.stop_internal(server)


def test_the_real_supervise_records_what_egress_holds(firewall_factory, real_supervise, monkeypatch):
    fw = firewall_factory(supervised(real_supervise.url))
    fw.hold_interval = 0.01
    store = real_supervise.store
    original = release.wait_for_decision

    async def operator_approves(client, proposal_id, *args, **kwargs):
        proposal = store.read(proposal_id)
        store._replace(dict(proposal, status="approved", decided=supervise_module.now(), note=""))
        return await original(client, proposal_id, *args, **kwargs)
    monkeypatch.setattr(release, "wait_for_decision", operator_approves)
    flow = Proxy(fw).https("www.example.com", "POST", "/v1/x?key=" + PAT,
                           JSON, json.dumps({"x": "deploy " + KNOWN_SECRET}).encode())
    assert flow.response is None
    proposals = [store.read(p[:-5]) for p in sorted(os.listdir(store.proposals)) if p.endswith(".json")]
    assert sorted((p["kind"], p["status"], p["where"]) for p in proposals) == [
        ("release", "approved", "body field $.x"), ("release", "approved", "url")]
    everything = json.dumps(proposals) + open(store.audit_path).read()
    assert PAT not in everything and KNOWN_SECRET not in everything and not leaks(everything, KNOWN_SECRET, 8)


def test_an_ip_literal_host_cannot_be_asked_about(firewall_factory, real_supervise):
    """supervise's check_release takes host names only: a request to an allowlisted IP literal with a
    DLP hit is refused (fail closed), saying supervise refused the ask."""
    proxy = Proxy(firewall_factory(supervised(real_supervise.url)))
    flow = proxy.http("192.0.2.7", "GET", "/x?q=" + PAT, {"Host": "192.0.2.7"})
    assert refused(flow, "dlp:betterleaks.github-pat").endswith(
        "the operator could not be asked (supervise refused the request for a decision as invalid)\n")
