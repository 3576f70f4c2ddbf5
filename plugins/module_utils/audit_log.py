# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one reader of a bottle's audit files, live (a state directory) or archived.

A bottle's record lives in a directory laid out as its state directory
(``<state_root>/<slug>/``) or as its archive (``~/.bot-bottle/archive/<slug>-<ts>/``), which
keeps the same layout:

  audit/egress.jsonl     egress's firewall decisions, one JSON object a line (written by
                         images/bundle/bottle_firewall/audit.py: ts, event, host, port, method,
                         path, rule, action allow|block|hold|upstream-error, route, bytes, status[,
                         exempt, proposal, flow]); an allowed request's ``outcome`` line (same
                         ``flow``: action complete|upstream-error|aborted, status, bytes, down,
                         duration); rotated by size (policy firewall.audit_rotate_bytes, 64 MiB)
  audit/egress.jsonl.N   the rotated files, .1 the newest (firewall.audit_keep of them, 16)
  supervise/audit.jsonl  supervise's events: proposed (by the agent or egress), modified,
                         approved, rejected (by the operator, or by supervise on a timeout)
  meta.json              the bottle's metadata (slug, agent, created, ...)

API (pure Python, no dependencies; files are read, never written):
- ``EGRESS_AUDIT`` / ``SUPERVISE_AUDIT`` / ``META``: the paths above, relative to the directory.
- ``read_jsonl(path, offset=0, max_bytes=None) -> (records, next_offset, problems)``: the JSON
  objects of the complete lines from ``offset`` on (a half-written last line is left for the next
  read); ``problems`` names lines that are not JSON objects. A file shorter than ``offset`` was
  rotated: it is read again from its start. ``max_bytes`` reads at most the file's last bytes
  (from the start of a line).
- ``HostTally``: requests summarised by host, one count per request; ``add(records)`` counts them
  (call it with each new batch), ``rows()`` lists ``{host, allowed, refused, failed, held, last,
  last_action, last_rule, rules, failures}`` (refusals and upstream failures by rule), the most
  recent first. ``allowed``: egress let it go and the upstream answered (or has not yet);
  ``refused``: a policy rule refused it; ``failed``: egress allowed it and the upstream failed
  (``upstream-*`` rules: name resolution, connect, TLS verify, timeout, a 5xx status); ``held``:
  held for the operator and not decided yet (once released or refused, the same ``proposal``
  counts where it ended, not twice). A
  ``connect`` line is a tunnel: an allowed tunnel's requests are counted, not its CONNECT; a
  refused tunnel's CONNECT is counted, not the requests answered with its refusal (``"tunnel":
  "refused"``); a passthrough tunnel's CONNECT is counted (egress sees none of its requests);
  ``response`` lines are about a request already counted.
- ``Follower(directory)``: follows both files of one directory incrementally; ``poll()``
  returns ``(new egress records, new supervise events)`` and keeps a ``HostTally`` (``hosts``)
  and the supervise events (``events``, newest last, at most ``keep``). Its first read takes the
  last ``max_bytes`` across the rotated files too; when egress.jsonl rotates between two polls
  the rest of the file it was reading (found by its inode among the rotated files) is read first,
  so no decision is lost or counted twice.
- ``egress_files(directory)`` -> the egress audit files, oldest first (``egress.jsonl.N`` ... ``.1``,
  ``egress.jsonl``), relative to the directory.
- ``firewall_by_host(directory, max_bytes=DEFAULT_TAIL)`` -> rows as ``HostTally.rows()``: the last
  ``max_bytes`` of egress's audit, read across the rotated files (None: everything).
- ``supervise_events(directory)`` -> the supervise events, oldest first.
- ``read_meta(directory)`` -> meta.json as a dict ({} when absent or unreadable): ``state_meta.read_meta``.
- ``summary(directory)`` -> ``{meta, firewall, supervise, problems}``: all of the above at once.
"""

from __future__ import annotations

import json
import os
import re

from ansible_collections.botbottle.bottle.plugins.module_utils import state_meta

EGRESS_AUDIT = os.path.join("audit", "egress.jsonl")
SUPERVISE_AUDIT = os.path.join("supervise", "audit.jsonl")
META = state_meta.META
# How much of the end of egress's audit a one-shot summary reads (the file may reach 64 MiB).
DEFAULT_TAIL = 4 * 1024 * 1024
ACTIONS = {"allow": "allowed", "block": "refused", "hold": "held", "upstream-error": "failed"}
# Lines that count one request each (see HostTally); "connect" only for a passthrough tunnel.
REQUEST_EVENTS = ("request", "websocket", "tcp", "udp", "dns")
REMEMBERED_FLOWS = 4096
NO_HOST = "(no host)"
_ROTATED = re.compile(r"^egress\.jsonl\.([1-9][0-9]{0,5})$")


def egress_files(directory):
    """egress's audit files under ``directory``, oldest first, relative to it (the live file last, when present)."""
    folder = os.path.join(directory, os.path.dirname(EGRESS_AUDIT))
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    numbered = sorted((int(m.group(1)), name) for name in names for m in [_ROTATED.match(name)] if m)
    out = [os.path.join(os.path.dirname(EGRESS_AUDIT), name) for _n, name in reversed(numbered)]
    if os.path.basename(EGRESS_AUDIT) in names:
        out.append(EGRESS_AUDIT)
    return out


