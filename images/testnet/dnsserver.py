# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small authoritative DNS server for the test internet, which can drop queries on purpose.

It reproduces what stalls a firewall that resolves per connection: Docker's embedded DNS, a
conntrack-raced UDP path or a corporate resolver dropping some of the queries that arrive
together. ``drop_share`` (0..1) of the queries that arrive within ``window`` seconds of the
previous one are dropped, deterministically (an accumulator, not a random draw: a test knows
how many). Lone queries are always answered.

Zone: name -> [(type, value)] with type A, AAAA or CNAME; every record has ``ttl``. An unknown
name is NXDOMAIN, a known one without the type asked NOERROR with no answer; both carry an SOA
whose minimum is ``negative_ttl``. TCP is served too (length-prefixed), never dropped.

    python3 dnsserver.py --listen 0.0.0.0:53 --ttl 60 --drop-share 0.5 \
        registry.bottle.test=A:172.30.0.5 www.bottle.test=CNAME:registry.bottle.test

Each query is counted per (name, type) in ``Server.counts``; with ``--log`` one line per query
goes to stdout (``dns <unix time, ms> <name> <type> answered|dropped``): a test reads from it how
many queries a client sent per name and how long its lookup took, drops and retries included.
"""

import argparse
import collections
import socket
import socketserver
import struct
import sys
import threading
import time

TYPES = {"A": 1, "AAAA": 28, "CNAME": 5}
NAMES = {value: key for key, value in TYPES.items()}
SOA = 6


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


def read_question(packet):
    """(id, flags, name, qtype, offset after the question) of a query (no compression)."""
    qid, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if qdcount != 1:
        raise ValueError("one question expected")
    labels, offset = [], 12
    while packet[offset]:
        length = packet[offset]
        labels.append(packet[offset + 1:offset + 1 + length].decode("ascii").lower())
        offset += 1 + length
    qtype = struct.unpack("!H", packet[offset + 1:offset + 3])[0]
    return qid, flags, ".".join(labels), qtype, offset + 5


class Zone:
    def __init__(self, records, ttl=60, negative_ttl=5):
        self.records = {name.lower().rstrip("."): list(entries) for name, entries in records.items()}
        self.ttl, self.negative_ttl = ttl, negative_ttl

    def _rr(self, name, rtype, rdata):
        return encode_name(name) + struct.pack("!HHIH", rtype, 1, self.ttl, len(rdata)) + rdata

    def respond(self, packet):
        qid, flags, name, qtype, end = read_question(packet)
        answers, current, seen = [], name, set()
        while current in self.records and current not in seen:
            seen.add(current)
            entries = self.records[current]
            cname = next((value for kind, value in entries if kind == "CNAME"), None)
            if cname and qtype != TYPES["CNAME"]:
                answers.append(self._rr(current, TYPES["CNAME"], encode_name(cname)))
                current = cname.lower().rstrip(".")
                continue
            for kind, value in entries:
                if TYPES[kind] == qtype:
                    family = socket.AF_INET if kind == "A" else socket.AF_INET6
                    answers.append(self._rr(current, qtype, socket.inet_pton(family, value)))
            break
        rcode = 0 if name in self.records else 3
        authority = []
        if not answers:
            soa = encode_name("ns.test") + encode_name("admin.test") + struct.pack(
                "!IIIII", 1, 3600, 600, 86400, self.negative_ttl)
            authority.append(encode_name("test") + struct.pack("!HHIH", SOA, 1, self.negative_ttl, len(soa)) + soa)
        header = struct.pack("!HHHHHH", qid, 0x8180 | (flags & 0x0100) | rcode, 1, len(answers), len(authority), 0)
        return header + packet[12:end] + b"".join(answers) + b"".join(authority)


class Dropper:
    """Decides which queries to drop: ``share`` of those within ``window`` s of the previous."""

    def __init__(self, share=0.0, window=0.05, clock=time.monotonic):
        self.share, self.window, self.clock = share, window, clock
        self.last = None
        self.owed = 0.0
        self.lock = threading.Lock()

    def drop(self):
        with self.lock:
            now = self.clock()
            concurrent = self.last is not None and now - self.last <= self.window
            self.last = now
            if not concurrent or self.share <= 0:
                return False
            self.owed += self.share
            if self.owed >= 1.0:
                self.owed -= 1.0
                return True
            return False


class Server:
    """UDP and TCP on one address, each in a thread. ``counts[(name, type)]`` per query."""

    def __init__(self, zone, host="127.0.0.1", port=0, drop_share=0.0, window=0.05, log=False):
        self.zone = zone
        self.dropper = Dropper(drop_share, window)
        self.counts = collections.Counter()
        self.dropped = collections.Counter()
        self.log = log
        server = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self):
                data, sock = self.request
                reply = server.answer(data, may_drop=True)
                if reply is not None:
                    sock.sendto(reply, self.client_address)

        class Tcp(socketserver.StreamRequestHandler):
            def handle(self):
                size = struct.unpack("!H", self.rfile.read(2))[0]
                reply = server.answer(self.rfile.read(size), may_drop=False)
                self.wfile.write(struct.pack("!H", len(reply)) + reply)

        self.udp = socketserver.ThreadingUDPServer((host, port), Udp)
        port = self.udp.server_address[1]
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.tcp = socketserver.ThreadingTCPServer((host, port), Tcp)
        self.address = (host, port)
        self.threads = []

    def answer(self, data, may_drop):
        try:
            _qid, _flags, name, qtype, _end = read_question(data)
        except (ValueError, IndexError, struct.error):
            return None
        key = (name, NAMES.get(qtype, str(qtype)))
        self.counts[key] += 1
        dropped = may_drop and self.dropper.drop()
        if self.log:
            print("dns %.3f %s %s %s" % (time.time(), key[0], key[1], "dropped" if dropped else "answered"),
                  flush=True)
        if dropped:
            self.dropped[key] += 1
            return None
        return self.zone.respond(data)

    def start(self):
        for server in (self.udp, self.tcp):
            thread = threading.Thread(target=server.serve_forever, daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def stop(self):
        for server in (self.udp, self.tcp):
            server.shutdown()
            server.server_close()


def parse_records(specs):
    """["name=A:1.2.3.4", "alias=CNAME:name"] -> {name: [(type, value)]}"""
    records = {}
    for spec in specs:
        name, sep, rest = spec.partition("=")
        kind, sep2, value = rest.partition(":")
        if not sep or not sep2 or kind not in TYPES:
            raise SystemExit("record %r: expected name=A:address, name=AAAA:address or name=CNAME:target" % spec)
        records.setdefault(name.lower().rstrip("."), []).append((kind, value))
    return records


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--listen", default="0.0.0.0:53", help="address:port (UDP and TCP)")
    parser.add_argument("--ttl", type=int, default=60)
    parser.add_argument("--negative-ttl", type=int, default=5)
    parser.add_argument("--drop-share", type=float, default=0.0, help="share of concurrent queries dropped")
    parser.add_argument("--window", type=float, default=0.05, help="seconds within which queries are concurrent")
    parser.add_argument("--log", action="store_true")
    parser.add_argument("records", nargs="*")
    args = parser.parse_args(argv)
    host, _sep, port = args.listen.rpartition(":")
    server = Server(Zone(parse_records(args.records), args.ttl, args.negative_ttl), host, int(port),
                    args.drop_share, args.window, args.log).start()
    print("dns: listening on %s:%d, dropping %.0f%% of concurrent queries"
          % (host, server.address[1], args.drop_share * 100), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
