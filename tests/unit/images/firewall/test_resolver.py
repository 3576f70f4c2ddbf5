# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""egress's resolver (bottle_firewall/resolver.py) against the test internet's own DNS server
(images/testnet/dnsserver.py) as a fake transport: real DNS messages both ways, no network.

The transport answers in virtual time: a dropped query costs the attempt's timeout on a virtual
clock and each chain of attempts records what it waited, so "no lookup over 1 s with a dropped
query" is a count of timeouts, not a stopwatch."""

from __future__ import annotations

import asyncio
import importlib.util
import ipaddress
import os
import pathlib
import socket

import pytest

from bottle_firewall import policy, resolver as resolver_module, ssrf

TESTNET = pathlib.Path(__file__).resolve().parents[4] / "images" / "testnet"
_spec = importlib.util.spec_from_file_location("testnet_dnsserver", TESTNET / "dnsserver.py")
dnsserver = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dnsserver)

SERVER = ("192.0.2.53", 53)
ZONE = {
    "registry.bottle.test": [("A", "93.184.216.34"), ("AAAA", "2606:2800:220:1:248:1893:25c8:1946")],
    "v4only.bottle.test": [("A", "93.184.216.35")],
    "www.bottle.test": [("CNAME", "registry.bottle.test")],
    "internal.bottle.test": [("A", "10.1.2.3")],
    "rebind.bottle.test": [("A", "93.184.216.36"), ("AAAA", "::1")],
    "noaddr.bottle.test": [("CNAME", "nowhere.bottle.test")],
}


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class FakeTransport:
    """Every exchange goes to dnsserver.Zone; ``drop(name, qtype, n)`` decides the n-th query of
    a (name, type) is lost. ``waited[(name, qtype)]`` sums the timeouts spent on lost queries."""

    def __init__(self, zone, clock, drop=lambda name, qtype, n: False):
        self.zone, self.clock, self.drop = zone, clock, drop
        self.sent = []
        self.waited = {}
        self.tcp = 0

    async def exchange(self, server, packet, timeout, tcp=False):
        _qid, _flags, name, qtype, _end = dnsserver.read_question(packet)
        key = (name, qtype)
        self.sent.append((server, name, qtype, tcp))
        self.tcp += tcp
        await asyncio.sleep(0)  # let the other callers in: coalescing must hold across awaits
        n = sum(1 for s in self.sent if (s[1], s[2]) == key)
        if not tcp and self.drop(name, qtype, n):
            self.waited[key] = self.waited.get(key, 0.0) + timeout
            for _turn in range(5):  # a lost query is slower than an answered one: let answers overtake it
                await asyncio.sleep(0)
            raise asyncio.TimeoutError()
        return self.zone.respond(packet)

    def upstream(self, name):
        return sum(1 for s in self.sent if s[1] == name)


@pytest.fixture
def clock():
    return Clock()


def make(clock, drop=lambda name, qtype, n: False, zone=None, **kwargs):
    transport = FakeTransport(zone or dnsserver.Zone(ZONE, ttl=60, negative_ttl=5), clock, drop)
    kwargs.setdefault("nameservers", [SERVER])
    kwargs.setdefault("search", [])
    resolver = resolver_module.Resolver(hosts_path=None, transport=transport, clock=clock, **kwargs)
    return resolver, transport


def run(coro):
    return asyncio.run(coro)


def test_an_answer_is_cached_for_its_ttl_then_asked_again(clock):
    resolver, transport = make(clock)
    assert run(resolver("registry.bottle.test", 443)) == ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]
    assert transport.upstream("registry.bottle.test") == 2  # one A, one AAAA
    clock.now += 59
    assert run(resolver("REGISTRY.bottle.test.", 443))[0] == "93.184.216.34"
    assert transport.upstream("registry.bottle.test") == 2
    clock.now += 2
    run(resolver("registry.bottle.test", 443))
    assert transport.upstream("registry.bottle.test") == 4


