# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One JSON line per firewall decision, to stdout and optionally to a capped file.

A line names what was decided (``action``: allow, block, hold: a DLP hit waiting for the
operator, or upstream-error: egress allowed it and the upstream could not be reached) and why
(the rule), never what was found: the path keeps its query *names* only (``/search?q=&page=``),
bodies are counted, not copied, and refusal reasons name a rule and a place. bottle-init
prefixes egress's stdout lines with ``[egress] ``.

Decision and outcome (issue 21). An allowed request has its decision line when egress lets it
go (``event`` request, ``action`` allow) and an outcome line when its response ends or it
fails (``event`` outcome), minutes later for a stream; both carry the same ``flow`` id:

- ``action`` complete: the upstream answered; ``status`` its status code (below 500).
- ``action`` upstream-error: ``rule`` upstream-status (the upstream answered 5xx, ``status``),
  upstream-connect, upstream-tls (certificate verify, handshake), upstream-timeout,
  upstream-dns. A name that does not resolve is known before the request goes: its decision
  line itself has ``action`` upstream-error, ``rule`` upstream-dns (and no outcome line).
- ``action`` aborted: ``rule`` client-disconnect (the agent hung up).
- ``action`` block: egress refused the response on its way back (``response-encoding``: an
  encoding it cannot search for the credential it added); the ``response`` line says it too.
- ``bytes`` the request body sent up, ``down`` the response body bytes the upstream sent,
  ``duration`` seconds from the decision to the end.

Outcome lines go to the file only, when there is one (``record(..., log=False)``); the
bundle's log (stdout) keeps every decision. Each line on stdout passes bottle-init and Docker's
log driver: about 0.3 ms of CPU a line on the machine (bench/chain.py), which on two cores was
most of what the outcome lines cost a request. Without a file, stdout gets them all.

``connect`` lines record the tunnel. A reader counting requests (audit_log.HostTally) counts
one line per request: the ``request`` lines of an allowed tunnel (not its ``connect``); the
``connect`` of a refused tunnel, whose requests are each answered with that refusal and marked
``"tunnel": "refused"`` (not counted again); the ``connect`` of a passthrough tunnel, whose
requests egress cannot see. A tunnel whose name does not resolve is not refused: its requests
are decided (a route refusal is not hidden) and each counts.

Rotation (issue 23): once the file reaches ``max_bytes`` (egress.json ``audit.rotate_bytes``,
policy ``firewall.audit_rotate_bytes``, 64 MiB) it becomes ``egress.jsonl.1``, the previous
``.1`` becomes ``.2`` and so on, as logrotate numbers them: ``.1`` is always the newest rotated
file. ``keep`` (``audit.keep``, policy ``firewall.audit_keep``, 16) rotated files are kept, the
oldest beyond it removed; 0 keeps every one. The per-line cost is one append and the file's
position (``tell``, no ``stat``); the renames happen once per ``max_bytes``.
"""

import json
import logging
import os
import sys
import threading
import time

import bundle_format  # pylint: disable=wrong-import-order  # the collection's, beside this package

LOG = logging.getLogger("bottle_firewall")
# The rotation egress.json's audit section sets (bundle_format's defaults until the first configuration loads):
# 64 MiB, and 16 rotated files kept (egress.jsonl.1 .. .16: about 1 GiB beside the live file); 0 keeps every one.
ROTATE_BYTES = bundle_format.DEFAULT_AUDIT["rotate_bytes"]
KEEP = bundle_format.DEFAULT_AUDIT["keep"]
FIELDS = ("ts", "event", "host", "port", "method", "path", "rule", "action", "route", "bytes", "status")
# Every line has FIELDS, in this order; Audit.record appends these only when set: "exempt" names a
# check that did not apply (``upstream-redirect``); "proposal" is the id of the release proposal a held
# request waits (waited) on (action "hold", then "allow" when the operator released it or "block");
# "flow" ties a decision to its outcome line; "down" and "duration" are the outcome's; "tunnel":
# "refused" marks a request answered with its CONNECT's refusal (the connect line counts it).
# json.dumps with a separators argument builds an encoder per call; one, made once.
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def path_for_audit(path):
    """The path with every query value removed: ``/a?x=1&y=2`` -> ``/a?x=&y=``."""
    if path is None:
        return None
    path = path.split("#", 1)[0]
    base, sep, query = path.partition("?")
    if not sep:
        return base
    names = [part.split("=", 1)[0] + "=" for part in query.split("&") if part]
    return base + "?" + "&".join(names)


def rotated_path(path, number):
    return "%s.%d" % (path, number)


def rotate(path, keep):
    """``path`` becomes ``path.1``, ``.1`` becomes ``.2`` ...; beyond ``keep`` rotated files (0: no limit) the
    oldest is removed. Renames only: a reader holding a file open reads it to its end."""
    if keep:
        last, extra = keep, keep
        while os.path.lexists(rotated_path(path, extra)):  # the oldest, and any a larger keep left
            os.unlink(rotated_path(path, extra))
            extra += 1
    else:
        last = 1
        while os.path.lexists(rotated_path(path, last)):
            last += 1
    for number in range(last - 1, 0, -1):
        try:
            os.replace(rotated_path(path, number), rotated_path(path, number + 1))
        except FileNotFoundError:
            pass
    os.replace(path, rotated_path(path, 1))


class Audit:
    """Writes audit records; ``path`` (BOTTLE_EGRESS_AUDIT) is rotated once it reaches ``max_bytes``, ``keep``
    rotated files kept (0: every one)."""

    def __init__(self, path=None, stream=None, max_bytes=ROTATE_BYTES, keep=KEEP):
        self.path = path or None
        self.stream = stream
        self.max_bytes = max_bytes
        self.keep = keep
        self.lock = threading.Lock()

    def configure(self, max_bytes=ROTATE_BYTES, keep=KEEP):
        """New bounds (egress.json ``audit``), in force from the next line."""
        with self.lock:
            self.max_bytes, self.keep = max_bytes, keep

    def record(self, event, host=None, port=None, method=None, path=None, rule=None, action="allow",
               route=None, nbytes=None, status=None, exempt=None, proposal=None, flow=None, down=None,
               duration=None, tunnel=None, log=True):
        """Write one line (stdout and the file; ``log`` False: the file only, when there is one)."""
        entry = {"ts": round(time.time(), 3), "event": event, "host": host, "port": port, "method": method,
                 "path": path_for_audit(path), "rule": rule, "action": action, "route": route,
                 "bytes": nbytes, "status": status}
        if exempt:
            entry["exempt"] = exempt
        if proposal:
            entry["proposal"] = proposal
        if flow:
            entry["flow"] = str(flow)
        if down is not None:
            entry["down"] = down
        if duration is not None:
            entry["duration"] = duration
        if tunnel:
            entry["tunnel"] = tunnel
        line = _ENCODER.encode(entry)
        with self.lock:
            if log or not self.path:
                stream = self.stream or sys.stdout
                try:
                    stream.write(line + "\n")
                    stream.flush()
                except (OSError, ValueError):
                    pass
            if self.path:
                self._append(line)
        return entry

    def _append(self, line):
        try:
            with open(self.path, "ab") as handle:
                handle.write(line.encode("utf-8") + b"\n")
                size = handle.tell()
            if size >= self.max_bytes:
                rotate(self.path, self.keep)
        except OSError as exc:
            LOG.error("egress: cannot write the audit file %s (%s)", self.path, type(exc).__name__)
