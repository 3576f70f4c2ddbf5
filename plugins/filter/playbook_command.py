# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: playbook_command
short_description: The command that runs one of the collection's playbooks, as the reader should paste it
version_added: 0.1.0
description:
  - Every next step the role and the playbooks print (tear down, status, supervise, images) is written by this
    filter, so that it fits how the collection was installed.
  - From the project's git checkout (C(galaxy.yml) at the collection's root and no C(MANIFEST.json)) -
    C(.venv/bin/ansible-playbook playbooks/teardown.yml -e bottle=demo), pasted in the checkout.
  - Installed with C(ansible-galaxy collection install) (a tarball or a git URL) -
    C(ansible-playbook botbottle.bottle.teardown -e bottle=demo), the fully qualified playbook name, pasted anywhere.
options:
  _input:
    description: The playbook's short name.
    type: str
    required: true
    choices: [bottle, fleet, images, snapshot, status, supervise, teardown]
  args:
    description: The arguments after the playbook, as the reader types them.
    type: str
    default: ""
  runner:
    description: >-
      The program that runs the playbook (the role's C(bottle_playbook_command)); empty for
      C(.venv/bin/ansible-playbook) in the checkout and C(ansible-playbook) elsewhere.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Say how to tear the bottle down
  ansible.builtin.debug:
    msg: "tear down: {{ 'teardown' | botbottle.bottle.playbook_command('-e bottle=' ~ bottle_slug) }}"
"""

RETURN = r"""
_value:
  description: The command line.
  type: str
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.botbottle.bottle.plugins.module_utils import playbook_command as owner


def playbook_command(playbook, args="", runner=""):
    try:
        return owner.command(playbook, args=args or "", runner=runner or "")
    except ValueError as exc:
        raise AnsibleFilterError("playbook_command: %s" % exc)


class FilterModule:
    def filters(self):
        return {"playbook_command": playbook_command}
