# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""DLP: does what the agent sends carry a secret?

Three detectors, over the URL, every header and the decoded body fields, and the first two
also over every byte as the agent sent it (``known_in``: the request line, each header field,
the raw body before content-decoding, the decoded body, each percent-decoded layer and the body
in its declared charset), so that what a parser does not extract (duplicate JSON keys, a form's
``+``, a multipart preamble, a JSON number) is still searched:

- kingfisher (``kingfisher_sdk``, Rust + Vectorscan, ~490 provider rules) finds credentials by
  their format; only findings it marks ``visible`` count (the hidden ones are helper parts such
  as a client id that only matters next to its secret);
- known secrets: the bottle's own secret_env values and every route token, in every encoding an
  agent could wrap them in (raw, base64 standard and URL-safe including the three alignments a
  value can take inside a longer base64 blob, hex, base32), in one Vectorscan pass: a small
  kingfisher database of literal rules built at each (re)load (``KnownSecrets``);
- entropy: a long random-looking URL path segment or query value (a secret smuggled in a URL),
  tuned so package-manager URLs (hex digests, wheel and tarball names, git SHAs, UUIDs) pass.

A refusal names a rule and a place (``url``, ``header <name>``, ``body field <path>``), never the
value or any part of it; the place itself is checked so that a secret used as a JSON key or a
header name is not echoed back either.

