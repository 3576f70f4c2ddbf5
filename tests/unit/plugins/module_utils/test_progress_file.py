# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""module_utils/progress: events appended as JSON lines, build steps found in the builder's output."""

from __future__ import annotations

import json

from ansible_collections.botbottle.bottle.plugins.module_utils.progress import (
    BuildSteps, ProgressFile, read_events)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_events_carry_the_seconds_since_start(tmp_path):
    clock = Clock()
    progress = ProgressFile(str(tmp_path / "p"), clock=clock)
    clock.now += 41.26
    progress.emit("step", n=3, of=12, text="RUN apt-get update")
    lines = (tmp_path / "p").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"event": "step", "t": 41.3, "n": 3, "of": 12, "text": "RUN apt-get update"}]


def test_no_path_writes_nothing(tmp_path):
    ProgressFile(None).emit("step", n=1)
    assert list(tmp_path.iterdir()) == []


def test_build_steps_from_the_legacy_builder_stream(tmp_path):
    progress = ProgressFile(str(tmp_path / "p"))
    steps = BuildSteps(progress)
    stream = ["Step 1/3 : FROM debian:trixie-slim", " ---> 5f2b1a", "Step 2/3 : RUN apt-get update",
              " ---> Using cache", " ---> 77aa", "Step 3/3 : COPY app /app", "Get:1 http://x InRelease",
              " ---> Running in 0f0f", "Successfully built 1234"]
    for line in stream:
        steps.feed(line)
    events = read_events(str(tmp_path / "p"))[0]
    assert [(e["n"], e["of"], e["text"]) for e in events] == [
        (1, 3, "FROM debian:trixie-slim"), (2, 3, "RUN apt-get update"), (3, 3, "COPY app /app")]
    assert (steps.steps, steps.cached) == (3, 1)


def test_read_events_from_an_offset_leaves_a_half_written_line(tmp_path):
    path = tmp_path / "p"
    path.write_bytes(b'{"event": "step", "n": 1}\nnot json\n{"event": "step", "n": 2}\n{"event": "st')
    events, offset = read_events(str(path))
    assert [e["n"] for e in events] == [1, 2]
    with open(path, "ab") as handle:
        handle.write(b'ep", "n": 3}\n')
    more, offset2 = read_events(str(path), offset)
    assert [e["n"] for e in more] == [3]
    assert offset2 == path.stat().st_size
    assert read_events(str(path), offset2) == ([], offset2)


def test_read_events_of_a_missing_file():
    assert read_events("/nonexistent/progress", 7) == ([], 7)
