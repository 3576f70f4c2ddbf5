# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Holding a request with a DLP hit for the operator (egress.json ``dlp.action: supervise``).

egress asks supervise, on its bundle-local endpoint (``dlp.supervise_url``), for a *release*
proposal, then polls it:

  POST <url>/release      {"host", "method", "path", "rule", "where", "excerpt"} (<= 8 KiB)
                          -> 201 {"id", "status": "pending"}; anything else: not asked
  GET  <url>/release/<id> -> 200 {"id", "status": pending|approved|rejected, "note"}

until the operator approved it (the request is sent, once), rejected it, or
``dlp.supervise_timeout`` seconds passed. A tiny HTTP/1.1 client on ``asyncio.open_connection``
(one connection per call, ``Connection: close``) keeps the event loop free while it waits.

**Nothing egress sends supervise may carry the secret or any part of it.** ``Redactor`` builds
what is sent and checks it with the same detectors that found the hit:

- ``path``: the request path with the query *values* removed (names kept) and every path
  segment or query name in which a detector finds anything (known secret, kingfisher, a
  decoded hex/base32/base64url run, a random-looking value) replaced by ``[redacted]``; if the
  result as a whole still trips the URL scan (a secret across segments), it is ``/[redacted]``.
- ``excerpt``: ~75 bytes either side of the hit, taken from the segment the detector scanned
  (a header's ``name: value``, a JSON string, a form field, the decompressed body; for a hit in
  a hex/base32/base64url run, the *decoded* text, prefixed ``[decoded]``), after every finding
  in 4 KiB around it was replaced by ``[redacted:<rule>]``. A redaction covers the whole word
  around the match (the run of letters, digits and ``+/=_-.~%``: a base64 blob, not just the
  bytes the matcher named). Partial words at the excerpt's edges are cut off, the rest is
  scanned again until clean (three rounds; what is found then is redacted up to the whitespace
  around it) and checked once more as it will be sent, percent-
  and NFKC-decoded too: an excerpt that still trips anything is dropped (sent empty). A URL
  hit has no excerpt (the redacted path says where). Only printable characters, newline and
  tab go out, at most 400.
