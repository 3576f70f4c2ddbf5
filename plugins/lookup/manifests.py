# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: manifests
short_description: Agent or policy definitions from a directory of Markdown manifests
version_added: 0.2.0
description:
  - Reads every C(<name>.md) file of each directory given (on the controller). Its YAML front matter holds
    the definition's keys; its Markdown body is the agent's C(prompt) (O(kind=agents)) or the policy's
    C(description) (O(kind=policies)).
  - Each definition is validated exactly like one under C(bottle_agents) / C(bottle_policies) in the
    inventory; an error names the file and the dotted key, for example
    C(agents/web.md) then C(bottle_agents.web.polcy is not a known key).
  - Returns one mapping of name to definition (later directories win on a name clash), to combine with
    the inventory's definitions; the launch resolves C(extends) and policy names as usual.
options:
  _terms:
    description: Directories of manifests; a relative path is looked up in the playbook's C(files) search path.
    required: true
    type: list
    elements: path
  kind:
    description: What the manifests define.
    type: str
    choices: [agents, policies]
    default: agents
"""

EXAMPLES = r"""
# group_vars/all/agents.yml: agents from manifests/agents/*.md, policies from manifests/policies/*.md
bottle_agents: "{{ lookup('botbottle.bottle.manifests', inventory_dir ~ '/manifests/agents') }}"
bottle_policies: "{{ lookup('botbottle.bottle.manifests', inventory_dir ~ '/manifests/policies', kind='policies') }}"

# manifests/agents/frontend.md:
#   ---
#   policy: webdev
#   skills:
#     lint: |
#       # lint
#       Run `npm run lint` and fix what it reports.
#   ---
#   You maintain the frontend of our web shop. Run the tests before you push.
"""

RETURN = r"""
_raw:
  description: One mapping of name to definition.
  type: list
  elements: dict
"""

import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.botbottle.bottle.plugins.plugin_utils.markdown_manifest import ManifestError, load_dir


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        unknown = sorted(set(kwargs) - {"kind"})
        if unknown:
            raise AnsibleLookupError("manifests: %s is not an option: use kind=agents or kind=policies" % unknown[0])
        kind = kwargs.get("kind", "agents")
        if kind not in ("agents", "policies"):
            raise AnsibleLookupError("manifests: kind=%r: use agents or policies" % (kind,))
        merged = {}
        for term in terms:
            path = term
            if not os.path.isabs(term):
                path = self.find_file_in_search_path(variables, "files", term, ignore_missing=True) or term
            try:
                merged.update(load_dir(path, kind))
            except ManifestError as exc:
                raise AnsibleLookupError(str(exc))
        return [merged]
