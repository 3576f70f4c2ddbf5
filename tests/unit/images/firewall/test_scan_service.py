# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""egress's scan service for git-gate (bottle_firewall/scan_service.py): the protocol, its limits,
fail-closed answers, every finding placed, never a secret in a reply; the addon starts it."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import struct
import tempfile

import pytest

from fakes import KNOWN_SECRET, ROUTE_TOKEN

from bottle_firewall import dlp, scan_service

GHP = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


@pytest.fixture
def known_engine(engine):
    engine.known.load([KNOWN_SECRET, ROUTE_TOKEN])
    return engine


@pytest.fixture
def sock_dir():
    path = tempfile.mkdtemp(prefix="ss-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def request(items, header=scan_service.MAGIC, end=True):
    data = scan_service.pack_frame(header)
    for label, payload in items:
        data += scan_service.pack_item(label, payload)
    return data + (struct.pack(">I", 0) if end else b"")


async def exchange(service, data):
    """Send ``data`` to the running service and return its decoded reply (None: closed, no reply)."""
    reader, writer = await asyncio.open_unix_connection(service.path)
    try:
        writer.write(data)
        await writer.drain()
        header = await reader.readexactly(4)
    except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError):
        writer.close()
        return None
    body = await reader.readexactly(struct.unpack(">I", header)[0])
    writer.close()
    return json.loads(body)


def run_service(engine, sock_dir, data_list, **kwargs):
    async def main():
        service = scan_service.ScanService(engine, os.path.join(sock_dir, "scan.sock"), **kwargs)
        await service.start()
        try:
            assert oct(os.stat(service.path).st_mode & 0o777) == "0o660"
            return [await exchange(service, data) for data in data_list]
        finally:
            service.close()
            assert not os.path.exists(service.path)
    return asyncio.run(main())


def test_every_finding_is_placed_by_item_and_rule_never_with_the_secret(known_engine, sock_dir):
    items = [("blob clean.txt (aaaaaaaaaaaa)", b"nothing here\n"),
             ("blob a.txt (bbbbbbbbbbbb)", b"x = " + KNOWN_SECRET.encode() + b"\n"),
             ("blob b.bin (cccccccccccc)", b"\0\x89PNG" + ROUTE_TOKEN.encode() + b"\xff\0"),
             ("commit dddddddddddd message", ("token " + GHP).encode()),
             ("ref refs/heads/" + GHP, b"refs/heads/" + GHP.encode())]
    (reply,) = run_service(known_engine, sock_dir, [request(items)], allowed_uids={os.getuid()})
    assert reply["ok"] is True and reply["items"] == 5
    found = {(f["item"], f["rule"].split(".")[0] if f["rule"].startswith("dlp:") else f["rule"]) for f in reply["findings"]}
    assert (1, "known-secret") in found and (2, "known-secret") in found
    assert any(i == 3 and r.startswith("dlp:") for i, r in found)
    assert any(i == 4 and r.startswith("dlp:") for i, r in found)
    assert not any(i == 0 for i, _r in found)
    wheres = {f["item"]: f["where"] for f in reply["findings"]}
    assert wheres[1] == "blob a.txt (bbbbbbbbbbbb)" and wheres[4] == "ref (name withheld)"
    text = json.dumps(reply)
    for secret in (KNOWN_SECRET, ROUTE_TOKEN, GHP, GHP[4:]):
        assert secret not in text


def test_a_batch_boundary_loses_no_finding(known_engine):
    batch = scan_service.BatchScanner(known_engine, batch_bytes=64)
    for index in range(30):
        batch.add("blob f%d (%012d)" % (index, index), (b"pad " * 10) + (KNOWN_SECRET.encode() if index % 7 == 3 else b""))
    assert sorted(f["item"] for f in batch.finish()) == [3, 10, 17, 24]


def test_a_second_finding_in_the_same_object_is_reported_too(known_engine):
    batch = scan_service.BatchScanner(known_engine)
    batch.add("blob x (000000000000)", ("a = %s\nb = %s\n" % (GHP, KNOWN_SECRET)).encode())
    rules = sorted(f["rule"] for f in batch.finish())
    assert rules[0].startswith("dlp:") and rules[1] == "known-secret"


def test_a_stranger_uid_gets_no_answer(known_engine, sock_dir):
    (reply,) = run_service(known_engine, sock_dir, [request([("blob a (0)", b"x")])], allowed_uids={os.getuid() + 1})
    assert reply is None


