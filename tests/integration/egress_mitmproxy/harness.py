# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared by the scripts here: the real ``Firewall`` inside mitmproxy 12's own test context.

Runs in the bundle image (its Python 3.13, mitmproxy 12.1.2, kingfisher), with the working
copy's ``images/bundle`` mounted at /src. Every hook is called through mitmproxy's
AddonManager (``handle_lifecycle``), as the proxy calls it, with real flow and connection
objects (``mitmproxy.test.tflow``/``tutils``, ``mitmproxy.connection``); nothing touches the
network: DNS is a table. A test is an ``async def test_*(env)``; ``main()`` prints one line
per test and ``N passed, N failed`` last."""

import asyncio
import inspect
import io
import json
import logging
import os
import ssl
import sys
import tempfile
import traceback

sys.path.insert(0, os.environ.get("BOTTLE_SRC", "/src"))
sys.dont_write_bytecode = True

from mitmproxy import connection, http, tls  # noqa: E402
from mitmproxy.addons.proxyserver import Proxyserver  # noqa: E402
from mitmproxy.proxy import context as proxy_context  # noqa: E402
from mitmproxy.proxy.layers import http as http_layer  # noqa: E402
from mitmproxy.proxy.layers.tls import TlsClienthelloHook, parse_client_hello  # noqa: E402
from mitmproxy.proxy.server_hooks import ServerConnectHook, ServerConnectionHookData  # noqa: E402
from mitmproxy.test import taddons, tflow, tutils  # noqa: E402

from bottle_firewall import addon  # noqa: E402

ROUTE_TOKEN = "ghp_R0uteTokenValue0123456789abcdefABCD"
KNOWN_SECRET = "correct-horse-battery-staple-42"
PAT = "ghp_" + "Q7w2E9r4T1y6U3i8O5p0A2s7D4f9G1h6J3k8"
CONFIG = {
    "version": 2,
    "mode": "firewall",
    "allowed_hosts": ["api.anthropic.com", "*.example.com", "github.com", "release-assets.githubusercontent.com"],
    "ports": [80, 443],
    "routes": [
        {"host": "api.github.com", "auth": {"scheme": "Bearer", "token_ref": "GITHUB_TOKEN"},
         "matches": [{"paths": [{"type": "prefix", "value": "/repos/"}], "methods": ["GET", "POST"]}]},
    ],
    "rate_limit": {"requests_per_minute": 600, "burst": 120},
}
DNS = {
    "api.github.com": ["140.82.112.6"],
    "api.anthropic.com": ["160.79.104.10"],
    "www.example.com": ["93.184.216.34"],
    "github.com": ["140.82.112.3"],
    "release-assets.githubusercontent.com": ["185.199.108.133"],
    "localhost.example.com": ["127.0.0.1"],
}


async def resolve(host, port):
    if host not in DNS:
        raise OSError("Name or service not known")
    return list(DNS[host])


class Captured(logging.Handler):
    """Every log record, to find mitmproxy's "Addon error" (a hook that raised through)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def text(self):
        return "\n".join("%s %s" % (r.levelname, r.getMessage()) for r in self.records)


class Handler:
    """Stands in for a ProxyConnectionHandler in the real Proxyserver's ``connections``."""

    def __init__(self):
        self.closed = []

    def close_connection(self, conn, half_close=False):
        self.closed.append(conn)


