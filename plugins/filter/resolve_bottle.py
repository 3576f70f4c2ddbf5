# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: resolve_bottle
short_description: Resolve and validate an agent and its policy
version_added: 0.1.0
description:
  - Looks up agent O(_input) in O(agents), merges its policy along the C(extends) chain of O(policies)
    (child keys win, mappings merge, lists are replaced) and validates every key.
  - Fails with the dotted path of the offending key and the fix (an unknown key, a wrong type, a cycle,
    an unknown parent, an unknown agent naming the known ones).
options:
  _input:
    description: The agent's name.
    type: str
    required: true
  agents:
    description: The agent definitions (C(bottle_agents) merged over the shipped ones).
    type: dict
    required: true
  policies:
    description: The policy definitions.
    type: dict
    required: true
  suffix:
    description: Optional bottle instance suffix (C(bottle_instance)).
    type: str
    default: ""
  model_credentials:
    description:
      - For a policy with C(model) - whether the controller holds each model credential, never its value.
        C(api_key) for C(ANTHROPIC_API_KEY), C(oauth) for C(CLAUDE_CODE_OAUTH_TOKEN), each V(set), V(empty) or
        V(unset) (or a bool), as an Ansible variable or else an environment variable of the controller.
      - C(model.credential=auto) takes the API key when it is set, else the OAuth token; with neither the filter
        fails naming both variables. Omitted - only an explicit C(api_key) or C(oauth) resolves.
    type: dict
"""

EXAMPLES = r"""
- name: Resolve agent demo
  ansible.builtin.set_fact:
    bottle: >-
      {{ 'demo' | botbottle.bottle.resolve_bottle(bottle_agents, bottle_policies,
                                                  model_credentials={'api_key': 'set', 'oauth': 'unset'}) }}
"""

RETURN = r"""
_value:
  description:
    - The resolved bottle - slug, agent, policy_name, policy, prompt, skills, env, secret_env, image, git_gate, model.
    - With C(model) in the policy, C(policy.egress.routes) holds the model's route (its credential resolved on the
      controller like any route's), C(env) the placeholder the agent holds instead, and C(model) is
      C({host, credential, env, placeholder}) (None without).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.botbottle.bottle.plugins.module_utils.manifest import ManifestError, resolve


def resolve_bottle(agent, agents, policies, suffix="", model_credentials=None):
    try:
        return resolve(agents, policies, agent, suffix, model_credentials=model_credentials)
    except ManifestError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule:
    def filters(self):
        return {"resolve_bottle": resolve_bottle}
