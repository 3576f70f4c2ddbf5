# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bottle firewall's hooks under mitmproxy 12 itself: real flows, connections, TLS
ClientHellos and Responses, called through mitmproxy's AddonManager (see harness.py)."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import KNOWN_SECRET, PAT, ROUTE_TOKEN, Handler, main  # noqa: E402
from mitmproxy import http, websocket  # noqa: E402
from mitmproxy.proxy.layers import http as http_layer  # noqa: E402
from mitmproxy.proxy.layers import tcp as tcp_layer  # noqa: E402
from mitmproxy.proxy.layers import websocket as websocket_layer  # noqa: E402
from mitmproxy.proxy.server_hooks import ServerConnectHook, ServerConnectionHookData  # noqa: E402
from mitmproxy.test import tflow, tutils  # noqa: E402
from wsproto.frame_protocol import Opcode  # noqa: E402

from bottle_firewall import addon  # noqa: E402


def refused(flow, status, rule=None):
    assert flow.response is not None, "not refused"
    assert isinstance(flow.response, http.Response), type(flow.response)
    text = flow.response.get_text()
    assert flow.response.status_code == status, (flow.response.status_code, text)
    assert text.startswith("blocked by egress: "), text
    assert flow.response.headers["content-type"].startswith("text/plain")
    if rule:
        assert flow.response.headers["x-bottle-egress-rule"] == rule, flow.response.headers
    return text


async def test_refused_connect_is_answered_403_inside_the_tunnel(env):
    client, connect = await env.connect("evil.example.net")
    assert connect.response is None, "the CONNECT itself must succeed (the refusal is readable in the tunnel)"
    data = await env.hello(client, "evil.example.net")
    assert data.ignore_connection is False and data.establish_server_tls_first is False
    flow = env.request(client, (connect.request.host, 443), headers=[("Host", "evil.example.net")])
    await env.hook(http_layer.HttpRequestHeadersHook(flow))
    text = refused(flow, 403, "allowlist")
    assert "evil.example.net is not on this bottle's allowlist" in text and "request_domain" in text
    await env.hook(http_layer.HttpRequestHook(flow))
    assert flow.response.status_code == 403
    # The second wall: no upstream connection for the tunnel.
    hook = ServerConnectionHookData(server=flow.server_conn, client=client)
    await env.hook(ServerConnectHook(hook))
    assert hook.server.error and "allowlist" in hook.server.error
    assert env.audit()[0]["action"] == "block" and env.audit()[0]["event"] == "connect"


async def test_ssrf_refusal_reads_well(env):
    flow, data = await env.https("localhost.example.com")
    text = refused(flow, 403, "ssrf")
    assert "host localhost.example.com resolves to 127.0.0.1, a loopback address (127.0.0.0/8)" in text, text


async def test_route_post_gets_the_credential_and_loses_the_agents(env):
    body = json.dumps({"title": "bug", "body": "details"}).encode()
    flow, data = await env.https("api.github.com", "POST", "/repos/o/r/issues",
                                 [("Authorization", "Bearer agent-own-token"), ("Content-Type", "application/json")],
                                 body)
    assert flow.response is None, flow.response and flow.response.get_text()
    assert flow.request.stream is False
    assert flow.request.headers.get_all("authorization") == ["Bearer " + ROUTE_TOKEN]
    assert data is not None and data.server.error is None and data.server.address == ("140.82.112.6", 443)
    assert flow.request.content == body
    line = env.audit()[-1]
    assert line["route"] == "api.github.com" and line["action"] == "allow" and line["bytes"] == len(body)
    assert ROUTE_TOKEN not in env.fw.audit.stream.getvalue()


async def test_post_outside_the_route_matches_is_refused_in_requestheaders(env):
    client, connect = await env.connect("api.github.com")
    await env.hello(client, "api.github.com")
    flow = env.request(client, (connect.request.host, 443), "POST", "/user/keys",
                       [("Host", "api.github.com"), ("Content-Length", "2")], b"{}")
    await env.hook(http_layer.HttpRequestHeadersHook(flow))
    refused(flow, 403, "route-matches")  # decided before any body is read
    assert "authorization" not in flow.request.headers
    await env.hook(http_layer.HttpRequestHook(flow))
    assert "authorization" not in flow.request.headers and flow.response.status_code == 403


async def test_dlp_hit_in_a_json_body(env):
    body = json.dumps({"messages": [{"role": "user", "content": "here: " + PAT}]}).encode()
    flow, data = await env.https("api.anthropic.com", "POST", "/v1/messages", [("Content-Type", "application/json")],
                                 body)
    text = refused(flow, 403)
    assert "body field $.messages[0].content" in text and PAT not in text and data is None
    body = json.dumps({"nested": {"x": KNOWN_SECRET.encode().hex()}}).encode()
    flow, data = await env.https("api.anthropic.com", "POST", "/v1/messages", [("Content-Type", "application/json")],
                                 body)
    assert refused(flow, 403, "known-secret")


