# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the agent really sent: decompressed bodies, their fields, and decoded forms.

A secret can hide behind transport and container encodings the secret scanner does not undo
by itself: Content-Encoding (gzip, deflate, br), JSON string escapes, urlencoded and
multipart forms, percent-encoding (repeated), Unicode compatibility forms (fullwidth
letters), hex and base32 (kingfisher decodes standard base64 itself, not these), and
URL-safe base64. This module turns a request body into ``(where, bytes)`` segments of plain
text and appends the decoded forms it finds, so one scanner pass over the joined segments
sees the secret whatever its wrapping.

Decompression is bounded by the scan limit: a body that inflates past it, or that does not
decompress, raises ``BodyError`` and the request is refused, never forwarded unscanned.
Strict (issue 20): a compressed stream must end where the body ends (no second gzip member, no
trailing bytes), and a body declared JSON, urlencoded form or multipart must parse as such
(``extract(strict=True)``); otherwise ``BodyError`` (``body-decode``, ``body-parse``).
"""

import base64
import binascii
import bisect
import codecs
import itertools
import json
import quopri
import re
import unicodedata
import zlib
from email.parser import HeaderParser
from urllib.parse import unquote, unquote_to_bytes

SEPARATOR = b"\n\x00\n"  # 3 bytes: ScanBuffer.add counts them
_BROTLI_STEP = 32  # compressed bytes per step: one brotli command can expand to ~8 MiB.
_PRINTABLE = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}
_PRINTABLE_BYTES = bytes(sorted(_PRINTABLE))
_MAX_PERCENT_ROUNDS = 8


class BodyError(ValueError):
    """The body cannot be scanned: too large once decoded, or not decodable as declared."""

    def __init__(self, message, rule="body-limit"):
        super().__init__(message)
        self.rule = rule


def _encode(text):
    """UTF-8 bytes of any str, lone surrogates included (they only need to be scannable)."""
    return text.encode("utf-8", "surrogatepass")


def percent_decode(text):
    """Percent-decode repeatedly until stable (``%2525`` is ``%``), so no layer hides a secret."""
    for _round in range(_MAX_PERCENT_ROUNDS):
        if "%" not in text:
            break
        decoded = unquote(text, errors="surrogateescape")
        if decoded == text:
            break
        text = decoded
    return text


def normalize_text(text):
    """NFKC (fullwidth and other compatibility forms folded to ASCII where they have one)."""
    if text.isascii():
        return text
    return unicodedata.normalize("NFKC", text)


def _gunzip(data, limit):
    """One gzip member, nothing after it: a second member or trailing bytes (NUL padding
    included) are refused, since an upstream's decoder may read past what egress scanned or
    stop before it; no real client sends either."""
    obj = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = obj.decompress(data, limit + 1)
    if len(out) > limit or obj.unconsumed_tail:
        raise BodyError("request body inflates past the scan limit of %d bytes" % limit)
    if not obj.eof:
        raise BodyError("request body is not valid gzip (truncated)", "body-decode")
    if obj.unused_data:
        raise BodyError("request body has %d byte(s) after the end of its gzip stream" % len(obj.unused_data),
                        "body-decode")
    return out


def _inflate(data, limit):
    """zlib-wrapped or raw deflate (clients send both), nothing after the end of the stream."""
    for wbits in (zlib.MAX_WBITS, -zlib.MAX_WBITS):
        obj = zlib.decompressobj(wbits)
        try:
            out = obj.decompress(data, limit + 1)
        except zlib.error:
            continue
        if len(out) > limit or obj.unconsumed_tail:
            raise BodyError("request body inflates past the scan limit of %d bytes" % limit)
        if obj.eof:
            if obj.unused_data:
                raise BodyError("request body has %d byte(s) after the end of its deflate stream"
                                % len(obj.unused_data), "body-decode")
            return out
    raise BodyError("request body is not valid deflate data", "body-decode")


def _unbrotli(data, limit):
    try:
        import brotli
    except ImportError:
        raise BodyError("request body is brotli-encoded and egress has no brotli decoder", "body-decode") from None
    decoder = brotli.Decompressor()
    out, total = [], 0
    try:
        for start in range(0, len(data), _BROTLI_STEP):
            if decoder.is_finished():
                raise BodyError("request body has %d byte(s) after the end of its brotli stream"
                                % (len(data) - start), "body-decode")
            chunk = decoder.process(data[start:start + _BROTLI_STEP])
            total += len(chunk)
            if total > limit:
                raise BodyError("request body inflates past the scan limit of %d bytes" % limit)
            out.append(chunk)
    except brotli.error:
        raise BodyError("request body is not valid brotli data", "body-decode") from None
    if not decoder.is_finished():
        raise BodyError("request body is not valid brotli data (truncated)", "body-decode")
    return b"".join(out)


MAX_CODINGS = 4


def decode_content(raw, content_encoding, limit, layers=None):
    """The body with its Content-Encoding undone (bounded by ``limit``); BodyError otherwise.

    Strict: each coding must be one egress decodes (identity, gzip, deflate, br), its stream
    must end exactly where the body (or the next outer layer) ends, and at most ``MAX_CODINGS``
    codings may be stacked. ``layers``: a list that receives each encoded form on the way (the
    raw body first), so the known secrets can be looked for in every one of them."""
    data = raw or b""
    if not data:
        return data  # nothing to decode, whatever the header says (some clients send it on every request)
    codings = [c.strip().lower() for c in (content_encoding or "").split(",") if c.strip()]
    codings = [c for c in codings if c not in ("identity", "none")]
    if len(codings) > MAX_CODINGS:
        raise BodyError("request body has %d stacked Content-Encodings (at most %d are decoded)"
                        % (len(codings), MAX_CODINGS), "body-decode")
    for coding in reversed(codings):
        if layers is not None:
            layers.append(data)
        try:
            if coding in ("gzip", "x-gzip"):
                data = _gunzip(data, limit)
            elif coding == "deflate":
                data = _inflate(data, limit)
            elif coding == "br":
                data = _unbrotli(data, limit)
            else:
                raise BodyError("request body has a Content-Encoding egress cannot scan (%s)" % coding[:32],
                                "body-decode")
        except zlib.error:
            raise BodyError("request body is not valid %s data" % coding, "body-decode") from None
    if len(data) > limit:
        raise BodyError("request body of %d bytes exceeds the scan limit of %d bytes" % (len(data), limit))
    return data


class Pairs(list):
    """A JSON object as the list of its (key, value) pairs, duplicates kept: ``json.loads``
    into a dict keeps only the last value of a repeated key, which an upstream may not."""

    __slots__ = ()


def loads_json(data):
    """``json.loads`` keeping every member of every object (``Pairs``)."""
    return json.loads(data, object_pairs_hook=Pairs)


class JsonDocument:
    """The strings of a decoded JSON document, in walk order, with their paths on demand.

    A 1 MiB request holds thousands of strings; building a path for each would cost more than
    the scan. The walk collects the strings only; when a finding lands in string ``i`` the
    same walk runs again, with paths, up to ``i``."""

    def __init__(self, document, prefix="body field "):
        self.document = document
        self.prefix = prefix
        self.first = 0  # index of its first segment in a ScanBuffer
        self.texts = []
        stack = [document]
        pop, push, append = stack.pop, stack.append, self.texts.append
        while stack:
            node = pop()
            kind = type(node)
            if kind is str:
                append(node)
            elif kind is Pairs:
                for key, child in node:
                    append(key)
                    push(child)
            elif kind is dict:
                for key, child in node.items():
                    append(key)
                    push(child)
            elif kind is list:
                stack.extend(node)

    def path_of(self, index):
        """``body field $.messages[0].content`` for the ``index``-th string of the walk."""
        stack = [(None, self.document)]
        count = 0
        while stack:
            chain, node = stack.pop()
            kind = type(node)
            if kind is str:
                if count == index:
                    return self.prefix + self._render(chain)
                count += 1
            elif kind is dict or kind is Pairs:
                for key, child in (node if kind is Pairs else node.items()):
                    if count == index:
                        return self.prefix + self._render(chain) + " key"
                    count += 1
                    stack.append(((chain, "." + key), child))
            elif kind is list:
                stack.extend(((chain, "[%d]" % i), child) for i, child in enumerate(node))
        return self.prefix + "$"

    @staticmethod
    def _render(chain):
        parts = []
        while chain is not None:
            chain, part = chain
            parts.append(part)
        return "$" + "".join(reversed(parts))


class Where:
    """A segment's place, rendered only when a finding needs it."""

    __slots__ = ("document", "index")

    def __init__(self, document, index):
        self.document, self.index = document, index

    def __str__(self):
        return self.document.path_of(self.index)


