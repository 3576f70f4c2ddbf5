# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How a printed next step runs one of the collection's playbooks: the one owner of that text.

The role, the playbooks (through the ``botbottle.bottle.playbook_command`` filter) and the operator's
console print commands a person pastes. They fit how the collection was installed:

- from the project's git checkout (``galaxy.yml`` at the collection's root, no ``MANIFEST.json``): the
  checkout's venv and the playbook's path, ``.venv/bin/ansible-playbook playbooks/teardown.yml ...``,
  pasted in the checkout;
- installed (``ansible-galaxy collection install`` of a tarball or a git URL writes ``MANIFEST.json``):
  the fully qualified playbook name with the ``ansible-playbook`` of the PATH,
  ``ansible-playbook botbottle.bottle.teardown ...``, pasted in any folder.

``runner`` (the role's ``bottle_playbook_command``) replaces the ``ansible-playbook`` part when set.
This runs on the controller: inside a module on a managed host the collection's root is not known, so
a module's message names a playbook by its fully qualified name (``fqcn``), which works in both cases.
"""

from __future__ import annotations

import os

COLLECTION = "botbottle.bottle"
PLAYBOOKS = ("bottle", "fleet", "images", "snapshot", "status", "supervise", "teardown")
CHECKOUT_RUNNER = ".venv/bin/ansible-playbook"
INSTALLED_RUNNER = "ansible-playbook"


def collection_root():
    """The root of the collection this file belongs to (plugins/module_utils/ is two levels down)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def from_checkout(root=None):
    """Whether the collection at ``root`` (default: this one) is the project's checkout, not an installed copy."""
    root = collection_root() if root is None else root
    return (os.path.isfile(os.path.join(root, "galaxy.yml"))
            and not os.path.exists(os.path.join(root, "MANIFEST.json")))


def fqcn(playbook):
    """The playbook's fully qualified name, ``botbottle.bottle.<playbook>``."""
    if playbook not in PLAYBOOKS:
        raise ValueError("unknown playbook %r: the collection's playbooks are %s" % (playbook, ", ".join(PLAYBOOKS)))
    return "%s.%s" % (COLLECTION, playbook)


def command(playbook, args="", runner="", checkout=None):
    """The command line that runs ``playbook`` with ``args`` (already quoted as the reader types them).

    ``checkout``: None decides from this collection's root (``from_checkout``); ``runner``: empty for the
    default of that case.
    """
    name = fqcn(playbook)
    if checkout is None:
        checkout = from_checkout()
    if checkout:
        parts = [runner or CHECKOUT_RUNNER, "playbooks/%s.yml" % playbook]
    else:
        parts = [runner or INSTALLED_RUNNER, name]
    if args:
        parts.append(args)
    return " ".join(parts)