- ``method``: a standard method as it is; any other token only if it scans clean, else ``OTHER``.
"""

import asyncio
import json
import logging
import re

from .bodies import decoded_forms, normalize_text, percent_decode
from .dlp import looks_random, visible_findings

LOG = logging.getLogger("bottle_firewall")

MAX_BODY = 8192
MAX_EXCERPT = 400
MAX_PATH = 2048
MAX_FIELD = 200
MAX_NOTE = 500
CONTEXT = 75          # bytes of context either side of the hit
WINDOW = 4096         # bytes either side scanned (and redacted) before the excerpt is cut
ROUNDS = 3
REDACTED = "[redacted]"
STANDARD_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
                              "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK", "UNLOCK", "REPORT"))
_WORD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-.~%")
_WORD_RUN = re.compile(rb"[A-Za-z0-9+/=_\-.~%]+")
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SPACE = frozenset(b" \t\r\n")
_NOT_SPACE = frozenset(range(256)) - _SPACE


def printable(text, keep="\n\t"):
    """``text`` with every character that is not printable (but those in ``keep``) as ``?``."""
    return "".join(c if c.isprintable() or c in keep else "?" for c in text)


class Redactor:
    """What a held request may show the operator, checked with ``engine``'s detectors."""

    def __init__(self, engine):
        self.engine = engine

    # --- detection ------------------------------------------------------------------------

    def _found(self, data):
        """Whether the detectors find anything at all in ``data`` (bytes)."""
        engine = self.engine
        if engine.known.find(data) is not None:
            return True
        return engine.scanner is not None and bool(visible_findings(engine.scanner, data))

    def findings(self, data):
        """(start, end, label) of everything the detectors find in ``data`` (bytes): known
        secrets, kingfisher findings, hex/base32/base64url runs whose decoded text has one,
        random-looking words, and words whose percent/NFKC-decoded form has one."""
        engine = self.engine
        out = [(start, end, "known-secret") for start, end in engine.known.spans(data)]
        if engine.scanner is not None:
            out.extend((f.location["start_offset"], f.location["end_offset"], "dlp:" + f.rule_id)
                       for f in visible_findings(engine.scanner, data))
        for offset, decoded in decoded_forms(data):
            if self._found(decoded):
                out.append((offset, offset + 1, "encoded"))
        for match in _WORD_RUN.finditer(data):
            word = match.group()
            if len(word) >= engine.min_length \
                    and looks_random(word.decode("latin-1"), engine.min_length, engine.bits):
                out.append((match.start(), match.end(), "entropy"))
        for match in re.finditer(rb"\S+", data):
            word = match.group()
            if b"%" in word or not word.isascii():
                text = word.decode("utf-8", "surrogateescape")
                folded = normalize_text(percent_decode(text))
                if folded != text and self._dirty_text(folded):
                    out.append((match.start(), match.end(), "encoded"))
        return out

    def _dirty_text(self, text):
        data = text.encode("utf-8", "surrogateescape")
        if self._found(data) or any(self._found(d) for _o, d in decoded_forms(data)):
            return True
        return any(looks_random(w, self.engine.min_length, self.engine.bits) for w in re.findall(r"\S+", text)
                   if len(w) >= self.engine.min_length)

    def clean(self, text):
        """Whether ``text`` (what would be sent) shows nothing any detector finds, as it is and
        percent/NFKC-decoded."""
        data = text.encode("utf-8", "surrogatepass")
        if self.findings(data):
            return False
        folded = normalize_text(percent_decode(text))
        return folded == text or not self.findings(folded.encode("utf-8", "surrogatepass"))

    # --- redaction ------------------------------------------------------------------------

    @staticmethod
    def _expand(data, start, end, chars=_WORD):
        start, end = max(0, min(start, len(data))), max(0, min(end, len(data)))
        while start > 0 and data[start - 1] in chars:
            start -= 1
        while end < len(data) and data[end] in chars:
            end += 1
        return start, max(end, start)

    def redact(self, data, spans, mark=None, wide=False):
        """``data`` with each span (widened to its words; ``wide``: to the whitespace around it)
        replaced by ``[redacted:<label>]``; ``(bytes, (start, end) of the replacement that covers
        offset ``mark`` or None)``. The replacement covering ``mark`` is labelled with the first
        span's label (the hit's)."""
        chars = _NOT_SPACE if wide else _WORD
        widened = sorted((*self._expand(data, s, e, chars), label) for s, e, label in spans)
        merged = []
        for start, end, label in widened:
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end, label])
        out, position, marked = bytearray(), 0, None
        for start, end, label in merged:
            out += data[position:start]
            covers = mark is not None and marked is None and start <= mark <= max(end, start + 1)
            replacement = ("[redacted:%s]" % (spans[0][2] if covers else label)).encode("ascii", "replace")
            if covers:
                marked = (len(out), len(out) + len(replacement))
            out += replacement
            position = max(position, end)
        out += data[position:]
        return bytes(out), marked

    def excerpt(self, hit):
        """The redacted surroundings of ``hit`` (see the module), or "" when there are none to show."""
        context = getattr(hit, "context", None)
        if context is None or hit.where.startswith("url"):
            return ""
        segment, start, end, decoded = context
        low, high = max(0, start - WINDOW), min(len(segment), max(end, start + 1) + WINDOW)
        window = bytes(segment[low:high])
        start, end = start - low, max(end - low, start - low + 1)
        data, marked = self.redact(window, [(start, end, hit.rule)] + self.findings(window), mark=start)
        if marked is None:
            return ""
        cut_start, cut_end = max(0, marked[0] - CONTEXT), min(len(data), marked[1] + CONTEXT)
        # A word cut in two at an edge is dropped whole: no fragment of anything goes out.
        while 0 < cut_start < marked[0] and data[cut_start - 1] not in _SPACE and data[cut_start] not in _SPACE:
            cut_start += 1
        while marked[1] < cut_end < len(data) and data[cut_end] not in _SPACE and data[cut_end - 1] not in _SPACE:
            cut_end -= 1
        data = data[cut_start:cut_end]
        for _round in range(ROUNDS):
            found = self.findings(data)
            if not found:
                break
            # Still something after a first redaction (``user:[redacted:x]@host`` reads as a
            # credential): now the whole whitespace-delimited run goes.
            data, _marked = self.redact(data, found, wide=True)
        text = data.decode("utf-8", "replace").replace("\r\n", "\n")
        text = printable(text).strip()
        if decoded:
            text = "[decoded] " + text
        if len(text) > MAX_EXCERPT:
            text = text[:MAX_EXCERPT]
        if not self.clean(text):
            LOG.warning("egress: the excerpt of a held request still tripped a detector after redaction; "
                        "sending none")
            return ""
        return text

    def _dirty_piece(self, piece):
        folded = normalize_text(percent_decode(piece))
        if self.findings(piece.encode("utf-8", "surrogateescape")):
            return True
        if folded != piece and self.findings(folded.encode("utf-8", "surrogateescape")):
            return True
        return len(folded) >= self.engine.min_length and looks_random(folded, self.engine.min_length,
                                                                      self.engine.bits)

    def path(self, path):
        """The request path for the operator: query values removed, dirty segments and names
        replaced by ``[redacted]``, ``/[redacted]`` when it still trips the URL scan."""
        path = (path or "/").split("#", 1)[0] or "/"
        base, sep, query = path.partition("?")
        segments = [REDACTED if segment and self._dirty_piece(segment) else segment for segment in base.split("/")]
        names = [part.split("=", 1)[0] for part in query.split("&") if part]
        names = [REDACTED if name and self._dirty_piece(name) else name for name in names]
        out = "/".join(segments) + ("?" + "&".join(name + "=" for name in names) if sep else "")
        out = printable(out, keep="")
        if len(out) > MAX_PATH:
            out = out[:MAX_PATH - 1] + "~"
        if self.engine.scan_head(out, []) is not None or not self.clean(out):
            return "/" + REDACTED
        return out or "/"

    def method(self, method):
        method = method or ""
        if method.upper() in STANDARD_METHODS:
            return method.upper()
        if len(method) <= 16 and re.match(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$", method) and self.clean(method):
            return method
        return "OTHER"

    def fields(self, host, method, path, hit):
        """The POST body of the release proposal for ``hit`` (bytes, at most 8 KiB)."""
        fields = {"host": printable(host or "", keep="")[:253], "method": self.method(method),
                  "path": self.path(path), "rule": printable(hit.rule, keep="")[:MAX_FIELD],
                  "where": printable(hit.where, keep="")[:MAX_FIELD], "excerpt": self.excerpt(hit)}
        return encode_fields(fields)


def encode_fields(fields):
    """JSON of ``fields`` within MAX_BODY: the excerpt is shortened first, then the path."""
    fields = dict(fields)
    while True:
        data = json.dumps(fields, separators=(",", ":")).encode("ascii")
        if len(data) <= MAX_BODY:
            return data
        if fields["excerpt"]:
            fields["excerpt"] = fields["excerpt"][:len(fields["excerpt"]) // 2]
        elif len(fields["path"]) > 1:
            fields["path"] = fields["path"][:len(fields["path"]) // 2] + "~"
        else:
            raise ValueError("the release proposal does not fit in %d bytes" % MAX_BODY)


# --- supervise's endpoint ----------------------------------------------------------------------

class AskError(Exception):
    """supervise was not asked (or did not answer): ``reason`` is for the agent's refusal."""

    def __init__(self, reason, detail=""):
        super().__init__(reason)
        self.reason, self.detail = reason, detail


REASONS = {
    400: "supervise refused the request for a decision as invalid",
    411: "supervise refused the request for a decision (no length)",
    413: "the request for a decision was too large",
    429: "too many pending asks",
}


async def http_json(host, port, method, path, body=None, limit=65536):
    """(status, decoded JSON body or None) of one HTTP/1.1 exchange; OSError/ValueError when
    the connection or the answer fails (the caller bounds the time)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        authority = "[%s]" % host if ":" in host else host
        head = ["%s %s HTTP/1.1" % (method, path), "Host: %s:%d" % (authority, port), "Connection: close",
                "Accept: application/json"]
        if body is not None:
            head += ["Content-Type: application/json", "Content-Length: %d" % len(body)]
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("ascii") + (body or b""))
        await writer.drain()
        try:
            raw_head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            raise ValueError("the answer's head is too long") from None
        except asyncio.IncompleteReadError:
            raise ValueError("the connection closed before an answer") from None
        lines = raw_head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ValueError("not an HTTP/1 answer")
        status = int(parts[1])
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            raise ValueError("a chunked answer")
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit() or int(length) > limit:
                raise ValueError("an answer of %s bytes" % length[:20])
            content = await reader.readexactly(int(length))
        else:
            content = await reader.read(limit + 1)
            if len(content) > limit:
                raise ValueError("an answer over %d bytes" % limit)
        try:
            data = json.loads(content.decode("utf-8")) if content.strip() else None
        except (UnicodeDecodeError, ValueError):
            data = None
        return status, data
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (OSError, asyncio.CancelledError):
            pass


class Supervise:
    """supervise's release endpoint at ``(host, port)``; each call bounded by ``call_timeout``."""

    def __init__(self, address, call_timeout=5.0):
        self.host, self.port = address
        self.call_timeout = call_timeout

    async def _call(self, method, path, body, timeout):
        return await asyncio.wait_for(http_json(self.host, self.port, method, path, body),
                                      max(0.05, min(self.call_timeout, timeout)))

    async def propose(self, body, timeout):
        """The id of a new release proposal; AskError otherwise."""
        try:
            status, data = await self._call("POST", "/release", body, timeout)
        except asyncio.TimeoutError:
            raise AskError("supervise did not answer in time") from None
        except ConnectionRefusedError:
            raise AskError("supervise is not reachable", "connection refused") from None
        except (OSError, ValueError) as exc:
            raise AskError("supervise is not reachable", "%s: %s" % (type(exc).__name__, exc)) from None
        error = data.get("error") if isinstance(data, dict) and isinstance(data.get("error"), str) else ""
        if status != 201:
            reason = REASONS.get(status) or ("supervise failed (HTTP %d)" % status if status >= 500
                                             else "supervise answered HTTP %d" % status)
            raise AskError(reason, error[:300])
        proposal_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(proposal_id, str) or not _ID.match(proposal_id) or data.get("status") != "pending":
            raise AskError("supervise's answer was not understood", "201 without an id and status pending")
        return proposal_id

    async def status(self, proposal_id, timeout):
        """(status, note): status pending|approved|rejected, "gone" (404), or None (no answer)."""
        try:
            code, data = await self._call("GET", "/release/" + proposal_id, None, timeout)
        except (asyncio.TimeoutError, OSError, ValueError):
            return None, ""
        if code == 404:
            return "gone", ""
        if code != 200 or not isinstance(data, dict) or data.get("id", proposal_id) != proposal_id:
            return None, ""
        status = data.get("status")
        note = data.get("note") if isinstance(data.get("note"), str) else ""
        return (status if isinstance(status, str) else None), " ".join(printable(note).split())[:MAX_NOTE]


class Decision:
    """How a hold ended: ``outcome`` approved, rejected, timeout, unasked (AskError), gone
    (supervise forgot the proposal), stopped (egress stops) or disconnected (the agent left)."""

    __slots__ = ("outcome", "proposal", "note", "reason")

    def __init__(self, outcome, proposal=None, note="", reason=""):
        self.outcome, self.proposal, self.note, self.reason = outcome, proposal, note, reason

    def __repr__(self):
        return "Decision(%r, %r)" % (self.outcome, self.proposal)


class Wait:
    """One held request: ``stop(reason)`` ends its wait early (egress stops, the agent left)."""

    def __init__(self, flow):
        self.flow = flow
        self.client_id = flow.client_conn.id
        self.stopped = None
        self.event = asyncio.Event()

    def stop(self, reason):
        if self.stopped is None:
            self.stopped = reason
        try:
            self.event.set()
        except RuntimeError:  # its loop is gone: nothing waits any more
            pass


async def wait_for_decision(client, proposal_id, timeout, wait, clock, interval=0.5, on_pending=None):
    """Poll the proposal every ``interval`` s until a decision, ``timeout`` s, or ``wait.stop``."""
    deadline = clock() + timeout
    unanswered = 0
    while True:
        if wait.stopped:
            return Decision(wait.stopped, proposal_id)
        remaining = deadline - clock()
        if remaining <= 0:
            return Decision("timeout", proposal_id)
        status, note = await client.status(proposal_id, remaining)
        if wait.stopped:
            return Decision(wait.stopped, proposal_id)
        if status == "approved":
            return Decision("approved", proposal_id, note)
        if status == "rejected":
            return Decision("rejected", proposal_id, note)
        if status == "gone":
            return Decision("gone", proposal_id, reason="supervise no longer knows the proposal")
        if status not in (None, "pending"):
            return Decision("gone", proposal_id, reason="supervise answered an unknown status")
        if status is None:
            unanswered += 1
            if unanswered == 1:
                LOG.warning("egress: supervise did not answer about proposal %s; asking again until the timeout",
                            proposal_id)
        remaining = deadline - clock()
        if remaining <= 0:
            return Decision("timeout", proposal_id)
        try:
            await asyncio.wait_for(wait.event.wait(), min(interval, remaining))
        except asyncio.TimeoutError:
            pass