_PARAM = re.compile(r';\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')
_BAD_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_UTF8_NAMES = ("", "utf-8", "utf8", "us-ascii", "ascii")
FORM_TYPE = "application/x-www-form-urlencoded"
TYPE_HINT = (" (if it is not meant to be one, declare what it is, e.g. Content-Type: application/octet-stream"
             " or text/plain)")


def media_type(content_type):
    """(media type lower-cased, {parameter: value}) of a Content-Type value."""
    content_type = content_type or ""
    media = content_type.split(";", 1)[0].strip().lower()
    params = {}
    for name, value in _PARAM.findall(content_type):
        value = value.strip()
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params.setdefault(name.lower(), value)
    return media, params


def is_json_type(media):
    """The declared types egress holds to JSON: application/json, text/json, anything +json."""
    return media in ("application/json", "text/json") or (media.endswith("+json") and "/" in media)


def _json_document(body, charset, strict):
    """The decoded document (``Pairs`` for objects), or None when lenient and it does not parse."""
    data = body
    try:
        if charset not in _UTF8_NAMES:
            data = body.decode(charset)
        return loads_json(data)
    except (ValueError, RecursionError, LookupError) as exc:
        if strict:
            reason = "unknown charset %s" % charset[:32] if isinstance(exc, LookupError) else \
                "too deeply nested" if isinstance(exc, RecursionError) else "not valid JSON"
            raise BodyError("request body is declared JSON but is %s%s" % (reason, TYPE_HINT), "body-parse") \
                from None
        return None