def test_concurrent_lookups_of_one_name_send_one_query_per_type(clock):
    resolver, transport = make(clock)

    async def many():
        return await asyncio.gather(*[resolver("registry.bottle.test", 443) for _index in range(32)])

    results = run(many())
    assert all(result == results[0] for result in results)
    assert [(name, qtype) for _server, name, qtype, _tcp in transport.sent] in (
        [("registry.bottle.test", 1), ("registry.bottle.test", 28)],
        [("registry.bottle.test", 28), ("registry.bottle.test", 1)])
    assert resolver.answered["coalesced"] == 31


def test_a_dropped_query_costs_one_short_retry_and_is_asked_once_more(clock):
    # Every first query of each type is lost, as the resolver of the issue loses half of them.
    resolver, transport = make(clock, drop=lambda name, qtype, n: n == 1)

    async def many():
        return await asyncio.gather(*[resolver(name, 443) for name in ("registry.bottle.test", "v4only.bottle.test")
                                      for _index in range(16)])

    results = run(many())
    assert results[0][0] == "93.184.216.34" and results[-1] == ["93.184.216.35"]
    assert transport.waited and max(transport.waited.values()) < 1.0
    assert max(transport.waited.values()) == pytest.approx(resolver.attempt_timeouts[0])
    for name in ("registry.bottle.test", "v4only.bottle.test"):
        assert transport.upstream(name) == 4  # A and AAAA, each lost once and asked again


def test_an_empty_aaaa_answer_first_does_not_cut_the_a_retry(clock):
    # AAAA answers "no such record" at once while the A query was lost and is being asked again.
    resolver, transport = make(clock, drop=lambda name, qtype, n: qtype == 1 and n == 1)
    assert run(resolver("v4only.bottle.test", 443)) == ["93.184.216.35"]


def test_half_of_all_queries_dropped_still_answers_within_a_second(clock):
    resolver, transport = make(clock, drop=lambda name, qtype, n: n % 2 == 1)
    worst = 0.0
    for _round in range(20):
        clock.now += 3600  # expired: every round asks upstream again
        transport.waited = {}
        assert run(resolver("registry.bottle.test", 443))[0] == "93.184.216.34"
        worst = max([worst] + list(transport.waited.values()))
    assert 0 < worst < 1.0
    assert transport.upstream("registry.bottle.test") == 20 * 2 * 2  # every query lost once, asked again


def test_a_resolver_that_never_answers_aaaa_costs_only_the_grace(clock):
    resolver, transport = make(clock)
    answer_a = transport.exchange
    hung = []

    async def exchange(server, packet, timeout, tcp=False):
        if dnsserver.read_question(packet)[3] == 28:
            hung.append(asyncio.get_running_loop().create_future())
            return await hung[-1]  # never answered, never times out by itself
        return await answer_a(server, packet, timeout, tcp)

    transport.exchange = exchange
    resolver.grace = 0.01  # once A has answered, AAAA gets this much more
    assert run(resolver("registry.bottle.test", 443)) == ["93.184.216.34"]
    assert len(hung) == 1 and hung[0].cancelled()


def test_no_answer_at_all_fails_like_getaddrinfo_and_is_remembered_briefly(clock):
    resolver, transport = make(clock, drop=lambda name, qtype, n: True)
    with pytest.raises(socket.gaierror) as info:
        run(resolver("registry.bottle.test", 443))
    assert info.value.errno == socket.EAI_AGAIN and "registry.bottle.test" in str(info.value)
    attempts = len(resolver.attempt_timeouts)
    assert transport.upstream("registry.bottle.test") == 2 * attempts
    assert max(transport.waited.values()) == pytest.approx(sum(resolver.attempt_timeouts))
    with pytest.raises(socket.gaierror):
        run(resolver("registry.bottle.test", 443))
    assert transport.upstream("registry.bottle.test") == 2 * attempts  # the failure was cached
    clock.now += resolver.failure_ttl + 0.01
    with pytest.raises(socket.gaierror):
        run(resolver("registry.bottle.test", 443))
    assert transport.upstream("registry.bottle.test") == 4 * attempts


