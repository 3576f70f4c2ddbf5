# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scan service: git-gate hands what a push would publish to egress's DLP engine.

One DLP owner for both ways out. The bottle's known secrets (secret_env values and every
route token) live in egress's process and uid only; git-gate never gets them. Instead egress
serves its own ``Engine`` (the same instance the firewall uses, kingfisher rules and known
secrets in all their encodings) on a Unix socket in a directory only egress's uid and
git-gate's group can reach (``/run/bottle/dlp/scan.sock``, prepared by bottle-init: owner
egress, group gitgate, mode 2750; the socket 0660). The server also checks the peer's uid
(``SO_PEERCRED``): only git-gate's uid (and egress's own, for tests) is served.

Protocol (version 1), one request per connection. A *frame* is a 4-byte big-endian unsigned
length N followed by N bytes.

1. The client connects; the server reads the peer's credentials and closes the connection
   at once (no reply) when the uid is not allowed.
2. The client sends the header frame ``BOTTLE-SCAN/1``.
3. The client sends one frame per item: a 2-byte big-endian length L, L bytes of UTF-8
   label (what the item is, e.g. ``blob src/a.py (1a2b3c4d5e6f)``; at most ``MAX_LABEL``
   bytes), then the item's bytes (raw: a blob as stored, binary included). An item frame is
   at most ``MAX_ITEM`` bytes, a request at most ``MAX_REQUEST`` bytes in all.
4. The client sends an empty frame (length 0): the request is complete.
5. The server scans the items as they come, in batches (known secrets in every encoding,
   then kingfisher's rules, over each item's bytes, their gzip/zlib/bzip2/xz layers (up to
   three, each at most ``MAX_ITEM`` once decompressed, else the request is refused) and
   their percent-decoded, NFKC and hex/base32/base64url-decoded forms, and over the label). Inline allow comments (``gitleaks:allow``,
   ``kingfisher:ignore``...) mean nothing here: the engine does not read them.
6. The server answers with one frame of JSON and closes:
   ``{"ok": true, "items": N, "bytes": N, "findings": [{"item": i, "rule": r, "where": w}]}``
   where ``i`` is the item's index (0-based, in sending order), ``r`` is ``known-secret``
   or ``dlp:<kingfisher rule id>``, and ``w`` is the item's label, or ``<first word of the
   label> (name withheld)`` when the label itself carries a secret. Never the secret, nor
   any part of it. At most ``MAX_FINDINGS`` findings (one per rule per item).
   On any error (a limit exceeded, a malformed frame, the scanner not loaded, a timeout of
   ``READ_TIMEOUT`` seconds waiting for a frame): ``{"ok": false, "error": "<reason>"}``, or
   the connection is simply closed. The client treats anything but ``ok: true`` as a refusal
   (fail closed).

Everything here runs in egress's asyncio loop (``Firewall.running`` starts it, ``done``
stops it); scanning runs in a worker thread (Vectorscan releases the GIL).
"""

import asyncio
import json
import logging
import os
import socket
import struct

from .bodies import ScanBuffer
from .dlp import looks_random

LOG = logging.getLogger("bottle_firewall")

MAGIC = b"BOTTLE-SCAN/1"
DEFAULT_SOCKET = "/run/bottle/dlp/scan.sock"
MAX_LABEL = 4096
MAX_ITEM = 64 * 1024 * 1024          # one object: a larger blob is refused, not skipped
MAX_REQUEST = 2 * 1024 * 1024 * 1024  # one push
MAX_FINDINGS = 200
BATCH_BYTES = 8 * 1024 * 1024        # items are scanned in batches of about this size
READ_TIMEOUT = 60.0
COMPRESSED_LEADS = (b"\x1f", b"\x78", b"B", b"\xfd")  # gzip, zlib, bzip2, xz: see decompressed_layers
MAX_SESSIONS = 4


class ProtocolError(Exception):
    """The request broke the protocol or a limit: answered with ``ok: false``."""


class Item:
    __slots__ = ("index", "label")

    def __init__(self, index, label):
        self.index, self.label = index, label

    def __str__(self):
        return self.label


def pack_frame(payload):
    return struct.pack(">I", len(payload)) + payload


def pack_item(label, data):
    encoded = label.encode("utf-8", "surrogatepass")[:MAX_LABEL]
    return pack_frame(struct.pack(">H", len(encoded)) + encoded + data)


def unpack_item(payload):
    """(label, data) of an item frame's payload."""
    if len(payload) < 2:
        raise ProtocolError("an item frame is shorter than its label length")
    (length,) = struct.unpack(">H", payload[:2])
    if length > MAX_LABEL or len(payload) < 2 + length:
        raise ProtocolError("an item's label is longer than allowed or than its frame")
    return payload[2:2 + length].decode("utf-8", "replace"), payload[2 + length:]


