# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Responses never carry back a credential egress injected (issue 20).

When egress added a route's credential to a request, the upstream's answer may quote it: an
echo endpoint (``/anything``, ``/headers``), an error page that prints the request, a debug
header. Before the agent sees the response, every occurrence of the credential is masked, in
the headers (names and values, and trailers) and in the body as it streams:

- the forms looked for (``credential_forms``): the credential raw, percent-encoded, with
  JSON's ``\\/``, and every form of the known-secret set (``dlp.secret_variants``: base64
  standard and URL-safe in the three alignments a value takes inside a longer blob, hex upper
  and lower, base32);
- each matched byte becomes ``*``: the length is kept, so a Content-Length stays true;
- streamed (``StreamRedactor`` is the response's ``stream`` callable, mitmproxy 12 calls it
  per chunk and once with ``b""`` at the end of the message): the last ``longest form - 1``
  bytes of each chunk are held back until the next one, so a credential split across chunks
  is masked; the held bytes are flushed at the end. The output of any split of a body equals
  ``redact`` of the whole body (the unit tests check every split offset);
- compressed bodies: egress asks for ``Accept-Encoding: identity`` on every request that
  carries an injected credential; an upstream that still encodes its answer has it decoded
  here as it streams (``Decoder``: gzip members, zlib or raw deflate, br; stacked codings),
  and the Content-Encoding and Content-Length headers are dropped. A coding egress cannot
  decode (zstd, compress...) is not passed: the response is replaced by a 502.

