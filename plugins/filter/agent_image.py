# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: agent_image
short_description: The agent image of an agent, from its definition and its kind
version_added: 0.5.0
description:
  - The agent definition's own C(image), else the image of its C(kind) in O(kind_images) (the role's
    C(bottle_agent_images)), else O(default_image) (C(bottle_agent_image)) for kind C(claude-code) and the
    kind's own image for another (C(codex) - V(botbottle/agent-codex:latest)).
  - The launch and the fleet's shipping use this one rule (module_utils/agent_kinds.py).
options:
  _input:
    description: The agent definition (a dict; C(image) and C(kind) are read, both optional).
    type: dict
    required: true
  kind_images:
    description: Image per kind (C(bottle_agent_images)).
    type: dict
    default: {}
  default_image:
    description: The image of kind C(claude-code) (C(bottle_agent_image)).
    type: str
"""

EXAMPLES = r"""
- name: The image of agent coder
  ansible.builtin.debug:
    msg: "{{ bottle_agents.coder | botbottle.bottle.agent_image(bottle_agent_images, bottle_agent_image) }}"
"""

RETURN = r"""
_value:
  description: The image name.
  type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.botbottle.bottle.plugins.module_utils import agent_kinds


def agent_image(definition, kind_images=None, default_image=None):
    definition = definition if isinstance(definition, dict) else {}
    kind = definition.get("kind") or agent_kinds.DEFAULT
    problem = agent_kinds.kind_error(kind)
    if problem:
        raise AnsibleFilterError("kind: %s" % problem)
    return agent_kinds.agent_image(definition.get("image"), kind, dict(kind_images or {}), default_image)


class FilterModule:
    def filters(self):
        return {"agent_image": agent_image}