Cost (bench/dlp_scan.py, 1 MiB JSON body): both Vectorscan passes over the extracted text
(known secrets, kingfisher) run in one worker thread, and kingfisher over the raw body in
another, while this thread finds the hex/base32/base64url runs to decode (pure Python); the
decoded forms are scanned after. Vectorscan releases the GIL, so on two cores the scan costs
about the Python work (JSON parse, field walk, decoding passes).
"""

import base64
import concurrent.futures
import logging
import math
import re
import threading
from collections import Counter
from urllib.parse import parse_qsl, unquote_to_bytes

from .bodies import ScanBuffer, extract, media_type, normalize_text, percent_decode

LOG = logging.getLogger("bottle_firewall")
MIN_SECRET_LENGTH = 6
PARALLEL_BYTES = 256 * 1024
MAX_HOSTS = 1024
_POOL = []
_RANDOM_RUN = re.compile(r"[A-Za-z0-9+/]{16,}")
_PERCENT_ESCAPE = re.compile(rb"%[0-9A-Fa-f]{2}")
_MAX_PERCENT_ROUNDS = 8
_UTF8_CHARSETS = ("", "utf-8", "utf8", "us-ascii", "ascii")


def byte_layers(data):
    """``data`` and each of its percent-decoded forms, byte for byte (``%2541`` gives ``%41``
    then ``A``), until none is left (at most 8 rounds): every layer an upstream could read."""
    layers = [data]
    for _round in range(_MAX_PERCENT_ROUNDS):
        if b"%" not in data or _PERCENT_ESCAPE.search(data) is None:
            break
        data = unquote_to_bytes(data)
        layers.append(data)
    return layers


def charset_layer(body, content_type):
    """The body as UTF-8 when its declared charset is another one (UTF-16, latin-1...), else None."""
    charset = media_type(content_type)[1].get("charset", "").strip().lower()
    if charset in _UTF8_CHARSETS:
        return None
    try:
        return body.decode(charset, "replace").encode("utf-8", "surrogatepass")
    except LookupError:
        return None


_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")


class Finding:
    """A visible kingfisher finding with its offsets in the bytes the caller passed."""

    __slots__ = ("rule_id", "location")

    def __init__(self, rule_id, start, end):
        self.rule_id = rule_id
        self.location = {"start_offset": start, "end_offset": end}


def visible_findings(scanner, data):
    """The visible findings of ``scanner`` (kingfisher) in ``data``, offsets in ``data``.

    kingfisher reads bytes that start with a UTF-16 or UTF-32 byte-order mark as that encoding:
    a body or a buffer starting ``FF FE`` hid every secret after it, raw, from both the pattern
    rules and the known secrets. Such data is scanned twice: as bytes (a newline in front, the
    offsets shifted back) and as kingfisher reads it (its findings placed at offset 0)."""
    if data[:2] not in _BOMS[:2] and data[:4] != _BOMS[2]:
        return [Finding(f.rule_id, f.location["start_offset"], f.location["end_offset"])
                for f in scanner.scan(data) if f.visible]
    found = [Finding(f.rule_id, max(f.location["start_offset"] - 1, 0), max(f.location["end_offset"] - 1, 0))
             for f in scanner.scan(b"\n" + data) if f.visible]
    found.extend(Finding(f.rule_id, 0, min(len(data), 1)) for f in scanner.scan(data) if f.visible)
    return found


class Hit:
    """A refusal reason: ``rule`` (dlp:<id>, known-secret, entropy) and ``where``.

    ``context``, when the detector knows where the match lies: ``(segment, start, end,
    decoded)``, the bytes of the scanned segment that holds it (a header's ``name: value``,
    a body field, the body, a percent-decoded form, or a hex/base32/base64url run decoded:
    then ``decoded`` is True) and the match's span in them. Only ``release`` reads it, to
    show the operator the redacted surroundings of a held request's hit; it is never logged
    and takes no part in equality."""

    __slots__ = ("rule", "where", "context")

    def __init__(self, rule, where, context=None):
        self.rule, self.where, self.context = rule, where, context

    def message(self):
        return "blocked by egress: %s found in %s" % (self.rule, self.where)

    def __repr__(self):
        return "Hit(%r, %r)" % (self.rule, self.where)

    def __eq__(self, other):
        return isinstance(other, Hit) and (self.rule, self.where) == (other.rule, other.where)


def _pool():
    """The worker threads that run kingfisher on raw bodies beside the field extraction."""
    if not _POOL:
        _POOL.append(concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="dlp"))
    return _POOL[0]


def _started(function, data):
    """Run ``function(data)`` in a worker thread and return its future once the worker runs.

    The worker needs the GIL to start; a thread busy in Python hands it over only every
    switch interval (5 ms), so without this wait the GIL-free scan would start late."""
    started = threading.Event()

    def run():
        started.set()
        return function(data)
    future = _pool().submit(run)
    started.wait(0.005)
    return future


def shannon_entropy(text):
    """Bits per character of ``text``."""
    if not text:
        return 0.0
    counts = Counter(text)
    total = float(len(text))
    return -sum(n / total * math.log2(n / total) for n in counts.values())


def looks_random(text, min_length, bits):
    """A long, high-entropy string with a long mixed run, as tokens are and file names are not.

    Entropy alone flags wheel names (``cryptography-45.0.7-cp311-abi3-manylinux_2_34_x86_64.whl``
    has 4.7 bits/char): their words are short. A token has a long run of letters and digits."""
    if len(text) < min_length or shannon_entropy(text) <= bits:
        return False
    for run in _RANDOM_RUN.findall(text):
        classes = sum((any(c.islower() for c in run), any(c.isupper() for c in run), any(c.isdigit() for c in run)))
        if classes >= 2 and shannon_entropy(run) > 3.5:
            return True
    return False


def entropy_hit(path_query, min_length, bits):
    """Where in the URL a random-looking segment or query value is, or None."""
    path, _sep, query = path_query.partition("?")
    for segment in path.split("/"):
        if len(segment) >= min_length and looks_random(normalize_text(percent_decode(segment)), min_length, bits):
            return "url path"
    for name, value in parse_qsl(query, keep_blank_values=True):
        if len(value) >= min_length and looks_random(normalize_text(percent_decode(value)), min_length, bits):
            return "url query %s" % normalize_text(percent_decode(name))
    return None


def secret_variants(value):
    """Every string form of ``value`` that would carry it, for the Aho-Corasick automaton.

    base64 inside a longer blob: with k bytes before it (k = 0, 1, 2 modulo 3), the encoded
    characters that depend on the secret alone run from ceil(8k/6) to floor(8(k+n)/6); those
    cores (standard and URL-safe alphabets) match it whatever surrounds it, padded or not."""
    raw = value.encode("utf-8")
    forms = {value, raw.decode("latin-1"), raw.hex(), raw.hex().upper()}
    if " " in value:
        forms.add(value.replace(" ", "+"))  # a form's space, which percent-decoding does not undo
    n = len(raw)
    for encoder in (base64.b64encode, base64.urlsafe_b64encode):
        for k in range(3):
            encoded = encoder(b"\0" * k + raw).decode("ascii")
            forms.add(encoded[-(-8 * k // 6):(8 * (k + n)) // 6])
    b32 = base64.b32encode(raw).decode("ascii")
    forms.add(b32[:(8 * n) // 5])
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def _literal(form):
    """A pattern (Vectorscan's and Rust's regex syntax alike) matching exactly the bytes ``form``."""
    return "".join(chr(b) if 0x30 <= b <= 0x39 or 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A else "\\x%02X" % b
                   for b in form)


def _byte_forms(values):
    """The byte strings that carry any of ``values``, in any of ``secret_variants``.

    Each str form is searched as the bytes it stands for: its latin-1 bytes (the form that
    spells raw UTF-8 bytes one char per byte) and its UTF-8 bytes (the value as text)."""
    forms = set()
    for value in values:
        for form in secret_variants(value):
            forms.add(form.encode("utf-8", "surrogatepass"))
            if max(form) < "\u0100":
                forms.add(form.encode("latin-1"))
    return sorted(form for form in forms if len(form) >= MIN_SECRET_LENGTH)


def compile_literals(forms, tag="bottle.known-secret"):
    """A kingfisher ``Scanner`` over a rules file of one literal rule per form (Vectorscan, no
    built-in rules, never cached on disk: the database holds the secrets), and the forms it
    does not report. kingfisher drops some findings by their text (``xxxxxx``, ``aaaa...``):
    each form is scanned alone once, and the ones it misses are returned for a plain search."""
    import json
    import os
    import tempfile
    import kingfisher_sdk
    document = {"rules": [{"name": "known secret", "id": "%s.%d" % (tag, index), "pattern": _literal(form),
                           "min_entropy": 0.0, "confidence": "high"} for index, form in enumerate(forms)]}
    shm = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="bottle-known-", dir=shm) as directory:
        path = os.path.join(directory, "known.yml")
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w", encoding="utf-8") as handle:
            json.dump(document, handle)  # JSON is YAML
        rules = kingfisher_sdk.Rules([path], builtins=False, confidence="low", cache=False)
    scanner = kingfisher_sdk.Scanner(rules, base64=False)
    missed = [form for form in forms if not any(f.visible for f in scanner.scan(form))]
    return scanner, missed


class KnownSecrets:
    """Every form of every known secret, found in one Vectorscan pass (kingfisher with a small
    database of literal rules, built at each load: ~15 ms for 350 forms; a 1 MiB scan takes
    ~0.3 ms and releases the GIL, where an Aho-Corasick automaton took ~5 ms holding it).
    Forms kingfisher filters out are searched with ``bytes.find``; if kingfisher cannot build
    the database at all, a pyahocorasick automaton over every form does the whole job."""

    def __init__(self, values=()):
        self.scanner = None
        self.plain = ()        # forms kingfisher does not report: bytes.find
        self.automaton = None  # the fallback when the literal database did not build
        self.count = 0
        self.unprotected = 0
        self.generation = 0    # bumped by each load: what was decided with the old set is stale
        self.load(values)

    def load(self, values):
        values = sorted({v for v in values if isinstance(v, str)})
        short = [v for v in values if len(v) < MIN_SECRET_LENGTH]
        if short:
            LOG.warning("egress: %d known secret value(s) shorter than %d characters are NOT protected by DLP "
                        "(too short to match without false positives)", len(short), MIN_SECRET_LENGTH)
        usable = [v for v in values if len(v) >= MIN_SECRET_LENGTH]
        self.unprotected = len(short)
        forms = _byte_forms(usable)
        scanner, plain, automaton = None, (), None
        if forms:
            try:
                scanner, plain = compile_literals(forms)
            except Exception as exc:
                LOG.error("egress: the known-secret database did not build with kingfisher (%s); using the "
                          "slower Aho-Corasick automaton", type(exc).__name__)
                import ahocorasick
                automaton = ahocorasick.Automaton()
                for form in forms:
                    automaton.add_word(form.decode("latin-1"), len(form))
                automaton.make_automaton()
        self.scanner, self.plain, self.automaton = scanner, tuple(plain), automaton
        self.count = len(usable)
        self.generation += 1

    def find(self, data):
        """Offset of the first known secret in ``data`` (bytes, or str searched as its UTF-8), or None."""
        span = self.find_span(data)
        return None if span is None else span[0]

    def find_span(self, data):
        """(start, end) of the first known secret in ``data``, or None."""
        spans = self.spans(data, first=True)
        return min(spans) if spans else None

    def spans(self, data, first=False):
        """(start, end) of the known secrets in ``data`` (``first``: the automaton may stop at one)."""
        if not data:
            return []
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogatepass")
        if self.automaton is not None:
            spans = []
            for end, length in self.automaton.iter(data.decode("latin-1")):
                spans.append((end - length + 1, end + 1))
                if first:
                    break
            return spans
        spans = [(f.location["start_offset"], f.location["end_offset"]) for f in
                 visible_findings(self.scanner, data)] if self.scanner is not None else []
        for form in self.plain:
            offset = data.find(form)
            while offset >= 0:
                spans.append((offset, offset + len(form)))
                if first:
                    break
                offset = data.find(form, offset + 1)
        return spans


def load_kingfisher(cache_dir=None):
    """A kingfisher ``Scanner`` with the built-in rules (compiled once, cached on disk)."""
    import kingfisher_sdk
    kwargs = {"cache_dir": cache_dir} if cache_dir else {}
    rules = kingfisher_sdk.Rules(**kwargs)
    return kingfisher_sdk.Scanner(rules)


class Engine:
    """The DLP detectors with their settings. ``scanner`` None means kingfisher failed to load:
    requests with a query or a body are then refused (``dlp:unavailable``), loudly logged."""

    def __init__(self, scanner=None, scanner_error=None, min_length=20, bits=4.5):
        self.scanner = scanner
        self.scanner_error = scanner_error
        self.known = KnownSecrets()
        self.min_length, self.bits = min_length, bits
        self.hosts = {}        # scan_host's answers, for as long as the detectors are the same
        self.hosts_stamp = None

    @classmethod
    def start(cls, cache_dir=None):
        try:
            return cls(load_kingfisher(cache_dir))
        except Exception as exc:
            LOG.error("egress: the kingfisher secret scanner did not load (%s: %s); every request with a query "
                      "or a body is refused until egress restarts with a working scanner",
                      type(exc).__name__, str(exc)[:200])
            return cls(None, type(exc).__name__)

    def configure(self, min_length, bits):
        self.min_length, self.bits = min_length, bits

    def unavailable(self):
        return Hit("dlp:unavailable", "the secret scanner (not loaded)")

    def scan_head(self, path_query, header_items, url_from_upstream=False, raw=()):
        """URL and headers (name, value) pairs: the first Hit, or None.

        ``url_from_upstream``: the URL is one upstream handed out (a redirect's Location): only
        the known secrets are looked for in it, not kingfisher's patterns nor entropy.
        ``raw``: (where, bytes) of the head as the agent sent it (the request line, each header
        field ``name: value``), where the known secrets are looked for byte for byte and in
        every percent-decoded layer (``known_in``)."""
        if self.scanner is None and "?" in path_query and not url_from_upstream:
            return self.unavailable()
        buffer = ScanBuffer()
        if url_from_upstream:
            url = ScanBuffer()
            url.add("url", path_query)
            url.add_decoded_forms()
            if self.known.find(url.joined()) is not None:
                return self._safe(Hit("known-secret", "url"))
        else:
            buffer.add("url", path_query)
        seen = {path_query.encode("utf-8", "surrogatepass")}
        for name, value in header_items:
            # One segment "name: value": some rules need the name as context (DATADOG_API_KEY: ...).
            text = "%s: %s" % (name, value)
            buffer.add("header %s" % name, text)
            seen.add(text.encode("utf-8", "surrogatepass"))
        exempt = []
        for where, data in raw:
            # The head as sent, in the same pass: the method, and whatever the str forms above
            # do not spell byte for byte (non-UTF-8 bytes, an absolute-form authority).
            if data in seen:
                continue
            if url_from_upstream and where == "request target":
                exempt.append((where, data))  # it came from upstream: the known secrets only
                continue
            for layer in byte_layers(data):
                buffer.add_raw(where, layer)
        hit = self._scan(buffer)
        if hit is None and exempt:
            hit = self.known_in(exempt)
        if hit is None and not url_from_upstream:
            where = entropy_hit(path_query, self.min_length, self.bits)
            if where:
                hit = Hit("entropy", where)
        return self._safe(hit)

    def known_in(self, segments, patterns=()):
        """The known secrets over raw ``(where, bytes)`` segments and each of their percent-decoded
        layers (``byte_layers``), in one pass; then kingfisher's patterns over the layers of the
        segments whose place is in ``patterns`` (the ones no other pass read as they are): a Hit,
        or None. This is the scan that does not depend on how a parser reads the bytes
        (duplicate JSON keys, a form's ``+`` and ``&``, numbers, multipart headers, preambles, a
        body that is not what it says, compressed bytes, a declared charset)."""
        buffer = ScanBuffer()
        pattern_buffer = ScanBuffer()
        for where, data in segments:
            for index, layer in enumerate(byte_layers(data)):
                buffer.add_raw(where, layer)
                if where in patterns and (index or where != "body"):  # the body itself: read already
                    pattern_buffer.add_raw(where, layer)
        if not buffer.parts:
            return None
        joined = buffer.joined()
        span = self.known.find_span(joined)
        if span is not None:
            return self._located("known-secret", buffer, joined, len(joined), b"", len(buffer.starts), span)
        if self.scanner is None or not pattern_buffer.parts:
            return None
        joined = pattern_buffer.joined()
        finding = self._first(joined)
        if finding is None:
            return None
        return self._located("dlp:" + finding.rule_id, pattern_buffer, joined, len(joined), b"",
                             len(pattern_buffer.starts),
                             (finding.location["start_offset"], finding.location["end_offset"]))

    def scan_body(self, body, content_type, layers=(), strict=False):
        """A decoded (decompressed) request body: the first Hit, or None.

        ``layers``: the body's encoded forms as sent (the raw bytes before each Content-Encoding
        was undone); ``strict``: a body that does not parse as its declared type raises
        ``BodyError`` (``bodies.extract``). The fields are scanned by every detector; then the
        known secrets over the raw bytes: each layer, the decoded body, their percent-decoded
        forms and the body in its declared charset (``known_in``).

        kingfisher releases the GIL: on a large body the scan of the raw bytes runs in a worker
        thread while this one extracts the fields, so the two overlap."""
        if not body and not any(layers):
            return None
        if self.scanner is None:
            return self.unavailable()
        raw = [("body (as sent, encoded)", layer) for layer in layers if layer]
        raw.append(("body", body))
        decoded = charset_layer(body, content_type) if body else None
        if decoded is not None:
            raw.append(("body (declared charset)", decoded))
        large = len(body) >= PARALLEL_BYTES
        raw_scan = _started(self._raw_pass, body) if large else None
        try:
            buffer = ScanBuffer()
            segments = extract(body, content_type, strict=strict) if body else []
            for where, data in segments:
                buffer.add(where, data)
            whole = len(segments) == 1 and segments[0][1] is body  # the body is its only segment
            if not large:
                # A small body: its raw layers join the fields in one pass of both detectors.
                for where, data in raw:
                    for index, layer in enumerate(byte_layers(data)):
                        if not (whole and where == "body" and index == 0):
                            buffer.add_raw(where, layer)
                return self._safe(self._scan(buffer))
            hit = self._scan(buffer, parallel=True)
            if hit is None:
                known, finding, body_layers = raw_scan.result()
                if known is not None:
                    index, (start, end) = known
                    hit = Hit("known-secret", "body", (body_layers[index], start, end, index > 0))
                elif finding is not None and not whole:
                    hit = Hit("dlp:" + finding.rule_id, "body",
                              (body, finding.location["start_offset"], finding.location["end_offset"], False))
        finally:
            if raw_scan is not None:
                raw_scan.cancel()
        if hit is None and len(body_layers) > 1:
            # kingfisher over the percent-decoded body (the known secrets were looked for there).
            decoded = ScanBuffer()
            for layer in body_layers[1:]:
                decoded.add_raw("body", layer)
            joined = decoded.joined()
            finding = self._first(joined)
            if finding is not None:
                hit = self._located("dlp:" + finding.rule_id, decoded, joined, len(joined), b"",
                                    len(decoded.starts),
                                    (finding.location["start_offset"], finding.location["end_offset"]))
        others = [segment for segment in raw if segment[0] != "body"]
        if hit is None and others:
            # What no pass read as it is: the encoded layers and the body in its charset.
            hit = self.known_in(others, patterns=("body (as sent, encoded)", "body (declared charset)"))
        return self._safe(hit)

    def _raw_pass(self, body):
        """In a worker (GIL released in the scanners): the known secrets over the body and its
        percent-decoded layers ((layer index, span) or None), kingfisher's first finding in the
        body, and the layers."""
        layers = byte_layers(body)
        known = None
        for index, layer in enumerate(layers):
            span = self.known.find_span(layer)
            if span is not None:
                known = (index, span)
                break
        return known, self._first(body), layers

    def scan_message(self, content):
        """One WebSocket message from the agent."""
        if not content:
            return None
        if self.scanner is None:
            return self.unavailable()
        data = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else content
        buffer = ScanBuffer()
        segments = extract(data, "", "websocket message")
        for where, segment in segments:
            buffer.add(where, segment)
        whole = len(segments) == 1 and segments[0][1] is data
        # The message as sent and its percent-decoded layers, in the same pass (issue 20).
        for index, layer in enumerate(byte_layers(data)):
            if index or not whole:
                buffer.add_raw("websocket message", layer)
        return self._safe(self._scan(buffer))

    def scan_host(self, host):
        """A host name (DNS labels can carry data out through the resolver): the first Hit, or None.

        Remembered per host (up to ``MAX_HOSTS``) while the detectors are the same (the known
        secrets' generation, the entropy settings, the scanner): every audit line names a host,
        and a tunnel's requests all name the same one."""
        stamp = (self.known.generation, self.min_length, self.bits, id(self.scanner))
        if stamp != self.hosts_stamp or len(self.hosts) >= MAX_HOSTS:
            self.hosts, self.hosts_stamp = {}, stamp
        try:
            return self.hosts[host]
        except KeyError:
            pass
        hit = self.hosts[host] = self._scan_host(host)
        return hit

    def _scan_host(self, host):
        buffer = ScanBuffer()
        buffer.add("host", host)
        hit = self._scan(buffer)
        if hit is None and any(looks_random(label, self.min_length, self.bits) for label in host.split(".")):
            hit = Hit("entropy", "host")
        return hit

    def _scan(self, buffer, parallel=False):
        """Known secrets, then kingfisher, over the joined segments and their decoded forms.

        ``parallel``: both GIL-free Vectorscan passes over the joined segments run in a worker
        thread while this one looks for hex/base32/base64url runs to decode (pure Python); the
        decoded forms, usually none or a few bytes, are scanned after."""
        joined = buffer.joined()
        pending = _started(self._detect, joined) if parallel else None
        first_decoded = len(buffer.starts)
        try:
            base, decoded = buffer.add_decoded_forms(joined)
            known, finding = pending.result() if pending is not None else self._detect(joined)
        finally:
            if pending is not None:
                pending.cancel()
        if known is None and decoded:
            known = self.known.find_span(decoded)
            known = None if known is None else (base + known[0], base + known[1])
        if known is not None:
            return self._located("known-secret", buffer, joined, base, decoded, first_decoded, known)
        if self.scanner is None:
            return None
        if finding is not None:
            return self._located("dlp:" + finding.rule_id, buffer, joined, base, decoded, first_decoded,
                                 (finding.location["start_offset"], finding.location["end_offset"]))
        if decoded:
            finding = self._first(decoded)
            if finding is not None:
                return self._located("dlp:" + finding.rule_id, buffer, joined, base, decoded, first_decoded,
                                     (base + finding.location["start_offset"], base + finding.location["end_offset"]))
        return None

    @staticmethod
    def _located(rule, buffer, joined, base, decoded, first_decoded, span):
        """The Hit of ``rule`` at ``span`` of the buffer (joined, then the decoded forms at ``base``),
        with the segment that holds it as its context."""
        start, end = span
        index, seg_start, seg_end = buffer.segment_bounds(start)
        data, shift = (decoded, base) if start >= base else (joined, 0)
        segment = data[seg_start - shift:seg_end - shift]
        context = (segment, start - seg_start, min(end, seg_end) - seg_start, index >= first_decoded)
        return Hit(rule, buffer.where_at(start), context)

    def _detect(self, data):
        """((start, end) of a known secret or None, first kingfisher finding or None) in ``data``;
        kingfisher does not run when a known secret is already there."""
        known = self.known.find_span(data)
        if known is not None or self.scanner is None:
            return known, None
        return None, self._first(data)

    def _first(self, data):
        visible = visible_findings(self.scanner, data)
        if not visible:
            return None
        return min(visible, key=lambda f: f.location["start_offset"])

    def _safe(self, hit):
        """The hit with a ``where`` that carries no secret (else only its kind of place)."""
        if hit is None:
            return None
        where = hit.where
        leaky = len(where) > 160 or self.known.find(where) is not None
        if not leaky and self.scanner is not None:
            leaky = bool(visible_findings(self.scanner, where.encode("utf-8", "surrogatepass")))
        if not leaky:
            leaky = any(looks_random(part, self.min_length, self.bits) for part in re.split(r"[ .\[\]$]", where))
        if leaky:
            kind = where.split(" ", 2)
            where = "%s %s (name withheld)" % (kind[0], kind[1]) if kind[0] in ("body", "url") and len(kind) > 1 \
                else "%s (name withheld)" % kind[0]
        return Hit(hit.rule, where, hit.context)