def _form_pairs(body, charset, strict):
    """(name, value) of a urlencoded form: ``&``-separated, ``+`` is a space, then percent-decoded
    once and decoded in the form's charset (UTF-8 unless declared). Strict: a ``%`` not followed
    by two hex digits, or a name or value that is not valid text in that charset, means the body
    is not a form (BodyError); lenient: undecodable bytes are kept as latin-1."""
    codec = "utf-8" if charset in _UTF8_NAMES else charset
    try:
        codecs.lookup(codec)
    except LookupError:
        if strict:
            raise BodyError("request body is declared a form in an unknown charset %s" % charset[:32],
                            "body-parse") from None
        codec = "utf-8"
    if strict and _BAD_PERCENT.search(body):
        raise BodyError("request body is declared a form (%s) but has a %% that is not a percent-escape%s"
                        % (FORM_TYPE, TYPE_HINT), "body-parse")
    pairs = []
    for field in body.split(b"&"):
        if not field:
            continue
        name, _sep, value = field.partition(b"=")
        decoded = []
        for part in (name, value):
            part = unquote_to_bytes(part.replace(b"+", b" "))
            try:
                decoded.append(part.decode(codec))
            except UnicodeDecodeError:
                if strict:
                    raise BodyError("request body is declared a form (%s) but a field is not %s text%s"
                                    % (FORM_TYPE, codec, TYPE_HINT), "body-parse") from None
                decoded.append(part.decode("latin-1"))
        pairs.append((decoded[0], decoded[1]))
    return pairs


def _part_content(head, content, index):
    """A multipart part's headers and its content with its Content-Transfer-Encoding undone."""
    headers = HeaderParser().parsestr(head.decode("latin-1"))
    cte = (headers.get("content-transfer-encoding") or "").strip().lower()
    try:
        if cte == "base64":
            content = base64.b64decode(re.sub(rb"\s+", b"", content), validate=True)
        elif cte == "quoted-printable":
            content = quopri.decodestring(content)
        elif cte not in ("", "7bit", "8bit", "binary"):
            raise BodyError("multipart part %d has a Content-Transfer-Encoding egress cannot scan (%s)"
                            % (index, cte[:32]), "body-parse")
    except (binascii.Error, ValueError) as exc:
        if isinstance(exc, BodyError):
            raise
        raise BodyError("multipart part %d is not valid %s" % (index, cte), "body-parse") from None
    return headers, content


