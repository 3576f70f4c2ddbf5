# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: deprecated_alias
short_description: The value of a renamed variable given by its old name, with Ansible's deprecation warning
version_added: 0.6.0
description:
  - Returns its input unchanged. When the input is set (not empty), Ansible prints a deprecation warning that names
    the old and the new variable and the release that drops the old one (as a module's deprecated alias does; it
    follows C(deprecation_warnings) in ansible.cfg).
  - The role takes the agent's name as C(bottle_agent_name); C(bottle_agent), its earlier name, still works through
    this filter.
options:
  _input:
    description: The value given under the old name.
    type: raw
    required: true
  old:
    description: The old variable's name.
    type: str
    required: true
  new:
    description: The new variable's name.
    type: str
    required: true
  version:
    description: The collection release that drops the old name.
    type: str
    default: 1.0.0
"""

EXAMPLES = r"""
- name: The agent's name, from its new variable or (deprecated) its old one
  ansible.builtin.set_fact:
    agent_name: "{{ bottle_agent_name or (bottle_agent | botbottle.bottle.deprecated_alias('bottle_agent', 'bottle_agent_name')) }}"
"""

RETURN = r"""
_value:
  description: The input, unchanged.
  type: raw
"""

from ansible.utils.display import Display

COLLECTION = "botbottle.bottle"


def deprecated_alias(value, old, new, version="1.0.0"):
    if value not in (None, "", [], {}):
        Display().deprecated("the variable %s is deprecated: set %s instead (same value)" % (old, new),
                             version=version, collection_name=COLLECTION)
    return value


class FilterModule:
    def filters(self):
        return {"deprecated_alias": deprecated_alias}
