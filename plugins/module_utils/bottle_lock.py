# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One change to a bottle at a time on its host: a lock per bottle.

The modules that change a bottle - ``bottle_launch`` (a launch or relaunch), ``bottle_remove`` (a
teardown or a rollback) and ``bottle_supervise`` (the writes of an approval) - hold
``<state_root>/../locks/<slug>.lock`` (``~/.bot-bottle/locks/``, beside the state root as the agents'
approvals are; ``flock``, exclusive) for their whole run. A second run waits for
the first, at most ``timeout`` seconds, then finds the bottle as the first left it (a second launch of
a new bottle finds it running: "nothing changed").

A lock is the kernel's: it goes with the process that held it, so a run that was killed leaves no lock
behind that blocks anyone (its file stays, empty or naming a process that no longer holds it). While
it holds the lock, the holder's ``{pid, what, slug, since}`` is in the file, so a waiter can say what
it waits for, and a run that waited too long says who held it.

API:
- ``DEFAULT_TIMEOUT`` (seconds), ``lock_path(state_root, slug)``.
- ``hold(state_root, slug, what, timeout=DEFAULT_TIMEOUT)``: a context manager yielding
  ``{waited, waited_for}`` (seconds waited, and a sentence naming the holder, None when it was free);
  raises ``BottleLocked`` (the message names the holder and the fix) past ``timeout``.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import fcntl
import json
import os
import time

DEFAULT_TIMEOUT = 300
LOCKS = "locks"
POLL = 0.2


class BottleLocked(Exception):
    pass


def lock_path(state_root, slug):
    return os.path.join(os.path.dirname(os.path.abspath(os.path.expanduser(state_root))), LOCKS, slug + ".lock")


def describe(holder):
    """The holder as a sentence: ``launch of bottle demo (pid 123, since 2026-12-07T05:40:00Z)``."""
    if not holder:
        return "another run (it has not said what it does yet)"
    what, slug = holder.get("what", "a change"), holder.get("slug", "?")
    return "%s of bottle %s (pid %s, since %s)" % (what, slug, holder.get("pid", "?"), holder.get("since", "?"))


def _read_holder(fd):
    try:
        data = os.pread(fd, 4096, 0)
        holder = json.loads(data.decode("utf-8")) if data else None
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


@contextlib.contextmanager
def hold(state_root, slug, what, timeout=DEFAULT_TIMEOUT, clock=time.monotonic, sleep=time.sleep):
    """Hold bottle ``slug``'s lock for ``what`` (``launch``, ``teardown``, ...) while the block runs."""
    path = lock_path(state_root, slug)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    except OSError as exc:
        raise BottleLocked("cannot open the lock of bottle %s, %s: %s. Fix the folder's permissions (it is the "
                           "locks folder beside the state root), or set bottle_state_root to a folder this user may write"
                           % (slug, path, exc.strerror or exc))
    started = clock()
    holder = None
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
            holder = _read_holder(fd) or holder
            if clock() - started >= timeout:
                raise BottleLocked(
                    "bottle %s is busy: %s still holds its lock (%s) after %ds. Wait for that run to finish and run "
                    "again, or raise the wait with -e bottle_lock_timeout=<seconds>. A run that was killed holds "
                    "nothing: the lock goes with its process" % (slug, describe(holder), path, timeout))
            sleep(POLL)
        waited = round(clock() - started, 1)
        mine = {"pid": os.getpid(), "what": what, "slug": slug,
                "since": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(mine).encode("utf-8"), 0)
        try:
            yield {"waited": waited, "waited_for": describe(holder) if waited or holder else None}
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