async def test_a_large_json_body_is_scanned_in_a_thread(env):
    filler = [{"role": "user", "content": "prose %d " % i * 40} for i in range(2000)]
    body = json.dumps({"messages": filler + [{"role": "user", "content": PAT}]}).encode()
    assert len(body) > addon.THREAD_THRESHOLD
    flow, data = await env.https("api.anthropic.com", "POST", "/v1/messages", [("Content-Type", "application/json")],
                                 body)
    refused(flow, 403)
    flow, data = await env.https("api.anthropic.com", "POST", "/v1/messages", [("Content-Type", "application/json")],
                                 json.dumps({"messages": filler}).encode())
    assert flow.response is None and data.server.error is None


async def test_responseheaders_streams_the_response(env):
    flow, data = await env.https("www.example.com", "GET", "/download")
    assert flow.response is None
    flow.response = tutils.tresp(headers=http.Headers(content_length="7"))
    await env.hook(http_layer.HttpResponseHeadersHook(flow))
    # streamed, through the byte counter only (no credential went in: nothing to redact)
    assert callable(flow.response.stream) and flow.response.stream.inner is None
    assert flow.response.stream(b"payload") == b"payload" and flow.response.stream.count == 7


async def test_upstream_redirect_is_followed_and_audited(env):
    jwt = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJnaXRodWIuY29tIiwiZXhwIjoxNzY0NjM4NDAwfQ."
           "Xq3vN8bS2kR5tW9yZ1cF4hJ7mP0aL6dG3eU8iO2rT5w")
    path = "/asset/123?sp=r&jwt=" + jwt
    flow, data = await env.https("release-assets.githubusercontent.com", "GET", path)
    refused(flow, 403)
    first, data = await env.https("github.com", "GET", "/o/r/releases/download/v1/t.tgz")
    assert first.response is None
    first.response = tutils.tresp(status_code=302, reason=b"Found", content=b"",
                                  headers=http.Headers(location="https://release-assets.githubusercontent.com" + path))
    await env.hook(http_layer.HttpResponseHeadersHook(first))
    follow, data = await env.https("release-assets.githubusercontent.com", "GET", path)
    assert follow.response is None, follow.response and follow.response.get_text()
    assert env.audit()[-1]["exempt"] == "upstream-redirect"


async def _exception_refuses(env, hook_name, patch, run):
    """Patch an internal function to raise, run the hook: the flow/connection is refused."""
    target, attribute = patch
    original = getattr(target, attribute)

    def boom(*args, **kwargs):
        raise RuntimeError("injected into " + hook_name)
    setattr(target, attribute, boom)
    try:
        await run()
    finally:
        setattr(target, attribute, original)
    text = env.log.text()
    assert "egress: %s failed with RuntimeError" % hook_name in text, text[-2000:]
    assert "injected into" not in text, "the exception's message (it may quote request data) was logged"


async def test_exception_in_http_connect_refuses(env):
    client = env.client()
    holder = {}

    async def run():
        holder["c"] = await env.connect("www.example.com", client=client)
    await _exception_refuses(env, "http_connect", (env.fw, "_admit"), run)
    client, connect = holder["c"]
    refused(connect, 502, "error")
    assert env.fw.tunnels[client.id].refusal is not None


async def test_exception_in_tls_clienthello_refuses(env):
    client, connect = await env.connect("www.example.com")
    holder = {}

    async def run():
        holder["d"] = await env.hello(client, "www.example.com")
    await _exception_refuses(env, "tls_clienthello", (env.fw, "refresh"), run)
    assert holder["d"].ignore_connection is False
    flow = env.request(client, (connect.request.host, 443), headers=[("Host", "www.example.com")])
    await env.send(flow)
    refused(flow, 502, "error")


async def test_exception_in_requestheaders_refuses(env):
    client, connect = await env.connect("www.example.com")
    await env.hello(client, "www.example.com")
    flow = env.request(client, (connect.request.host, 443), headers=[("Host", "www.example.com")])
    await _exception_refuses(env, "requestheaders", (env.fw.engine, "scan_head"), lambda: env.send(flow))
    refused(flow, 502, "error")


async def test_exception_in_request_refuses(env):
    client, connect = await env.connect("api.github.com")
    await env.hello(client, "api.github.com")
    flow = env.request(client, (connect.request.host, 443), "POST", "/repos/o/r/issues",
                       [("Host", "api.github.com"), ("Content-Type", "application/json")], b'{"a": 1}')
    await _exception_refuses(env, "request", (addon, "decode_content"), lambda: env.send(flow))
    refused(flow, 502, "error")
    assert flow.request.headers.get("authorization") is None, "no credential after a failed scan"


