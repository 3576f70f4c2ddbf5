# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The request's shape and the raw TCP walls with mitmproxy 12's real flow and connection
objects, through its AddonManager (see harness.py); the real proxy: run_channels.py."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import KNOWN_SECRET, PAT, main  # noqa: E402
from mitmproxy import connection, http, tcp  # noqa: E402
from mitmproxy.proxy.layers import tcp as tcp_layer  # noqa: E402
from mitmproxy.test import tflow, tutils  # noqa: E402


class Handler:
    """Stands in for a ProxyConnectionHandler: records what the addon closes."""

    def __init__(self, *open_connections):
        self.closed = []
        self.transports = {conn: object() for conn in open_connections}

    def close_connection(self, conn, half_close=False):
        self.closed.append(conn)


def refused(flow, status, rule):
    assert flow.response is not None, "not refused"
    assert flow.response.status_code == status, (flow.response.status_code, flow.response.get_text())
    assert flow.response.headers["x-bottle-egress-rule"] == rule, flow.response.headers
    return flow.response.get_text()


async def _tunnel(env, host="www.example.com"):
    client, connect = await env.connect(host)
    await env.hello(client, host)
    return client, (connect.request.host, 443)


async def test_absolute_form_naming_another_host_in_a_tunnel(env):
    client, address = await _tunnel(env)
    flow = env.request(client, address, path="/" + PAT, headers=[("Host", "www.example.com")])
    flow.request.authority = "evil.example.net"
    data = await env.send(flow)
    assert "does not name www.example.com:443" in refused(flow, 403, "request-target")
    assert data is None, "no server connection for a refused request"
    assert env.audit()[-1]["rule"] == "request-target" and env.audit()[-1]["action"] == "block"


async def test_http2_authority_of_another_host(env):
    client, address = await _tunnel(env)
    req = tutils.treq(method=b"GET", host=address[0], port=443, scheme=b"https", authority=b"evil.example.net",
                      path=b"/x", http_version=b"HTTP/2.0", headers=http.Headers(), content=b"")
    flow = tflow.tflow(client_conn=client, req=req)
    await env.send(flow)
    assert flow.response is not None and flow.response.status_code == 403
    assert flow.response.headers["x-bottle-egress-rule"] in ("host-mismatch", "request-target")


async def test_http2_authority_of_the_tunnel_passes(env):
    client, address = await _tunnel(env)
    req = tutils.treq(method=b"GET", host=address[0], port=443, scheme=b"https", authority=b"www.example.com",
                      path=b"/x", http_version=b"HTTP/2.0", headers=http.Headers(), content=b"")
    flow = tflow.tflow(client_conn=client, server_conn=connection.Server(address=address), req=req)
    data = await env.send(flow)
    assert flow.response is None, flow.response and flow.response.get_text()
    assert data is not None and data.server.error is None, data and data.server.error


async def test_unknown_method_and_h2c_upgrade(env):
    client, address = await _tunnel(env)
    flow = env.request(client, address, method="MKCOL", headers=[("Host", "www.example.com")])
    await env.send(flow)
    refused(flow, 405, "method")
    flow = env.request(client, address, headers=[("Host", "www.example.com"), ("Upgrade", "h2c"),
                                                 ("Connection", "Upgrade, HTTP2-Settings"), ("HTTP2-Settings", "AAA")])
    await env.send(flow)
    refused(flow, 403, "upgrade")


async def test_websocket_refused_outside_websocket_hosts(env):
    client, address = await _tunnel(env)
    flow = env.request(client, address, headers=[
        ("Host", "www.example.com"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "MDEyMzQ1Njc4OWFiY2RlZg=="), ("Sec-WebSocket-Version", "13")])
    await env.send(flow)
    assert "websocket_hosts" in refused(flow, 403, "websocket")


async def test_connect_inside_a_tunnel(env):
    client, connect = await env.connect("www.example.com")
    tunnel = env.fw.tunnels[client.id]
    _client, inner = await env.connect("evil.example.net", client=client)
    refused(inner, 403, "request-target")
    assert env.fw.tunnels[client.id] is tunnel


async def test_raw_tcp_closes_both_sides_and_relays_nothing(env):
    client, connect = await env.connect("www.example.com")
    flow = tflow.ttcpflow(client_conn=client)
    flow.messages = []
    flow.server_conn.error = None
    handler = Handler(flow.server_conn)
    env.proxyserver.connections[client.id] = handler
    await env.hook(tcp_layer.TcpStartHook(flow))
    assert "raw TCP is refused" in flow.server_conn.error and flow.killable is False
    assert client in handler.closed and flow.server_conn in handler.closed, handler.closed
    flow.messages.append(tcp.TCPMessage(True, ("x " + KNOWN_SECRET).encode()))
    await env.hook(tcp_layer.TcpMessageHook(flow))
    assert flow.messages[-1].content == b""
    assert env.audit()[-1]["rule"] == "raw-tcp" and env.audit()[-1]["action"] == "block"


async def test_udp_if_it_ever_started_is_refused_both_ways(env):
    from mitmproxy import udp
    from mitmproxy.proxy.layers import udp as udp_layer
    flow = tflow.tudpflow()
    flow.messages = []
    flow.server_conn.error = None
    handler = Handler(flow.server_conn)
    env.proxyserver.connections[flow.client_conn.id] = handler
    await env.hook(udp_layer.UdpStartHook(flow))
    assert flow.server_conn.error and flow.killable is False
    assert flow.client_conn in handler.closed and flow.server_conn in handler.closed
    flow.messages.append(udp.UDPMessage(True, ("x " + KNOWN_SECRET).encode()))
    await env.hook(udp_layer.UdpMessageHook(flow))
    assert flow.messages[-1].content == b""
    assert env.audit()[-1]["event"] == "udp" and env.audit()[-1]["action"] == "block"


if __name__ == "__main__":
    sys.exit(main(globals()))
