# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Name resolution for egress: a cache that honours TTLs, one query per name in flight, and
timeouts short enough that a dropped query costs a fraction of a second.

Why not ``getaddrinfo``: clients such as npm open one tunnel per request (340 for a 74-package
install) and egress resolves the upstream name for each. glibc waits ``timeout:5`` seconds for
an answer that never comes, and the resolvers egress sits behind drop queries under exactly this
load: Docker's embedded DNS, conntrack races on UDP (glibc sends A and AAAA from one socket at
once), corporate resolvers. 16 of 32 parallel lookups of one name took 5.01 s in the bundle.
glibc's timeout cannot be lowered from the process (``RES_OPTIONS`` is read once, and its unit
is a whole second), so this module speaks DNS itself:

1. A name is looked up in ``/etc/hosts`` first (re-read when it changes), as nsswitch's
   ``files dns`` does: Docker writes the container's own names there, ``extra_hosts`` too.
2. Otherwise the cache answers while the answer's TTL lasts (the smallest TTL of the CNAME chain
   and its addresses). A name that does not exist, or has no address, is remembered for its
   SOA's negative TTL, at most ``negative_ttl`` seconds; a failure (no server answered,
   SERVFAIL) for ``failure_ttl`` seconds. The cache holds ``max_entries`` names, least
   recently used first out.
3. Concurrent lookups of one name share one lookup (one query per record type upstream).
4. A lookup sends A and AAAA queries, each from its own socket (a fresh random port and id: no
   conntrack race between them, nothing to spoof without guessing both) to the nameservers of
   ``/etc/resolv.conf`` in turn, waiting ``attempt_timeouts`` seconds for each attempt
   (0.2, 0.4, 0.8, 1.6 by default: one dropped query costs 0.2 s, and a lookup gives up after
   3 s). Once one of the two has addresses, the other gets ``grace`` (0.5 s) more: a resolver
   that never answers AAAA does not cost every lookup 3 s. A truncated answer is asked again
   over TCP. ``search`` and ``ndots`` are applied as glibc applies them, and resolv.conf is
   read again when it changes; its own ``timeout``/``attempts`` are deliberately not applied.
5. The answer is a list of address strings. The caller (``ssrf.SsrfGuard``) checks every one,
   cached or fresh alike, and egress dials the address it checked: a cache cannot open a
   rebinding window, since nothing is looked up again between the check and the dial.

