# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hooks, driven in mitmproxy 12's order with fake flows (conftest.Proxy)."""

from __future__ import annotations

import asyncio
import gzip
import importlib.util
import json
import logging
import os
import sys
import types

import pytest

from fakes import BASE_CONFIG, BUNDLE, HDR_TOKEN, KNOWN_SECRET, ROUTE_TOKEN, Flow, Proxy, Request
from bottle_firewall import addon

PAT = "ghp_" + "Q7w2E9r4T1y6U3i8O5p0A2s7D4f9G1h6J3k8"


def body_text(flow):
    return flow.response.text


def refused(flow, status=403, rule=None):
    assert flow.response is not None, "the request was not refused"
    assert flow.response.status_code == status, body_text(flow)
    assert flow.response.headers["Content-Type"].startswith("text/plain")
    assert body_text(flow).startswith("blocked by egress: ") or status == 503
    if rule:
        assert flow.response.headers["X-Bottle-Egress-Rule"] == rule
    return body_text(flow)


# --- allowlist at CONNECT ---------------------------------------------------------------------

def test_a_refused_host_gets_a_readable_403_in_its_tunnel_and_no_connection(proxy):
    client, connect = proxy.connect("evil.test")
    assert connect.response is None, "the CONNECT itself succeeds: the refusal is readable inside"
    hello = proxy.hello(client, "evil.test")
    assert hello.ignore_connection is False, "TLS is terminated with the bottle's CA"
    flow = proxy.https("evil.test", client=client, connect_flow=connect)
    text = refused(flow, 403, "allowlist")
    assert text.startswith("blocked by egress: host evil.test is not on this bottle's allowlist")
    assert "request_domain(host, justification)" in text
    proxy.server_connect(client, ("evil.test", 443))
    assert proxy.opened == [], "no server connection is ever opened for a refused host"


def test_plain_http_to_a_refused_host_is_refused_readably(proxy):
    flow = proxy.http("evil.test", path="/x")
    assert "host evil.test is not on this bottle's allowlist" in refused(flow, 403, "allowlist")
    assert proxy.opened == []


def test_a_port_outside_ports_is_refused(proxy):
    flow = proxy.https("www.example.com", port=8443)
    assert "port 8443 of host www.example.com is not allowed" in refused(flow, 403, "allowlist")
    assert proxy.opened == []


def test_an_allowed_host_is_dialled_at_its_checked_address(proxy):
    flow = proxy.https("www.example.com", path="/index.html")
    assert flow.response is None and flow.request.stream is False
    assert proxy.opened == [("93.184.216.34", 443)]


def test_plain_http_to_an_allowed_host_is_pinned_too(proxy):
    flow = proxy.http("www.example.com", path="/")
    assert flow.response is None and proxy.opened == [("93.184.216.34", 80)]


# --- consistency -------------------------------------------------------------------------------

def test_sni_must_equal_the_connect_host(proxy):
    client, connect = proxy.connect("www.example.com")
    proxy.hello(client, "evil.test")
    flow = proxy.https("www.example.com", client=client, connect_flow=connect)
    assert "the TLS name (SNI) evil.test does not match the CONNECT host www.example.com" in refused(flow, 403, "sni")
    assert proxy.opened == []


@pytest.mark.parametrize("http2", [False, True])
def test_domain_fronting_is_refused_naming_both_hosts(proxy, http2):
    client, connect = proxy.connect("www.example.com")
    proxy.hello(client, "www.example.com")
    flow = proxy.https("www.example.com", headers={"Host": "api.anthropic.com"}, client=client,
                       connect_flow=connect, http2=http2)
    text = refused(flow, 403, "host-mismatch")
    assert "api.anthropic.com" in text and "www.example.com" in text
    assert proxy.opened == []


def test_plain_http_url_and_host_header_must_agree(proxy):
    flow = proxy.http("www.example.com", headers={"Host": "api.anthropic.com"})
    refused(flow, 403, "host-mismatch")
    assert proxy.opened == []


def test_raw_tcp_is_refused_and_passthrough_is_relayed(proxy):
    client, _connect = proxy.connect("www.example.com")
    tcp = Flow(client, Request("", "www.example.com", 443, ""))
    proxy.fw.tcp_start(tcp)
    assert tcp.error == "killed" and "raw TCP is refused" in tcp.server_conn.error

    client, connect = proxy.connect("files.example.org")
    hello = proxy.hello(client, "files.example.org")
    assert hello.ignore_connection is True, "passthrough: bytes relayed unscanned"
    proxy.server_connect(client, (connect.request.data.host, 443))
    assert proxy.opened == [("93.184.216.35", 443)]
    tcp = Flow(client, Request("", "files.example.org", 443, ""))
    proxy.fw.tcp_start(tcp)
    assert tcp.error is None