class BatchScanner:
    """Every finding (rule, item) in the items added, scanned in batches with ``engine``.

    Unlike ``Engine._scan`` (first hit only) this reports every known secret and every visible
    kingfisher finding, each mapped to the item that holds it, so one refusal lists them all
    and an allowed fingerprint never hides another finding in the same object."""

    def __init__(self, engine, batch_bytes=BATCH_BYTES, max_findings=MAX_FINDINGS):
        self.engine = engine
        self.batch_bytes = batch_bytes
        self.max_findings = max_findings
        self.findings = []
        self._seen = set()
        self._pending = []
        self._pending_bytes = 0
        self.items = 0
        self.bytes = 0

    def queue(self, label, data):
        """Queue one item (and its decompressed layers); True when the queue holds ``batch_bytes``."""
        item = Item(self.items, label)
        self.items += 1
        self.bytes += len(data)
        for layer in [data] + decompressed_layers(data):
            self._pending.append((item, layer))
            self._pending_bytes += len(layer) + len(label)
        return self._pending_bytes >= self.batch_bytes

    def add(self, label, data):
        """Queue one item and scan the queue once it is full."""
        if self.queue(label, data):
            self.flush()

    def flush(self):
        pending, self._pending, self._pending_bytes = self._pending, [], 0
        if pending and len(self.findings) < self.max_findings:
            self._scan(pending)

    def finish(self):
        self.flush()
        return self.findings

    def _scan(self, pending):
        engine = self.engine
        if engine.scanner is None:
            raise ProtocolError("the secret scanner is not loaded in egress")
        buffer = ScanBuffer()
        labels = {}
        for item, data in pending:
            labels[item.label] = item
            buffer.add(item, data if data else b"")
            # The label is scanned as a part of its item: a file name is content too, and a secret cut
            # into directory names reads whole once the slashes are gone.
            buffer.add(item, item.label)
            if "/" in item.label:
                buffer.add(item, item.label.replace("/", ""))
        joined = buffer.joined()
        base, decoded = buffer.add_decoded_forms(joined)
        spans = [("known-secret", start) for start, _end in engine.known.spans(joined)]
        spans += [("known-secret", base + start) for start, _end in engine.known.spans(decoded)]
        spans += [("dlp:" + f.rule_id, f.location["start_offset"]) for f in engine.scanner.scan(joined) if f.visible]
        if decoded:
            spans += [("dlp:" + f.rule_id, base + f.location["start_offset"])
                      for f in engine.scanner.scan(decoded) if f.visible]
        for rule, offset in sorted(spans, key=lambda s: s[1]):
            index, _start, _end = buffer.segment_bounds(offset)
            where = buffer.wheres[index]
            item = where if isinstance(where, Item) else labels.get(str(where))
            if item is None:  # cannot happen: every segment comes from an item
                raise ProtocolError("a finding could not be placed")
            if (rule, item.index) in self._seen:
                continue
            self._seen.add((rule, item.index))
            self.findings.append({"item": item.index, "rule": rule, "where": self.safe_label(item.label)})
            if len(self.findings) >= self.max_findings:
                return

    def safe_label(self, label):
        """``label``, or its first word and ``(name withheld)`` when it carries a secret."""
        engine = self.engine
        data = label.encode("utf-8", "surrogatepass")
        data = data + b"\n" + data.replace(b"/", b"")
        leaky = engine.known.find(data) is not None
        if not leaky and engine.scanner is not None:
            leaky = any(f.visible for f in engine.scanner.scan(data))
        if not leaky:
            leaky = any(looks_random(part, engine.min_length, engine.bits)
                        for part in label.replace("/", " ").split() if not _is_object_id(part))
        return "%s (name withheld)" % label.split(" ", 1)[0] if leaky else label


def decompressed_layers(data, limit=None, depth=3):
    """The decompressed forms of ``data`` when it is a gzip, zlib, bzip2 or xz stream (a secret
    committed compressed), nested up to ``depth`` layers; each at most ``limit`` bytes (MAX_ITEM):
    a stream that expands beyond is refused (ProtocolError), not cut. Not a stream: []."""
    import bz2
    import lzma
    import zlib
    limit = MAX_ITEM if limit is None else limit
    layers = []
    while depth > 0 and len(data) > 2:
        if data[:2] == b"\x1f\x8b":
            decoder = zlib.decompressobj(47)
        elif data[0] == 0x78 and (data[0] << 8 | data[1]) % 31 == 0:
            decoder = zlib.decompressobj(15)
        elif data[:3] == b"BZh":
            decoder = bz2.BZ2Decompressor()
        elif data[:6] == b"\xfd7zXZ\x00":
            decoder = lzma.LZMADecompressor()
        else:
            break
        try:
            out = decoder.decompress(data, limit + 1)
        except (OSError, EOFError, ValueError, zlib.error, lzma.LZMAError):
            break  # not really a stream: its raw bytes are scanned as they are
        if len(out) > limit:
            raise ProtocolError("an item decompresses to over %d bytes: it cannot be scanned whole" % limit)
        if not out:
            break
        layers.append(out)
        data, depth = out, depth - 1
    return layers


def _is_object_id(part):
    part = part.strip("()")
    return 7 <= len(part) <= 64 and all(c in "0123456789abcdef" for c in part)


