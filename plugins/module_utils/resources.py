# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The resource limits of a bottle: the agent's (``resources:`` of a policy or an agent) and the bundle's.

One owner for what a limit is: its defaults, how a written value is checked (errors name the key and
the fix), how it becomes Docker's settings (create and ``docker update``) and smolvm's machine options.

API:
- ``AGENT_DEFAULTS``: ``{memory, cpus, pids}`` every agent gets unless its policy or definition says
  otherwise. ``BUNDLE_MEMORY``: the bundle's memory limit (sized from measurement, docs/architecture.md).
- ``KEYS``: the keys of a ``resources:`` mapping.
- ``check(resources, path, error=ValueError)``: validate one written ``resources:`` mapping (raises
  ``error`` naming ``path.key`` and the fix).
- ``memory_bytes(value, path, error=ValueError)``: a size (``4g``, ``512m``, ``1073741824``) in bytes.
- ``effective(*layers)``: the defaults with each layer's keys over them (policy, then agent, then an
  operator's override).
- ``docker_update(api, container_id, memory=None, cpus=None, pids=None)``: change the limits of a
  container as it runs (``docker update``: the container, its processes and its files stay).
- ``nano_cpus(cpus)``: Docker's ``NanoCpus`` for a CPU count (0 for none).
- ``smolvm_options(resources)``: ``{memory (MiB), cpus}`` for ``smolvm machine create/update``, from the
  keys a policy or agent set (smolvm has no pids limit).
"""

from __future__ import annotations

import math
import re

KEYS = ("memory", "cpus", "pids")
# A default that fits a coding agent at work (a test suite, npm install, a language server) and still
# leaves room for neighbours on a small host. Not a reservation: Docker takes memory only as it is used.
AGENT_DEFAULTS = {"memory": "4g", "cpus": 2, "pids": 512}
# The bundle (egress, git-gate, supervise, bottle-init): its peaks measured under load add up to about 400 MiB
# (docs/architecture.md, "Limits"); the limit gives it 2.5 times that, for a burst of large bodies.
BUNDLE_MEMORY = "1g"
MIN_MEMORY = 6 * 1024 * 1024       # Docker refuses less
MIN_PIDS = 16                      # below this the agent's shell and git cannot run
SMOLVM_MIN_MEMORY_MIB = 64         # smolvm machine's own minimum
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)b?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3, "t": 1024 ** 4}
_FIX = {
    "memory": "write a size such as 4g or 512m (at least 6m)",
    "cpus": "write how many CPUs the agent may use, such as 2 or 0.5",
    "pids": "write the most processes and threads the agent may have, a whole number such as 2048 (at least %d)"
            % MIN_PIDS,
}


def memory_bytes(value, path="memory", error=ValueError):
    """A size in bytes: a whole number of bytes, or a number with b, k, m, g or t (1024-based)."""
    if isinstance(value, bool) or value is None:
        raise error("%s %r is not a size: %s" % (path, value, _FIX["memory"]))
    if isinstance(value, int):
        number = value
    else:
        match = _SIZE_RE.match(str(value))
        if not match:
            raise error("%s %r is not a size: %s" % (path, value, _FIX["memory"]))
        number = int(float(match.group(1)) * _UNITS[match.group(2).lower()])
    if number < MIN_MEMORY:
        raise error("%s %r is below Docker's least memory limit: %s" % (path, value, _FIX["memory"]))
    return number


def _cpus(value, path, error):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise error("%s %r is not a number of CPUs: %s" % (path, value, _FIX["cpus"]))
    try:
        number = float(value)
    except ValueError:
        raise error("%s %r is not a number of CPUs: %s" % (path, value, _FIX["cpus"])) from None
    if not math.isfinite(number) or number < 0.01:
        raise error("%s %r is not a number of CPUs: %s (at least 0.01)" % (path, value, _FIX["cpus"]))
    return number


def _pids(value, path, error):
    if isinstance(value, bool) or not isinstance(value, int) or value < MIN_PIDS:
        raise error("%s %r is not a process limit: %s" % (path, value, _FIX["pids"]))
    return value


def check(resources, path, error=ValueError):
    """Validate one written ``resources:`` mapping; returns it normalised (memory in bytes, cpus a float)."""
    if not isinstance(resources, dict):
        raise error("%s must be a mapping, such as {memory: 4g, cpus: 2, pids: 2048}" % path)
    extra = sorted(set(resources) - set(KEYS))
    if extra:
        raise error("%s.%s is not a known key: use one of %s" % (path, extra[0], ", ".join(KEYS)))
    out = {}
    if "memory" in resources:
        out["memory"] = memory_bytes(resources["memory"], path + ".memory", error)
    if "cpus" in resources:
        out["cpus"] = _cpus(resources["cpus"], path + ".cpus", error)
    if "pids" in resources:
        out["pids"] = _pids(resources["pids"], path + ".pids", error)
    return out


def effective(*layers):
    """The defaults with each layer's written keys over them, checked: ``{memory, cpus, pids}`` as given
    (memory as written, so ``4g`` stays readable in a diff)."""
    out = dict(AGENT_DEFAULTS)
    for layer in layers:
        out.update({k: v for k, v in (layer or {}).items() if v not in (None, "")})
    return out


def nano_cpus(cpus):
    return int(round(float(cpus) * 1e9)) if cpus else 0


def docker_update(api, container_id, memory=None, cpus=None, pids=None):
    """``docker update`` of the given limits (None: left as it is). docker-py's ``update_container`` has no
    NanoCpus or PidsLimit, so the engine's endpoint is called with the body the CLI sends."""
    body = {}
    if memory:
        # Swap as Docker sets it at creation (twice the memory), else a larger limit is refused.
        body.update(Memory=int(memory), MemorySwap=2 * int(memory))
    if cpus:
        body["NanoCpus"] = nano_cpus(cpus)
    if pids:
        body["PidsLimit"] = int(pids)
    if not body:
        return None
    # pylint: disable-next=protected-access
    response = api._post_json(api._url("/containers/{0}/update", container_id), data=body)
    # pylint: disable-next=protected-access
    api._raise_for_status(response)
    return body


def smolvm_options(resources):
    """``{memory: MiB, cpus: int}`` for a smolvm machine from the keys written (whole vCPUs, rounded up)."""
    out = {}
    if resources.get("memory"):
        out["memory"] = max(SMOLVM_MIN_MEMORY_MIB, -(-memory_bytes(resources["memory"]) // (1024 * 1024)))
    if resources.get("cpus"):
        out["cpus"] = max(1, int(math.ceil(float(resources["cpus"]))))
    return out
