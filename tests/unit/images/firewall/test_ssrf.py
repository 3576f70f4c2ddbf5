# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SSRF: every internal range, IPv6 and embedded IPv4 forms, odd spellings, exemptions."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest

from bottle_firewall import policy, ssrf


@pytest.mark.parametrize("spelling, address", [
    ("127.0.0.1", "127.0.0.1"),
    ("2130706433", "127.0.0.1"),
    ("0x7f000001", "127.0.0.1"),
    ("0x7F.0.0.1", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
    ("127.0.1", "127.0.0.1"),
    ("[::1]", "::1"),
    ("::ffff:127.0.0.1", "::ffff:7f00:1"),
    ("fe80::1%eth0", "fe80::1"),
    ("169.254.169.254.", "169.254.169.254"),
])
def test_odd_ip_spellings_are_decoded(spelling, address):
    assert str(ssrf.parse_ip_literal(spelling)) == address


@pytest.mark.parametrize("name", ["example.com", "cafe.be", "1e100.net", "deadbeef", "0x", "", "a.0x1", "1.2.3.4.5"])
def test_names_are_not_addresses(name):
    assert ssrf.parse_ip_literal(name) is None


@pytest.mark.parametrize("address, fragment", [
    ("0.0.0.0", "this-network"),
    ("0.1.2.3", "this-network"),
    ("10.1.2.3", "private (10.0.0.0/8)"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.254", "carrier-grade NAT"),
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("169.254.169.254", "cloud metadata"),
    ("172.16.0.1", "private (172.16.0.0/12)"),
    ("172.31.255.255", "private (172.16.0.0/12)"),
    ("192.168.1.1", "private (192.168.0.0/16)"),
    ("192.0.0.8", "reserved"),
    ("198.18.0.1", "benchmarking"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fc00::1", "unique-local"),
    ("fd12:3456::1", "unique-local"),
    ("fe80::1", "link-local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
    ("::127.0.0.1", "IPv4-compatible loopback"),
    ("::10.0.0.1", "IPv4-compatible private"),
    ("64:ff9b::a00:1", "NAT64 private"),
    ("2002:7f00:1::", "6to4 loopback"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
])
def test_internal_addresses_are_classified(address, fragment):
    assert fragment in ssrf.address_class(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "172.32.0.1", "100.128.0.1", "192.0.2.7",
                                     "2606:2800:220:1:248:1893:25c8:1946", "::ffff:8.8.8.8", "2002:808:808::"])
def test_public_addresses_pass(address):
    assert ssrf.address_class(address) is None


def guard(resolver, trusted=(), networks=()):
    return ssrf.SsrfGuard(policy.HostSet(trusted), [ipaddress.ip_network(n) for n in networks], resolver)


def resolve(g, host, port=443):
    return asyncio.run(g.resolve(host, port))


def test_a_name_is_refused_if_any_address_is_internal(resolver):
    result = resolve(guard(resolver), "rebind.example.com")
    assert not result.allowed and "127.0.0.1" in result.reason and "loopback" in result.reason
    assert resolve(guard(resolver), "metadata.example.com").reason.endswith("(169.254.0.0/16, cloud metadata)")
    assert not resolve(guard(resolver), "v6local.example.com").allowed


def test_the_checked_address_is_returned_and_ipv4_preferred(resolver):
    assert resolve(guard(resolver), "allowed.example.com").ip == "93.184.216.34"
    assert resolve(guard(resolver), "v6.example.com").ip == "2606:2800:220:1:248:1893:25c8:1946"


@pytest.mark.parametrize("literal", ["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "[::1]", "::ffff:10.0.0.1"])
def test_literals_in_odd_spellings_are_checked_as_what_they_are(resolver, literal):
    result = resolve(guard(resolver), literal)
    assert not result.allowed and result.ip is not None


def test_trusted_domains_and_allowlisted_networks_are_exempt(resolver):
    g = guard(resolver, trusted=["internal.example.org"], networks=["172.30.0.0/16"])
    assert resolve(g, "internal.example.org").ip == "10.1.2.3"
    assert resolve(g, "testnet.example.com").ip == "172.30.0.5"
    assert not resolve(g, "metadata.example.com").allowed
    assert not resolve(guard(resolver), "testnet.example.com").allowed


def test_an_unresolvable_name_is_refused_with_502(resolver):
    result = resolve(guard(resolver), "nxdomain.example.com")
    assert not result.allowed and result.status == 502 and "does not resolve" in result.reason