def test_a_name_that_does_not_exist_is_cached_for_the_short_negative_ttl(clock):
    resolver, transport = make(clock, negative_ttl=3.0)
    for _index in range(3):
        with pytest.raises(socket.gaierror) as info:
            run(resolver("missing.bottle.test", 443))
        assert info.value.errno == socket.EAI_NONAME
    assert transport.upstream("missing.bottle.test") == 2
    clock.now += 3.01  # min(SOA minimum 5 s, negative_ttl 3 s)
    with pytest.raises(socket.gaierror):
        run(resolver("missing.bottle.test", 443))
    assert transport.upstream("missing.bottle.test") == 4


def test_a_cname_chain_is_followed_and_a_dangling_one_does_not_resolve(clock):
    resolver, _transport = make(clock)
    assert run(resolver("www.bottle.test", 443))[0] == "93.184.216.34"
    with pytest.raises(socket.gaierror):
        run(resolver("noaddr.bottle.test", 443))


def test_the_cache_is_bounded_least_recently_used_first_out(clock):
    resolver, transport = make(clock, max_entries=2)
    run(resolver("registry.bottle.test", 443))
    run(resolver("v4only.bottle.test", 443))
    run(resolver("registry.bottle.test", 443))  # used again: v4only is now the oldest
    run(resolver("www.bottle.test", 443))
    assert list(resolver.cache) == ["registry.bottle.test", "www.bottle.test"]
    run(resolver("v4only.bottle.test", 443))
    assert transport.upstream("v4only.bottle.test") == 4


def test_answers_are_checked_against_the_question():
    packet = resolver_module.build_query("registry.bottle.test", 1, 4242)
    zone = dnsserver.Zone(ZONE)
    answer = resolver_module.parse_response(zone.respond(packet), 4242, "registry.bottle.test", 1)
    assert answer.addresses == ["93.184.216.34"] and answer.ttl == 60
    with pytest.raises(resolver_module.DnsError):  # another id: a spoofing attempt or a stale answer
        resolver_module.parse_response(zone.respond(packet), 4243, "registry.bottle.test", 1)
    with pytest.raises(resolver_module.DnsError):
        resolver_module.parse_response(zone.respond(packet), 4242, "other.bottle.test", 1)
    with pytest.raises(resolver_module.DnsError):
        resolver_module.parse_response(b"\x10\x92\x81\x80\x00", 4242, "registry.bottle.test", 1)


def test_records_outside_the_cname_chain_are_ignored():
    packet = resolver_module.build_query("a.bottle.test", 1, 7)
    reply = bytearray(dnsserver.Zone({"a.bottle.test": [("A", "93.184.216.34")]}).respond(packet))
    # Append an A record for another name (an injection attempt riding along the answer).
    reply += dnsserver.encode_name("evil.bottle.test") + bytes.fromhex("0001 0001 0000003c 0004") + bytes([10, 0, 0, 1])
    reply[6:8] = (2).to_bytes(2, "big")
    answer = resolver_module.parse_response(bytes(reply), 7, "a.bottle.test", 1)
    assert answer.addresses == ["93.184.216.34"]


def test_a_truncated_answer_is_asked_again_over_tcp(clock):
    class Truncating(dnsserver.Zone):
        def respond(self, packet):
            reply = bytearray(super().respond(packet))
            return bytes(reply[:2]) + bytes([reply[2] | 0x02]) + bytes(reply[3:12]) + bytes(reply[12:])

    zone = Truncating(ZONE)
    resolver, transport = make(clock, zone=zone)

    async def exchange(server, packet, timeout, tcp=False):
        transport.sent.append((server, None, None, tcp))
        reply = dnsserver.Zone.respond(zone, packet) if tcp else zone.respond(packet)
        return reply

    transport.exchange = exchange
    assert run(resolver("registry.bottle.test", 443))[0] == "93.184.216.34"
    assert sum(1 for s in transport.sent if s[3]) == 2  # A and AAAA each asked again over TCP


