# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: launch_digest
short_description: The digest of everything a docker launch is given, and of the collection's own code
version_added: 0.4.0
description:
  - SHA-256 over the input (the options the role passes to M(botbottle.bottle.bottle_state) and
    M(botbottle.bottle.bottle_launch), as one structure, keys sorted) and over every file of the collection's
    C(plugins) and C(roles) (so a changed module, filter or task file never takes a rerun's shortcut).
  - M(botbottle.bottle.bottle_launch) records it (with the operator's approvals and the credentials of the
    routes they add, which only the managed host knows) in the bottle's state directory; a rerun with the same
    digest and the same objects still running as that launch left them has nothing to do.
  - Credentials are part of the input (a changed token must reach the firewall); only the digest is kept.
options:
  _input:
    description: The launch's inputs (any structure of dicts, lists, strings, numbers, booleans and nulls).
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Digest the launch's inputs
  ansible.builtin.set_fact:
    bottle_launch_digest: "{{ {'state': bottle_state_args, 'launch': bottle_launch_args} | botbottle.bottle.launch_digest }}"
  no_log: true
"""

RETURN = r"""
_value:
  description: The hex SHA-256 digest.
  type: str
"""

import hashlib
import json
import os

from ansible.errors import AnsibleFilterError

# The collection's root: plugins/filter/<this file> is two levels below it.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CODE_DIRS = ("plugins", "roles")
_code = {}


def code_digest(root=ROOT):
    """SHA-256 over the relative paths and contents of the collection's plugins and roles (once per process)."""
    if root not in _code:
        digest = hashlib.sha256()
        for top in CODE_DIRS:
            for folder, dirs, files in os.walk(os.path.join(root, top)):
                dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
                for name in sorted(files):
                    if name.endswith((".pyc", ".pyo")) or name.startswith("."):
                        continue
                    path = os.path.join(folder, name)
                    with open(path, "rb") as handle:
                        content = handle.read()
                    digest.update(os.path.relpath(path, root).encode("utf-8") + b"\0"
                                  + hashlib.sha256(content).digest())
        _code[root] = digest.hexdigest()
    return _code[root]


def launch_digest(inputs):
    try:
        data = json.dumps(inputs, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise AnsibleFilterError("launch_digest: the inputs are not plain data: %s" % exc)
    return hashlib.sha256(code_digest().encode("ascii") + b"\0" + data.encode("utf-8")).hexdigest()


class FilterModule:
    def filters(self):
        return {"launch_digest": launch_digest}
