# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The request's shape (protocol.py), the protocol switches, the raw TCP walls and the callbacks
layers.py calls, with fake flows (the real layers: tests/integration/egress_mitmproxy/run_channels.py)."""

from __future__ import annotations

import base64
import copy
import json
import types

import pytest

from fakes import BASE_CONFIG, KNOWN_SECRET, Flow, Request
from bottle_firewall import layers, protocol

PAT = "ghp_" + "Q7w2E9r4T1y6U3i8O5p0A2s7D4f9G1h6J3k8"
KEY = base64.b64encode(b"0123456789abcdef").decode()
WS = {"Host": "www.example.com", "Upgrade": "websocket", "Connection": "keep-alive, Upgrade",
      "Sec-WebSocket-Key": KEY, "Sec-WebSocket-Version": "13"}
PATCHED = layers.Status(websocket_control=True, request_cap=True)


def refused(flow, status, rule):
    assert flow.response is not None, "not refused"
    assert flow.response.status_code == status, flow.response.text
    assert flow.response.headers["X-Bottle-Egress-Rule"] == rule, flow.response.headers
    assert flow.response.text.startswith("blocked by egress: ")
    return flow.response.text


def audit(fw):
    return [json.loads(line) for line in fw.audit.stream.lines]


@pytest.fixture
def ws_proxy(firewall_factory, write_config):
    from fakes import Proxy
    config = copy.deepcopy(BASE_CONFIG)
    config["websocket_hosts"] = ["www.example.com"]
    return Proxy(firewall_factory(config, protocol_layers=PATCHED))


# --- protocol.py -----------------------------------------------------------------------------

@pytest.mark.parametrize("method", sorted(protocol.KNOWN_METHODS))
def test_known_methods_pass(method):
    assert protocol.method_problem(method) is None


@pytest.mark.parametrize("method", ["CONNECT", "PROPFIND", "get", "EXFIL" + KNOWN_SECRET, "", "S3cr3tT0k3nAbc"])
def test_other_methods_are_refused_without_echoing_data(method):
    problem = protocol.method_problem(method)
    assert problem and "not a known HTTP method" in problem
    assert not method or method not in problem


def test_the_upgrade_value_is_not_echoed(proxy):
    flow = proxy.https("www.example.com", headers={"Host": "www.example.com", "Upgrade": "x-" + KNOWN_SECRET,
                                                   "Connection": "Upgrade"})
    assert KNOWN_SECRET not in refused(flow, 403, "upgrade")


@pytest.mark.parametrize("authority, path, ok", [
    ("", "/x?y=1", True),
    ("www.example.com", "/x", True),
    ("www.example.com:443", "/x", True),
    ("WWW.Example.com.", "/x", True),
    ("other.example", "/x", False),
    ("www.example.com:8443", "/x", False),
    ("user:pw@www.example.com", "/x", False),
    ("", "*", False),
    ("", "www.example.com:443", False),
    ("", "http://www.example.com/x", False),
    ("", "/x y", False),
])
def test_request_target(authority, path, ok):
    assert (protocol.target_problem(authority, path, "www.example.com", 443) is None) is ok


def test_a_well_formed_websocket_handshake_passes():
    assert protocol.websocket_problem("GET", "HTTP/1.1", list(WS.items())) is None


@pytest.mark.parametrize("change, why", [
    ({"method": "POST"}, "is a GET"),
    ({"version": "HTTP/2.0"}, "HTTP/1.1"),
    ({"Upgrade": "h2c"}, "exactly websocket"),
    ({"Upgrade": "websocket, h2c"}, "exactly websocket"),
    ({"Connection": "keep-alive"}, "Connection must list upgrade"),
    ({"Sec-WebSocket-Key": base64.b64encode(b"short").decode()}, "16 bytes"),
    ({"Sec-WebSocket-Key": "!!!!!!!!!!!!!!!!!!!!!!=="}, "16 bytes"),
    ({"Sec-WebSocket-Key": None}, "16 bytes"),
    ({"Sec-WebSocket-Version": "8"}, "must be 13"),
])
def test_malformed_websocket_handshakes_are_named(change, why):
    headers = dict(WS)
    method, version = change.pop("method", "GET"), change.pop("version", "HTTP/1.1")
    headers.update(change)
    pairs = [(k, v) for k, v in headers.items() if v is not None]
    assert why in protocol.websocket_problem(method, version, pairs)


def test_two_keys_are_not_one():
    pairs = list(WS.items()) + [("Sec-WebSocket-Key", KEY)]
    assert "16 bytes" in protocol.websocket_problem("GET", "HTTP/1.1", pairs)


# --- requestheaders --------------------------------------------------------------------------

def test_absolute_target_naming_another_host_in_a_tunnel_is_refused(proxy):
    client, connect = proxy.connect("www.example.com")
    proxy.hello(client, "www.example.com")
    flow = Flow(client, Request("GET", connect.request.data.host, 443, "/" + PAT, {"Host": "www.example.com"}))
    flow.request.authority = "evil.example.net"
    proxy.send(flow, (connect.request.data.host, 443))
    assert "does not name www.example.com:443" in refused(flow, 403, "request-target")
    assert proxy.opened == []
    assert audit(proxy.fw)[-1]["rule"] == "request-target" and audit(proxy.fw)[-1]["action"] == "block"


def test_absolute_target_naming_the_tunnel_passes(proxy):
    client, connect = proxy.connect("www.example.com")
    proxy.hello(client, "www.example.com")
    flow = Flow(client, Request("GET", connect.request.data.host, 443, "/x", {"Host": "www.example.com"}))
    flow.request.authority = "www.example.com:443"
    proxy.send(flow, (connect.request.data.host, 443))
    assert flow.response is None and proxy.opened


def test_http2_authority_must_be_the_tunnels(proxy):
    flow = proxy.https("www.example.com", headers={"Host": "api.anthropic.com"}, http2=True)
    assert flow.response is not None and flow.response.status_code == 403
    assert proxy.opened == []


def test_unknown_method_refused_405(proxy):
    flow = proxy.https("www.example.com", method="BREW")
    refused(flow, 405, "method")
    assert proxy.opened == []


def test_plain_http_proxy_request_target_checked_too(proxy):
    flow = proxy.http("www.example.com", path="*", method="OPTIONS")
    refused(flow, 403, "request-target")


def test_a_connect_inside_a_tunnel_is_refused(proxy):
    client, connect = proxy.connect("www.example.com")
    tunnel = proxy.fw.tunnels[client.id]
    _client, inner = proxy.connect("evil.example.net", client=client)
    refused(inner, 403, "request-target")
    assert proxy.fw.tunnels[client.id] is tunnel, "the tunnel was re-targeted"


@pytest.mark.parametrize("upgrade", ["h2c", "tls/1.2", "websocket", ""])
def test_upgrade_other_than_an_allowed_websocket_is_refused(proxy, upgrade):
    headers = {"Host": "www.example.com", "Upgrade": upgrade, "Connection": "Upgrade"}
    flow = proxy.https("www.example.com", headers=headers)
    refused(flow, 403, "upgrade")
    assert proxy.opened == []


def test_websocket_refused_where_the_policy_does_not_allow_it(proxy):
    flow = proxy.https("www.example.com", headers=WS)
    assert "websocket_hosts" in refused(flow, 403, "websocket")


def test_websocket_refused_when_the_control_frame_patch_is_not_in_force(firewall_factory):
    from fakes import Proxy
    config = copy.deepcopy(BASE_CONFIG)
    config["websocket_hosts"] = ["www.example.com"]
    proxy = Proxy(firewall_factory(config, protocol_layers=layers.Status(reason="mitmproxy 13.0.0, not 12.1.2")))
    flow = proxy.https("www.example.com", headers=WS)
    assert "mitmproxy 13.0.0" in refused(flow, 403, "websocket")


def test_websocket_allowed_on_a_websocket_host(ws_proxy):
    flow = ws_proxy.https("www.example.com", headers=WS)
    assert flow.response is None and flow.metadata["bottle_firewall"].websocket is True


def test_chunked_body_refused_411_when_the_cap_patch_is_not_in_force(proxy):
    assert not proxy.fw.layers.request_cap  # no mitmproxy on the controller: install() says so
    flow = proxy.https("www.example.com", method="POST", headers={"Host": "www.example.com",
                                                                  "Transfer-Encoding": "chunked"})
    refused(flow, 411, "body-limit")


def test_chunked_body_allowed_when_the_cap_patch_is_in_force(ws_proxy):
    flow = ws_proxy.https("www.example.com", method="POST", headers={"Host": "www.example.com",
                                                                     "Transfer-Encoding": "chunked"})
    assert flow.response is None


# --- responseheaders: 101 --------------------------------------------------------------------

def _response(status, upgrade=None):
    headers = {"upgrade": upgrade} if upgrade else {}
    return types.SimpleNamespace(status_code=status, headers=types.SimpleNamespace(get=lambda k, d=None: headers.get(k, d)),
                                 stream=False)


def test_a_101_to_a_plain_request_is_killed(proxy):
    flow = proxy.https("www.example.com")
    flow.response = _response(101, "websocket")
    proxy.fw.responseheaders(flow)
    assert flow.error == "killed"
    assert audit(proxy.fw)[-1]["rule"] == "switch-protocols" and audit(proxy.fw)[-1]["action"] == "block"


def test_a_101_to_an_accepted_websocket_handshake_goes_on(ws_proxy):
    flow = ws_proxy.https("www.example.com", headers=WS)
    flow.response = _response(101, "websocket")
    ws_proxy.fw.responseheaders(flow)
    assert flow.error is None and flow.response.stream is True


def test_a_101_naming_another_protocol_after_a_websocket_handshake_is_killed(ws_proxy):
    flow = ws_proxy.https("www.example.com", headers=WS)
    flow.response = _response(101, "h2c")
    ws_proxy.fw.responseheaders(flow)
    assert flow.error == "killed"


# --- the callbacks layers.py calls -------------------------------------------------------------

def test_websocket_control_frames(ws_proxy):
    flow = ws_proxy.https("www.example.com", headers=WS)
    fw = ws_proxy.fw
    assert fw.websocket_control(flow, "ping", b"hello") is False
    assert fw.websocket_control(flow, "ping", b"") is False
    assert fw.websocket_control(flow, "close", ("bye " + KNOWN_SECRET).encode()) is True
    line = audit(fw)[-1]
    assert line["event"] == "websocket" and line["rule"] == "known-secret" and line["path"] == "(close frame)"
    assert KNOWN_SECRET not in json.dumps(audit(fw))
    # once refused, nothing more of it goes, clean or not
    assert fw.websocket_control(flow, "pong", b"hello") is True


def test_websocket_control_frame_of_a_flow_never_accepted_is_refused(proxy):
    flow = proxy.https("www.example.com")
    assert proxy.fw.websocket_control(flow, "ping", b"hello") is True
    assert audit(proxy.fw)[-1]["rule"] == "websocket"


def test_request_body_cap_and_its_audit(ws_proxy):
    flow = ws_proxy.https("www.example.com", method="POST", headers={"Host": "www.example.com",
                                                                     "Transfer-Encoding": "chunked"})
    fw = ws_proxy.fw
    cap = fw.request_body_cap(flow)
    assert cap == fw.config.dlp["max_body_bytes"]
    text = fw.request_over_cap(flow, cap + 10, cap)
    assert text.startswith("blocked by egress: ") and "scan limit of %d bytes" % cap in text
    line = audit(fw)[-1]
    assert (line["rule"], line["action"], line["status"], line["bytes"]) == ("body-limit", "block", 413, cap + 10)


def test_no_config_means_no_body(proxy):
    proxy.fw.config = None
    assert proxy.fw.request_body_cap(Flow(proxy.client(), Request("POST", "x", 443, "/"))) == 0


# --- raw TCP ---------------------------------------------------------------------------------

class TcpFlow(Flow):
    def __init__(self, client):
        super().__init__(client, Request("", "www.example.com", 443, ""))
        self.messages = []


def test_tcp_start_closes_both_sides_and_tcp_message_relays_nothing(proxy):
    client, _connect = proxy.connect("www.example.com")
    flow = TcpFlow(client)
    proxy.fw.tcp_start(flow)
    assert flow.error == "killed" and "raw TCP is refused" in flow.server_conn.error
    assert proxy.fw.closed == [flow], "the client side was not closed"
    flow.messages.append(types.SimpleNamespace(from_client=True, content=("x" + KNOWN_SECRET).encode()))
    proxy.fw.tcp_message(flow)
    assert flow.messages[-1].content == b""
    assert audit(proxy.fw)[-1]["rule"] == "raw-tcp" and audit(proxy.fw)[-1]["action"] == "block"


def test_tcp_message_of_a_passthrough_flow_is_untouched(proxy):
    client, connect = proxy.connect("files.example.org")
    proxy.hello(client, "files.example.org")
    flow = TcpFlow(client)
    proxy.fw.tcp_start(flow)
    flow.messages.append(types.SimpleNamespace(from_client=True, content=b"raw bytes"))
    proxy.fw.tcp_message(flow)
    assert flow.messages[-1].content == b"raw bytes" and flow.error is None


# --- layers.py without mitmproxy ----------------------------------------------------------------

def test_layers_install_without_mitmproxy_is_a_refusing_status():
    status = layers.install(object())
    assert not status.websocket_control and not status.request_cap and "mitmproxy" in status.reason


# --- the upstream ClientHello's ALPN -------------------------------------------------------------

@pytest.mark.parametrize("offers, expected", [
    ((b"h2", b"x-" + KNOWN_SECRET.encode(), b"http/1.1"), (b"h2", b"http/1.1")),
    ((KNOWN_SECRET.encode(),), (b"http/1.1",)),  # never empty: mitmproxy would copy the agent's offers then
    ((), None),
])
def test_only_http_alpn_offers_go_upstream(offers, expected):
    from bottle_firewall import addon
    data = types.SimpleNamespace(client=types.SimpleNamespace(alpn_offers=offers),
                                 server=types.SimpleNamespace(alpn_offers=None))
    addon._http_alpn_only(data)
    assert data.server.alpn_offers == expected


# --- behind pipelock: the same request shape on the route hosts egress intercepts ----------------

def test_behind_pipelock_the_shape_checks_apply_to_route_hosts(firewall_factory):
    from fakes import Proxy
    fw = firewall_factory(dict(BASE_CONFIG, mode="behind-pipelock"))
    proxy = Proxy(fw)
    routed = proxy.hello(proxy.client(), "api.github.com")
    for method, headers, status, rule in (
            ("BREW", {"Host": "api.github.com"}, 405, "method"),
            ("GET", {"Host": "api.github.com", "Upgrade": "h2c", "Connection": "Upgrade"}, 403, "upgrade")):
        flow = Flow(routed.context.client, Request(method, "140.82.112.6", 443, "/repos/o/r", headers))
        proxy.run(fw.requestheaders(flow))
        refused(flow, status, rule)
        assert flow.request.headers.get("Authorization") is None