class Env:
    """A Firewall over temporary files, inside ``taddons.context`` with a real Proxyserver."""

    def __init__(self, tctx, firewall, proxyserver, log):
        self.tctx, self.fw, self.proxyserver, self.log = tctx, firewall, proxyserver, log

    async def hook(self, hook):
        await self.tctx.master.addons.handle_lifecycle(hook)
        return hook

    def client(self):
        client = tflow.tclient_conn()
        client.sni = None
        return client

    async def connect(self, host, port=443, client=None):
        """A CONNECT, as mitmproxy's HttpLayer hands it to http_connect; afterwards the proxy
        copies the request's host/port into the tunnel's server address."""
        client = client or self.client()
        req = tutils.treq(method=b"CONNECT", host=host, port=port, scheme=b"", authority=("%s:%d" % (host, port)).encode(),
                          path=b"", headers=http.Headers(), content=b"")
        flow = tflow.tflow(client_conn=client, req=req)
        await self.hook(http_layer.HttpConnectHook(flow))
        return client, flow

    async def hello(self, client, sni):
        raw = client_hello(sni)
        hello = parse_client_hello(raw)
        assert hello is not None and hello.sni == sni, "could not build a ClientHello"
        data = tls.ClientHelloData(proxy_context.Context(client, self.tctx.options), hello)
        await self.hook(TlsClienthelloHook(data))
        client.sni = sni
        return data

    def request(self, client, address, method="GET", path="/", headers=(), body=b""):
        """A request inside a tunnel: the inner HttpLayer (transparent mode) puts the tunnel's
        server address into host/port; HTTP/1 in regular mode has an empty authority."""
        req = tutils.treq(method=method.encode(), host=address[0], port=address[1], scheme=b"https", authority=b"",
                          path=path.encode(), headers=http.Headers([(k.encode(), v.encode()) for k, v in headers]),
                          content=body)
        server = connection.Server(address=address)
        return tflow.tflow(client_conn=client, server_conn=server, req=req)

    async def send(self, flow):
        """requestheaders, request and (if nothing answered) server_connect, in mitmproxy's order."""
        await self.hook(http_layer.HttpRequestHeadersHook(flow))
        # A response set in requestheaders: mitmproxy still reads the body and calls `request`.
        await self.hook(http_layer.HttpRequestHook(flow))
        data = None
        if flow.response is None and not flow.error:
            data = ServerConnectionHookData(server=flow.server_conn, client=flow.client_conn)
            await self.hook(ServerConnectHook(data))
        return data

    async def https(self, host, method="GET", path="/", headers=None, body=b""):
        client, connect = await self.connect(host)
        await self.hello(client, host)
        address = (connect.request.host, connect.request.port)
        headers = [("Host", host)] + list(headers or [])
        flow = self.request(client, address, method, path, headers, body)
        data = await self.send(flow)
        return flow, data

    def audit(self):
        return [json.loads(line) for line in self.fw.audit.stream.getvalue().splitlines()]


def client_hello(sni):
    """The bytes of a real TLS ClientHello with ``sni`` (Python's ssl, memory BIOs)."""
    context = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls_object = context.wrap_bio(incoming, outgoing, server_hostname=sni)
    try:
        tls_object.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


_SCANNER = []


def make_paths(directory):
    paths = []
    for name, content in (("egress.json", CONFIG), ("tokens.json", {"GITHUB_TOKEN": ROUTE_TOKEN}),
                          ("secrets.json", [KNOWN_SECRET])):
        path = os.path.join(directory, name)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(content, handle)
        paths.append(path)
    return paths


def make_firewall(directory):
    """A fresh Firewall (the kingfisher rules are compiled once per script)."""
    from bottle_firewall import dlp
    if not _SCANNER:
        cache = os.environ.get("BOTTLE_EGRESS_RULES_CACHE") or (
            "/opt/egress/rules-cache" if os.access("/opt/egress/rules-cache", os.W_OK) else None)
        _SCANNER.append(dlp.load_kingfisher(cache))
    return addon.Firewall(*make_paths(directory), audit_path="", engine=dlp.Engine(_SCANNER[0]), resolver=resolve,
                          audit_stream=io.StringIO())


async def run_one(test):
    log = Captured()
    root = logging.getLogger()
    root.addHandler(log)
    root.setLevel(logging.DEBUG)
    try:
        with tempfile.TemporaryDirectory() as directory:
            firewall = make_firewall(directory)
            proxyserver = Proxyserver()
            with taddons.context(proxyserver, firewall) as tctx:
                tctx.configure(proxyserver, connection_strategy="lazy")
                env = Env(tctx, firewall, proxyserver, log)
                await test(env)
                errors = [r for r in log.records if "Addon error" in r.getMessage()]
                assert not errors, "mitmproxy logged an addon error: " + errors[0].getMessage()[:800]
    finally:
        root.removeHandler(log)


def main(namespace):
    def defined_at(item):
        return getattr(item[1], "__code__", None) and item[1].__code__.co_firstlineno or 0

    tests = [(name, fn) for name, fn in sorted(namespace.items(), key=defined_at)
             if name.startswith("test_") and inspect.iscoroutinefunction(fn)]
    return asyncio.run(run_all(tests))


async def run_all(tests):
    """One event loop for every test (mitmproxy's master logs through the loop it was made on)."""
    passed = failed = 0
    for name, fn in tests:
        try:
            await run_one(fn)
        except Exception:
            failed += 1
            print("FAIL %s\n%s" % (name, "    " + traceback.format_exc().replace("\n", "\n    ")), flush=True)
        else:
            passed += 1
            print("ok   %s" % name, flush=True)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0
