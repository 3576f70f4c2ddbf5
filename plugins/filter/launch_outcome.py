# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: launch_outcome
short_description: What a launch did to its bottle, or in check mode would do
version_added: 0.5.0
description:
  - One line a person reads (the launch's closing message), whether anything changed, the fleet's status
    (V(started), V(updated), V(unchanged)) and why the launch ran in full - from the modules' own results
    (module_utils/launch_outcome.py, the one owner of that text and of "what changed").
options:
  _input:
    description:
      - The phases' module results by phase, C(networks), C(state), C(archive), C(bundle), C(agent) (a phase
        that did not run is left out or empty).
    type: dict
    required: true
  slug:
    description: The bottle's slug.
    type: str
    required: true
  agent:
    description: The agent's name.
    type: str
    required: true
  policy:
    description: The policy's name.
    type: str
    required: true
  backend:
    description: V(docker) or V(smolmachines).
    type: str
    required: true
  preexisting:
    description: Whether the bottle existed before this launch.
    type: bool
    required: true
  check_mode:
    description: Whether the launch ran in check mode.
    type: bool
    required: true
  launched:
    description: M(botbottle.bottle.bottle_launch)'s result (its stamp's C(current) and C(reason)), docker only.
    type: dict
"""

EXAMPLES = r"""
- name: Say what the launch changed
  ansible.builtin.set_fact:
    bottle_outcome_info: >-
      {{ {'networks': bottle_net, 'state': bottle_state_result, 'bundle': bottle_bundle, 'agent': bottle_agent_container}
         | botbottle.bottle.launch_outcome(bottle_slug, 'coder', 'ai', 'docker', false, ansible_check_mode) }}
"""

RETURN = r"""
_value:
  description: The outcome.
  type: dict
  contains:
    text:
      description: The line the closing message prints, e.g. C(bottle coder (agent coder, policy ai) is running (nothing changed)).
      type: str
    changed:
      description: Whether anything changed (in check mode, would change).
      type: bool
    status:
      description: V(started) (new bottle), V(updated) (something changed) or V(unchanged).
      type: str
    why:
      description: Why the launch ran in full, or that it had nothing to do.
      type: str
"""

from ansible.module_utils.common.text.converters import to_native

from ansible_collections.botbottle.bottle.plugins.module_utils import launch_outcome as owner


def _plain(value):
    """Results as plain dicts and lists (Ansible hands lazy containers and tagged strings)."""
    if isinstance(value, dict):
        return {to_native(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def launch_outcome(results, slug, agent, policy, backend, preexisting, check_mode, launched=None):
    return owner.outcome(slug, agent, policy, backend, preexisting, check_mode, _plain(results or {}),
                         _plain(launched or {}))


class FilterModule:
    def filters(self):
        return {"launch_outcome": launch_outcome}
