# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""plugin_utils/progress: the lines a person (or a CI log) sees while a build or a shipment runs."""

from __future__ import annotations

from ansible_collections.botbottle.bottle.plugins.plugin_utils.progress import (
    Line, ShipReport, duration, follow, format_event, rate, size)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_units():
    assert duration(0) == "0:00"
    assert duration(41.4) == "0:41"
    assert duration(192) == "3:12"
    assert duration(3723) == "1:02:03"
    assert size(312_400_000) == "312.4 MB"
    assert rate(312_400_000, 4.1) == "76.2 MB/s"


def test_a_step_line_is_one_plain_line_with_elapsed_time():
    line = Line("build", "localhost", "botbottle/agent:latest")
    text = format_event(line, {"event": "step", "t": 41.3, "n": 3, "of": 12,
                               "text": "RUN apt-get update \\\n    && apt-get install -y " + "pkg " * 60})
    assert text.startswith("[build] localhost botbottle/agent:latest 0:41 step 3/12 RUN apt-get update \\ && apt-get")
    assert "\n" not in text and "\r" not in text and text.endswith("...")
    assert format_event(line, {"event": "unknown"}) is None


def follow_build(answers, heartbeat=60.0, timeout=3600):
    """Run follow over a scripted build: answers[i] is the module's answer to the i-th poll."""
    clock, lines, offsets = Clock(), [], []

    def poll(offset):
        offsets.append(offset)
        return answers[len(offsets) - 1]

    result = follow(poll, lines.append, Line("build", "h1", "img:1"), timeout=timeout, interval=2,
                    heartbeat=heartbeat, sleep=clock.sleep, clock=clock)
    return result, lines, offsets


def step(n, t, text):
    return {"event": "step", "t": t, "n": n, "of": 3, "text": text}


def test_follow_prints_each_step_once_as_it_arrives_then_the_total():
    answers = [
        {"finished": False, "events": [{"event": "build", "t": 0, "reason": "its inputs changed"},
                                       step(1, 0.1, "FROM debian:trixie-slim")], "offset": 90},
        {"finished": False, "events": [], "offset": 90},
        {"finished": False, "events": [step(2, 4.0, "RUN make")], "offset": 140},
        {"finished": True, "events": [step(3, 5.9, "COPY . /app")], "offset": 190,
         "result": {"changed": True, "built": True, "build_steps": {"steps": 3, "cached": 1},
                    "image": {"name": "img:1"}, "ansible_job_id": "j1", "finished": True, "started": True}},
    ]
    result, lines, offsets = follow_build(answers)
    assert offsets == [0, 90, 90, 140]
    assert lines == [
        "[build] h1 img:1 0:00 building: its inputs changed",
        "[build] h1 img:1 0:00 step 1/3 FROM debian:trixie-slim",
        "[build] h1 img:1 0:04 step 2/3 RUN make",
        "[build] h1 img:1 0:06 step 3/3 COPY . /app",
        "[build] h1 img:1 0:06 built in 0:06 (3 steps, 1 from cache)",
    ]
    # The task's result is the job's own, without the async bookkeeping.
    assert result == {"changed": True, "built": True, "build_steps": {"steps": 3, "cached": 1},
                      "image": {"name": "img:1"}}


def test_a_silent_step_gets_a_heartbeat_line_per_minute_not_per_poll():
    answers = [{"finished": False, "events": [step(1, 0, "RUN sleep 150")], "offset": 10}]
    answers += [{"finished": False, "events": [], "offset": 10}] * 75
    answers += [{"finished": True, "events": [], "offset": 10, "result": {"changed": True, "built": True}}]
    lines = follow_build(answers)[1]
    assert lines[1:] == ["[build] h1 img:1 1:00 still running (step 1/3)",
                         "[build] h1 img:1 2:00 still running (step 1/3)",
                         "[build] h1 img:1 2:32 built in 2:32 (1 steps, 0 from cache)"]


def test_an_unchanged_image_says_so_and_a_failure_is_passed_on():
    done = {"finished": True, "events": [], "offset": 0, "result": {"changed": False, "built": False}}
    lines = follow_build([done])[1]
    assert lines == ["[build] h1 img:1 0:00 up to date, nothing to do"]
    failed = {"finished": True, "events": [], "offset": 0,
              "result": {"failed": True, "msg": "building img:1 failed: boom"}}
    result, lines = follow_build([failed])[:2]
    assert result == {"failed": True, "msg": "building img:1 failed: boom"}
    assert lines == ["[build] h1 img:1 0:00 FAILED (the error follows)"]
    unreadable = {"failed": True, "msg": "no background job's results file"}
    assert follow_build([unreadable])[0] is unreadable


def test_a_job_past_the_timeout_fails_naming_it():
    answers = [{"finished": False, "events": [], "offset": 0}] * 10
    result = follow_build(answers, timeout=10)[0]
    assert result["failed"] and "[build] h1 img:1 is still running after 10 seconds" in result["msg"]


def test_shipping_reports_bytes_time_and_rate_per_host():
    clock, lines = Clock(), []
    report = ShipReport(lines.append, "bb-fleet-host2", clock=clock)
    report.copying("botbottle/bundle:latest", 312_400_000)
    for done in range(32_000_000, 312_400_000, 32_000_000):  # a part every 0.4 s: a line per 10 s
        clock.now += 0.4
        report.progress(done)
    clock.now += 0.5
    report.progress(312_400_000)
    assert report.copied(312_400_000) == 4.1
    clock.now += 6.3
    report.loaded({"changed": True, "loaded": True})
    assert lines == [
        "[ship] bb-fleet-host2 botbottle/bundle:latest copying 312.4 MB",
        "[ship] bb-fleet-host2 botbottle/bundle:latest copied 312.4 MB in 4.1 s (76.2 MB/s); loading",
        "[ship] bb-fleet-host2 botbottle/bundle:latest loaded in 6.3 s",
    ]
    report.loaded({"failed": True})
    assert lines[-1] == "[ship] bb-fleet-host2 botbottle/bundle:latest load FAILED after 6.3 s (the error follows)"


def test_a_slow_copy_reports_bytes_so_far_every_ten_seconds():
    clock, lines = Clock(), []
    report = ShipReport(lines.append, "h3", clock=clock)
    report.copying("botbottle/bundle:latest", 534_900_000)
    for done in range(33_554_432, 534_900_000, 33_554_432):  # 32 MiB parts at ~8.4 MB/s
        clock.now += 4.0
        report.progress(done)
    report.progress(534_900_000)
    assert lines[1:] == [
        "[ship] h3 botbottle/bundle:latest copied %.1f MB of 534.9 MB (%d%%) in %d s (8.4 MB/s)" % (mb, pct, secs)
        for mb, pct, secs in [(100.7, 18, 12), (201.3, 37, 24), (302.0, 56, 36), (402.7, 75, 48), (503.3, 94, 60)]]
