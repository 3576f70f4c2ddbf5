# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: fleet_images
short_description: The images one fleet host needs - its bundle's and each of its agents'
version_added: 0.5.0
description:
  - Its bundle's image, then the image of each agent it is assigned, by the rule of
    P(botbottle.bottle.agent_image#filter) (the agent's own, else its kind's), each once, in order.
  - C(playbooks/fleet.yml) archives and ships these unless a host lists C(bottle_fleet_images) itself, so a host
    of codex agents gets V(botbottle/agent-codex:latest) and a host of claude-code agents only the agent image.
options:
  _input:
    description: The names of the host's agents (C(bottle_fleet_agents)).
    type: list
    elements: str
    required: true
  definitions:
    description: The agent definitions (C(bottle_agents)).
    type: dict
    default: {}
  kind_images:
    description: Image per kind (C(bottle_agent_images)).
    type: dict
    default: {}
  default_image:
    description: The image of kind C(claude-code) (C(bottle_agent_image)).
    type: str
  bundle_image:
    description: The bundle's image (C(bottle_bundle_image)).
    type: str
"""

EXAMPLES = r"""
- name: What this host needs
  ansible.builtin.debug:
    msg: "{{ bottle_fleet_agents | botbottle.bottle.fleet_images(bottle_agents, bottle_agent_images, bottle_agent_image,
             bottle_bundle_image) }}"
"""

RETURN = r"""
_value:
  description: Image names, each once.
  type: list
  elements: str
"""

from ansible_collections.botbottle.bottle.plugins.filter.agent_image import agent_image


def fleet_images(agents, definitions, kind_images=None, default_image=None, bundle_image=None):
    """The images one fleet host needs: its bundle's, then each of its agents' (once each, in order)."""
    out = [bundle_image] if bundle_image else []
    for name in agents or []:
        image = agent_image((definitions or {}).get(name) or {}, kind_images, default_image)
        if image not in out:
            out.append(image)
    return out


class FilterModule:
    def filters(self):
        return {"fleet_images": fleet_images}
