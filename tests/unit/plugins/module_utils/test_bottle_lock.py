# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""bottle_lock: one change to a bottle at a time, held by real processes (flock is per open file)."""

from __future__ import annotations

import multiprocessing
import os
import signal

import pytest

from ansible_collections.botbottle.bottle.plugins.module_utils import bottle_lock


def holder(state_root, ready, release):
    with bottle_lock.hold(state_root, "demo", "launch"):
        ready.set()
        release.wait(30)


@pytest.fixture
def other_run(tmp_path):
    """Another process holding bottle demo's lock until told to let go (or killed)."""
    ctx = multiprocessing.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=holder, args=(str(tmp_path), ready, release))
    proc.start()
    assert ready.wait(10)
    yield proc, release
    if proc.is_alive():  # a killed holder may have died inside the event's lock: never touch it then
        release.set()
        proc.join(10)


class Clock:
    """Time that moves only when the waiter sleeps: no test waits for real."""

    def __init__(self):
        self.now = 0.0
        self.on_sleep = None

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds
        if self.on_sleep:
            self.on_sleep(self.now)


def test_a_free_lock_is_taken_at_once_and_names_its_holder(tmp_path):
    with bottle_lock.hold(str(tmp_path), "demo", "teardown") as lock:
        assert lock == {"waited": 0, "waited_for": None}
        held = open(bottle_lock.lock_path(str(tmp_path), "demo")).read()
        assert '"what": "teardown"' in held and '"pid": %d' % os.getpid() in held
    assert open(bottle_lock.lock_path(str(tmp_path), "demo")).read() == ""


def test_a_second_run_waits_for_the_first_and_says_for_what(tmp_path, other_run):
    proc, release = other_run
    clock = Clock()
    clock.on_sleep = lambda now: release.set() or proc.join(10) if now >= 1.0 else None
    with bottle_lock.hold(str(tmp_path), "demo", "launch", timeout=30, clock=clock, sleep=clock.sleep) as lock:
        assert lock["waited"] >= 1.0
        assert lock["waited_for"].startswith("launch of bottle demo (pid %d, since " % proc.pid)


def test_a_wait_past_the_timeout_names_the_holder_and_changes_nothing(tmp_path, other_run):
    proc, _release = other_run
    clock = Clock()
    ran = []
    with pytest.raises(bottle_lock.BottleLocked) as err:
        with bottle_lock.hold(str(tmp_path), "demo", "teardown", timeout=5, clock=clock, sleep=clock.sleep):
            ran.append(True)
    assert not ran and clock.now >= 5
    msg = str(err.value)
    assert "bottle demo is busy: launch of bottle demo (pid %d" % proc.pid in msg
    assert "-e bottle_lock_timeout=<seconds>" in msg


def test_a_killed_run_leaves_no_lock_that_blocks(tmp_path, other_run):
    proc, _release = other_run
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    with bottle_lock.hold(str(tmp_path), "demo", "launch", timeout=0) as lock:
        assert lock["waited"] == 0


def test_other_bottles_do_not_wait(tmp_path, other_run):
    with bottle_lock.hold(str(tmp_path), "other", "launch", timeout=0) as lock:
        assert lock["waited_for"] is None


def test_a_lock_folder_that_cannot_be_written_says_the_fix(tmp_path):
    (tmp_path / "locks").write_text("not a folder")
    with pytest.raises(bottle_lock.BottleLocked, match="bottle_state_root"):
        with bottle_lock.hold(str(tmp_path / "state"), "demo", "launch"):
            pass
