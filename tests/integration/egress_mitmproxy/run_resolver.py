# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""egress's resolver (bottle_firewall/resolver.py) over real UDP, in the bundle image, against
the test internet's DNS server (images/testnet/dnsserver.py, mounted at /testnet) on loopback,
told to drop half of the queries that arrive together, as the resolvers of issue 22 do.

What is proved is the mechanism: one upstream query per name and type per TTL (coalesced, the
dropped ones asked again once), no lookup over 1 s although queries are lost (glibc would wait
5 s), and the firewall dialling the address its SSRF check passed. Timings belong in bench/."""

import asyncio
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, "/testnet")

from harness import main  # noqa: E402

import dnsserver  # noqa: E402  (images/testnet/dnsserver.py)
from bottle_firewall.resolver import Resolver  # noqa: E402

ZONE = {
    "registry.bottle.test": [("A", "93.184.216.34"), ("AAAA", "2606:2800:220:1:248:1893:25c8:1946")],
    "pypi.bottle.test": [("A", "93.184.216.35")],
    "www.example.com": [("A", "93.184.216.34")],
    "localhost.example.com": [("A", "127.0.0.1")],
}


def dropping_server():
    return dnsserver.Server(dnsserver.Zone(ZONE, ttl=60), "127.0.0.1", 0, drop_share=0.5, window=0.05).start()


def answered(server, name):
    return {kind: server.counts[(name, kind)] - server.dropped[(name, kind)] for kind in ("A", "AAAA")}


async def timed(resolver, name):
    started = time.monotonic()
    addresses = await resolver(name, 443)
    return time.monotonic() - started, addresses


async def test_concurrent_lookups_send_one_query_per_name_per_ttl_and_none_stalls(env):
    server = dropping_server()
    try:
        resolver = Resolver(nameservers=[server.address], search=[], hosts_path=None)
        names = ["registry.bottle.test", "pypi.bottle.test"]
        results = await asyncio.gather(*[timed(resolver, name) for name in names for _index in range(32)])
        assert sum(server.dropped.values()) > 0, "the server dropped nothing: %r" % dict(server.counts)
        worst = max(seconds for seconds, _addresses in results)
        assert worst < 1.0, "a lookup took %.2f s with queries dropped" % worst
        assert {tuple(addresses) for _seconds, addresses in results} == {
            ("93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"), ("93.184.216.35",)}
        for name in names:
            assert answered(server, name) == {"A": 1, "AAAA": 1}, (name, dict(server.counts), dict(server.dropped))
        before = sum(server.counts.values())
        await asyncio.gather(*[resolver(name, 443) for name in names for _index in range(32)])
        assert sum(server.counts.values()) == before, "cached answers were asked again"
    finally:
        server.stop()


async def test_the_firewall_dials_the_address_its_check_passed(env):
    server = dropping_server()
    try:
        resolver = Resolver(nameservers=[server.address], search=[], hosts_path=None)
        env.fw.resolver = env.fw.guard.resolver = resolver
        connects = await asyncio.gather(*[env.connect("www.example.com") for _index in range(16)])
        for _client, connect in connects:
            assert connect.response is None and connect.request.host == "93.184.216.34", connect.request.host
        assert answered(server, "www.example.com") == {"A": 1, "AAAA": 1}
        flow, data = await env.https("localhost.example.com")  # resolves (from the cache too) to loopback
        text = flow.response.get_text()
        assert flow.response.status_code == 403 and "127.0.0.1, a loopback address" in text, text
        flow, data = await env.https("localhost.example.com")
        assert flow.response.status_code == 403
        assert answered(server, "localhost.example.com")["A"] == 1
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main(globals()))
