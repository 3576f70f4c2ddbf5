# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SSRF: which addresses egress may dial for the agent.

An allowlisted *name* may still resolve to an address inside the bundle's own networks
(the docker host, a sibling bottle, the cloud metadata service at 169.254.169.254). So
every address a name resolves to is checked and, when any of them is internal, the name is
refused: a resolver answering with one public and one private address is exactly what a
DNS-rebinding attacker would return. The address that passed is the one egress dials (the
addon pins it per connection), so a second lookup cannot swap it.

IP literals come in spellings that ``ipaddress`` refuses but resolvers and ``inet_aton``
accept (``2130706433``, ``0x7f000001``, ``0177.0.0.1``, ``127.1``); they are decoded here
first, so that they are compared and checked as the address they really are.
"""

import ipaddress
import re
import socket

from .resolver import Resolver

_V4 = [(ipaddress.ip_network(net), name) for net, name in (
    ("0.0.0.0/8", "this-network (0.0.0.0/8)"),
    ("10.0.0.0/8", "private (10.0.0.0/8)"),
    ("100.64.0.0/10", "carrier-grade NAT (100.64.0.0/10)"),
    ("127.0.0.0/8", "loopback (127.0.0.0/8)"),
    ("169.254.0.0/16", "link-local (169.254.0.0/16, cloud metadata)"),
    ("172.16.0.0/12", "private (172.16.0.0/12)"),
    ("192.0.0.0/24", "reserved (192.0.0.0/24, IETF protocol assignments)"),
    ("192.168.0.0/16", "private (192.168.0.0/16)"),
    ("198.18.0.0/15", "reserved (198.18.0.0/15, benchmarking)"),
    ("224.0.0.0/4", "multicast (224.0.0.0/4)"),
    ("240.0.0.0/4", "reserved (240.0.0.0/4)"),
)]

_V6 = [(ipaddress.ip_network(net), name) for net, name in (
    ("::/128", "unspecified (::)"),
    ("::1/128", "loopback (::1)"),
    ("64:ff9b:1::/48", "reserved (64:ff9b:1::/48, local NAT64)"),
    ("100::/64", "reserved (100::/64, discard)"),
    ("2001::/32", "reserved (2001::/32, Teredo)"),
    ("fc00::/7", "unique-local (fc00::/7)"),
    ("fe80::/10", "link-local (fe80::/10)"),
    ("fec0::/10", "reserved (fec0::/10, site-local)"),
    ("ff00::/8", "multicast (ff00::/8)"),
)]
_COMPAT = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")

# Only strings made of these can be an odd IPv4 spelling; anything else is a name.
_ODD_V4 = re.compile(r"^(?:0[xX][0-9a-fA-F]+|[0-9]+)(?:\.(?:0[xX][0-9a-fA-F]+|[0-9]+)){0,3}$")


def parse_ip_literal(host):
    """The address ``host`` spells (``ipaddress`` object), or None when it is a name.

    Accepts what a client's resolver would also accept as an address: canonical IPv4/IPv6
    (with or without brackets, an IPv6 zone is dropped) and the inet_aton forms: one to four
    parts, each decimal, octal (leading 0) or hex (0x)."""
    if not host:
        return None
    text = host.strip().rstrip(".")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    if _ODD_V4.match(text):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(text))
        except OSError:
            return None
    return None


def address_phrase(name):
    """``loopback (127.0.0.0/8)`` -> ``a loopback address (127.0.0.0/8)``."""
    kind, sep, detail = name.partition(" (")
    vowel = kind[:1].lower() in "aeiou" and not kind.startswith("uni")  # "a unique-local"
    article = "an" if vowel or kind.startswith("IPv") else "a"
    return "%s %s address%s" % (article, kind, " (" + detail if sep else "")


def address_class(ip):
    """Why ``ip`` must not be dialled (a readable class name), or None when it is public.

    IPv6 forms that carry an IPv4 address (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d,
    NAT64 64:ff9b::a.b.c.d, 6to4 2002:aabb:ccdd::) are judged by the IPv4 address inside."""
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip)
    if ip.version == 4:
        for net, name in _V4:
            if ip in net:
                return name
        return None
    for net, name in _V6:
        if ip in net:
            return name
    embedded, form = None, None
    if ip.ipv4_mapped is not None:
        embedded, form = ip.ipv4_mapped, "IPv4-mapped"
    elif ip in _COMPAT:
        embedded, form = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "IPv4-compatible"
    elif ip in _NAT64:
        embedded, form = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
    elif ip.sixtofour is not None:
        embedded, form = ip.sixtofour, "6to4"
    if embedded is not None:
        inner = address_class(embedded)
        if inner:
            return "%s %s" % (form, inner)
    return None


# The resolver of egress's process (resolver.py: TTL cache, coalesced lookups, short timeouts),
# shared by every SsrfGuard so that its cache outlives a configuration reload.
system_resolver = Resolver()


class Resolution:
    """The outcome of checking one host: the address to dial, or why there is none."""

    __slots__ = ("ip", "reason", "status")

    def __init__(self, ip=None, reason=None, status=403):
        self.ip, self.reason, self.status = ip, reason, status

    @property
    def allowed(self):
        return self.ip is not None and self.reason is None

    def __repr__(self):
        return "Resolution(ip=%r, reason=%r)" % (self.ip, self.reason)


class SsrfGuard:
    """Resolve a host and check every address; trusted names and allowlisted CIDRs are exempt.

    ``trusted`` is a host matcher (``policy.HostSet``); ``networks`` the ssrf_ip_allowlist;
    ``resolver`` an async callable (host, port) -> [address strings], egress's cached resolver
    by default (tests inject their own)."""

    def __init__(self, trusted, networks, resolver=None):
        self.trusted = trusted
        self.networks = tuple(networks)
        self.resolver = resolver or system_resolver

    def refusal_for(self, ip):
        """Why ``ip`` may not be dialled (``a loopback address (127.0.0.0/8)``), or None."""
        if isinstance(ip, str):
            ip = ipaddress.ip_address(ip.split("%", 1)[0])
        if any(ip.version == net.version and ip in net for net in self.networks):
            return None
        name = address_class(ip)
        return None if name is None else address_phrase(name)

    async def resolve(self, host, port):
        """Check ``host`` (a name or an IP literal in any spelling) and pick the address to dial."""
        literal = parse_ip_literal(host)
        if literal is not None:
            reason = None if self.trusted.matches(str(literal)) else self.refusal_for(literal)
            return Resolution(str(literal), reason and "address %s is %s" % (literal, reason))
        try:
            addresses = await self.resolver(host, port)
        except (OSError, UnicodeError) as exc:
            return Resolution(None, "host %s does not resolve (%s)" % (host, type(exc).__name__), 502)
        parsed = []
        for address in addresses:
            try:
                parsed.append(ipaddress.ip_address(str(address).split("%", 1)[0]))
            except ValueError:
                return Resolution(None, "host %s resolves to something that is not an address" % host, 502)
        if not parsed:
            return Resolution(None, "host %s does not resolve" % host, 502)
        if not self.trusted.matches(host):
            for ip in parsed:
                reason = self.refusal_for(ip)
                if reason:
                    return Resolution(None, "host %s resolves to %s, %s" % (host, ip, reason))
        # Prefer IPv4: the bundle's way out is not guaranteed to have IPv6.
        chosen = next((ip for ip in parsed if ip.version == 4), parsed[0])
        return Resolution(str(chosen), None)
