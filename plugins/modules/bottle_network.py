#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: bottle_network
short_description: The docker networks of one bottle
version_added: 0.1.0
description:
  - Creates or removes the two docker networks of bottle O(slug).
  - V(bb-<slug>-net-int) is C(internal) and holds the agent and the bundle. Its bridge carries no host
    address (C(com.docker.network.bridge.inhibit_ipv4)), so the agent cannot reach services of the
    host through the gateway address either, which a plain internal network allows.
  - V(bb-<slug>-net-out) is an ordinary bridge only the bundle joins, its way out.
  - With O(internal=false) (the smolmachines backend, whose agent is a VM and reaches the bundle through a
    loopback address) only V(bb-<slug>-net-out) is created. O(state=absent) removes both either way.
  - Subnets come deterministically from the slug (a hash picks the first slot in O(pool)); slots that
    overlap any existing docker network are skipped, and the result says which were.
    Existing networks of the bottle keep their subnets.
author: botbottle developers (@botbottle)
extends_documentation_fragment:
  - botbottle.bottle.docker
attributes:
  check_mode:
    description: Reports the networks and subnets it would create, creating none.
    support: full
  diff_mode:
    description: Shows each network's name, subnet and addresses before and after, and for a network that is
      recreated each setting that differed (C(internal), C(options)) as it was and as it will be.
    support: full
  idempotent:
    description: Existing networks of the bottle are kept with their subnets; a second run changes nothing.
    support: full
options:
  slug:
    description: The bottle's slug.
    type: str
    required: true
  agent:
    description: The agent the bottle runs; recorded as a label. Required with O(state=present).
    type: str
  pool:
    description: Where subnets are taken from (an IPv4 CIDR).
    type: str
    default: 172.29.0.0/16
  prefix:
    description: Prefix length of each network's subnet; a /28 holds the gateway, bundle and agent.
    type: int
    default: 28
  internal:
    description: Whether the bottle has the internal network (the docker backend's agent sits on it).
    type: bool
    default: true
  backend:
    description: The bottle's backend, recorded as the C(io.botbottle.backend) label of new networks.
    type: str
    choices: [docker, smolmachines]
    default: docker
  labels:
    description: Extra labels for both networks (the bottle's own labels always win).
    type: dict
    default: {}
  state:
    description: Whether the networks should exist.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: Networks of bottle demo
  botbottle.bottle.bottle_network:
    slug: demo
    agent: demo
  register: nets

- name: Show where the bundle goes
  ansible.builtin.debug:
    msg: "{{ nets.networks.internal.bundle_ip }}"

- name: Remove them
  botbottle.bottle.bottle_network:
    slug: demo
    state: absent
"""

RETURN = r"""
networks:
  description: The bottle's networks (empty with O(state=absent)).
  returned: always
  type: dict
  contains:
    internal:
      description: The internal network; C(bundle_ip) and C(agent_ip) are the addresses to pin.
      type: dict
      sample: {name: bb-demo-net-int, id: 3f2a..., subnet: 172.29.18.32/28, gateway: 172.29.18.33,
               bundle_ip: 172.29.18.34, agent_ip: 172.29.18.35}
    egress:
      description: The bundle's way-out network.
      type: dict
      sample: {name: bb-demo-net-out, id: 9c1b..., subnet: 172.29.18.48/28}
skipped_subnets:
  description: Subnets passed over because an existing docker network overlaps them.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.botbottle.bottle.plugins.module_utils.bottle_networks import NETWORK_SPEC, NetworkManager
from ansible_collections.botbottle.bottle.plugins.module_utils.docker_client import get_docker_client, run_manager


def main():
    argument_spec = dict(NETWORK_SPEC)
    run_manager(argument_spec, NetworkManager, "networks", get_client=get_docker_client)


if __name__ == "__main__":
    main()