def test_hosts_file_answers_first_and_is_reread_when_it_changes(tmp_path, clock):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n# comment\n172.30.0.9 pinned.bottle.test pinned\n", encoding="utf-8")
    transport = FakeTransport(dnsserver.Zone(ZONE), clock)
    resolver = resolver_module.Resolver(nameservers=[SERVER], search=[], hosts_path=str(hosts), transport=transport,
                                        clock=clock)
    assert run(resolver("pinned.bottle.test", 443)) == ["172.30.0.9"]
    assert transport.sent == []
    hosts.write_text("172.30.0.10 pinned.bottle.test\n", encoding="utf-8")
    os.utime(hosts, ns=(1, 2))  # a different mtime, whatever the file system's granularity
    assert run(resolver("pinned.bottle.test", 443)) == ["172.30.0.10"]


def test_search_and_ndots_apply_as_glibc_applies_them(clock):
    resolver, transport = make(clock, search=["bottle.test"], ndots=1)
    assert run(resolver("registry", 443))[0] == "93.184.216.34"
    assert [s[1] for s in transport.sent][:2] == ["registry.bottle.test"] * 2
    resolver, transport = make(clock, search=["example"], ndots=1)
    run(resolver("registry.bottle.test", 443))
    assert transport.sent[0][1] == "registry.bottle.test"  # dotted: asked as is first


def test_resolv_conf_is_read(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# docker\nnameserver 127.0.0.11\nnameserver fe80::1%eth0\nsearch a.test b.test\n"
                    "options ndots:0 timeout:5 attempts:2\n", encoding="utf-8")
    assert resolver_module.read_resolv_conf(str(conf)) == ([("127.0.0.11", 53), ("fe80::1", 53)],
                                                           ["a.test", "b.test"], 0)
    assert resolver_module.read_resolv_conf(str(tmp_path / "absent"))[0] == [("127.0.0.1", 53)]


def test_resolv_conf_is_read_again_when_it_changes(tmp_path, clock):
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 192.0.2.1\n", encoding="utf-8")
    transport = FakeTransport(dnsserver.Zone(ZONE), clock)
    resolver = resolver_module.Resolver(hosts_path=None, resolv_conf=str(conf), transport=transport, clock=clock)
    run(resolver("registry.bottle.test", 443))
    conf.write_text("nameserver 192.0.2.2\n", encoding="utf-8")
    os.utime(conf, ns=(1, 2))
    run(resolver("v4only.bottle.test", 443))
    assert [server for server, _name, _qtype, _tcp in transport.sent] == [("192.0.2.1", 53)] * 2 + [("192.0.2.2", 53)] * 2


def test_a_caller_that_goes_away_does_not_cancel_the_others_lookup(clock):
    resolver, transport = make(clock)

    async def scenario():
        first = asyncio.ensure_future(resolver("registry.bottle.test", 443))
        second = asyncio.ensure_future(resolver("registry.bottle.test", 443))
        await asyncio.sleep(0)
        first.cancel()
        return await second

    assert run(scenario())[0] == "93.184.216.34"


def guard(resolver, trusted=()):
    return ssrf.SsrfGuard(policy.HostSet(trusted), [], resolver)


def test_ssrf_is_applied_to_cached_answers_and_to_the_address_dialled(clock):
    resolver, transport = make(clock)
    for _index in range(2):  # fresh, then from the cache: refused alike
        result = asyncio.run(guard(resolver).resolve("internal.bottle.test", 443))
        assert not result.allowed and "10.1.2.3" in result.reason
        result = asyncio.run(guard(resolver).resolve("rebind.bottle.test", 443))
        assert not result.allowed and "loopback" in result.reason
    assert transport.upstream("internal.bottle.test") == 2
    result = asyncio.run(guard(resolver).resolve("registry.bottle.test", 443))
    assert result.allowed and result.ip == "93.184.216.34"
    assert ipaddress.ip_address(result.ip) in [ipaddress.ip_address(a) for a in
                                               asyncio.run(resolver("registry.bottle.test", 443))]


def test_egress_uses_the_cached_resolver_by_default():
    assert isinstance(ssrf.system_resolver, resolver_module.Resolver)
    assert ssrf.SsrfGuard(policy.HostSet(()), []).resolver is ssrf.system_resolver
