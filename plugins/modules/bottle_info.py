#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bottle_info
short_description: The bottles on a host
version_added: 0.1.0
description:
  - Lists the bottles of the managed host from what carries the C(io.botbottle.*) labels (containers,
    networks) and from the state directories under O(state_root).
  - Read-only; used by the teardown playbook to decide what goes, and by the role's preflight to check
    that the images a launch needs are in the local image cache (O(images)).
author: botbottle developers (@botbottle)
extends_documentation_fragment:
  - botbottle.bottle.docker
attributes:
  check_mode:
    support: full
    description: Read-only; nothing changes.
  diff_mode:
    support: none
    description: Nothing to show, the module changes nothing.
  idempotent:
    support: full
    description: It only reads.
options:
  slug:
    description: Only this bottle.
    type: str
  agent:
    description: Only bottles of this agent.
    type: str
  state_root:
    description: Where bottles keep their state on the managed host.
    type: path
    default: ~/.bot-bottle/state
  images:
    description:
      - Image references to look up in the local image cache; reported in RV(images).
    type: list
    elements: str
    default: []
  health:
    description:
      - Report each bottle's C(health) from C(bottle-health --json) in its running bundle, and
        the count of its pending supervise proposals (C(<state_dir>/supervise/proposals/*.json) whose
        C(status) is C(pending)) as C(proposals_pending).
    type: bool
    default: false
  older_than:
    description:
      - Only bottles created at least this long ago (C(created) from C(meta.json), else the oldest of its
        containers), written as a whole number and a unit - V(90m), V(2h), V(3d), V(1w). A bottle whose
        age is unknown never matches.
    type: str
  orphans:
    description:
      - Only orphans - labelled objects without a state directory (V(no-state)), or a state directory with
        no container, network or machine of its bottle (V(no-objects)).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Every bottle of agent demo
  botbottle.bottle.bottle_info:
    agent: demo
  register: found

- name: Their slugs
  ansible.builtin.debug:
    msg: "{{ found.bottles | map(attribute='slug') | list }}"
"""

RETURN = r"""
bottles:
  description: One entry per bottle, sorted by slug.
  returned: always
  type: list
  elements: dict
  sample:
    - slug: demo
      agent: demo
      backend: docker
      containers: [{name: bb-demo-bundle, component: bundle, status: running, health: healthy}]
      networks: [{name: bb-demo-net-int, component: net-int}]
      state_dir: /root/.bot-bottle/state/demo
      created: "2026-11-22T18:00:00Z"
      age_seconds: 7200
      orphan: null
      health: {pipelock: healthy, egress: healthy}
      proposals_pending: 0
images:
  description: One entry per O(images) reference, in the order given.
  returned: always
  type: list
  elements: dict
  sample:
    - {name: "botbottle/bundle:latest", present: true, id: "sha256:0123abcd"}
    - {name: "botbottle/agent:latest", present: false, id: null}
"""

import json
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.botbottle.bottle.plugins.module_utils import fleet_view, naming
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import (
    DOCKER_COMMON_ARGS, DockerException, bottle_containers, bottle_networks, find_image, get_docker_client)


def read_meta(path):
    try:
        with open(os.path.join(path, "meta.json"), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def collect(client, state_root, slug=None, agent=None):
    bottles = {}

    def entry(s):
        return bottles.setdefault(s, {"slug": s, "agent": None, "backend": None, "containers": [],
                                      "networks": [], "state_dir": None, "created": None})

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
            meta = read_meta(path)
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
    return [bottles[k] for k in sorted(bottles)]


def look_up_images(client, names):
    found = []
    for name in names:
        image = find_image(client, name)
        found.append({"name": name, "present": image is not None, "id": image.id if image is not None else None})
    return found


def main():
    argument_spec = dict(
        slug=dict(type="str"),
        agent=dict(type="str"),
        state_root=dict(type="path", default=naming.DEFAULT_STATE_ROOT),
        images=dict(type="list", elements="str", default=[]),
        health=dict(type="bool", default=False),
        older_than=dict(type="str"),
        orphans=dict(type="bool", default=False),
    )
    argument_spec.update(DOCKER_COMMON_ARGS)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    client = get_docker_client(module)
    try:
        older_than = fleet_view.parse_duration(module.params["older_than"]) if module.params["older_than"] else None
    except ValueError as exc:
        module.fail_json(msg="older_than: %s" % exc)
    try:
        bottles = collect(client, module.params["state_root"], module.params["slug"], module.params["agent"])
        images = look_up_images(client, module.params["images"])
        bottles = fleet_view.select(fleet_view.add_orphan(fleet_view.add_age(client, bottles)),
                                    older_than=older_than, orphans=module.params["orphans"])
        if module.params["health"]:
            bottles = fleet_view.add_proposals(fleet_view.add_health(client, bottles))
    except DockerException as exc:
        module.fail_json(msg="docker engine error while listing bottles: %s" % exc)
    module.exit_json(changed=False, bottles=bottles, images=images)


if __name__ == "__main__":
    main()