def _inode(path):
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def read_jsonl(path, offset=0, max_bytes=None):
    """(records, next_offset, problems) of the complete JSON lines of ``path`` from ``offset``."""
    records, problems = [], []
    try:
        size = os.path.getsize(path)
    except OSError:
        return records, 0, problems
    if size < offset:  # rotated (or truncated) since the last read: start again
        offset = 0
    if max_bytes is not None and size - offset > max_bytes:
        offset = size - max_bytes
        skip_partial = True
    else:
        skip_partial = False
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(size - offset)
    except OSError as exc:
        return records, offset, ["%s cannot be read (%s)" % (path, exc.strerror or exc)]
    end = data.rfind(b"\n") + 1  # the complete lines only
    chunk = data[:end]
    lines = chunk.split(b"\n")
    if skip_partial and lines:
        lines = lines[1:]  # started mid-line
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw.decode("utf-8", "replace"))
        except ValueError:
            record = None
        if not isinstance(record, dict):
            problems.append("%s: a line is not a JSON object (line %d of this read)" % (path, number))
            continue
        records.append(record)
    return records, offset + end, problems


def _number(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    return None


class HostTally:
    """Firewall decisions by host: allowed, refused (by rule), held."""

    def __init__(self):
        self.hosts = {}
        self.seen = {}  # host -> order of its latest record (ties of ts: the later line first)
        self.count = 0
        self.allowed_flows = {}  # flow id -> host of an allowed request whose outcome is not read yet
        self.held_proposals = {}  # release proposal id -> host of a request held for the operator

    @staticmethod
    def counts(record):
        """Whether ``record`` is one request (see the module's docs)."""
        event = record.get("event")
        if event == "connect":
            return record.get("rule") == "passthrough" or record.get("action") == "block"
        if record.get("tunnel") == "refused":
            return False  # answered with its tunnel's refusal: counted on the connect line
        if event in ("tcp", "websocket"):
            return record.get("action") != "allow"  # a passthrough tunnel / a handshake already counted
        return event in REQUEST_EVENTS

    def _row(self, host):
        row = self.hosts.get(host)
        if row is None:
            row = self.hosts[host] = {"host": host, "allowed": 0, "refused": 0, "failed": 0, "held": 0,
                                      "last": None, "last_action": None, "last_rule": None, "rules": {},
                                      "failures": {}}
        return row

    def add(self, records):
        for record in records:
            action = ACTIONS.get(record.get("action"))
            outcome = record.get("event") == "outcome"
            if outcome:
                if action not in ("failed", "refused"):
                    self.allowed_flows.pop(record.get("flow"), None)
                    continue
            elif action is None or not self.counts(record):
                continue
            host = record.get("host") or NO_HOST
            row = self._row(host)
            if outcome:
                # The allowed request failed upstream (or egress refused its response): it moves from allowed.
                earlier = self.allowed_flows.pop(record.get("flow"), None)
                if earlier is not None and self.hosts.get(earlier, {}).get("allowed", 0) > 0:
                    self.hosts[earlier]["allowed"] -= 1
            elif action == "allowed" and record.get("flow"):
                self.allowed_flows[record["flow"]] = host
                while len(self.allowed_flows) > REMEMBERED_FLOWS:
                    self.allowed_flows.pop(next(iter(self.allowed_flows)))
            proposal = record.get("proposal")
            if action == "held" and proposal:
                self.held_proposals[proposal] = host
            elif proposal and proposal in self.held_proposals:
                # The held request was released or refused: one request, now counted where it ended.
                earlier = self.held_proposals.pop(proposal)
                if self.hosts.get(earlier, {}).get("held", 0) > 0:
                    self.hosts[earlier]["held"] -= 1
            row[action] += 1
            self.count += 1
            self.seen[host] = self.count
            rule = record.get("rule")
            if action in ("refused", "failed"):
                key = str(rule or "unknown")
                by = row["rules"] if action == "refused" else row["failures"]
                by[key] = by.get(key, 0) + 1
            ts = _number(record.get("ts"))
            if ts is not None and (row["last"] is None or ts >= row["last"]):
                row["last"], row["last_action"], row["last_rule"] = ts, record.get("action"), rule
        return self

    def rows(self):
        return sorted(self.hosts.values(), key=lambda r: (-(r["last"] or 0), -self.seen[r["host"]]))


class Follower:
    """Follows one directory's egress and supervise audit files, reading only what was appended."""

    def __init__(self, directory, keep=200, max_bytes=DEFAULT_TAIL):
        self.directory = directory
        self.keep = keep
        self.max_bytes = max_bytes
        self.offsets = {EGRESS_AUDIT: 0, SUPERVISE_AUDIT: 0}
        self.egress_inode = None  # the inode of the egress.jsonl read last (None: not read yet)
        self.hosts = HostTally()
        self.events = []
        self.problems = []

    def _note(self, problems):
        self.problems = (self.problems + problems)[-20:]

    def _read(self, relative):
        path = os.path.join(self.directory, relative)
        first = self.offsets[relative] == 0
        records, self.offsets[relative], problems = read_jsonl(
            path, self.offsets[relative], self.max_bytes if first else None)
        self._note(problems)
        return records

    def _read_egress(self):
        path = os.path.join(self.directory, EGRESS_AUDIT)
        inode = _inode(path)
        if self.egress_inode is None:
            if inode is None:
                return []
            # The first read: the last max_bytes across the rotated files too.
            records, problems, self.offsets[EGRESS_AUDIT] = _tail(self.directory, self.max_bytes)
            self.egress_inode = inode
            self._note(problems)
            return records
        records = []
        if inode != self.egress_inode:
            # Rotated since the last poll: the rest of the file being read, then the files rotated after it.
            paths = [os.path.join(self.directory, rel) for rel in egress_files(self.directory) if rel != EGRESS_AUDIT]
            found = next((i for i, rotated in enumerate(paths) if _inode(rotated) == self.egress_inode), None)
            if found is not None:
                for index, rotated in enumerate(paths[found:]):
                    more, _offset, problems = read_jsonl(rotated, self.offsets[EGRESS_AUDIT] if index == 0 else 0)
                    records.extend(more)
                    self._note(problems)
            self.offsets[EGRESS_AUDIT] = 0
            self.egress_inode = inode
        if inode is not None:
            more, self.offsets[EGRESS_AUDIT], problems = read_jsonl(path, self.offsets[EGRESS_AUDIT])
            records.extend(more)
            self._note(problems)
        return records

    def poll(self):
        firewall = self._read_egress()
        self.hosts.add(firewall)
        events = self._read(SUPERVISE_AUDIT)
        self.events = (self.events + events)[-self.keep:]
        return firewall, events


def _tail(directory, max_bytes):
    """(records oldest first, problems, the end read of the live file) of the last ``max_bytes`` of egress's
    audit, across its rotated files (None: all of it)."""
    chunks, problems, budget, live_end = [], [], max_bytes, 0
    for rel in reversed(egress_files(directory)):  # newest first
        if budget is not None and budget <= 0:
            break
        path = os.path.join(directory, rel)
        records, end, bad = read_jsonl(path, 0, budget)
        if rel == EGRESS_AUDIT:
            live_end = end
        chunks.append(records)
        problems.extend(bad)
        if budget is not None:
            try:
                budget -= os.path.getsize(path)
            except OSError:
                budget = 0
    return [record for chunk in reversed(chunks) for record in chunk], problems, live_end


def _firewall(directory, max_bytes):
    records, problems, _end = _tail(directory, max_bytes)
    return HostTally().add(records), problems


def firewall_by_host(directory, max_bytes=DEFAULT_TAIL):
    """Firewall decisions of the bottle whose state (or archive) is ``directory``, by host."""
    return _firewall(directory, max_bytes)[0].rows()


def supervise_events(directory):
    return read_jsonl(os.path.join(directory, SUPERVISE_AUDIT))[0]


read_meta = state_meta.read_meta


def summary(directory, max_bytes=DEFAULT_TAIL):
    tally, problems = _firewall(directory, max_bytes)
    events, _offset, more = read_jsonl(os.path.join(directory, SUPERVISE_AUDIT))
    return {"meta": read_meta(directory), "firewall": tally.rows(), "supervise": events,
            "problems": problems + more}
