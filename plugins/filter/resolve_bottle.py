# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: resolve_bottle
short_description: Resolve and validate an agent and its policy
version_added: 0.1.0
description:
  - Looks up agent O(_input) in O(agents) (merged over O(shipped_agents)), merges its policy along the C(extends) chain of O(policies)
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
      - Keys may also be the variables' names (C(ANTHROPIC_API_KEY), C(CLAUDE_CODE_OAUTH_TOKEN), C(OPENAI_API_KEY)),
        as the bottle role passes them; a codex agent's (C(kind=codex)) credential is C(OPENAI_API_KEY) (C(api_key)).
      - C(model.credential=auto) takes the API key when it is set, else the OAuth token; with neither the filter
        fails naming both variables. Omitted - only an explicit C(api_key) or C(oauth) resolves.
    type: dict
  shipped_agents:
    description:
      - Shipped agent definitions O(agents) is merged over (the role's C(bottle_builtin_agents)), as for
        O(shipped_policies).
    type: dict
  shipped_policies:
    description:
      - Shipped policy definitions O(policies) is merged over (the role's C(bottle_builtin_policies)).
      - A name defined on both sides is deep-merged - mappings key by key, recursively; lists and other values
        replace the shipped ones; a key set to null (C(~)) removes the shipped key, a definition set to null the
        whole shipped definition.
    type: dict
  memory_override:
    description:
      - The operator's memory limit of the agent (the role's C(bottle_agent_memory)), over the C(resources.memory) of
        the policy and the agent; checked as they are (its error names C(bottle_agent_memory)).
    type: str
    default: ""
  errors:
    description:
      - V(raise) fails the template with the error; V(report) never fails, it returns C({error, bottle}) - C(error)
        the message (empty when valid), C(bottle) the resolved bottle (None when invalid) - for a task to print
        the message once (the bottle role's preflight does).
    type: str
    choices: [raise, report]
    default: raise
"""

EXAMPLES = r"""
- name: Resolve agent demo
  ansible.builtin.set_fact:
    bottle: >-
      {{ 'demo' | botbottle.bottle.resolve_bottle(bottle_agents, bottle_policies,
                                                  model_credentials={'api_key': 'set', 'oauth': 'unset'}) }}

- name: Resolve, keeping the error for a task of its own to print
  ansible.builtin.set_fact:
    bottle_check: >-
      {{ 'demo' | botbottle.bottle.resolve_bottle(bottle_agents, bottle_policies, shipped_policies=bottle_builtin_policies,
                                                  model_credentials={'api_key': 'set'}, errors='report') }}
"""

RETURN = r"""
_value:
  description:
    - The resolved bottle - slug, agent, kind, policy_name, policy, prompt, skills, env, secret_env, image, git_gate, model,
      resources (the agent's limits C({memory, cpus, pids}), the defaults with the policy's, the agent's and
      O(memory_override) over them), resources_written (only the keys written) and resources_smolvm (those as
      smolvm machine options, memory in MiB and whole cpus).
    - With C(model) in the policy, C(policy.egress.routes) holds the model's route (its credential resolved on the
      controller like any route's), C(env) the placeholder the agent holds instead, and C(model) is
      C({host, credential, env, placeholder}) (None without).
    - With O(errors=report), C({error, bottle}) instead - the error message (empty when valid) and the resolved bottle
      (None when invalid).
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.botbottle.bottle.plugins.module_utils.manifest import ManifestError, overlay, resolve


def resolve_bottle(agent, agents, policies, suffix="", model_credentials=None, shipped_agents=None,
                   shipped_policies=None, errors="raise", memory_override=""):
    if errors not in ("raise", "report"):
        raise AnsibleFilterError("resolve_bottle: errors=%r: use raise or report" % (errors,))
    try:
        bottle = resolve(overlay(shipped_agents or {}, agents), overlay(shipped_policies or {}, policies), agent,
                         suffix, model_credentials=model_credentials, memory_override=memory_override)
    except ManifestError as exc:
        if errors == "report":
            return {"error": str(exc), "bottle": None}
        raise AnsibleFilterError(str(exc))
    return {"error": "", "bottle": bottle} if errors == "report" else bottle


class FilterModule:
    def filters(self):
        return {"resolve_bottle": resolve_bottle}
