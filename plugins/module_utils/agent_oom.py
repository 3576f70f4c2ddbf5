# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""OOM kills of a bottle's agent: read from the agent container's memory cgroup on its host, timed by when
they are first seen.

The agent's PID 1 (docker-init, then ``sleep infinity``) never exits, so a process the kernel kills at the
agent's memory limit leaves the container running: the only record is the cgroup's ``oom_kill`` count
(cgroup v2 ``memory.events``, v1 ``memory.oom_control``). The kernel keeps no time, so a kill is dated by the
first look (status, the console) that finds the count risen; the last count seen and that time are kept in
the bottle's state directory (``agent-oom.json``).

API:
- ``read_count(container, proc="/proc", cgroup="/sys/fs/cgroup")``: ``(count, source)`` - the agent
  cgroup's ``oom_kill`` count (None when it cannot be read) and where it came from (``cgroup v2``,
  ``cgroup v1``, ``exec``) or why not.
- ``observe(state_dir, container_id, count, now=None, record=True)``: the bottle's record after this look,
  ``{kills, last, count}``: ``kills`` since the bottle's first look (across recreated agents), ``last`` the
  UTC time a rise was first seen (None: never), ``count`` this container's count now. ``record=False`` (check
  mode) writes nothing.
- ``STATE_FILE``.
"""

from __future__ import annotations

import datetime
import json
import os
import re

from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import DockerException, exec_in

STATE_FILE = "agent-oom.json"
_OOM_KILL_RE = re.compile(r"^oom_kill\s+(\d+)\s*$", re.MULTILINE)
# Inside the container's own cgroup namespace (cgroup v2) or its memory hierarchy (v1): the fallback when the
# host's view cannot be read (a remote engine).
_IN_CONTAINER = ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control")


def _count_in(text):
    match = _OOM_KILL_RE.search(text or "")
    return int(match.group(1)) if match else None


def _read(path):
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def _suffixes(path):
    """``/a/b/c``, ``/b/c``, ``/c``: a path another cgroup namespace shows relative to a deeper root (an engine
    inside a container, as the fleet test's Docker-in-Docker hosts) is found under its tail."""
    parts = [p for p in path.split("/") if p and p != ".."]
    return ["/" + "/".join(parts[i:]) for i in range(len(parts))]


def _host_candidates(pid, container_id, proc, cgroup):
    """``(file, source)`` pairs to try, from the process's own cgroup paths, then by the container's id (the
    cgroupfs and systemd drivers' names)."""
    out = []
    text = _read(os.path.join(proc, str(pid), "cgroup")) if pid else None
    for line in (text or "").splitlines():
        _hierarchy, _sep, rest = line.partition(":")
        controllers, _sep, path = rest.partition(":")
        if "memory" in controllers.split(","):
            out += [(os.path.join(cgroup, "memory") + tail + "/memory.oom_control", "cgroup v1")
                    for tail in _suffixes(path)]
        elif controllers == "":
            out += [(cgroup + tail + "/memory.events", "cgroup v2") for tail in _suffixes(path)]
    for name in ("docker/%s" % container_id, "system.slice/docker-%s.scope" % container_id):
        out += [(os.path.join(cgroup, "memory", name, "memory.oom_control"), "cgroup v1"),
                (os.path.join(cgroup, name, "memory.events"), "cgroup v2")]
    return out


def read_count(container, proc="/proc", cgroup="/sys/fs/cgroup"):
    """The ``oom_kill`` count of the container's memory cgroup, read on the host (the agent cannot touch it),
    else inside the container as root; ``(None, why)`` when neither answers (a stopped container has no cgroup)."""
    state = (container.attrs or {}).get("State") or {}
    if container.status != "running":
        return None, "the agent container is %s" % container.status
    for path, source in _host_candidates(state.get("Pid") or 0, container.id, proc, cgroup):
        count = _count_in(_read(path))
        if count is not None:
            return count, source
    for path in _IN_CONTAINER:
        try:
            rc, output, _err = exec_in(container, ["cat", path], user="0")
        except DockerException as exc:
            return None, "the agent's cgroup could not be read: %s" % exc
        count = _count_in(output)
        if rc == 0 and count is not None:
            return count, "exec"
    return None, "the agent's cgroup has no oom_kill count (kernel older than 4.13?)"


def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _load(path):
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def observe(state_dir, container_id, count, now=None, record=True):
    """Fold this look's ``count`` into the bottle's record (see the module's docstring)."""
    path = os.path.join(state_dir, STATE_FILE)
    kept = _load(path)
    kills = kept.get("kills") if isinstance(kept.get("kills"), int) else 0
    last = kept.get("last") if isinstance(kept.get("last"), str) else None
    seen = kept.get("count") if isinstance(kept.get("count"), int) else 0
    if count is None:
        return {"kills": kills, "last": last, "count": None}
    # Another container (recreated) counts from 0; so does a count that went down (a new cgroup).
    base = seen if kept.get("container") == container_id and count >= seen else 0
    if count > base:
        kills += count - base
        last = now or _now()
    new = {"container": container_id, "count": count, "kills": kills, "last": last}
    if record and new != kept and os.path.isdir(state_dir):
        temporary = path + ".tmp"
        try:
            with open(temporary, "w", encoding="utf-8") as handle:
                json.dump(new, handle)
            os.replace(temporary, path)
        except OSError:
            pass  # a read-only state directory: the rise is dated again by the next look
    return {"kills": kills, "last": last, "count": count}
