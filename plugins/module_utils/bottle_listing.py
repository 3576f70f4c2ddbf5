# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What bottles there are: the one lister that ``bottle_info`` and the operator's console both read.

API (pure Python over a Docker SDK client; nothing here writes):
- ``collect(client, state_root, slug=None, agent=None, machines=None)``: one entry a bottle, from its
  labelled containers and networks (``client``), its labelled smolvm machines (``machines``, as
  ``smolvm machine ls --json`` lists them) and its state directory (``state_meta.read_meta``).
- ``archived(archive_root, slug=None, agent=None, max_bytes=..., events=False)``: the archives of
  torn-down bottles (``audit_archive``) with what their audit counts (``audit_log``).
"""

from __future__ import annotations

import os

from ansible_collections.botbottle.bottle.plugins.module_utils import audit_archive, audit_log, naming, state_meta
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import bottle_containers, bottle_networks


def collect(client, state_root, slug=None, agent=None, machines=None):
    """The bottles under ``state_root`` and the engine's (``client``) and smolvm's (``machines``) labelled
    objects, one entry a slug, sorted: ``{slug, agent, backend, containers, networks, machines, state_dir,
    created}``; ``slug``/``agent`` keep only that bottle or that agent's."""
    bottles = {}

    def entry(s):
        return bottles.setdefault(s, {"slug": s, "agent": None, "backend": None, "containers": [],
                                      "networks": [], "machines": [], "state_dir": None, "created": None})

    for machine in machines or []:
        labels = machine.get("labels") or {}
        if naming.LABEL_BOTTLE not in labels or (slug and labels[naming.LABEL_BOTTLE] != slug) or \
                (agent and labels.get(naming.LABEL_AGENT) != agent):
            continue
        b = entry(labels[naming.LABEL_BOTTLE])
        b["agent"] = b["agent"] or labels.get(naming.LABEL_AGENT)
        b["backend"] = b["backend"] or labels.get(naming.LABEL_BACKEND)
        b["machines"].append({"name": machine.get("name"), "component": labels.get(naming.LABEL_COMPONENT),
                              "state": machine.get("state"), "allowed_cidrs": machine.get("allowed_cidrs") or [],
                              "image": machine.get("image")})

    for container in bottle_containers(client, slug, agent):
        labels = container.labels or {}
        b = entry(labels[naming.LABEL_BOTTLE])
        b["agent"] = b["agent"] or labels.get(naming.LABEL_AGENT)
        b["backend"] = b["backend"] or labels.get(naming.LABEL_BACKEND)
        health = ((container.attrs.get("State") or {}).get("Health") or {}).get("Status")
        b["containers"].append({"name": container.name, "component": labels.get(naming.LABEL_COMPONENT),
                                "status": container.status, "health": health})
    for network in bottle_networks(client, slug, agent):
        labels = network.attrs.get("Labels") or {}
        b = entry(labels[naming.LABEL_BOTTLE])
        b["agent"] = b["agent"] or labels.get(naming.LABEL_AGENT)
        b["networks"].append({"name": network.name, "component": labels.get(naming.LABEL_COMPONENT)})
    root = os.path.abspath(state_root)
    if os.path.isdir(root):
        for name in sorted(os.listdir(root)):
            path = os.path.join(root, name)
            if not os.path.isdir(path) or naming.slug_error(name) or (slug and name != slug):
                continue
            meta = state_meta.read_meta(path)
            if agent and meta.get("agent", bottles.get(name, {}).get("agent")) != agent:
                continue
            b = entry(name)
            b["state_dir"] = path
            b["agent"] = b["agent"] or meta.get("agent")
            b["backend"] = b["backend"] or meta.get("backend")
            b["created"] = meta.get("created")
    for b in bottles.values():
        b["containers"].sort(key=lambda c: c["name"])
        b["networks"].sort(key=lambda n: n["name"])
        b["machines"].sort(key=lambda m: m["name"] or "")
    return [bottles[k] for k in sorted(bottles)]


def archived(archive_root, slug=None, agent=None, max_bytes=audit_log.DEFAULT_TAIL, events=False):
    """The archives of torn-down bottles with what their audit counts (audit_log reads them); with
    ``events``, supervise's events of each (``events``, oldest first)."""
    out = []
    for entry in audit_archive.list_archives(archive_root, slug=slug, agent=agent):
        record = audit_log.summary(entry["path"], max_bytes)
        meta, supervised = entry["meta"], record["supervise"]
        item = {key: meta.get(key) for key in ("agent", "policy", "backend", "created", "host")}
        item.update(slug=entry["slug"], archived=entry["archived"], path=entry["path"],
                    asks=sum(1 for e in supervised if e.get("event") == "proposed"),
                    decisions=sum(1 for e in supervised if e.get("event") in ("approved", "rejected")),
                    firewall=record["firewall"], problems=record["problems"])
        for key in ("allowed", "refused", "failed", "held"):
            item[key] = sum(row.get(key, 0) for row in record["firewall"])
        if events:
            item["events"] = supervised
        out.append(item)
    return out
