# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Progress of a long module run, written where a follower can read it while the module still runs.

An Ansible module cannot print while it runs: its output is one JSON result at the end. A module
that may run for minutes (an image build) is started in the background (``async``, ``poll: 0``) and
appends progress events to a file on the managed host, one JSON object per line; the
``botbottle.bottle.bottle_follow`` action reads the new lines over the task's connection and prints
them on the controller as they arrive (plugin_utils/progress.py formats them).

API:
- ``ProgressFile(path)``: ``emit(event, **fields)`` appends ``{"event": ..., "t": <seconds since
  start>, ...}``; with no path it does nothing, so a module run without a progress file is unchanged.
- ``BuildSteps(progress)``: ``feed(line)`` for each line of the legacy builder's output; emits
  ``step`` (n, of, text) when a ``Step N/M : ...`` line starts one; ``steps``/``cached`` count them.
- ``read_events(path, offset)``: ``(events, new_offset)``: the complete lines after byte ``offset``.
"""

from __future__ import annotations

import json
import os
import re
import time

STEP_RE = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
USING_CACHE = "---> Using cache"


class ProgressFile:
    """Appends progress events (JSON lines) to ``path``; a no-op without a path."""

    def __init__(self, path, clock=time.monotonic):
        self.path, self.clock = path, clock
        self.start = clock()

    def emit(self, event, **fields):
        if not self.path:
            return
        fields["event"] = event
        fields["t"] = round(self.clock() - self.start, 1)
        # One write of one whole line, so a reader never sees half an event it would then skip.
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(fields, sort_keys=True) + "\n")


class BuildSteps:
    """Turns the legacy builder's output lines into ``step`` events."""

    def __init__(self, progress):
        self.progress = progress
        self.steps = 0
        self.cached = 0

    def feed(self, line):
        match = STEP_RE.match(line.strip())
        if match:
            self.steps = int(match.group(1))
            self.progress.emit("step", n=self.steps, of=int(match.group(2)), text=match.group(3).strip())
        elif line.strip() == USING_CACHE:
            self.cached += 1


def read_events(path, offset=0):
    """The events of the complete lines of ``path`` after byte ``offset``, and the offset after them.

    A missing file has no events yet; a line still being written (no newline) is left for the next
    read; a line that is not JSON is skipped."""
    if not path or not os.path.isfile(path):
        return [], offset
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    end = data.rfind(b"\n") + 1
    events = []
    for raw in data[:end].splitlines():
        try:
            event = json.loads(raw.decode("utf-8", "replace"))
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events, offset + end
