# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Progress lines printed on the controller while long work runs on a managed host.

Every line is whole and self-describing - ``[<kind>] <host> <subject> <elapsed> <what>`` - so it
reads the same in a terminal and in a CI log: no carriage returns, no spinners, no colour codes, and
at most one line per build step or per shipping stage (never per layer or per byte).

API:
- ``duration(seconds)``: ``"0:41"``, ``"1:02:03"``; ``size(nbytes)``: ``"312.4 MB"``;
  ``rate(nbytes, seconds)``: ``"76.2 MB/s"``.
- ``Line(kind, host, subject)``: ``line(elapsed, text)`` the formatted line.
- ``format_event(line, event)``: the line of one event of module_utils/progress.py (or None).
- ``format_result(line, result, elapsed, steps)``: the closing line of a followed job.
- ``follow(poll, emit, line, ...)``: poll a background job until it finishes, emitting each event's
  line, a heartbeat line when it stays silent, and a closing line; returns the job's own result.
- ``ShipReport(emit, host)``: the lines of shipping one archive (copying, bytes so far every ten
  seconds, copied with MB/s, loaded).
"""

from __future__ import annotations

import time

TEXT_WIDTH = 100
# Keys of the async machinery, not of the module's result.
ASYNC_KEYS = ("ansible_job_id", "started", "finished", "results_file", "stdout", "stdout_lines", "stderr",
              "stderr_lines")


def duration(seconds):
    seconds = int(round(max(seconds, 0)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return "%d:%02d:%02d" % (hours, minutes, secs)
    return "%d:%02d" % (minutes, secs)


def size(nbytes):
    return "%.1f MB" % (nbytes / 1e6)


def rate(nbytes, seconds):
    return "%.1f MB/s" % (nbytes / 1e6 / max(seconds, 1e-3))


def shorten(text, width=TEXT_WIDTH):
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 3] + "..."


class Line:
    """``[kind] host subject elapsed text``."""

    def __init__(self, kind, host, subject):
        self.prefix = "[%s] %s %s" % (kind, host, subject)

    def line(self, elapsed, text):
        if elapsed is None:
            return "%s %s" % (self.prefix, text)
        return "%s %s %s" % (self.prefix, duration(elapsed), text)


def format_event(line, event):
    """The line of one progress event, or None for an event kind this does not know."""
    kind = event.get("event")
    elapsed = event.get("t", 0)
    if kind == "step":
        return line.line(elapsed, "step %s/%s %s" % (event.get("n"), event.get("of"), shorten(event.get("text", ""))))
    if kind == "build":
        return line.line(elapsed, "building: %s" % shorten(event.get("reason", "its inputs changed")))
    if kind == "message":
        return line.line(elapsed, shorten(event.get("text", "")))
    return None


def format_result(line, result, elapsed, steps=0):
    """The closing line of a followed job, from its result."""
    if result.get("failed"):
        return line.line(elapsed, "FAILED (the error follows)")
    if result.get("built"):
        cached = result.get("build_steps", {}).get("cached", 0)
        total = result.get("build_steps", {}).get("steps", steps)
        return line.line(elapsed, "built in %s (%s steps, %s from cache)" % (duration(elapsed), total, cached))
    if result.get("changed"):
        return line.line(elapsed, "done in %s" % duration(elapsed))
    return line.line(elapsed, "up to date, nothing to do")


def job_result(result):
    """A finished job's result without the keys of the async machinery."""
    return dict((k, v) for k, v in result.items() if k not in ASYNC_KEYS)


def follow(poll, emit, line, timeout, interval=2.0, heartbeat=60.0, sleep=time.sleep, clock=time.monotonic):
    """Follow a background job until it finishes; return its result.

    ``poll(offset)`` returns ``{"finished": bool, "events": [...], "offset": int, "result": {...}}``
    (the bottle_follow module's answer) or a failed result, returned as is. Every event is emitted as
    its line when it arrives; after ``heartbeat`` seconds without a line a ``still running`` line is
    emitted (CI runners kill jobs that stay silent, and a person wants to know it is not stuck); the
    closing line gives the total time. A job still running after ``timeout`` seconds fails."""
    start = clock()
    offset, steps, last_line, current = 0, 0, start, ""
    while True:
        answer = poll(offset)
        if answer.get("failed"):
            return answer
        for event in answer.get("events", []):
            text = format_event(line, event)
            if text is None:
                continue
            emit(text)
            last_line = clock()
            if event.get("event") == "step":
                steps = event.get("n", steps)
                current = "step %s/%s" % (event.get("n"), event.get("of"))
        offset = answer.get("offset", offset)
        now = clock()
        if answer.get("finished"):
            result = job_result(answer.get("result", {}))
            emit(format_result(line, result, now - start, steps))
            return result
        if now - start > timeout:
            return {"failed": True, "msg": "%s is still running after %d seconds (timeout): raise the follower's "
                                           "timeout, or see what it is doing on the host" % (line.prefix, timeout)}
        if now - last_line >= heartbeat:
            emit(line.line(now - start, "still running%s" % (" (" + current + ")" if current else "")))
            last_line = now
        sleep(interval)


class ShipReport:
    """Lines of shipping archives to one host: bytes, time and rate of each copy as it goes, then the load.

    ``progress(done)`` is called after each part of a copy; it prints at most one line per ``every``
    seconds (a fast link copies a part in a fraction of a second: no line per part)."""

    def __init__(self, emit, host, clock=time.monotonic, every=10.0):
        self.emit, self.host, self.clock, self.every = emit, host, clock, every

    def copying(self, name, nbytes):
        self._line = Line("ship", self.host, name)
        self.total = nbytes
        self.emit(self._line.line(None, "copying %s" % size(nbytes)))
        self.started = self.last = self.clock()

    def progress(self, done):
        now = self.clock()
        if done >= self.total or now - self.last < self.every:
            return
        self.last = now
        took = now - self.started
        self.emit(self._line.line(None, "copied %s of %s (%d%%) in %.0f s (%s)" % (
            size(done), size(self.total), 100 * done // max(self.total, 1), took, rate(done, took))))

    def copied(self, nbytes):
        took = self.clock() - self.started
        self.emit(self._line.line(None, "copied %s in %.1f s (%s); loading" % (size(nbytes), took, rate(nbytes, took))))
        self.started = self.clock()
        return took

    def loaded(self, result):
        took = self.clock() - self.started
        if result.get("failed"):
            self.emit(self._line.line(None, "load FAILED after %.1f s (the error follows)" % took))
        else:
            self.emit(self._line.line(None, "loaded in %.1f s" % took))
        return took
