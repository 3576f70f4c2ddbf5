# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fake mitmproxy flows and a hook driver for the firewall tests.

mitmproxy needs Python 3.12+ and the controller runs 3.11, so the hooks are driven with fake
objects that carry exactly what the addon touches (the attribute names are mitmproxy 12's).
"""

from __future__ import annotations

import asyncio
import itertools
import pathlib
import types

_CLIENT_IDS = itertools.count(1)
BUNDLE = pathlib.Path(__file__).resolve().parents[4] / "images" / "bundle"


class Headers:
    """mitmproxy's Headers as far as the addon uses it: case-insensitive, multi-valued."""

    def __init__(self, pairs=()):
        items = pairs.items() if isinstance(pairs, dict) else pairs
        self.fields = [(str(k), str(v)) for k, v in items]

    def get(self, name, default=None):
        for key, value in self.fields:
            if key.lower() == name.lower():
                return value
        return default

    def __getitem__(self, name):
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name):
        return self.get(name) is not None

    def __setitem__(self, name, value):
        self.pop(name, None)
        self.fields.append((name, value))

    def pop(self, name, default=None):
        value = self.get(name, default)
        self.fields = [(k, v) for k, v in self.fields if k.lower() != name.lower()]
        return value

    def items(self, multi=False):
        return list(self.fields)


class Request:
    def __init__(self, method, host, port, path, headers=None, body=b"", scheme="https", http2=False):
        self.method, self.port, self.path, self.scheme = method, port, path, scheme
        self.data = types.SimpleNamespace(host=host)
        self.headers = Headers(headers or {})
        self.raw_content = body
        self.stream = None
        self.trailers = None
        self.authority = ""
        self.is_http2 = http2

    @property
    def host(self):
        return self.data.host

    @property
    def host_header(self):
        if self.is_http2:
            return self.authority or self.headers.get("Host")
        return self.headers.get("Host")


_FLOW_IDS = itertools.count(1)


class Flow:
    def __init__(self, client, request, server=None):
        self.id = "flow-%d" % next(_FLOW_IDS)  # mitmproxy's flow.id (a uuid4 string)
        self.client_conn = client
        self.server_conn = server or types.SimpleNamespace(error=None)
        self.request = request
        self.response = None
        self.metadata = {}
        self.websocket = None
        self.error = None
        self.live = True

    @property
    def killable(self):
        return self.live and self.error != "killed"

    def kill(self):
        self.error = "killed"
        self.live = False


def make_response(status, text, headers):
    return types.SimpleNamespace(status_code=status, text=text, headers=dict(headers), stream=False)


class Proxy:
    """Drives a Firewall through mitmproxy 12's hook order (regular mode, lazy connections)
    and records every upstream connection that was really allowed to open."""

    def __init__(self, firewall):
        self.fw = firewall
        self.opened = []   # (ip, port) of server connections that would open
        self.refused_connects = []
        self.closed = []

    def run(self, result):
        return asyncio.run(result) if asyncio.iscoroutine(result) else result

    def client(self, sni=None):
        # A counter, not id(object()): a freed object's id comes back, and with it another
        # client's tunnel.
        return types.SimpleNamespace(id="client-%d" % next(_CLIENT_IDS), sni=sni)

    def connect(self, host, port=443, client=None):
        client = client or self.client()
        flow = Flow(client, Request("CONNECT", host, port, ""))
        self.run(self.fw.http_connect(flow))
        return client, flow

    def hello(self, client, sni):
        client.sni = sni
        data = types.SimpleNamespace(client_hello=types.SimpleNamespace(sni=sni), ignore_connection=False,
                                     establish_server_tls_first=False,
                                     context=types.SimpleNamespace(client=client))
        self.fw.tls_clienthello(data)
        return data

    def server_connect(self, client, address):
        data = types.SimpleNamespace(client=client, server=types.SimpleNamespace(address=address, error=None))
        self.run(self.fw.server_connect(data))
        if data.server.error is None:
            self.opened.append(data.server.address)
        else:
            self.refused_connects.append(data.server.error)
        return data

    def https(self, host, method="GET", path="/", headers=None, body=b"", port=443, sni=None, connect_flow=None,
              client=None, http2=False):
        """A whole HTTPS request: CONNECT (unless a client is given), TLS, the request."""
        if client is None:
            client, connect_flow = self.connect(host, port)
            self.hello(client, host if sni is None else sni)
        headers = dict({"Host": host} if headers is None else headers)
        address = connect_flow.request.data.host if connect_flow is not None else host
        flow = Flow(client, Request(method, address, port, path, headers, body, "https", http2))
        if http2:
            flow.request.authority = headers.pop("Host", host)
            flow.request.headers = Headers(headers)
        return self.send(flow, (address, port))

    def http(self, url_host, method="GET", path="/", headers=None, body=b"", port=80, client=None):
        """A plain-HTTP proxy request (absolute form)."""
        client = client or self.client()
        headers = dict({"Host": url_host} if headers is None else headers)
        flow = Flow(client, Request(method, url_host, port, path, headers, body, "http"))
        return self.send(flow, (url_host, port))

    def send(self, flow, address):
        self.run(self.fw.requestheaders(flow))
        self.run(self.fw.request(flow))
        if flow.response is None and flow.error is None:
            self.server_connect(flow.client_conn, address)
        return flow


BASE_CONFIG = {
    "version": 2,
    "mode": "firewall",
    "allowed_hosts": ["api.anthropic.com", "*.example.com", "192.0.2.7", "internal.example.org",
                      "files.example.org"],
    "ports": [80, 443],
    "passthrough_domains": ["files.example.org"],
    "trusted_domains": ["internal.example.org"],
    "ssrf_ip_allowlist": ["172.30.0.0/16"],
    "routes": [
        {"host": "api.github.com", "auth": {"scheme": "Bearer", "token_ref": "GITHUB_TOKEN"},
         "matches": [{"paths": [{"type": "prefix", "value": "/repos/"}], "methods": ["GET", "POST"]}]},
        {"host": "hdr.example.com", "auth": {"scheme": "header", "header": "X-Api-Key", "value": "Key {token}",
                                             "token_ref": "HDR"}},
    ],
    "rate_limit": {"requests_per_minute": 600, "burst": 120},
}
ROUTE_TOKEN = "ghp_R0uteTokenValue0123456789abcdefABCD"
HDR_TOKEN = "hdr-token-value-that-is-long-enough"
KNOWN_SECRET = "correct-horse-battery-staple-42"


class Sink:
    def __init__(self):
        self.lines = []

    def write(self, text):
        self.lines.append(text)

    def flush(self):
        pass
