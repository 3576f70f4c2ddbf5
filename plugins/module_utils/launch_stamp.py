# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The stamp of a finished launch: what it was asked, and the objects it left running.

A launch that ends well (botbottle.bottle.bottle_launch) writes ``<state dir>/launch.json``: the
digest of everything the launch was given (the controller's ``launch_digest`` filter over the
modules' options and the collection's own code, with what only the host knows: the operator's
approvals and the credentials of the routes they add), the ids of its networks and containers and
the configuration hash of the files it left in the state directory. A rerun (bottle_launch again,
before it does anything) reads the stamp and the objects as they are now (``observe``) and, when
``is_current`` finds the same digest and the same objects still running healthy, from the images
their names point at and from unchanged files, has nothing to do.

The stamp is a shortcut, never the truth: anything it cannot vouch for (another digest, an object
recreated, stopped or gone, an image rebuilt under the same name, a file of the state directory
edited, an unhealthy daemon) sends the launch down its full path, which converges as always.

API:
- ``STAMP``: the file name in the state directory.
- ``write(state_dir, digest, objects)``: write the stamp (0600, replaced atomically).
- ``read(state_dir)``: the stamp as a dict, or None (missing or unreadable: no shortcut).
- ``observe(client, slug, state_dir, health, networks=NETWORKS, containers=CONTAINERS, extra=None)``:
  the stamp and the objects as they are now, as ``{stamp, networks: {role: id}, containers: {role:
  {id, running, image}}, config_hash, extra, health}``; ``health`` (a function of the bundle
  container) is only called when everything else matches. ``networks`` and ``containers`` are the
  backend's (smolmachines: ``VM_NETWORKS``, ``VM_CONTAINERS``); ``extra`` (a function, called only
  when there is a stamp) gives what else the backend records (smolmachines: the VM, its socket relay
  and the agent image's id), compared key by key with the stamp's ``extra`` (``EXTRA_REASONS``).
- ``is_current(observed, digest, images)``: ``(True, "")`` or ``(False, why)``; ``images`` maps each
  image a container of the launch runs (``bundle``, ``agent``) to its id in the image cache now.
"""

from __future__ import annotations

import json
import os

from ansible_collections.botbottle.bottle.plugins.module_utils import bundle_config, naming

STAMP = "launch.json"
NETWORKS = {"internal": "net-int", "egress": "net-out"}
CONTAINERS = ("bundle", "agent")
VM_NETWORKS = {"egress": "net-out"}
VM_CONTAINERS = ("bundle",)
EXTRA_REASONS = {"machine": "the VM was removed, recreated, resized or stopped",
                 "relay": "the socket relay does not run as the launch left it",
                 "agent_image": "the agent image was rebuilt"}


def write(state_dir, digest, objects):
    """Record ``digest`` and ``objects`` (``{networks, containers, config_hash}``) as the stamp."""
    record = dict(objects, digest=digest)
    bundle_config.write_atomic(os.path.join(state_dir, STAMP), json.dumps(record, sort_keys=True).encode("utf-8"))


def read(state_dir):
    try:
        with open(os.path.join(state_dir, STAMP), encoding="utf-8") as handle:
            record = json.load(handle)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _container(client, slug, role):
    from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import find_container
    container = find_container(client, naming.object_name(slug, role))
    if container is None or (container.labels or {}).get(naming.LABEL_BOTTLE) != slug:
        return None
    return {"id": container.id, "running": container.status == "running", "image": container.attrs.get("Image"),
            "object": container}


def observe(client, slug, state_dir, health, networks=None, containers=None, extra=None):
    networks = NETWORKS if networks is None else networks
    containers = CONTAINERS if containers is None else containers
    stamp = read(state_dir)
    seen = {"stamp": stamp, "networks": {}, "containers": {}, "config_hash": None, "extra": None, "health": None}
    if stamp is None:
        return seen
    seen["extra"] = extra() if extra else None
    # Imported here: the rest of this file (read, write, is_current) needs no Docker SDK.
    from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import find_network
    for role, suffix in networks.items():
        network = find_network(client, naming.object_name(slug, suffix))
        seen["networks"][role] = network.id if network is not None else None
    found = {role: _container(client, slug, role) for role in containers}
    seen["containers"] = {role: ({k: v for k, v in c.items() if k != "object"} if c else None)
                          for role, c in found.items()}
    try:
        seen["config_hash"] = bundle_config.config_hash(state_dir)
    except (OSError, bundle_config.BundleConfigError):
        seen["config_hash"] = None
    # The bundle answers for its daemons only when nothing else differs (a docker exec costs).
    if _objects_match(seen, stamp) and found["bundle"] is not None:
        seen["health"] = health(found["bundle"]["object"])
    return seen


def _objects_match(seen, stamp):
    ids_now = {role: c["id"] for role, c in seen["containers"].items() if c is not None}
    ids_then = {role: c.get("id") for role, c in (stamp.get("containers") or {}).items()}
    return (seen["networks"] == stamp.get("networks")
            and all(c is not None and c["running"] for c in seen["containers"].values())
            and ids_now == ids_then
            and seen["config_hash"] == stamp.get("config_hash")
            and seen["extra"] == stamp.get("extra"))


def is_current(observed, digest, images):
    stamp = (observed or {}).get("stamp")
    if not stamp:
        return False, "no stamp of an earlier launch"
    if stamp.get("digest") != digest:
        return False, "the launch's inputs or the collection changed"
    if observed["networks"] != stamp.get("networks"):
        return False, "a network was removed or recreated"
    for role in observed["containers"]:
        now, then = observed["containers"].get(role), (stamp.get("containers") or {}).get(role) or {}
        if now is None or now["id"] != then.get("id"):
            return False, "the %s container was removed or recreated" % role
        if not now["running"]:
            return False, "the %s container is not running" % role
        if now["image"] != images.get(role):
            return False, "the %s image was rebuilt" % role
    if observed["config_hash"] != stamp.get("config_hash"):
        return False, "a file of the state directory changed"
    extra_now, extra_then = observed.get("extra") or {}, stamp.get("extra") or {}
    for key in sorted(set(extra_now) | set(extra_then)):
        if extra_now.get(key) != extra_then.get(key):
            return False, EXTRA_REASONS.get(key, "the launch's %s changed" % key)
    if observed.get("health") is not True:
        return False, "a daemon of the bundle is not healthy"
    return True, ""