# --- SSRF ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("host, fragment", [
    ("rebind.example.com", "resolves to 127.0.0.1, a loopback address (127.0.0.0/8)"),
    ("metadata.example.com", "resolves to 169.254.169.254, a link-local address (169.254.0.0/16, cloud metadata)"),
    ("v6local.example.com", "resolves to fd00::1, a unique-local address"),
])
def test_allowlisted_names_resolving_inside_are_refused(proxy, host, fragment):
    flow = proxy.https(host)
    text = refused(flow, 403, "ssrf")
    assert fragment in text and "Traceback" not in text
    assert proxy.opened == []


def test_trusted_domains_and_the_ssrf_allowlist_are_exempt(proxy):
    proxy.https("internal.example.org")
    proxy.https("testnet.example.com")
    assert proxy.opened == [("10.1.2.3", 443), ("172.30.0.5", 443)]


@pytest.mark.parametrize("literal", ["2130706433", "0x7f000001", "0177.0.0.1", "127.1"])
def test_odd_ip_spellings_are_refused(firewall_factory, literal):
    config = dict(BASE_CONFIG, allowed_hosts=["127.0.0.1"])
    proxy = Proxy(firewall_factory(config))
    flow = proxy.https(literal, headers={"Host": literal})
    refused(flow, 403, "ssrf")
    assert proxy.opened == []


def test_the_checked_address_is_dialled_without_a_second_lookup(proxy, resolver):
    client, connect = proxy.connect("www.example.com")
    proxy.hello(client, "www.example.com")
    resolver.table["www.example.com"] = ["127.0.0.1"]  # DNS rebinding after the check
    proxy.https("www.example.com", client=client, connect_flow=connect)
    proxy.https("www.example.com", client=client, connect_flow=connect)
    assert proxy.opened == [("93.184.216.34", 443)] * 2
    data = proxy.server_connect(client, ("www.example.com", 443))
    assert data.server.address == ("93.184.216.34", 443)


def test_an_unresolvable_host_is_an_upstream_failure_not_a_block(proxy):
    flow = proxy.https("nxdomain.example.com")
    assert flow.response.status_code == 502
    assert flow.response.headers["X-Bottle-Egress-Rule"] == "upstream-dns"
    text = body_text(flow)
    assert text.startswith("egress allowed this; the upstream failed: host nxdomain.example.com does not resolve")
    assert "blocked" not in text
    lines = [json.loads(line) for line in proxy.fw.audit.stream.lines]
    assert [(e["event"], e["action"], e["rule"]) for e in lines] == [
        ("connect", "upstream-error", "upstream-dns"), ("request", "upstream-error", "upstream-dns")]
    assert proxy.opened == []


def test_a_secret_in_a_wildcard_subdomain_is_not_resolved(proxy, resolver):
    looked_up = []
    original = proxy.fw.guard.resolver

    async def spy(host, port):
        looked_up.append(host)
        return await original(host, port)
    proxy.fw.guard.resolver = spy
    flow = proxy.https(PAT.lower() + ".example.com")
    refused(flow, 403)
    assert looked_up == [], "DNS would carry the secret to example.com's name servers"
    assert PAT.lower() not in "".join(proxy.fw.audit.stream.lines)


# --- DLP -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("where, kwargs", [
    ("url", {"path": "/search?q=" + PAT}),
    ("header X-Note", {"headers": {"Host": "www.example.com", "X-Note": PAT}}),
    ("body field $.messages[0].content", {"method": "POST", "path": "/api",
                                          "headers": {"Host": "www.example.com", "Content-Type": "application/json"},
                                          "body": json.dumps({"messages": [{"content": "here: " + PAT}]}).encode()}),
])
def test_dlp_refuses_before_anything_goes_upstream(proxy, caplog, where, kwargs):
    caplog.set_level(logging.INFO)
    flow = proxy.https("www.example.com", **kwargs)
    text = refused(flow, 403, "dlp:betterleaks.github-pat")
    assert text.startswith("blocked by egress: dlp:betterleaks.github-pat found in " + where)
    assert proxy.opened == []
    everything = text + caplog.text + "".join(proxy.fw.audit.stream.lines)
    assert PAT not in everything and PAT[4:12] not in everything and PAT[:8] not in everything