def multipart_parts(body, boundary):
    """(index, head, content) of each part of a multipart body (RFC 2046), strictly: the first
    delimiter at the start or after a preamble's line break, each delimiter line ending in a line
    break (after optional transport padding), each part's header block ended by an empty line,
    and a close delimiter. Anything else raises BodyError (``body-parse``). CRLF and bare LF line
    breaks are both read; the preamble and the epilogue are not parts (the raw scan sees them)."""
    if not boundary or len(boundary) > 200:
        raise BodyError("multipart body has no usable boundary parameter", "body-parse")
    delimiter = b"--" + boundary
    if body.startswith(delimiter):
        pos = len(delimiter)
    else:
        first = body.find(b"\n" + delimiter)
        if first < 0:
            raise BodyError("multipart body has no part delimited by its declared boundary", "body-parse")
        pos = first + 1 + len(delimiter)
    parts, index, size = [], 0, len(body)
    while True:
        if body.startswith(b"--", pos):
            return parts
        start = pos
        while start < size and body[start] in (0x20, 0x09):
            start += 1
        if body.startswith(b"\r\n", start):
            start += 2
        elif body.startswith(b"\n", start):
            start += 1
        else:
            raise BodyError("multipart delimiter line before part %d is malformed" % index, "body-parse")
        following = body.find(b"\n" + delimiter, start - 1)
        if following < 0:
            raise BodyError("multipart body ends inside part %d (no closing boundary)" % index, "body-parse")
        end = following - 1 if following > start and body[following - 1] == 0x0D else following
        part = body[start:end] if end >= start else b""
        if part.startswith(b"\r\n"):
            head, content = b"", part[2:]
        elif part.startswith(b"\n"):
            head, content = b"", part[1:]
        else:
            ends = [i for i in (part.find(b"\r\n\r\n"), part.find(b"\n\n")) if i >= 0]
            if not ends:
                raise BodyError("multipart part %d has no empty line after its headers" % index, "body-parse")
            cut = min(ends)
            sep = 4 if part.startswith(b"\r\n\r\n", cut) else 2
            head, content = part[:cut], part[cut + sep:]
        parts.append((index, head, content))
        index += 1
        pos = following + 1 + len(delimiter)


def _multipart_segments(body, boundary, out, depth):
    for index, head, content in multipart_parts(body, boundary):
        headers, content = _part_content(head, content, index)
        name = headers.get_param("name", header="content-disposition") or "part%d" % index
        if isinstance(name, tuple):  # RFC 2231 encoded parameter
            name = name[2]
        filename = headers.get_param("filename", header="content-disposition")
        if isinstance(filename, tuple):
            filename = filename[2]
        where = "body field %s" % name
        out.append((where + " (name)", _encode(name)))
        if filename:
            out.append((where + " (filename)", _encode(filename)))
        # A part's content is read as its type says when it parses, else as bytes: browsers label
        # a file part by its name's extension, so its content is not held to that type.
        out.extend(extract(content, headers.get("content-type") or "", where, depth + 1))


def extract(body, content_type, where="body", depth=0, strict=False):
    """``(where, bytes)`` segments of the decoded ``body`` by its structure.

    JSON: every string value and key (every member, duplicates included), each named by its
    path (``$.messages[0].content``); urlencoded forms: names and values; multipart: names,
    filenames and contents (each part extracted again by its own type); anything else: the body
    as one segment.

    ``strict`` (the request body itself): a body declared JSON (``is_json_type``), a form or
    multipart that does not parse as such raises BodyError (``body-parse``); an empty (or blank)
    body is one segment whatever its type. Lenient (parts, messages): what does not parse as
    declared is one segment."""
    media, params = media_type(content_type)
    if depth >= 4 or not body.strip():
        return [(where, body)]
    charset = params.get("charset", "").strip().lower()
    declared_json = is_json_type(media)
    if declared_json or body.lstrip()[:1] in (b"{", b"["):
        document = _json_document(body, charset, strict and declared_json)
        if document is not None:
            return [(JsonDocument(document, "body field " if where == "body" else where + " "), None)]
    if media == FORM_TYPE:
        out = []
        for name, value in _form_pairs(body, charset, strict):
            label = percent_decode(name)
            out.append(("body field %s (name)" % label, _encode(name)))
            out.append(("body field %s" % label, _encode(value)))
        return out
    if media.startswith("multipart/"):
        out = []
        try:
            boundary = params.get("boundary", "").encode("latin-1")
            _multipart_segments(body, boundary, out, depth)
        except (BodyError, UnicodeEncodeError) as exc:
            if strict:
                reason = str(exc) if isinstance(exc, BodyError) else "its boundary is not latin-1"
                raise BodyError("request body is declared %s but is not well-formed: %s" % (media[:40], reason),
                                "body-parse") from None
            return [(where, body)]
        return out
    return [(where, body)]