A lookup that fails raises ``socket.gaierror`` (an ``OSError``), as ``getaddrinfo`` does.
"""

import asyncio
import collections
import functools
import ipaddress
import os
import random
import socket
import struct
import time

A, AAAA, CNAME, SOA, OPT = 1, 28, 5, 6, 41
NOERROR, SERVFAIL, NXDOMAIN = 0, 2, 3
EDNS_PAYLOAD = 1232


class DnsError(Exception):
    """A malformed or mismatched DNS message."""


def _encode_name(name):
    out = bytearray()
    for label in name.rstrip(".").split("."):
        raw = label.encode("idna") if any(ord(c) > 127 for c in label) else label.encode("ascii")
        if not raw or len(raw) > 63:
            raise UnicodeError("invalid label in %r" % name)
        out += bytes([len(raw)]) + raw
    if len(out) > 254:
        raise UnicodeError("name too long: %r" % name)
    return bytes(out) + b"\0"


def build_query(name, qtype, qid):
    """A recursive query for ``name``/``qtype`` with an EDNS0 OPT record (payload 1232)."""
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 1)
    opt = b"\0" + struct.pack("!HHIH", OPT, EDNS_PAYLOAD, 0, 0)
    return header + _encode_name(name) + struct.pack("!HH", qtype, 1) + opt


def _read_name(message, offset):
    """(lower-case name, offset after it) with compression pointers followed (loop-safe)."""
    labels, jumped, end, hops = [], False, None, 0
    while True:
        if offset >= len(message):
            raise DnsError("name runs past the message")
        length = message[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(message):
                raise DnsError("truncated pointer")
            hops += 1
            if hops > 64:
                raise DnsError("compression loop")
            if not jumped:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | message[offset + 1]
            jumped = True
            continue
        if length & 0xC0:
            raise DnsError("unsupported label type")
        offset += 1
        if length == 0:
            break
        labels.append(message[offset:offset + length].decode("ascii", "replace").lower())
        offset += length
    return ".".join(labels), (end if jumped else offset)


class Answer:
    """One parsed response: rcode, truncation, the addresses of ``qtype`` for the name (through
    its CNAME chain), the TTL they may be kept."""

    __slots__ = ("rcode", "truncated", "addresses", "ttl")

    def __init__(self, rcode, truncated, addresses, ttl):
        self.rcode, self.truncated, self.addresses, self.ttl = rcode, truncated, addresses, ttl


def parse_response(message, qid, name, qtype):
    """Check that ``message`` answers our question (id, QR, question echoed) and read it."""
    if len(message) < 12:
        raise DnsError("short message")
    rid, flags, qdcount, ancount, nscount, _arcount = struct.unpack("!HHHHHH", message[:12])
    if rid != qid or not flags & 0x8000:
        raise DnsError("not an answer to this query")
    if qdcount != 1:
        raise DnsError("question not echoed")
    qname, offset = _read_name(message, 12)
    if offset + 4 > len(message):
        raise DnsError("truncated question")
    rtype, _rclass = struct.unpack("!HH", message[offset:offset + 4])
    if qname != name.rstrip(".").lower() or rtype != qtype:
        raise DnsError("answer to another question")
    offset += 4
    rcode, truncated = flags & 0x000F, bool(flags & 0x0200)
    records = []
    for _index in range(ancount + nscount):
        owner, offset = _read_name(message, offset)
        if offset + 10 > len(message):
            raise DnsError("truncated record")
        rtype, rclass, ttl, rdlength = struct.unpack("!HHIH", message[offset:offset + 10])
        offset += 10
        rdata_at = offset
        offset += rdlength
        if offset > len(message):
            raise DnsError("truncated record data")
        records.append((owner, rtype, rclass, ttl, rdata_at, rdlength))
    chain, ttls, addresses = {qname}, [], []
    answers = records[:ancount]
    # CNAMEs may come in any order: follow the chain until it stops growing.
    grew = True
    while grew:
        grew = False
        for owner, rtype, rclass, ttl, at, _length in answers:
            if rtype == CNAME and rclass == 1 and owner in chain:
                target = _read_name(message, at)[0]
                if target not in chain:
                    chain.add(target)
                    ttls.append(ttl)
                    grew = True
    size = 4 if qtype == A else 16
    for owner, rtype, rclass, ttl, at, length in answers:
        if rtype == qtype and rclass == 1 and owner in chain and length == size:
            family = socket.AF_INET if qtype == A else socket.AF_INET6
            addresses.append(socket.inet_ntop(family, message[at:at + length]))
            ttls.append(ttl)
    if not addresses:  # negative: the SOA's TTL bounds how long the absence may be remembered
        for owner, rtype, rclass, ttl, at, length in records[ancount:]:
            if rtype == SOA and length >= 20:
                ttls.append(min(ttl, struct.unpack("!I", message[at + length - 4:at + length])[0]))
    return Answer(rcode, truncated, addresses, min(ttls) if ttls else 0)


class UdpTcpTransport:
    """The real network: one exchange is one query from a fresh socket, with a deadline."""

    async def exchange(self, server, packet, timeout, tcp=False):
        host, port = server
        loop = asyncio.get_running_loop()
        if tcp:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            try:
                writer.write(struct.pack("!H", len(packet)) + packet)
                size = struct.unpack("!H", await asyncio.wait_for(reader.readexactly(2), timeout))[0]
                return await asyncio.wait_for(reader.readexactly(size), timeout)
            finally:
                writer.close()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        received = loop.create_future()

        class Protocol(asyncio.DatagramProtocol):
            def datagram_received(self, data, addr):
                # Only the server we asked may answer (a first, cheap filter; the id and the
                # question are checked by the caller).
                if addr[0] == host and addr[1] == port and not received.done():
                    received.set_result(data)

            def error_received(self, exc):
                if not received.done():
                    received.set_exception(exc)

        transport, _protocol = await loop.create_datagram_endpoint(Protocol, family=family)
        try:
            transport.sendto(packet, (host, port))
            return await asyncio.wait_for(received, timeout)
        finally:
            transport.close()


def read_resolv_conf(path="/etc/resolv.conf"):
    """(nameservers as (host, 53), search domains, ndots) as glibc reads them."""
    servers, search, ndots = [], [], 1
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        fields = line.split("#", 1)[0].split(";", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            try:
                servers.append((str(ipaddress.ip_address(fields[1].split("%", 1)[0])), 53))
            except ValueError:
                continue
        elif fields[0] in ("search", "domain"):
            search = [domain.rstrip(".") for domain in fields[1:] if domain.rstrip(".")]
        elif fields[0] == "options":
            for option in fields[1:]:
                if option.startswith("ndots:") and option[6:].isdigit():
                    ndots = min(int(option[6:]), 15)
    return (servers or [("127.0.0.1", 53)])[:3], search, ndots


class HostsFile:
    """/etc/hosts, re-read when its mtime changes."""

    def __init__(self, path="/etc/hosts"):
        self.path = path
        self.mtime = "unread"
        self.table = {}

    def lookup(self, name):
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except OSError:
            mtime = None
        if mtime != self.mtime:
            self.mtime, self.table = mtime, self._read()
        return self.table.get(name)

    def _read(self):
        table = {}
        try:
            with open(self.path, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()
        except OSError:
            return table
        for line in lines:
            fields = line.split("#", 1)[0].split()
            if len(fields) < 2:
                continue
            try:
                address = str(ipaddress.ip_address(fields[0].split("%", 1)[0]))
            except ValueError:
                continue
            for name in fields[1:]:
                found = table.setdefault(name.lower().rstrip("."), [])
                if address not in found:
                    found.append(address)
        return table


def _failure(code, text, name):
    return socket.gaierror(code, "%s (%s)" % (text, name))


class Failure(tuple):
    """A remembered failed lookup: (gai error code, text)."""

    __slots__ = ()


class Resolver:
    """``await resolver(host, port)`` -> [address strings]; see the module's docstring.

    ``nameservers`` [(ip, port)], ``search`` and ``ndots`` default to /etc/resolv.conf's (read on
    first use); ``transport`` and ``clock`` are injectable for tests. ``stats`` counts upstream
    queries per (name, type) and lookups answered from each source."""

    def __init__(self, nameservers=None, search=None, ndots=None, hosts_path="/etc/hosts",
                 resolv_conf="/etc/resolv.conf", attempt_timeouts=(0.2, 0.4, 0.8, 1.6), max_entries=4096,
                 negative_ttl=5.0, failure_ttl=1.0, max_ttl=3600.0, grace=0.5, transport=None,
                 clock=time.monotonic):
        self._configured = (nameservers, search, ndots)
        self.resolv_conf = resolv_conf
        self.settings = None
        self.resolv_mtime = "unread"
        self.hosts = HostsFile(hosts_path) if hosts_path else None
        self.attempt_timeouts = tuple(attempt_timeouts)
        self.max_entries = max_entries
        self.negative_ttl, self.failure_ttl, self.max_ttl = negative_ttl, failure_ttl, max_ttl
        self.grace = grace
        self.transport = transport or UdpTcpTransport()
        self.clock = clock
        self.cache = collections.OrderedDict()  # name -> (expires, [addresses] or Failure)
        self.inflight = {}
        self.queries = collections.Counter()
        self.answered = collections.Counter()

    def _settings(self):
        """(nameservers, search, ndots); resolv.conf is read again when it changes, as glibc does."""
        try:
            mtime = os.stat(self.resolv_conf).st_mtime_ns
        except OSError:
            mtime = None
        if self.settings is None or mtime != self.resolv_mtime:
            self.resolv_mtime = mtime
            servers, search, ndots = read_resolv_conf(self.resolv_conf)
            wanted_servers, wanted_search, wanted_ndots = self._configured
            self.settings = (list(wanted_servers) if wanted_servers else servers,
                             list(search if wanted_search is None else wanted_search),
                             ndots if wanted_ndots is None else wanted_ndots)
        return self.settings

    async def __call__(self, host, port=None):
        return await self.resolve(host)

    async def resolve(self, host):
        name = (host or "").strip().lower().rstrip(".")
        if not name:
            raise _failure(socket.EAI_NONAME, "empty name", host)
        if self.hosts is not None:
            found = self.hosts.lookup(name)
            if found:
                self.answered["hosts"] += 1
                return list(found)
        now = self.clock()
        entry = self.cache.get(name)
        if entry is not None:
            expires, value = entry
            if now < expires:
                self.cache.move_to_end(name)
                self.answered["cache"] += 1
                if isinstance(value, Failure):
                    raise _failure(value[0], value[1], name)
                return list(value)
            del self.cache[name]
        task = self.inflight.get(name)
        if task is None:
            self.answered["upstream"] += 1
            task = asyncio.ensure_future(self._lookup(name))
            self.inflight[name] = task
            task.add_done_callback(functools.partial(self._finished, name))
        else:
            self.answered["coalesced"] += 1
        # shield: a caller that goes away (the agent hung up) does not cancel the others' lookup.
        return list(await asyncio.shield(task))

    def _finished(self, name, task):
        self.inflight.pop(name, None)
        if not task.cancelled():
            task.exception()  # retrieved: every caller may have gone away before it ended

    def _remember(self, name, value, ttl):
        if ttl <= 0:
            return
        self.cache[name] = (self.clock() + min(ttl, self.max_ttl), value)
        self.cache.move_to_end(name)
        while len(self.cache) > self.max_entries:
            self.cache.popitem(last=False)

    def _candidates(self, name):
        _servers, search, ndots = self._settings()
        qualified = [name + "." + domain for domain in search]
        if name.count(".") >= ndots:
            return [name] + qualified
        return qualified + [name]

    async def _lookup(self, name):
        failure = None
        for candidate in self._candidates(name):
            outcome, ttl = await self._lookup_one(candidate)
            if isinstance(outcome, list):
                self._remember(name, outcome, ttl)
                return outcome
            # A temporary failure of any candidate wins over "does not exist": the name may exist.
            if failure is None or failure[0] == socket.EAI_NONAME:
                failure = (outcome, ttl)
        (code, text), ttl = failure
        self._remember(name, Failure((code, text)), ttl)
        raise _failure(code, text, name)

    async def _lookup_one(self, name):
        """(addresses, ttl) or ((gai code, text), how long to remember it).

        A and AAAA go out at once; once one of them has addresses, the other gets ``grace``
        seconds more (a resolver that never answers AAAA must not cost every lookup 3 s)."""
        tasks = [asyncio.ensure_future(self._query(name, qtype)) for qtype in (A, AAAA)]
        try:
            pending = set(tasks)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                if pending and any(task.result() is not None and task.result().addresses for task in done):
                    await asyncio.wait(pending, timeout=self.grace)
                    break
        finally:
            for task in tasks:
                if not task.done():
                    task.cancel()
        answers = [task.result() for task in tasks if task.done() and not task.cancelled()
                   and task.result() is not None]
        addresses = [address for answer in answers for address in answer.addresses]
        if addresses:
            return addresses, min(answer.ttl for answer in answers if answer.addresses)
        if len(answers) == 2 and all(answer.rcode in (NOERROR, NXDOMAIN) for answer in answers):
            ttl = min([self.negative_ttl] + [answer.ttl for answer in answers])
            return (socket.EAI_NONAME, "Name or service not known"), ttl
        return (socket.EAI_AGAIN, "Temporary failure in name resolution"), self.failure_ttl

    async def _query(self, name, qtype):
        """The Answer of the first server that answers (NOERROR or NXDOMAIN), else None."""
        servers = self._settings()[0]
        for attempt, timeout in enumerate(self.attempt_timeouts):
            server = servers[attempt % len(servers)]
            qid = random.getrandbits(16)
            packet = build_query(name, qtype, qid)
            self.queries[(name, qtype)] += 1
            try:
                message = await self.transport.exchange(server, packet, timeout)
                answer = parse_response(message, qid, name, qtype)
                if answer.truncated:
                    message = await self.transport.exchange(server, packet, max(timeout, 1.0), tcp=True)
                    answer = parse_response(message, qid, name, qtype)
            except (asyncio.TimeoutError, OSError, DnsError, EOFError, asyncio.IncompleteReadError):
                continue
            if answer.rcode in (NOERROR, NXDOMAIN):
                return answer
        return None