def peer_uid(sock):
    """The uid of the process at the other end of a Unix socket (Linux SO_PEERCRED)."""
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


def default_allowed_uids():
    """git-gate's uid and this process's own: nobody else is served."""
    uids = {os.getuid()}
    try:
        import pwd
        uids.add(pwd.getpwnam("gitgate").pw_uid)
    except (ImportError, KeyError):
        pass
    return uids


class ScanService:
    """The asyncio Unix-socket server. ``engine``: the firewall's Engine; ``refresh``: called
    before each request (the firewall re-reads its known secrets when their files changed)."""

    def __init__(self, engine, path=None, refresh=None, allowed_uids=None, read_timeout=READ_TIMEOUT,
                 max_item=MAX_ITEM, max_request=MAX_REQUEST, batch_bytes=BATCH_BYTES):
        self.engine = engine
        self.path = path or os.environ.get("BOTTLE_EGRESS_SCAN_SOCKET", DEFAULT_SOCKET)
        self.refresh = refresh
        self.allowed_uids = default_allowed_uids() if allowed_uids is None else set(allowed_uids)
        self.read_timeout = read_timeout
        self.max_item, self.max_request, self.batch_bytes = max_item, max_request, batch_bytes
        self.server = None
        self.sessions = asyncio.Semaphore(MAX_SESSIONS)

    async def start(self):
        """Listen on ``path`` (its directory must exist: bottle-init makes it). Returns self."""
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            raise FileNotFoundError("the scan socket's directory %s does not exist" % directory)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        old = os.umask(0o117)
        try:
            self.server = await asyncio.start_unix_server(self._serve, path=self.path, limit=64 * 1024)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o660)
        LOG.info("egress: git-gate's scan service listens on %s", self.path)
        return self

    def close(self):
        """Stop listening and remove the socket (sessions under way end with their connection)."""
        if self.server is not None:
            self.server.close()
            self.server = None
        try:
            os.unlink(self.path)
        except OSError:
            pass

    async def _frame(self, reader, limit):
        header = await asyncio.wait_for(reader.readexactly(4), self.read_timeout)
        (length,) = struct.unpack(">I", header)
        if length > limit:
            raise ProtocolError("a frame of %d bytes is over the limit of %d" % (length, limit))
        if not length:
            return b""
        return await asyncio.wait_for(reader.readexactly(length), self.read_timeout)

    async def _serve(self, reader, writer):
        try:
            sock = writer.get_extra_info("socket")
            uid = peer_uid(sock) if sock is not None else None
            if uid not in self.allowed_uids:
                LOG.warning("egress: scan service: refused a connection from uid %s", uid)
                return
            async with self.sessions:
                reply = await self.handle(reader)
            writer.write(pack_frame(json.dumps(reply).encode("utf-8")))
            await asyncio.wait_for(writer.drain(), self.read_timeout)
        except Exception as exc:  # a dead client, a timeout: nothing more to say
            LOG.warning("egress: scan service: %s", type(exc).__name__)
        finally:
            writer.close()

    async def handle(self, reader):
        """Read one request from ``reader`` and return the reply (a dict)."""
        try:
            if await self._frame(reader, len(MAGIC)) != MAGIC:
                raise ProtocolError("not a BOTTLE-SCAN/1 request")
            if self.refresh is not None:
                self.refresh()
            if self.engine.scanner is None:
                raise ProtocolError("the secret scanner is not loaded in egress")
            batch = BatchScanner(self.engine, self.batch_bytes)
            total = 0
            while True:
                payload = await self._frame(reader, self.max_item + 2 + MAX_LABEL)
                if not payload:
                    break
                total += len(payload)
                if total > self.max_request:
                    raise ProtocolError("the request is over %d bytes" % self.max_request)
                label, data = unpack_item(payload)
                if len(data) > self.max_item:
                    raise ProtocolError("item %d is over the object limit of %d bytes" % (batch.items, self.max_item))
                # A compressed-looking item is decompressed in a worker thread, not in the loop.
                full = (await asyncio.to_thread(batch.queue, label, data) if data[:1] in COMPRESSED_LEADS
                        else batch.queue(label, data))
                if full:
                    await asyncio.to_thread(batch.flush)
            findings = await asyncio.to_thread(batch.finish)
            LOG.info("egress: scan service: %d item(s), %d byte(s), %d finding(s)", batch.items, batch.bytes,
                     len(findings))
            return {"ok": True, "items": batch.items, "bytes": batch.bytes, "findings": findings}
        except ProtocolError as exc:
            return {"ok": False, "error": str(exc)}
        except asyncio.IncompleteReadError:
            return {"ok": False, "error": "the request ended before its last frame"}
        except asyncio.TimeoutError:
            return {"ok": False, "error": "no frame within %ss" % self.read_timeout}
        except Exception as exc:
            LOG.error("egress: scan service failed: %s", type(exc).__name__)
            return {"ok": False, "error": "the scan failed in egress (%s)" % type(exc).__name__}
