# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: with_approvals
short_description: A bottle's policy with what the operator approved through supervise
version_added: 0.1.0
description:
  - Merges C(supervise-approved.json) (what M(botbottle.bottle.bottle_supervise) records) into a resolved policy -
    approved domains join C(allowed_domains), approved routes join C(egress.routes) unless the policy already
    routes that host (the policy's route, with its restrictions, always wins).
  - The same merge M(botbottle.bottle.bottle_supervise) applies when it approves, so the role renders the
    bottle's files exactly as the approval did and changes nothing.
  - With O(agent), the approvals recorded for every bottle of the agent (O(botbottle.bottle.bottle_supervise#module:scope=agent),
    C(<state_root>/../agents/<agent>/supervise-approved.json)) join the bottle's own - the bottle's entries first,
    then the agent's the bottle lacks - as the module folds them in when it approves.
  - Fails naming the file and the fix when the approvals are not what M(botbottle.bottle.bottle_supervise) writes.
options:
  _input:
    description: The resolved policy (C(resolve_bottle)'s C(policy)).
    type: dict
    required: true
  approved:
    description: >-
      The parsed C(supervise-approved.json), with lists C(domains) and C(routes); empty or omitted merges nothing.
    type: dict
    default: {}
  agent:
    description: >-
      The parsed agent-wide C(supervise-approved.json) of the bottle's agent; empty or omitted merges nothing more.
    type: dict
    default: {}
"""

EXAMPLES = r"""
- name: Merge the approvals into the policy
  ansible.builtin.set_fact:
    bottle_policy: "{{ bottle_resolved.policy | botbottle.bottle.with_approvals(approved_raw.content | b64decode | from_json) }}"

- name: With what the operator approved for every bottle of the agent too
  ansible.builtin.set_fact:
    bottle_policy: >-
      {{ bottle_resolved.policy | botbottle.bottle.with_approvals(approved_raw.content | b64decode | from_json,
           agent=agent_raw.content | b64decode | from_json) }}
"""

RETURN = r"""
_value:
  description: The policy with the approvals merged (a new dict; the input is not changed).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.botbottle.bottle.plugins.module_utils.bundle_config import combine_approved, merge_approved


def with_approvals(policy, approved=None, agent=None):
    try:
        return merge_approved(policy, combine_approved(approved, agent) if agent else approved)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule:
    def filters(self):
        return {"with_approvals": with_approvals}
