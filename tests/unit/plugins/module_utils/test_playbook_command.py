# -*- coding: utf-8 -*-
# Copyright: botbottle developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one owner of printed playbook commands: a checkout's form, an installed collection's form."""

from __future__ import annotations

import os

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.botbottle.bottle.plugins.filter.playbook_command import FilterModule
from ansible_collections.botbottle.bottle.plugins.module_utils import playbook_command as pc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def test_checkout_form():
    assert pc.command("teardown", "-e bottle=demo", checkout=True) == \
        ".venv/bin/ansible-playbook playbooks/teardown.yml -e bottle=demo"


def test_installed_form_is_fqcn_without_the_venv():
    line = pc.command("teardown", "-e bottle=demo", checkout=False)
    assert line == "ansible-playbook botbottle.bottle.teardown -e bottle=demo"
    assert ".venv" not in line and "playbooks/" not in line


def test_runner_replaces_the_program_only():
    assert pc.command("status", runner="/opt/ap", checkout=False) == "/opt/ap botbottle.bottle.status"
    assert pc.command("status", runner="ansible-playbook", checkout=True) == "ansible-playbook playbooks/status.yml"


def test_every_playbook_exists_under_its_name():
    for name in pc.PLAYBOOKS:
        assert os.path.isfile(os.path.join(ROOT, "playbooks", name + ".yml")), name
    shipped = {f[:-4] for f in os.listdir(os.path.join(ROOT, "playbooks")) if f.endswith(".yml")}
    assert shipped == set(pc.PLAYBOOKS)


def test_unknown_playbook_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown playbook 'teardwon'.*teardown"):
        pc.command("teardwon")


def test_checkout_is_told_from_an_installed_copy(tmp_path):
    (tmp_path / "galaxy.yml").write_text("namespace: botbottle\n")
    assert pc.from_checkout(str(tmp_path))
    (tmp_path / "MANIFEST.json").write_text("{}")
    assert not pc.from_checkout(str(tmp_path))
    assert not pc.from_checkout(str(tmp_path / "missing"))


def test_this_tree_is_a_checkout():
    assert pc.from_checkout() and pc.command("bottle").startswith(".venv/bin/ansible-playbook playbooks/bottle.yml")


def test_filter_wraps_the_owner():
    f = FilterModule().filters()["playbook_command"]
    assert f("teardown", "-e bottle=x", "") == pc.command("teardown", "-e bottle=x")
    with pytest.raises(AnsibleFilterError, match="playbook_command: unknown playbook"):
        f("nope")
