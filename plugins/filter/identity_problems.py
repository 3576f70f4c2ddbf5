# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: identity_problems
short_description: What is wrong with each git-gate identity, from what ansible.builtin.stat saw of it
version_added: 0.5.0
description:
  - Each git-gate identity (the SSH private key the gate pushes with) must be a regular file others cannot read
    (ssh itself refuses a key they can). Given the results of an M(ansible.builtin.stat) loop over the C(repos)
    of C(resolve_bottle)'s C(git_gate), returns one message per identity that is not, naming the key the
    operator wrote (C(bottle_policies.<policy>.git_gate.repos.<name>.identity)) and the fix.
  - The rule and the messages are M(botbottle.bottle.bottle_launch)'s, which looks at the identities itself on a
    docker launch (module_utils/host_files.py); this filter serves a launch that stats them with its own tasks.
options:
  _input:
    description: The registered result of the M(ansible.builtin.stat) loop (its C(results)); each C(item) a repo.
    type: dict
    required: true
  policy:
    description: The policy's name (C(resolve_bottle)'s C(policy_name)).
    type: str
    default: ''
"""

EXAMPLES = r"""
- name: Find what is wrong with the identities
  ansible.builtin.set_fact:
    identity_errors: "{{ identity_stat | botbottle.bottle.identity_problems(bottle_resolved.policy_name) }}"
"""

RETURN = r"""
_value:
  description: One message per unusable identity; empty when all are usable.
  type: list
  elements: str
"""

import stat

from ansible_collections.botbottle.bottle.plugins.module_utils.host_files import identity_problem


class _Seen:
    """What ansible.builtin.stat (follow=false) saw of a path, as os.lstat would have said it."""

    def __init__(self, seen):
        self.st_mode = (stat.S_IFREG if seen.get("isreg") else 0) | int(str(seen.get("mode") or "0"), 8)


def identity_problems(registered, policy=""):
    problems = []
    for result in (registered or {}).get("results") or []:
        repo, seen = result.get("item") or {}, (result.get("stat") or {})
        key = "%sgit_gate.repos.%s.identity" % ("bottle_policies.%s." % policy if policy else "", repo.get("name"))
        problem = identity_problem(key, repo.get("identity"), _Seen(seen) if seen.get("exists") else None)
        if problem:
            problems.append(problem)
    return problems


class FilterModule:
    def filters(self):
        return {"identity_problems": identity_problems}