async def test_exception_in_server_connect_refuses(env):
    client, connect = await env.connect("www.example.com")
    await env.hello(client, "www.example.com")
    data = ServerConnectionHookData(server=tflow.tserver_conn(), client=client)
    data.server.address = (connect.request.host, 443)
    await _exception_refuses(env, "server_connect", (env.fw.config, "allows"), lambda: env.hook(ServerConnectHook(data)))
    assert data.server.error and "internal error" in data.server.error


async def test_exception_in_responseheaders_kills(env):
    flow, data = await env.https("www.example.com", "GET", "/x")
    flow.response = tutils.tresp(status_code=302, headers=http.Headers(location="/y"))
    await _exception_refuses(env, "responseheaders", (addon, "redirect_target"),
                             lambda: env.hook(http_layer.HttpResponseHeadersHook(flow)))
    assert flow.killable is False and flow.error is not None and flow.error.msg == flow.error.KILLED_MESSAGE


async def test_exception_in_tcp_start_refuses(env):
    client, connect = await env.connect("www.example.com")
    flow = tflow.ttcpflow(client_conn=client)
    flow.server_conn.error = None
    await _exception_refuses(env, "tcp_start", (env.fw.config.passthrough, "matches"),
                             lambda: env.hook(tcp_layer.TcpStartHook(flow)))
    assert flow.server_conn.error and flow.killable is False


async def test_raw_tcp_is_refused(env):
    client, connect = await env.connect("www.example.com")
    flow = tflow.ttcpflow(client_conn=client)
    await env.hook(tcp_layer.TcpStartHook(flow))
    assert "raw TCP is refused" in flow.server_conn.error and flow.killable is False


def _websocket_flow(env, *messages):
    flow = tflow.twebsocketflow(messages=False)
    handler = Handler()
    env.proxyserver.connections[flow.client_conn.id] = handler
    for from_client, content in messages:
        flow.websocket.messages.append(websocket.WebSocketMessage(Opcode.TEXT, from_client, content))
    return flow, handler


async def test_websocket_message_with_a_secret_is_dropped(env):
    flow, handler = _websocket_flow(env)
    for from_client, content, dropped in ((True, b"hello", False), (False, b"server says " + PAT.encode(), False),
                                          (True, b"leak " + PAT.encode(), True), (True, b"harmless", True)):
        flow.websocket.messages.append(websocket.WebSocketMessage(Opcode.TEXT, from_client, content))
        await env.hook(websocket_layer.WebsocketMessageHook(flow))
        assert flow.websocket.messages[-1].dropped is dropped, (content, flow.websocket.messages[-1].dropped)
    assert handler.closed == [flow.client_conn], "the agent's connection was not closed"
    assert env.audit()[-1]["event"] == "websocket" and env.audit()[-1]["action"] == "block"


async def test_exception_in_websocket_message_drops_it(env):
    flow, handler = _websocket_flow(env, (True, b"anything"))
    await _exception_refuses(env, "websocket_message", (env.fw.engine, "scan_message"),
                             lambda: env.hook(websocket_layer.WebsocketMessageHook(flow)))
    assert flow.websocket.messages[-1].dropped and handler.closed == [flow.client_conn]


async def test_the_addon_error_detector_works(env):
    """Control: a hook that raises through is what mitmproxy logs as "Addon error" (each test
    checks that none of the firewall's hooks ever did)."""
    class Raiser:
        def requestheaders(self, flow):
            raise RuntimeError("unguarded")
    env.tctx.master.addons.add(Raiser())
    flow, data = await env.https("www.example.com")
    assert any("Addon error" in r.getMessage() for r in env.log.records)
    env.log.records.clear()


async def test_http2_authority_is_the_host_checked(env):
    client, connect = await env.connect("www.example.com")
    await env.hello(client, "www.example.com")
    for authority, status in ((b"www.example.com", None), (b"evil.example.net", 403)):
        req = tutils.treq(method=b"GET", host=connect.request.host, port=443, scheme=b"https", authority=authority,
                          path=b"/", http_version=b"HTTP/2.0", headers=http.Headers(), content=b"")
        flow = tflow.tflow(client_conn=client, req=req)
        await env.send(flow)
        if status is None:
            assert flow.response is None, flow.response.get_text()
        else:
            assert "domain fronting" in refused(flow, status, "host-mismatch")


async def test_plain_http_proxy_request_is_pinned_to_the_checked_address(env):
    client = env.client()
    req = tutils.treq(method=b"GET", host="www.example.com", port=80, scheme=b"http", authority=b"", path=b"/x",
                      headers=http.Headers(host="www.example.com"), content=b"")
    flow = tflow.tflow(client_conn=client, req=req)
    flow.server_conn.address = ("www.example.com", 80)
    data = await env.send(flow)
    assert flow.response is None and data.server.error is None and data.server.address == ("93.184.216.34", 80)
    from mitmproxy.proxy.server_hooks import ClientDisconnectedHook
    await env.hook(ClientDisconnectedHook(client))
    assert client.id not in env.fw.pinned


if __name__ == "__main__":
    sys.exit(main(dict(globals())))