@pytest.mark.parametrize("data, reason", [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "frame of 1195725856 bytes is over the limit of 13"),
    (request([], header=b"BOTTLE-SCAN/9"), "not a BOTTLE-SCAN/1 request"),
    (request([("blob big (0)", b"x" * 6000)]), "frame of 6014 bytes is over the limit of 5098"),
    (request([("blob big (0)", b"x" * 1001)]), "item 0 is over the object limit of 1000 bytes"),
    (request([("blob a (0)", b"x")], end=False), "ended before its last frame"),
    (scan_service.pack_frame(scan_service.MAGIC) + scan_service.pack_frame(b"\x00"), "shorter than its label"),
])
def test_a_broken_or_oversized_request_is_refused(known_engine, sock_dir, data, reason):
    async def main():
        service = scan_service.ScanService(known_engine, os.path.join(sock_dir, "scan.sock"),
                                           allowed_uids={os.getuid()}, max_item=1000, read_timeout=2)
        await service.start()
        try:
            reader, writer = await asyncio.open_unix_connection(service.path)
            writer.write(data)
            await writer.drain()
            if reason == "ended before its last frame":
                writer.write_eof()
            header = await reader.readexactly(4)
            return json.loads(await reader.readexactly(struct.unpack(">I", header)[0]))
        finally:
            service.close()
    reply = asyncio.run(main())
    assert reply["ok"] is False and reason in reply["error"]


def test_a_request_that_stalls_times_out(known_engine, sock_dir):
    async def main():
        service = scan_service.ScanService(known_engine, os.path.join(sock_dir, "scan.sock"),
                                           allowed_uids={os.getuid()}, read_timeout=0.3)
        await service.start()
        try:
            reader, writer = await asyncio.open_unix_connection(service.path)
            writer.write(scan_service.pack_frame(scan_service.MAGIC))
            header = await reader.readexactly(4)
            return json.loads(await reader.readexactly(struct.unpack(">I", header)[0]))
        finally:
            service.close()
    reply = asyncio.run(main())
    assert reply == {"ok": False, "error": "no frame within 0.3s"}


def test_no_scanner_no_clean_answer(sock_dir):
    engine = dlp.Engine(None, "RuntimeError")
    (reply,) = run_service(engine, sock_dir, [request([("blob a (0)", b"clean")])], allowed_uids={os.getuid()})
    assert reply["ok"] is False and "not loaded" in reply["error"]


def test_the_addon_starts_the_service_when_its_directory_exists_and_stops_it(firewall_factory, sock_dir,
                                                                             monkeypatch):
    path = os.path.join(sock_dir, "scan.sock")
    monkeypatch.setenv("BOTTLE_EGRESS_SCAN_SOCKET", path)
    fw = firewall_factory()

    async def main():
        await fw.running()  # the task that starts the server
        assert fw.scan_service is not None and os.path.exists(path)
        fw.scan_service.allowed_uids = {os.getuid()}
        reply = await exchange(fw.scan_service, request([("blob a (0)", ("x " + KNOWN_SECRET).encode())]))
        fw.done()
        return reply
    reply = asyncio.run(main())
    assert reply["ok"] and reply["findings"][0]["rule"] == "known-secret"
    assert fw.scan_service is None and not os.path.exists(path)


def test_the_addon_serves_nothing_without_the_directory(firewall_factory, monkeypatch, tmp_path):
    monkeypatch.setenv("BOTTLE_EGRESS_SCAN_SOCKET", str(tmp_path / "absent" / "scan.sock"))
    fw = firewall_factory()
    assert fw.running() is None
    assert fw.scan_service is None


def test_peer_uid_reads_the_connecting_process(sock_dir):
    left, right = socket.socketpair(socket.AF_UNIX)
    try:
        assert scan_service.peer_uid(left) == os.getuid()
    finally:
        left.close()
        right.close()


def test_a_compressed_item_is_scanned_decompressed(known_engine):
    import bz2
    import gzip
    import lzma
    import zlib
    secret = ("x = %s\n" % KNOWN_SECRET).encode()
    batch = scan_service.BatchScanner(known_engine)
    forms = [gzip.compress(secret), zlib.compress(secret), bz2.compress(secret), lzma.compress(secret),
             gzip.compress(gzip.compress(secret)), b"\x1f\x8bnot gzip at all " * 3]
    for index, data in enumerate(forms):
        batch.add("blob f%d.gz (%012d)" % (index, index), data)
    assert sorted(f["item"] for f in batch.finish() if f["rule"] == "known-secret") == [0, 1, 2, 3, 4]


def test_a_decompression_bomb_is_refused_not_cut():
    import gzip
    with pytest.raises(scan_service.ProtocolError, match="decompresses to over 1000 bytes"):
        scan_service.decompressed_layers(gzip.compress(b"\0" * 5000), limit=1000)
    assert scan_service.decompressed_layers(b"plain text") == []
