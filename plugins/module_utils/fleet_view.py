# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What bottle_info adds for fleets: health, pending proposals, age, orphans, filters.

API (each takes the bottle entries ``bottle_listing.collect`` returns for bottle_info and changes or filters them):
- ``parse_duration(text)``: ``"90s"``, ``"45m"``, ``"2h"``, ``"3d"``, ``"1w"`` -> seconds
  (``ValueError`` naming the accepted forms otherwise).
- ``add_age(client, bottles, now)``: ``created`` from the bundle/agent container when meta.json has
  none, and ``age_seconds``.
- ``add_orphan(bottles)``: ``orphan`` = ``"no-state"`` (labelled objects, no state directory),
  ``"no-objects"`` (a state directory, no container, network or machine) or None.
- ``add_health(client, bottles)``: ``health`` = ``{daemon: "healthy" | reason}`` from
  ``bundle_health.read_health`` in the running bundle (``{}`` when no bundle runs).
- ``add_agent_oom(client, bottles, record=True)``: ``agent_oom`` = ``{kills, last, count, source}`` - the OOM
  kills of the agent (``agent_oom.read_count`` on its cgroup, dated by ``agent_oom.observe`` in the state
  directory; ``record=False`` writes nothing); ``{}`` for a bottle without an agent container.
- ``add_proposals(bottles)``: ``proposals_pending`` = how many proposals
  ``supervise.list_proposals`` reads as ``pending`` (the store's own reader: files it does not
  trust are not counted).
- ``select(bottles, older_than=None, orphans=False)``: the entries matching every filter given.
"""

from __future__ import annotations

import datetime
import re

from ansible_collections.botbottle.bottle.plugins.module_utils import agent_oom
from ansible_collections.botbottle.bottle.plugins.module_utils import supervise_store as supervise
from ansible_collections.botbottle.bottle.plugins.module_utils.bundle_health import read_health
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import find_container

_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text):
    match = _DURATION_RE.match(str(text))
    if not match:
        raise ValueError("%r is not a duration: write a whole number and a unit, s m h d or w (90m, 2h, 3d)"
                         % (text,))
    return int(match.group(1)) * _UNITS[match.group(2)]


def parse_time(value):
    """An ISO 8601 time (``Z`` or offset, Docker's nanoseconds allowed) as an aware datetime, or None."""
    if not value:
        return None
    text = str(value).strip().replace("Z", "+00:00")
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)


def add_age(client, bottles, now=None):
    now = now or datetime.datetime.now(datetime.timezone.utc)
    for b in bottles:
        if not b.get("created"):
            times = []
            for c in b.get("containers", []):
                found = find_container(client, c["name"])  # None: gone since it was listed
                stamp = parse_time((found.attrs or {}).get("Created")) if found is not None else None
                if stamp:
                    times.append(stamp)
            if times:
                b["created"] = min(times).astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        created = parse_time(b.get("created"))
        b["age_seconds"] = int((now - created).total_seconds()) if created else None
    return bottles


def add_orphan(bottles):
    for b in bottles:
        objects = b.get("containers", []) + b.get("networks", []) + b.get("machines", [])
        if objects and not b.get("state_dir"):
            b["orphan"] = "no-state"
        elif b.get("state_dir") and not objects:
            b["orphan"] = "no-objects"
        else:
            b["orphan"] = None
    return bottles


def add_health(client, bottles):
    for b in bottles:
        b["health"] = {}
        bundle = next((c for c in b.get("containers", []) if c.get("component") == "bundle"), None)
        if bundle is None or bundle.get("status") != "running":
            continue
        container = find_container(client, bundle["name"])
        if container is None:
            continue
        rc, report, _output = read_health(container)
        b["health"] = report if report is not None else {"bundle": "bottle-health gave no report (exit %s)" % rc}
    return bottles


def add_agent_oom(client, bottles, record=True, now=None):
    for b in bottles:
        b["agent_oom"] = {}
        agent = next((c for c in b.get("containers", []) if c.get("component") == "agent"), None)
        container = find_container(client, agent["name"]) if agent else None
        if container is None:
            continue
        count, source = agent_oom.read_count(container)
        seen = agent_oom.observe(b["state_dir"], container.id, count, now=now, record=record) \
            if b.get("state_dir") else {"kills": count or 0, "last": None, "count": count}
        b["agent_oom"] = dict(seen, source=source)
    return bottles


def count_pending(state_dir):
    pending, _untrusted = supervise.list_proposals(state_dir, status="pending")
    return len(pending)


def add_proposals(bottles):
    for b in bottles:
        b["proposals_pending"] = count_pending(b["state_dir"]) if b.get("state_dir") else 0
    return bottles


def select(bottles, older_than=None, orphans=False):
    out = []
    for b in bottles:
        if orphans and not b.get("orphan"):
            continue
        if older_than is not None and (b.get("age_seconds") is None or b["age_seconds"] < older_than):
            continue
        out.append(b)
    return out