An upstream that deliberately transforms the credential otherwise (encrypts it, compresses it
inside a file it serves) is out of reach of any filter; the upstream is the credential's
owner. This module is pure (no mitmproxy), unit-tested on the controller.
"""

import functools
import zlib
from urllib.parse import quote

from .dlp import secret_variants

MASK = 0x2A  # "*"


def credential_forms(credentials):
    """The byte strings that would carry any of ``credentials`` back to the agent."""
    return list(_credential_forms(tuple(credentials)))


@functools.lru_cache(maxsize=32)
def _credential_forms(credentials):
    # Every response to a route request asks for them: worked out once per set of credentials.
    forms = set()
    for credential in credentials:
        if not credential:
            continue
        texts = set(secret_variants(credential))
        texts |= {credential, quote(credential, safe=""), credential.replace("/", "\\/")}
        for text in texts:
            forms.add(text.encode("utf-8", "surrogatepass"))
            if max(text) < "\u0100":
                forms.add(text.encode("latin-1"))
    return tuple(sorted(form for form in forms if form))


def spans(data, forms):
    """Every (start, end) where one of ``forms`` occurs in ``data``, overlapping ones included."""
    found = []
    for form in forms:
        start = data.find(form)
        while start >= 0:
            found.append((start, start + len(form)))
            start = data.find(form, start + 1)
    return found


def _mask(data, found):
    if not found:
        return data
    out = bytearray(data)
    for start, end in found:
        out[start:end] = bytes((MASK,)) * (end - start)
    return bytes(out)


def redact(data, forms):
    """``data`` with every byte of every occurrence of ``forms`` masked."""
    return _mask(data, spans(data, forms))


def redact_fields(fields, forms):
    """Header fields ((name, value) bytes or str) with the forms masked; (fields, changed)."""
    out, changed = [], False
    for name, value in fields:
        new = []
        for item in (name, value):
            raw = item.encode("utf-8", "surrogateescape") if isinstance(item, str) else item
            masked = redact(raw, forms)
            if masked != raw:
                changed = True
                item = masked.decode("utf-8", "surrogateescape") if isinstance(item, str) else masked
            new.append(item)
        out.append((new[0], new[1]))
    return out, changed


MIN_PARTIAL = 4


def partial_tail(data, forms):
    """Length of the longest suffix of ``data`` (at least ``MIN_PARTIAL`` bytes) that is the
    start of one of ``forms``: what may be the first bytes of a credential cut off by a flush."""
    forms = tuple(forms)
    prefixes = _prefixes(forms)
    data = bytes(data)
    longest = max((len(form) for form in forms), default=1) - 1
    for length in range(min(longest, len(data)), MIN_PARTIAL - 1, -1):
        if data[-length:] in prefixes:
            return length
    return 0


@functools.lru_cache(maxsize=32)
def _prefixes(forms):
    """Every proper prefix of every form (a set: one lookup per suffix length, not one
    ``endswith`` per form and length)."""
    return frozenset(form[:length] for form in forms for length in range(1, len(form)))


def redact_message(data, forms):
    """What a whole message becomes once streamed: ``redact``, and a tail that starts a form
    masked too (``partial_tail``)."""
    out = bytearray(redact(data, forms))
    tail = partial_tail(data, forms)
    if tail:
        out[len(out) - tail:] = bytes((MASK,)) * tail
    return bytes(out)


def pending_start(data, forms, first_bytes, low):
    """The first offset ``i >= low`` where ``data[i:]`` could still become one of ``forms`` (it is
    a proper prefix of one), else ``len(data)``: what must be held back for the next chunk, and no
    more, so that a stream (server-sent events) passes as it arrives."""
    size = len(data)
    for i in range(low, size):
        if data[i] in first_bytes:
            tail = data[i:]
            if any(len(form) > size - i and form.startswith(tail) for form in forms):
                return i
    return size


class StreamRedactor:
    """The ``stream`` callable of a response: chunk in, list of chunks out (never an empty
    chunk: mitmproxy would send it as a chunked body's last chunk).

    mitmproxy 12.1.2 calls it with ``b""`` at the end of the message (``state_stream_response_body``
    on ``ResponseEndOfMessage``), but also for an empty HTTP/2 DATA frame in the middle of one: the
    two cannot be told apart. So ``b""`` flushes what is held, masking a held tail that could be
    the start of a credential (``partial_tail``), and the flushed bytes stay as context: a
    credential that the next chunk completes is masked in that chunk. Without empty frames the
    output of any split equals ``redact_message`` of the whole body. ``decoder`` (a ``Decoder``)
    undoes a Content-Encoding first. ``on_redact`` is called once, at the first masked byte."""

    def __init__(self, forms, decoder=None, on_redact=None):
        self.forms = list(forms)
        self.keep = max((len(form) for form in self.forms), default=1) - 1
        self.first_bytes = frozenset(form[0] for form in self.forms)
        self.decoder = decoder
        self.on_redact = on_redact
        self.context = b""  # the last bytes already sent (as received), to match across a flush
        self.held = b""     # bytes received and not yet sent
        self.redacted = False

    def _noted(self):
        if not self.redacted:
            self.redacted = True
            if self.on_redact is not None:
                self.on_redact()

    def __call__(self, chunk):
        flush = chunk == b""
        if self.decoder is not None and chunk:
            chunk = self.decoder.feed(chunk)
        base = len(self.context)
        data = self.context + self.held + chunk
        # Only a tail that could still become a form is held back: a chunk that ends in anything
        # else goes out at once (an event stream's events are not delayed).
        cut = len(data) if flush else pending_start(data, self.forms, self.first_bytes,
                                                    max(base, len(data) - self.keep))
        found = [(max(start, base), min(end, cut)) for start, end in spans(data, self.forms)
                 if start < cut and end > base]
        out = bytearray(data[base:cut])
        for start, end in found:
            out[start - base:end - base] = bytes((MASK,)) * (end - start)
        if flush:
            tail = min(partial_tail(data, self.forms), len(out))
            if tail:
                out[len(out) - tail:] = bytes((MASK,)) * tail
                found.append((cut - tail, cut))
        if found:
            self._noted()
        self.context = data[max(0, cut - self.keep):cut]
        self.held = data[cut:]
        return [bytes(out)] if out else []


class DecodeError(ValueError):
    """A response body that does not decode as its Content-Encoding says."""


class _Single:
    """One coding, streamed."""

    def __init__(self, coding):
        self.coding = coding
        self.obj = None
        self.pending = b""  # deflate: the first byte, until the second tells zlib from raw deflate
        self.finished = False

    def _new(self, data):
        if self.coding in ("gzip", "x-gzip"):
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        if self.coding == "deflate":
            zlib_wrapped = len(data) >= 2 and (data[0] & 0x0F) == 8 and (data[0] * 256 + data[1]) % 31 == 0
            return zlib.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)
        import brotli
        return brotli.Decompressor()

    def feed(self, data):
        if self.finished:
            return data  # bytes after the end of the stream reach the agent as they are: masked too
        if self.obj is None:
            data = self.pending + data
            if self.coding == "deflate" and len(data) < 2:
                self.pending = data
                return b""
            self.pending = b""
            if not data:
                return b""
            self.obj = self._new(data)
        try:
            if self.coding == "br":
                out = self.obj.process(data)
                if self.obj.is_finished():
                    self.finished = True
                return out
            out = self.obj.decompress(data)
            while self.obj.eof:
                rest = self.obj.unused_data
                if self.coding == "deflate" or not rest:
                    if rest:
                        self.finished = True
                        out += rest
                    break
                self.obj = self._new(rest)  # another gzip member
                out += self.obj.decompress(rest)
            return out
        except Exception as exc:  # zlib.error, brotli.error
            raise DecodeError("response is not valid %s data" % self.coding) from exc


class Decoder:
    """Stacked Content-Encodings undone as the body streams (last applied, first undone)."""

    def __init__(self, codings):
        self.stages = [_Single(coding) for coding in reversed(codings)]

    def feed(self, data):
        for stage in self.stages:
            data = stage.feed(data)
        return data


DECODABLE = ("gzip", "x-gzip", "deflate", "br")


def codings_of(content_encoding):
    """The Content-Encoding's codings, identity dropped, lower-cased."""
    return [c.strip().lower() for c in (content_encoding or "").split(",")
            if c.strip() and c.strip().lower() not in ("identity", "none")]


def decoder_for(content_encoding):
    """(Decoder or None when there is nothing to undo, refusal text or None)."""
    codings = codings_of(content_encoding)
    if not codings:
        return None, None
    unknown = [c for c in codings if c not in DECODABLE]
    if unknown:
        return None, "the response is %s-encoded, which egress cannot decode to remove the credential it added" \
            % unknown[0][:32]
    if "br" in codings:
        try:
            import brotli  # noqa: F401
        except ImportError:
            return None, "the response is br-encoded and egress has no brotli decoder"
    return Decoder(codings), None