def test_known_secret_in_a_gzip_body(proxy):
    body = gzip.compress(json.dumps({"note": KNOWN_SECRET}).encode())
    flow = proxy.https("www.example.com", "POST", "/x", {"Host": "www.example.com", "Content-Encoding": "gzip",
                                                         "Content-Type": "application/json"}, body)
    assert refused(flow, 403, "known-secret") == "blocked by egress: known-secret found in body field $.note\n"


def test_body_limits(firewall_factory):
    proxy = Proxy(firewall_factory(dict(BASE_CONFIG, dlp={"max_body_bytes": 1000})))
    client, connect = proxy.connect("www.example.com")
    proxy.hello(client, "www.example.com")
    flow = Flow(client, Request("POST", connect.request.data.host, 443, "/u",
                                {"Host": "www.example.com", "Content-Length": "5000"}, b"x" * 5000))
    proxy.run(proxy.fw.requestheaders(flow))
    refused(flow, 413, "body-limit")  # decided on the headers, before the body is read
    chunked = proxy.https("www.example.com", "POST", "/u", {"Host": "www.example.com"}, b"x" * 5000,
                          client=client, connect_flow=connect)
    refused(chunked, 413, "body-limit")
    bomb = proxy.https("www.example.com", "POST", "/u", {"Host": "www.example.com", "Content-Encoding": "gzip"},
                       gzip.compress(b"\0" * 100000), client=client, connect_flow=connect)
    refused(bomb, 413, "body-limit")
    corrupt = proxy.https("www.example.com", "POST", "/u", {"Host": "www.example.com", "Content-Encoding": "gzip"},
                          b"not gzip", client=client, connect_flow=connect)
    refused(corrupt, 400, "body-decode")
    assert proxy.opened == []


def test_rate_limit_answers_429_with_retry_after(firewall_factory):
    proxy = Proxy(firewall_factory(dict(BASE_CONFIG, rate_limit={"requests_per_minute": 60, "burst": 2})))
    client, connect = proxy.connect("www.example.com")
    proxy.hello(client, "www.example.com")
    flows = [proxy.https("www.example.com", client=client, connect_flow=connect) for _index in range(3)]
    assert flows[0].response is None and flows[1].response is None
    assert "rate limit for www.example.com" in refused(flows[2], 429, "rate-limit")
    assert flows[2].response.headers["Retry-After"] == "1"


def test_responses_stream():
    fw_flow = Flow(types.SimpleNamespace(id="c"), Request("GET", "x", 443, "/"))
    fw_flow.response = types.SimpleNamespace(stream=False)
    addon.Firewall.responseheaders(types.SimpleNamespace(), fw_flow)
    assert fw_flow.response.stream is True


# --- routes ----------------------------------------------------------------------------------------

def test_route_credential_replaces_the_agents_after_the_scan(proxy):
    client, connect = proxy.connect("api.github.com")
    proxy.hello(client, "api.github.com")
    flow = Flow(client, Request("POST", connect.request.data.host, 443, "/repos/o/r/issues",
                                {"Host": "api.github.com", "Authorization": "Bearer placeholder",
                                 "Content-Type": "application/json"}, b'{"title": "bug"}'))
    proxy.run(proxy.fw.requestheaders(flow))
    assert flow.response is None and "Authorization" not in flow.request.headers, \
        "the agent's credential is gone before the body is read; the real one is not in yet"
    proxy.run(proxy.fw.request(flow))
    assert flow.request.headers.get("Authorization") == "Bearer " + ROUTE_TOKEN
    proxy.server_connect(client, (connect.request.data.host, 443))
    assert proxy.opened == [("140.82.112.6", 443)]


@pytest.mark.parametrize("method, path", [("POST", "/user/repos"), ("PUT", "/repos/o/r"), ("DELETE", "/repos/o/r")])
def test_requests_outside_matches_are_refused_on_their_headers(proxy, method, path):
    client, connect = proxy.connect("api.github.com")
    proxy.hello(client, "api.github.com")
    flow = Flow(client, Request(method, connect.request.data.host, 443, path,
                                {"Host": "api.github.com", "Content-Length": "100"}, b"x" * 100))
    proxy.run(proxy.fw.requestheaders(flow))
    text = refused(flow, 403, "route-matches")
    assert text == "blocked by egress: route api.github.com does not allow %s %s\n" % (method, path)
    proxy.run(proxy.fw.request(flow))
    assert "Authorization" not in flow.request.headers