def _table(chars):
    return bytes(1 if byte in chars else 0 for byte in range(256))


_B64URL_TABLE = _table(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _printable(data):
    """Mostly text (a decoded git SHA or image is not worth scanning as text)."""
    return bool(data) and len(data.translate(None, _PRINTABLE_BYTES)) <= 0.15 * len(data)


def _decode_hex(run):
    return binascii.unhexlify(run[:len(run) - len(run) % 2])


def _decode_b32(run):
    run = run.rstrip(b"=")
    run = run[:len(run) - len(run) % 8] if len(run) % 8 in (1, 3, 6) else run
    return base64.b32decode(run + b"=" * (-len(run) % 8))


def _decode_b64url(run):
    run = run.rstrip(b"=")
    run = run[:len(run) - len(run) % 4] if len(run) % 4 == 1 else run
    return base64.urlsafe_b64decode(run + b"=" * (-len(run) % 4))


_HEX_CHARS = b"0123456789abcdefABCDEF"
_B32_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_INNER_LIMIT = 1024
_INNER_HEX = re.compile(rb"[0-9A-Fa-f]{32,}")
_INNER_B32 = re.compile(rb"[A-Z2-7]{16,}")


def _inner(run, start, pattern, decode, append):
    for inner in pattern.finditer(run):
        decoded = _printable_decode(decode, inner.group())
        if decoded:
            append((start + inner.start(), decoded))


_TEXT_HIGH_NIBBLES = b"0234567"  # the first hex digit of a printable ASCII byte (or tab/CR/LF)
_B64_TEXT_LEAD = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdef"  # base64 char 0 of a group of 3 ASCII bytes
_TEXT_LEADS = frozenset(_TEXT_HIGH_NIBBLES)


def _printable_decode(decode, run):
    try:
        decoded = decode(run)
    except (binascii.Error, ValueError):
        return None
    return decoded if _printable(decoded) else None


def decoded_forms(buffer):
    """(offset, bytes) of hex, base32 and URL-safe base64 runs in ``buffer`` that decode to text.

    One C pass (translate, then bytes.find) finds the runs of 16+ characters of the
    URL-safe base64 alphabet, which contain every hex and base32 run. A code body has thousands
    (identifiers, hex ids), so cheap tests come first: hex of text has every other digit in
    0/2-7, base64 of ASCII text has every 4th character in A-Za-f. Hex and base32 runs glued to
    other letters are looked for inside short runs only (a long run is a blob: an image, an
    archive, a bundle)."""
    found = []
    append = found.append
    classes = buffer.translate(_B64URL_TABLE)
    find, sentinel, size = classes.find, b"\x01" * 16, len(classes)
    text_leads, hex_chars, b32_chars = _TEXT_LEADS, _HEX_CHARS, _B32_CHARS
    end = 0
    while True:
        # bytes.find runs in C; a regex with a length bound restarts inside every shorter run.
        start = find(sentinel, end)
        if start < 0:
            break
        end = find(b"\x00", start + 16)
        end = size if end < 0 else end
        run = buffer[start:end]
        length = end - start
        non_hex = run.translate(None, hex_chars)
        if not non_hex:
            # run[0] first: most hex runs (random ids, digests) fail there, without a slice.
            if length >= 32 and run[0] in text_leads and not run[::2].translate(None, _TEXT_HIGH_NIBBLES):
                decoded = _printable_decode(_decode_hex, run)
                if decoded:
                    append((start, decoded))
            continue
        non_b32 = run.translate(None, b32_chars)
        if not non_b32:
            decoded = _printable_decode(_decode_b32, run)
            if decoded:
                append((start, decoded))
            continue
        if length >= 20 and (b"-" in run or b"_" in run or length % 4) and \
                not run[4::4].translate(None, _B64_TEXT_LEAD):
            # Padded standard-alphabet base64 is kingfisher's own job; it does not decode a URL-safe
            # run (a - or _) nor an unpadded one (a length that is no multiple of 4).
            decoded = _printable_decode(_decode_b64url, run)
            if decoded:
                append((start, decoded))
        if length <= _INNER_LIMIT:
            # An inner run needs that many characters of its alphabet in the run at all: the
            # counts come from the translations above, and most runs stop here.
            if length - len(non_hex) >= 32:
                _inner(run, start, _INNER_HEX, _decode_hex, append)
            if length - len(non_b32) >= 16:
                _inner(run, start, _INNER_B32, _decode_b32, append)
    return found


class ScanBuffer:
    """Segments joined into one buffer (one scanner call), with where each byte came from."""

    def __init__(self):
        self.parts = []
        self.starts = []
        self.wheres = []
        self.size = 0

    def add(self, where, data):
        """Add one segment (str or bytes), plus its percent-decoded/NFKC form when different;
        a ``JsonDocument`` as ``where`` adds all its strings at once."""
        if isinstance(where, JsonDocument):
            self._add_document(where)
            return
        if isinstance(data, str):
            text = data
        else:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:  # binary: scanned as it is
                text = ""
        if "%" in text or not text.isascii():
            folded = normalize_text(percent_decode(text))
            if folded != text:
                self._append(where, _encode(folded))
        self._append(where, data if isinstance(data, bytes) else _encode(data))

    def add_raw(self, where, data):
        """Add one segment of bytes exactly as they are (no decoded or folded form)."""
        self._append(where, data)

    def _add_document(self, document):
        texts = document.texts
        if not texts:
            return
        joined = "\n\x00\n".join(texts)
        data = _encode(joined)
        if len(data) == len(joined):
            steps = [len(text) + 3 for text in texts]
        else:
            steps = [len(_encode(text)) + 3 for text in texts]
        document.first = len(self.starts)
        self.starts.extend(itertools.accumulate(steps[:-1], initial=self.size))
        self.wheres.extend(itertools.repeat(document, len(texts)))
        self.parts.append(data)
        self.size += len(data) + len(SEPARATOR)
        if "%" in joined or not joined.isascii():
            for index in [i for i, text in enumerate(texts) if "%" in text or not text.isascii()]:
                folded = normalize_text(percent_decode(texts[index]))
                if folded != texts[index]:
                    self._append(Where(document, index), _encode(folded))

    def _append(self, where, data):
        if not data:
            return
        self.starts.append(self.size)
        self.wheres.append(where)
        self.parts.append(data)
        self.size += len(data) + len(SEPARATOR)

    def add_decoded_forms(self, joined=None):
        """Append the decoded hex/base32/base64url runs found in what was added so far
        (``joined``: ``self.joined()`` when the caller has it). Returns ``(base, data)``: the
        appended segments joined, and the offset of ``data`` in the new ``joined()``, so a
        caller that scanned the first ``joined`` already scans only ``data`` (b"" if none)."""
        joined = self.joined() if joined is None else joined
        base, first = self.size, len(self.parts)
        for offset, decoded in decoded_forms(joined):
            self._append(self.where_at(offset), decoded)
        return base, SEPARATOR.join(self.parts[first:])

    def joined(self):
        return SEPARATOR.join(self.parts)

    def segment_bounds(self, offset):
        """(index, start, end) in ``joined()`` of the segment that holds the byte at ``offset``."""
        if not self.starts:
            return 0, 0, max(self.size - len(SEPARATOR), 0)
        index = max(bisect.bisect_right(self.starts, offset) - 1, 0)
        end = self.starts[index + 1] if index + 1 < len(self.starts) else self.size
        return index, self.starts[index], end - len(SEPARATOR)

    def where_at(self, offset):
        """The place (a str) of the byte at ``offset`` of ``joined()``."""
        if not self.wheres:
            return "body"
        index = max(bisect.bisect_right(self.starts, offset) - 1, 0)
        where = self.wheres[index]
        if isinstance(where, JsonDocument):
            return where.path_of(index - where.first)
        return str(where)