def test_custom_header_route_and_https_only(proxy):
    flow = proxy.https("hdr.example.com", headers={"Host": "hdr.example.com", "X-Api-Key": "agent's own"})
    assert flow.request.headers.get("X-Api-Key") == "Key " + HDR_TOKEN
    plain = proxy.http("api.github.com", path="/repos/o/r")
    assert "route api.github.com sends its credential over https only" in refused(plain, 403, "route-matches")


def test_a_route_without_its_token_answers_503(firewall_factory):
    proxy = Proxy(firewall_factory(tokens={}))
    flow = proxy.https("api.github.com", path="/repos/o/r")
    assert refused(flow, 503, "route-token") == "egress: no credential loaded for route api.github.com\n"
    assert proxy.opened == []


def test_the_agent_cannot_send_the_route_token_itself(proxy):
    flow = proxy.https("www.example.com", "POST", "/paste", {"Host": "www.example.com"}, ROUTE_TOKEN.encode())
    refused(flow, 403)
    assert proxy.opened == []


def test_the_token_never_appears_in_audit_or_log(firewall_factory, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    fw = firewall_factory()
    proxy = Proxy(fw)
    proxy.https("api.github.com", path="/repos/o/r?token=" + ROUTE_TOKEN)
    proxy.https("api.github.com", path="/repos/o/r")
    proxy.https("api.github.com", "POST", "/user", body=b"{}")
    audit_file = (tmp_path / "audit.jsonl").read_text()
    output = caplog.text + "".join(fw.audit.stream.lines) + audit_file
    assert ROUTE_TOKEN not in output and ROUTE_TOKEN[4:14] not in output
    entries = [json.loads(line) for line in audit_file.splitlines()]
    assert {e["event"] for e in entries} == {"connect", "request"}
    request = [e for e in entries if e["event"] == "request"]
    assert request[0]["path"] == "/repos/o/r?token=" and request[0]["action"] == "block"
    assert request[1]["route"] == "api.github.com" and request[1]["action"] == "allow"
    assert request[2]["rule"] == "route-matches"


# --- WebSocket ---------------------------------------------------------------------------------------

class Message:
    def __init__(self, content, from_client=True):
        self.content, self.from_client, self.dropped = content, from_client, False

    def drop(self):
        self.dropped = True


def test_a_websocket_message_with_a_secret_is_dropped_and_the_connection_closed(proxy):
    flow = proxy.https("www.example.com", path="/ws")
    flow.websocket = types.SimpleNamespace(messages=[])
    for content, from_client in [(b'{"type": "hello"}', True), (("token " + PAT).encode(), True),
                                 (b"later message", True), (b"from server " + PAT.encode(), False)]:
        flow.websocket.messages.append(Message(content, from_client))
        proxy.run(proxy.fw.websocket_message(flow))
    dropped = [m.dropped for m in flow.websocket.messages]
    assert dropped == [False, True, True, False]
    assert proxy.fw.closed == [flow]


# --- fail closed ----------------------------------------------------------------------------------------

class Boom(RuntimeError):
    pass


def explode(*args, **kwargs):
    raise Boom("contains " + PAT)


def test_an_error_in_http_connect_refuses_the_connect(proxy, monkeypatch, caplog):
    monkeypatch.setattr(proxy.fw, "_admit", explode)
    client, connect = proxy.connect("www.example.com")
    assert connect.response.status_code == 502 and "internal error (Boom)" in connect.response.text
    assert PAT not in caplog.text
    proxy.server_connect(client, ("www.example.com", 443))
    assert proxy.opened == []


def test_an_error_in_tls_clienthello_refuses_the_tunnel(proxy, monkeypatch):
    client, connect = proxy.connect("files.example.org")
    monkeypatch.setattr(proxy.fw.config.passthrough, "matches", explode)
    hello = proxy.hello(client, "files.example.org")
    assert hello.ignore_connection is False
    flow = proxy.https("files.example.org", client=client, connect_flow=connect)
    assert "internal error (Boom)" in refused(flow, 502, "error")
    assert proxy.opened == []


@pytest.mark.parametrize("stage", ["scan_head", "scan_body"])
def test_an_error_in_a_request_hook_refuses_the_request(proxy, monkeypatch, stage):
    monkeypatch.setattr(proxy.fw.engine, stage, explode)
    flow = proxy.https("api.github.com", "POST", "/repos/o/r", {"Host": "api.github.com"}, b"body")
    assert refused(flow, 502, "error") == "blocked by egress: internal error (Boom)\n"
    assert "Authorization" not in flow.request.headers and proxy.opened == []


def test_an_error_in_server_connect_refuses_the_connection(proxy, monkeypatch):
    client, connect = proxy.connect("www.example.com")
    monkeypatch.setattr(proxy.fw.config, "allows", explode)
    data = proxy.server_connect(client, (connect.request.data.host, 443))
    assert "internal error (Boom)" in data.server.error and proxy.opened == []


def test_an_error_in_tcp_start_kills_it(proxy, monkeypatch):
    client, _connect = proxy.connect("files.example.org")
    monkeypatch.setattr(proxy.fw.config.passthrough, "matches", explode)
    tcp = Flow(client, Request("", "files.example.org", 443, ""))
    proxy.fw.tcp_start(tcp)
    assert tcp.error == "killed" and "internal error" in tcp.server_conn.error


def test_an_error_in_websocket_message_drops_and_closes(proxy, monkeypatch):
    flow = proxy.https("www.example.com", path="/ws")
    flow.websocket = types.SimpleNamespace(messages=[Message(b"hello")])
    monkeypatch.setattr(proxy.fw.engine, "scan_message", explode)
    proxy.run(proxy.fw.websocket_message(flow))
    assert flow.websocket.messages[0].dropped and proxy.fw.closed == [flow]


def test_an_error_in_responseheaders_kills_the_flow(proxy):
    flow = Flow(types.SimpleNamespace(id="c"), Request("GET", "x", 443, "/"))

    class Response:
        stream = property(lambda self: None, explode)
    flow.response = Response()
    proxy.fw.responseheaders(flow)
    assert flow.error == "killed"


def test_a_request_hook_without_its_requestheaders_decision_is_refused(proxy):
    flow = Flow(types.SimpleNamespace(id="c"), Request("GET", "www.example.com", 443, "/"))
    proxy.run(proxy.fw.request(flow))
    refused(flow, 502, "error")


# --- configuration -----------------------------------------------------------------------------------------

def test_no_configuration_at_start_refuses_everything(firewall_factory, tmp_path, caplog):
    fw = firewall_factory("{broken")
    proxy = Proxy(fw)
    assert "EVERYTHING IS REFUSED" in caplog.text
    flow = proxy.https("www.example.com")
    assert refused(flow, 503, "error").startswith("blocked by egress: no valid firewall configuration")
    flow = proxy.http("www.example.com")
    refused(flow, 503, "error")
    assert proxy.opened == []


def test_a_missing_configuration_refuses_everything(firewall_factory, tmp_path):
    fw = firewall_factory()
    os.unlink(fw.config_path)
    fresh = addon.Firewall(fw.config_path, fw.tokens_path, fw.secrets_path, audit_path="", engine=fw.engine,
                           resolver=fw.resolver, respond=fw.respond, audit_stream=fw.audit.stream)
    flow = Proxy(fresh).https("www.example.com")
    refused(flow, 503, "error")


def bump(path):
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_reload_picks_up_changes_and_a_broken_file_keeps_the_previous(firewall_factory, caplog):
    fw = firewall_factory()
    proxy = Proxy(fw)
    assert proxy.https("new.test").response is not None
    with open(fw.config_path, "w", encoding="utf-8") as handle:
        json.dump(dict(BASE_CONFIG, allowed_hosts=["new.test"]), handle)
    bump(fw.config_path)
    fw.resolver.table["new.test"] = ["93.184.216.40"]
    assert proxy.https("new.test").response is None
    with open(fw.config_path, "w", encoding="utf-8") as handle:
        json.dump(dict(BASE_CONFIG, allowed_hostz=["x"]), handle)
    bump(fw.config_path)
    assert proxy.https("new.test").response is None
    assert "unknown key 'allowed_hostz'" in caplog.text and "previous configuration stays in force" in caplog.text


def test_secrets_reload_rebuilds_the_automaton(firewall_factory, write_config):
    fw = firewall_factory()
    proxy = Proxy(fw)
    headers = {"Host": "www.example.com", "X-A": "new-secret-value-9"}
    assert proxy.https("www.example.com", path="/x", headers=headers).response is None
    write_config([KNOWN_SECRET, "new-secret-value-9"], "secrets.json")
    bump(fw.secrets_path)
    flow = proxy.https("www.example.com", path="/x", headers={"Host": "www.example.com", "X-A": "new-secret-value-9"})
    refused(flow, 403, "known-secret")


# --- behind-pipelock --------------------------------------------------------------------------------------

def test_behind_pipelock_only_routes_apply(firewall_factory):
    fw = firewall_factory(dict(BASE_CONFIG, mode="behind-pipelock"))
    proxy = Proxy(fw)
    other = proxy.hello(proxy.client(), "anything.test")
    assert other.ignore_connection is True, "pipelock already checked it: relayed untouched"
    routed = proxy.hello(proxy.client(), "api.github.com")
    assert routed.ignore_connection is False
    flow = Flow(routed.context.client, Request("GET", "140.82.112.6", 443, "/repos/o/r",
                                               {"Host": "api.github.com", "Authorization": "Bearer x"}))
    proxy.run(fw.requestheaders(flow))
    proxy.run(fw.request(flow))
    assert flow.response is None and flow.request.headers.get("Authorization") == "Bearer " + ROUTE_TOKEN
    outside = Flow(routed.context.client, Request("POST", "140.82.112.6", 443, "/user", {"Host": "api.github.com"}))
    proxy.run(fw.requestheaders(outside))
    refused(outside, 403, "route-matches")
    fronted = Flow(routed.context.client, Request("GET", "140.82.112.6", 443, "/repos/o/r", {"Host": "evil.test"}))
    proxy.run(fw.requestheaders(fronted))
    refused(fronted, 403, "host-mismatch")


# --- the mitmdump script ---------------------------------------------------------------------------------

def load_script(name):
    spec = importlib.util.spec_from_file_location(name, BUNDLE / "egress_addon.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_script_installs_the_firewall(monkeypatch, write_config, rules_cache):
    monkeypatch.setenv("BOTTLE_EGRESS_CONFIG", write_config(BASE_CONFIG))
    monkeypatch.setenv("BOTTLE_EGRESS_RULES_CACHE", rules_cache)
    monkeypatch.setenv("BOTTLE_EGRESS_AUDIT", "")
    module = load_script("egress_addon_under_test")
    assert [type(a).__name__ for a in module.addons] == ["Firewall"]


def test_the_script_fails_closed_when_the_firewall_cannot_load(monkeypatch):
    monkeypatch.setitem(sys.modules, "bottle_firewall.addon", None)  # import fails
    module = load_script("egress_addon_broken")
    refuse_all = module.addons[0]
    assert type(refuse_all).__name__ == "RefuseAll"
    data = types.SimpleNamespace(server=types.SimpleNamespace(error=None), ignore_connection=True)
    refuse_all.server_connect(data)
    refuse_all.tls_clienthello(data)
    assert "firewall did not start" in data.server.error and data.ignore_connection is False
    tcp = Flow(types.SimpleNamespace(id="c"), Request("", "x", 1, ""))
    refuse_all.tcp_start(tcp)
    assert tcp.error == "killed"


def test_hooks_are_coroutines_where_they_wait():
    for name in ("http_connect", "requestheaders", "request", "server_connect", "websocket_message"):
        assert asyncio.iscoroutinefunction(getattr(addon.Firewall, name)), name


# --- bottle-health's probe (issue 23): the firewall's own 403, no audit line --------------------

def test_the_health_probe_from_the_bundles_loopback_gets_the_firewalls_403_unaudited(proxy):
    client = proxy.client()
    client.peername = ("127.0.0.1", 40000)
    flow = proxy.http("bottle-health.invalid", path="/", client=client)
    assert flow.response.status_code == 403 and flow.response.headers["X-Bottle-Egress-Rule"] == "health"
    assert flow.response.text.startswith("blocked by egress: a bottle-health probe")
    assert proxy.fw.audit.stream.lines == [], "a probe is not the agent's request: no audit line"
    assert proxy.opened == []


@pytest.mark.parametrize("peer", [("172.30.0.5", 40000), None])
def test_the_health_name_from_anywhere_else_is_an_audited_refusal(proxy, peer):
    client = proxy.client()
    if peer:
        client.peername = peer
    flow = proxy.http("bottle-health.invalid", path="/", client=client)
    refused(flow, 403, "allowlist")
    assert '"host":"bottle-health.invalid"' in "".join(proxy.fw.audit.stream.lines)
